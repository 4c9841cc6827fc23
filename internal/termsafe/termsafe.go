package termsafe

import (
	"strings"
	"unicode/utf8"
)

// Field returns s with every C0 control character (tab and newline
// included, so a field stays on its line and in its column), DEL, C1
// control (U+0080–U+009F) and byte of invalid UTF-8 replaced by a visible
// Go-style escape: \n, \t, \x1b, \x7f, \u009b, and \xff for a bad byte.
// Other text, any script included, is returned unchanged; a string with
// nothing to escape is returned without allocating. Backslashes are left
// as they are, so the escapes are for reading, not for parsing back.
//
// Field's output has nothing left to escape, so Field(Field(s)) == Field(s)
// and escaping twice is harmless (and, on the fast path, free).
func Field(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			break // C0 or DEL
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if (r == utf8.RuneError && size == 1) || isC1(r) {
			break
		}
		i += size
	}
	if i == len(s) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s) + 8)
	b.WriteString(s[:i])
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f {
			b.WriteByte(c)
			i++
			continue
		}
		if c < utf8.RuneSelf {
			writeC0(&b, c)
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			writeHexByte(&b, `\x`, c)
		case isC1(r):
			writeHexByte(&b, `\u00`, byte(r))
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// Block is Field for text printed as a block of lines (a task's output):
// the newlines stay, everything else on each line is escaped.
func Block(s string) string {
	if !strings.Contains(s, "\n") {
		return Field(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Field(l)
	}
	return strings.Join(lines, "\n")
}

func isC1(r rune) bool { return r >= 0x80 && r <= 0x9f }

func writeC0(b *strings.Builder, c byte) {
	switch c {
	case '\a':
		b.WriteString(`\a`)
	case '\b':
		b.WriteString(`\b`)
	case '\f':
		b.WriteString(`\f`)
	case '\n':
		b.WriteString(`\n`)
	case '\r':
		b.WriteString(`\r`)
	case '\t':
		b.WriteString(`\t`)
	case '\v':
		b.WriteString(`\v`)
	default:
		writeHexByte(b, `\x`, c)
	}
}

func writeHexByte(b *strings.Builder, prefix string, c byte) {
	const hex = "0123456789abcdef"
	b.WriteString(prefix)
	b.WriteByte(hex[c>>4])
	b.WriteByte(hex[c&0xf])
}
