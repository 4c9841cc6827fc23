package termsafe

import (
	"strings"
	"testing"
)

func TestField(t *testing.T) {
	cases := []struct{ name, in, want string }{
		{"empty", "", ""},
		{"plain", "task-42 ok", "task-42 ok"},
		{"accents", "café é", "café é"},
		{"cjk", "日本", "日本"},
		{"emoji", "ok 🚀", "ok 🚀"},
		{"backslash kept", `C:\tmp`, `C:\tmp`},
		{"OSC title", "\x1b]0;pwned\a", `\x1b]0;pwned\a`},
		{"OSC ST", "\x1b]8;;http://x\x1b\\link", `\x1b]8;;http://x\x1b\link`},
		{"CSI", "\x1b[2J\x1b[31mred", `\x1b[2J\x1b[31mred`},
		{"C1 CSI", "\u009b2J", `\u009b2J`},
		{"C1 OSC and NEL", "a\u009d0;t\u0085b", `a\u009d0;t\u0085b`},
		{"BEL", "ding\a", `ding\a`},
		{"DEL", "x\x7fy", `x\x7fy`},
		{"tab", "a\tb", `a\tb`},
		{"newline", "line1\nline2", `line1\nline2`},
		{"CR", "ok\rFAKE", `ok\rFAKE`},
		{"NUL and friends", "\x00\x01\x08\x0b\x0c\x1f", `\x00\x01\b\v\f\x1f`},
		{"invalid UTF-8", "a\xffb\xc3", `a\xffb\xc3`},
		{"raw C1 byte", "\x9b2J", `\x9b2J`},
		{"overlong ESC", "\xc0\x9b", `\xc0\x9b`},
		{"U+00A0 is not C1", "a\u00a0b", "a\u00a0b"},
		{"mixed", "日\x1b本\u009bé\n", `日\x1b本\u009bé\n`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := Field(tc.in)
			if got != tc.want {
				t.Fatalf("Field(%q) = %q, want %q", tc.in, got, tc.want)
			}
			assertPrintable(t, got, false)
			if again := Field(got); again != got {
				t.Fatalf("Field is not idempotent: Field(%q) = %q", got, again)
			}
		})
	}
}

func TestBlockKeepsNewlinesOnly(t *testing.T) {
	in := "first\x1b[2K\n\tsecond\r\n\u009b\n"
	want := "first\\x1b[2K\n\\tsecond\\r\n\\u009b\n"
	if got := Block(in); got != want {
		t.Fatalf("Block(%q) = %q, want %q", in, got, want)
	}
	if got := Block("one line\a"); got != `one line\a` {
		t.Fatalf("one line: got %q", got)
	}
}

func TestFieldDoesNotAllocateForCleanText(t *testing.T) {
	s := strings.Repeat("node-1 aws eu-west-1 日本 ", 4)
	if n := testing.AllocsPerRun(100, func() { _ = Field(s) }); n != 0 {
		t.Fatalf("Field of clean text allocated %v times", n)
	}
}

// assertPrintable fails if s holds ESC, any other byte below 0x20 (or a
// newline when newlines are not allowed), DEL, a C1 control or invalid
// UTF-8.
func assertPrintable(t *testing.T, s string, newlines bool) {
	t.Helper()
	for i, r := range s {
		switch {
		case r == '\n' && newlines:
		case r < 0x20, r == 0x7f, r >= 0x80 && r <= 0x9f, r == 0xfffd && !strings.HasPrefix(s[i:], "\ufffd"):
			t.Fatalf("unsafe rune %U at byte %d in %q", r, i, s)
		}
	}
	if strings.ContainsRune(s, 0x1b) {
		t.Fatalf("ESC in %q", s)
	}
}
