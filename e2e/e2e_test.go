package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

type task struct {
	ID     string `json:"id"`
	Type   string `json:"type"`
	Status string `json:"status"`
}

// The e2e scenario: add, list, kill -9 the leader, list again from
// every server — the same manifest everywhere, including the restarted one.
func TestKillLeaderManifestConverges(t *testing.T) {
	c := startCluster(t, 3)
	all := c.addrs()
	c.leader(10*time.Second, all)
	for i := 0; i < 10; i++ {
		out := mustRctl(t, "--addr", all, "task", "add", "--type", "shell", "--id", fmt.Sprintf("job-%d", i), "--payload", "cmd=echo "+fmt.Sprint(i))
		if strings.TrimSpace(out) != fmt.Sprintf("job-%d", i) {
			t.Fatalf("task add printed %q", out)
		}
	}
	var listed []task
	mustJSON(t, mustRctl(t, "--addr", all, "task", "list", "-o", "json"), &listed)
	if len(listed) != 10 {
		t.Fatalf("listed %d tasks, want 10", len(listed))
	}

	old := c.leader(5*time.Second, all)
	killed := time.Now()
	c.kill(old)
	rest := c.addrs(old)
	// The client moves past the dead address by itself.
	mustRctl(t, "--addr", all, "task", "add", "--type", "sleep", "--id", "after-kill")
	t.Logf("kill -9 of leader %s → write committed via CLI after %s", old.id, time.Since(killed))
	nl := c.leader(5*time.Second, rest, old)
	if nl == old {
		t.Fatal("killed leader still reported as leader")
	}
	mustRctl(t, "--addr", rest, "task", "cancel", "job-3")

	c.start(old) // restart from its data dir
	want := manifest(t, nl.addr, false)
	if n := strings.Count(want, "\n"); n != 11 {
		t.Fatalf("leader lists %d tasks, want 11:\n%s", n, want)
	}
	for _, p := range c.procs {
		eventually(t, 15*time.Second, func() error {
			got := manifest(t, p.addr, true)
			if got != want {
				return fmt.Errorf("%s's manifest differs from the leader's:\n%s\nvs\n%s", p.id, got, want)
			}
			return nil
		})
	}
}

// manifest renders a server's task list (stale = its own local state).
func manifest(t *testing.T, addr string, stale bool) string {
	t.Helper()
	args := []string{"--addr", addr, "task", "list", "-o", "json"}
	if stale {
		args = append(args, "--stale")
	}
	out, errOut, code := rctl(t, args...)
	if code != 0 {
		return "error: " + errOut
	}
	var ts []task
	mustJSON(t, out, &ts)
	var b strings.Builder
	for _, x := range ts {
		fmt.Fprintf(&b, "%s %s %s\n", x.ID, x.Type, x.Status)
	}
	return b.String()
}

func TestSecondServerOnSameDataDirRefused(t *testing.T) {
	c := startCluster(t, 1)
	c.leader(10*time.Second, c.addrs())
	p := c.procs[0]
	other := freeAddrs(t, 1)[0]
	_, errOut, code := rctl(t, "serve", "--node-id", p.id, "--data-dir", p.dir, "--bind", other, "--insecure")
	if code != 1 || !strings.Contains(errOut, "in use by another rctl server") {
		t.Fatalf("second server on the same data dir: exit %d, stderr %q; want exit 1 and a clear refusal", code, errOut)
	}
	if n := strings.Count(strings.TrimSpace(errOut), "\n"); n != 0 {
		t.Fatalf("want one error line, got %d lines: %q", n+1, errOut)
	}
	// The running server is unharmed.
	mustRctl(t, "--addr", p.addr, "task", "add", "--type", "sleep", "--id", "still-fine")
}

func TestCLIErrorsAndExitCodes(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"unknown flag", []string{"task", "list", "--bogus"}, 2, "unknown flag"},
		{"missing type", []string{"task", "add"}, 2, "--type is required"},
		{"bad payload", []string{"task", "add", "--type", "x", "--payload", "novalue"}, 2, "not key=value"},
		{"bad output", []string{"-o", "yaml", "status"}, 2, "not an output format"},
		{"bad status", []string{"task", "list", "--status", "zzz"}, 2, "not a status"},
		{"serve without node id", []string{"serve", "--data-dir", "/tmp/x"}, 2, "node-id is required"},
		{"serve with bad peers", []string{"serve", "--node-id", "a", "--data-dir", "/tmp/x", "--bind", "127.0.0.1:1", "--peers", "b"}, 2, "not id=host:port"},
		{"nobody listening", []string{"--addr", "127.0.0.1:1,127.0.0.1:2", "--timeout", "1s", "status"}, 1, "check --addr"},
		{"extra args", []string{"task", "get", "a", "b"}, 2, "expected one task id"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, errOut, code := rctl(t, tc.args...)
			if code != tc.code || !strings.Contains(errOut, tc.want) {
				t.Fatalf("exit %d stderr %q; want exit %d and %q", code, errOut, tc.code, tc.want)
			}
			if strings.Count(strings.TrimRight(errOut, "\n"), "\n") != 0 {
				t.Fatalf("want one line on stderr, got %q", errOut)
			}
		})
	}
}

func TestEnvVarsConfigureFlags(t *testing.T) {
	c := startCluster(t, 1)
	c.leader(10*time.Second, c.addrs())
	cmd := exec.Command(rctlBin, "status", "-o", "json")
	cmd.Env = append(os.Environ(), "RCTL_ADDR="+c.procs[0].addr)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("status with RCTL_ADDR: %v", err)
	}
	var st status
	mustJSON(t, string(out), &st)
	if st.ID != "s1" {
		t.Fatalf("got status of %q", st.ID)
	}
}

func TestSnapshotSaveInspectRestore(t *testing.T) {
	c := startCluster(t, 3)
	all := c.addrs()
	c.leader(10*time.Second, all)
	for i := 0; i < 5; i++ {
		mustRctl(t, "--addr", all, "task", "add", "--type", "sleep", "--id", fmt.Sprintf("keep-%d", i))
	}
	file := filepath.Join(t.TempDir(), "backup.snap")
	mustRctl(t, "--addr", all, "snapshot", "save", file)
	var info struct {
		Tasks int `json:"tasks"`
	}
	insp := mustRctl(t, "snapshot", "inspect", file, "-o", "json")
	if err := json.Unmarshal([]byte(insp), &info); err != nil || info.Tasks != 5 {
		t.Fatalf("inspect: %v %s", err, insp)
	}
	mustRctl(t, "--addr", all, "task", "add", "--type", "sleep", "--id", "lost-by-restore")
	mustRctl(t, "--addr", all, "snapshot", "restore", file)
	for _, p := range c.procs {
		eventually(t, 10*time.Second, func() error {
			m := manifest(t, p.addr, true)
			if strings.Contains(m, "lost-by-restore") || strings.Count(m, "keep-") != 5 {
				return fmt.Errorf("%s after restore:\n%s", p.id, m)
			}
			return nil
		})
	}

	// A corrupt file is refused and changes nothing.
	bad := filepath.Join(t.TempDir(), "bad.snap")
	raw, _ := os.ReadFile(file)
	raw[len(raw)/2] ^= 0xff
	if err := os.WriteFile(bad, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	_, errOut, code := rctl(t, "--addr", all, "snapshot", "restore", bad)
	if code != 1 || !strings.Contains(errOut, "nothing changed") {
		t.Fatalf("restore of a corrupt file: exit %d %q", code, errOut)
	}
	if m := manifest(t, all, false); strings.Count(m, "keep-") != 5 {
		t.Fatalf("manifest changed after a refused restore:\n%s", m)
	}
}

func TestDevFiveServers(t *testing.T) {
	base := devFreePorts(t, 5) // below the ephemeral range: a fixed 47051 collided with outgoing connections
	dir := t.TempDir()
	cmd := exec.Command(rctlBin, "dev", "--servers", "5", "--base-port", fmt.Sprint(base), "--data-dir", dir)
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGKILL)
	}()
	var addrs []string
	for i := 0; i < 5; i++ {
		addrs = append(addrs, fmt.Sprintf("127.0.0.1:%d", base+i))
	}
	eventually(t, 20*time.Second, func() error {
		if !strings.Contains(out.String(), "Press Ctrl-C") {
			return fmt.Errorf("dev not ready: %s", out.String())
		}
		return nil
	})
	var members struct {
		Members []struct {
			ID     string `json:"id"`
			Leader bool   `json:"leader"`
			State  string `json:"state"`
		} `json:"members"`
	}
	eventually(t, 10*time.Second, func() error {
		o, e, code := rctl(t, "--addr", strings.Join(addrs, ","), "members", "-o", "json")
		if code != 0 {
			return fmt.Errorf("members: %s", e)
		}
		mustJSON(t, o, &members)
		leaders := 0
		for _, m := range members.Members {
			if m.Leader {
				leaders++
			}
			if m.State == "unreachable" {
				return fmt.Errorf("%s unreachable", m.ID)
			}
		}
		if len(members.Members) != 5 || leaders != 1 {
			return fmt.Errorf("%d members, %d leaders: %s", len(members.Members), leaders, o)
		}
		return nil
	})
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("rctl dev exited with %v after Ctrl-C:\n%s", err, out.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatalf("rctl dev did not stop on Ctrl-C:\n%s", out.String())
	}
	// Every server is gone: their ports are free again.
	for _, a := range addrs {
		if _, _, code := rctl(t, "--addr", a, "--timeout", "500ms", "status"); code == 0 {
			t.Fatalf("server at %s still answers after dev stopped", a)
		}
	}
}

func TestTaskWatchStreamsChanges(t *testing.T) {
	c := startCluster(t, 3)
	all := c.addrs()
	c.leader(10*time.Second, all)
	mustRctl(t, "--addr", all, "task", "add", "--type", "sleep", "--id", "existing")

	cmd := exec.Command(rctlBin, "--addr", all, "task", "watch", "-o", "json")
	out := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() { _ = cmd.Process.Kill() }()

	eventually(t, 10*time.Second, func() error {
		if !strings.Contains(out.String(), `"id":"existing"`) {
			return fmt.Errorf("watch has not printed the existing task: %q", out.String())
		}
		return nil
	})
	mustRctl(t, "--addr", all, "task", "add", "--type", "sleep", "--id", "new-one")
	mustRctl(t, "--addr", all, "task", "cancel", "new-one")
	eventually(t, 10*time.Second, func() error {
		s := out.String()
		if !strings.Contains(s, `"id":"new-one"`) || !strings.Contains(s, `"status":"cancelled"`) {
			return fmt.Errorf("watch output lacks the new task's changes: %q", s)
		}
		return nil
	})
	_ = cmd.Process.Signal(syscall.SIGINT)
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("watch exited with %v after Ctrl-C", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not stop on Ctrl-C")
	}
}

func TestTaskAddFromFile(t *testing.T) {
	c := startCluster(t, 3)
	all := c.addrs()
	c.leader(10*time.Second, all)
	var b strings.Builder
	for i := 0; i < 1500; i++ { // two batches
		fmt.Fprintf(&b, `{"id":"f%04d","type":"shell","payload":{"cmd":"echo %d"}}`+"\n", i, i)
	}
	b.WriteString(`{"type":"sleep"}` + "\n")
	file := filepath.Join(t.TempDir(), "tasks.jsonl")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	out := mustRctl(t, "--addr", all, "task", "add", "--file", file)
	if n := strings.Count(out, "\n"); n != 1501 {
		t.Fatalf("printed %d ids, want 1501", n)
	}
	if m := manifest(t, all, false); strings.Count(m, "\n") != 1501 {
		t.Fatalf("manifest holds %d tasks", strings.Count(m, "\n"))
	}
	// A bad line anywhere: nothing is sent.
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	_ = os.WriteFile(bad, []byte(`{"id":"ok-1","type":"sleep"}`+"\n"+`{"id":"x","typo":"sleep"}`+"\n"), 0o600)
	_, errOut, code := rctl(t, "--addr", all, "task", "add", "--file", bad)
	if code != 2 || !strings.Contains(errOut, "line 2") {
		t.Fatalf("bad file: exit %d %q", code, errOut)
	}
	if strings.Contains(manifest(t, all, false), "ok-1") {
		t.Fatal("a refused file added its first line")
	}
}
