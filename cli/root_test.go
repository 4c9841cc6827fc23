package cli

import (
	"bytes"
	"strings"
	"testing"
)

func run(t *testing.T, env map[string]string, args ...string) (string, string, int) {
	t.Helper()
	for k, v := range env {
		t.Setenv(k, v)
	}
	var out, errb bytes.Buffer
	code := Run(args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestUsageMistakesExit2WithOneLine(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want string
	}{
		{"unknown command", []string{"frobnicate"}, "unknown command"},
		{"unknown flag", []string{"status", "--nope"}, "unknown flag"},
		{"bad output", []string{"-o", "xml", "status"}, "not an output format"},
		{"bad timeout", []string{"--timeout", "0s", "status"}, "--timeout must be positive"},
		{"dev servers out of range", []string{"dev", "--servers", "12"}, "--servers must be 1-9"},
		{"dev agents out of range", []string{"dev", "--agents", "-1"}, "--agents must be 0-50"},
		{"serve bad log level", []string{"serve", "--node-id", "a", "--data-dir", "/tmp/x", "--bind", "127.0.0.1:1", "--log-level", "loud"}, "--log-level"},
		{"serve bad timing", []string{"serve", "--node-id", "a", "--data-dir", "/tmp/x", "--bind", "127.0.0.1:1", "--timing", "fast"}, "timing"},
		{"nodes bad sort", []string{"nodes", "--sort", "size"}, "--sort"},
		{"transfer too many ids", []string{"operator", "raft", "transfer-leader", "a", "b"}, "at most one server id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := run(t, nil, tc.args...)
			if code != ExitUsage || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d, stderr %q; want exit 2 and %q", code, errOut, tc.want)
			}
			if strings.Count(strings.TrimRight(errOut, "\n"), "\n") != 0 {
				t.Fatalf("want one line, got %q", errOut)
			}
		})
	}
}

func TestEnvironmentSetsFlags(t *testing.T) {
	t.Run("bad value names the variable", func(t *testing.T) {
		_, errOut, code := run(t, map[string]string{"RCTL_TIMEOUT": "soon"}, "status")
		if code != ExitUsage || !strings.Contains(errOut, "RCTL_TIMEOUT") {
			t.Fatalf("exit %d, stderr %q; want a usage error naming RCTL_TIMEOUT", code, errOut)
		}
	})
	t.Run("the command line wins", func(t *testing.T) {
		_, errOut, code := run(t, map[string]string{"RCTL_OUTPUT": "xml"}, "-o", "json", "version")
		if code != ExitOK {
			t.Fatalf("flag did not override env: exit %d %q", code, errOut)
		}
	})
	t.Run("env applies when the flag is absent", func(t *testing.T) {
		_, errOut, code := run(t, map[string]string{"RCTL_OUTPUT": "xml"}, "version")
		if code != ExitUsage || !strings.Contains(errOut, "xml") {
			t.Fatalf("RCTL_OUTPUT ignored: exit %d %q", code, errOut)
		}
	})
}

func TestVersion(t *testing.T) {
	out, _, code := run(t, nil, "version")
	if code != ExitOK || !strings.HasPrefix(out, "rctl ") {
		t.Fatalf("version: exit %d %q", code, out)
	}
}
