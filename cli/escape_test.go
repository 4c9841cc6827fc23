package cli

// The escaping itself (termsafe.Field, termsafe.Block) is unit-tested in
// internal/termsafe; these tests check that the commands route every
// server-provided string through it.

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

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

func TestTaskGetPrintsNoControlCharacters(t *testing.T) {
	osc := "\x1b]0;owned\a"
	now := time.Now().UnixNano()
	task := &fsm.Task{
		ID:          "t-\x1b[1m1",
		Type:        "shell" + osc,
		Payload:     fsm.NewPayload(map[string]string{"cmd": "echo hi" + osc, "k\x1b[2J": "v\tw\u009b"}),
		Cloud:       "aws\r",
		Status:      fsm.TaskStatus("failed\x07"),
		NodeID:      "node\x1b]52;c;ZXZpbA==\a",
		Attempts:    1,
		MaxAttempts: 3,
		CreatedAt:   now,
		UpdatedAt:   now,
		Result: &fsm.Result{
			ExitCode: 1,
			Output:   "line one" + osc + "\nline\rtwo\x1b[A\n\xff",
			Error:    "boom\n\x1b[31m",
		},
		History: []fsm.Event{{Time: now, Status: "running", NodeID: "n\x1b", Message: "started" + osc}},
	}
	var out bytes.Buffer
	printTask(&globals{stdout: &out}, task)
	got := out.String()
	assertPrintable(t, got, true)
	for _, want := range []string{
		`payload:      cmd=echo hi\x1b]0;owned\a`,
		`payload:      k\x1b[2J=v\tw\u009b`,
		"  line one\\x1b]0;owned\\a\n  line\\rtwo\\x1b[A\n  \\xff\n",
		`error:        boom\n\x1b[31m`,
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
}

func TestTableEscapesCells(t *testing.T) {
	var out bytes.Buffer
	tb := newTable(&out, "ID", "NOTE")
	tb.row("a\tb", "x\ny\x1b]0;t\a")
	tb.row("c", "d")
	if err := tb.flush(); err != nil {
		t.Fatal(err)
	}
	got := out.String()
	assertPrintable(t, got, true)
	if lines := strings.Count(got, "\n"); lines != 3 {
		t.Fatalf("want 3 lines, got %d:\n%s", lines, got)
	}
	if !strings.Contains(got, `a\tb  x\ny\x1b]0;t\a`) {
		t.Fatalf("row not escaped and aligned:\n%s", got)
	}
}
