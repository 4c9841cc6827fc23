package cli

import (
	"strings"
	"unicode/utf8"
)

// Server-provided strings (ids, payloads, messages, task output...) are
// written by whoever could submit a task or register a node. Printed raw,
// a control sequence in one of them (ESC ] 0 ; title BEL, CSI, C1 CSI
// U+009B, ...) would be interpreted by the operator's terminal. Every such
// string printed in table or plain-text mode goes through safe (one field)
// or safeBlock (text printed as lines on purpose). JSON output needs
// neither: encoding/json escapes control characters itself.

// safe returns s with every C0 control character (tab and newline
// included, so a field stays on its line and in its column), DEL, C1
// control (U+0080–U+009F) and byte of invalid UTF-8 replaced by a visible
// Go-style escape: \n, \t, \x1b, \x7f, \u009b, and \xff for a bad byte.
// Other text, any script included, is returned unchanged; a string with
// nothing to escape is returned without allocating. Backslashes are left
// as they are, so the escapes are for reading, not for parsing back.
func safe(s string) string {
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

// safeBlock is safe for text printed as a block of lines (a task's
// output): the newlines stay, everything else on each line is escaped.
func safeBlock(s string) string {
	if !strings.Contains(s, "\n") {
		return safe(s)
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = safe(l)
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
