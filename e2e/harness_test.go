// Package e2e drives real `rctl serve` processes through the real CLI.
package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/internal/testutil"
)

var rctlBin string

func TestMain(m *testing.M) {
	code, err := run(m)
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	os.Exit(code)
}

func run(m *testing.M) (int, error) {
	if bin := os.Getenv("RCTL_BIN"); bin != "" {
		rctlBin = bin
		return m.Run(), nil
	}
	dir, err := os.MkdirTemp("", "rctl-e2e-bin-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(dir)
	rctlBin = filepath.Join(dir, "rctl")
	cmd := exec.Command("go", "build", "-race", "-o", rctlBin, "..")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return 0, fmt.Errorf("build rctl: %w", err)
	}
	return m.Run(), nil
}

func freeAddrs(t *testing.T, n int) []string { return testutil.FreeAddrs(t, n) }

// proc is one real `rctl serve` process.
type proc struct {
	id, addr, dir string
	args          []string
	cmd           *exec.Cmd
	log           *bytes.Buffer
	done          chan struct{}
}

type cluster struct {
	t     *testing.T
	procs []*proc
}

func startCluster(t *testing.T, n int) *cluster {
	t.Helper()
	return startClusterWith(t, n, func(*proc) []string { return []string{"--insecure"} })
}

// startClusterWith starts n servers s1..sn, each with the extra flags
// security(p) returns (--insecure, or its TLS files).
func startClusterWith(t *testing.T, n int, security func(p *proc) []string) *cluster {
	t.Helper()
	addrs := freeAddrs(t, n)
	var peers []string
	for i, a := range addrs {
		peers = append(peers, fmt.Sprintf("s%d=%s", i+1, a))
	}
	c := &cluster{t: t}
	for i, a := range addrs {
		p := &proc{id: fmt.Sprintf("s%d", i+1), addr: a, dir: t.TempDir()}
		p.args = append([]string{"serve", "--node-id", p.id, "--data-dir", p.dir, "--bind", a,
			"--peers", strings.Join(peers, ","), "--timing", "lan", "--cloud", "local"}, security(p)...)
		c.procs = append(c.procs, p)
		c.start(p)
	}
	t.Cleanup(func() {
		for _, p := range c.procs {
			c.kill(p)
		}
		if t.Failed() {
			for _, p := range c.procs {
				t.Logf("---- log of %s ----\n%s", p.id, p.log.String())
			}
		}
	})
	return c
}

func (c *cluster) start(p *proc) {
	c.t.Helper()
	p.cmd = exec.Command(rctlBin, p.args...)
	if p.log == nil {
		p.log = &bytes.Buffer{}
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		c.t.Fatalf("start %s: %v", p.id, err)
	}
	p.done = make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(p.done) }()
}

// kill sends SIGKILL (kill -9) and waits for the process to go.
func (c *cluster) kill(p *proc) {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
}

func (c *cluster) addrs(except ...*proc) string {
	var out []string
outer:
	for _, p := range c.procs {
		for _, e := range except {
			if e == p {
				continue outer
			}
		}
		out = append(out, p.addr)
	}
	return strings.Join(out, ",")
}

// rctl runs the CLI and returns stdout, stderr and the exit code.
func rctl(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(rctlBin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	cmd.Env = append(os.Environ(), "RCTL_ADDR=")
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run rctl %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

// mustRctl runs the CLI and fails the test unless it exits 0.
func mustRctl(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := rctl(t, args...)
	if code != 0 {
		t.Fatalf("rctl %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

func mustJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("bad json %q: %v", s, err)
	}
}

func eventually(t *testing.T, within time.Duration, fn func() error) {
	t.Helper()
	testutil.Eventually(t, within, fn)
}

type status struct {
	ID         string `json:"id"`
	State      string `json:"state"`
	LeaderID   string `json:"leader_id"`
	LeaderAddr string `json:"leader_addr"`
	Term       uint64 `json:"term"`
}

// leader waits for a leader and returns its process. A leader in not is
// ignored (a survivor may name the killed leader until its heartbeat
// timeout passes).
func (c *cluster) leader(within time.Duration, among string, not ...*proc) *proc {
	c.t.Helper()
	var lp *proc
	eventually(c.t, within, func() error {
		out, errOut, code := rctl(c.t, "--addr", among, "--timeout", "2s", "status", "-o", "json")
		if code != 0 {
			return fmt.Errorf("status: %s", errOut)
		}
		var st status
		mustJSON(c.t, out, &st)
		for _, p := range c.procs {
			if p.id == st.LeaderID {
				for _, n := range not {
					if n == p {
						return fmt.Errorf("%s still names the old leader %s", st.ID, p.id)
					}
				}
				lp = p
				return nil
			}
		}
		return fmt.Errorf("no leader yet (%s sees %q)", st.ID, st.LeaderID)
	})
	return lp
}
