package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// These tests check that `rctl dev` never leaves its cluster behind: not
// when its stdout is a pipe whose reader is gone (`rctl dev | head -1`,
// then Ctrl-C), not when it is killed with SIGKILL.

func TestDevBrokenPipeCtrlCStopsCluster(t *testing.T) {
	d := startDevSupervisor(t, 3, 0)
	d.interruptGroup()
	d.waitExit(60 * time.Second)
	d.checkCleanExit()
	d.checkNothingLeft(30 * time.Second)
}

func TestDevSIGKILLStopsCluster(t *testing.T) {
	d := startDevSupervisor(t, 3, 0)
	d.kill()
	d.waitExit(10 * time.Second)
	d.checkNothingLeft(30 * time.Second)
}

func TestDevWithAgentsStopsEverything(t *testing.T) {
	agent, err := filepath.Abs(filepath.Join("..", "agent", ".venv", "bin", "rctl-agent"))
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(agent); err != nil || st.IsDir() {
		t.Skipf("no node agent at %s (run `make agent-venv`); skipping the agents variant", agent)
	}
	t.Run("BrokenPipeCtrlC", func(t *testing.T) {
		d := startDevSupervisor(t, 3, 2, "--agent-cmd", agent)
		d.interruptGroup()
		d.waitExit(60 * time.Second)
		d.checkCleanExit()
		d.checkNothingLeft(60 * time.Second)
	})
	t.Run("SIGKILL", func(t *testing.T) {
		d := startDevSupervisor(t, 3, 2, "--agent-cmd", agent)
		d.kill()
		d.waitExit(10 * time.Second)
		d.checkNothingLeft(60 * time.Second)
	})
}

// devSupervisor is one running `rctl dev` started by a test.
type devSupervisor struct {
	t      *testing.T
	cmd    *exec.Cmd
	dir    string
	addrs  []string
	kids   []procID // the supervisor's children, recorded while it ran
	stderr *syncBuffer
	first  string // the first line of its stdout
	done   chan struct{}
}

// procID names a process across pid reuse: a pid plus its start time.
type procID struct {
	pid   int
	start string // field 22 of /proc/<pid>/stat
	comm  string
}

func (p procID) String() string { return fmt.Sprintf("%d (%s)", p.pid, p.comm) }

// startDevSupervisor starts `rctl dev` in its own process group (as a shell
// would start a foreground job) with its stdout piped to a reader that
// takes the first line and then goes away, like `rctl dev | head -1`. It
// returns once that line is read, the supervisor's children are recorded
// and the reader has closed its end of the pipe.
func startDevSupervisor(t *testing.T, servers, agents int, extra ...string) *devSupervisor {
	t.Helper()
	base := devFreePorts(t, servers)
	d := &devSupervisor{t: t, dir: t.TempDir(), stderr: &syncBuffer{}, done: make(chan struct{})}
	for i := 0; i < servers; i++ {
		d.addrs = append(d.addrs, net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
	}
	args := append([]string{"dev", "--servers", strconv.Itoa(servers), "--agents", strconv.Itoa(agents),
		"--base-port", strconv.Itoa(base), "--data-dir", d.dir}, extra...)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	d.cmd = exec.Command(rctlBin, args...)
	d.cmd.Env = append(os.Environ(), "RCTL_ADDR=")
	d.cmd.Stdout, d.cmd.Stderr = w, d.stderr
	d.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := d.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.Close()
	go func() { _ = d.cmd.Wait(); close(d.done) }()
	// Registered after t.TempDir, so it runs before the directory goes.
	t.Cleanup(d.cleanup)

	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(r).ReadString('\n')
		lines <- line
	}()
	select {
	case d.first = <-lines:
	case <-d.done:
		t.Fatalf("rctl dev exited before printing anything: %v\nstderr:\n%s", d.cmd.ProcessState, d.stderr.String())
	case <-time.After(60 * time.Second):
		t.Fatalf("rctl dev printed no line within 60s\nstderr:\n%s", d.stderr.String())
	}
	if !strings.Contains(d.first, "servers up") {
		t.Fatalf("first line of rctl dev: %q; want the \"servers up\" line", d.first)
	}
	// Every child is started before that line is printed.
	want := servers + agents
	eventually(t, 10*time.Second, func() error {
		kids, err := childrenOf(d.cmd.Process.Pid)
		if err != nil {
			return err
		}
		d.kids = kids
		if len(kids) != want {
			return fmt.Errorf("rctl dev (pid %d) has %d children %v; want %d", d.cmd.Process.Pid, len(kids), kids, want)
		}
		return nil
	})
	t.Logf("rctl dev pid %d, children %v, servers %v", d.cmd.Process.Pid, d.kids, d.addrs)
	// Agents are stopped once registered, so that they have a drain to do.
	for i := 1; i <= agents; i++ {
		log := filepath.Join(d.dir, fmt.Sprintf("agent-%d.log", i))
		eventually(t, 30*time.Second, func() error {
			if b, _ := os.ReadFile(log); !strings.Contains(string(b), "registered node") {
				return fmt.Errorf("agent-%d not registered yet (children %v): %s", i, d.kids, b)
			}
			return nil
		})
	}
	r.Close() // the reader exits: further writes to the pipe fail with EPIPE
	return d
}

// interruptGroup sends SIGINT to the supervisor's process group, as a
// terminal's Ctrl-C does to the foreground job.
func (d *devSupervisor) interruptGroup() {
	d.t.Helper()
	if err := syscall.Kill(-d.cmd.Process.Pid, syscall.SIGINT); err != nil {
		d.t.Fatalf("SIGINT to process group %d: %v", d.cmd.Process.Pid, err)
	}
}

func (d *devSupervisor) kill() {
	d.t.Helper()
	if err := d.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		d.t.Fatalf("SIGKILL to rctl dev (pid %d): %v", d.cmd.Process.Pid, err)
	}
}

func (d *devSupervisor) waitExit(within time.Duration) {
	d.t.Helper()
	select {
	case <-d.done:
	case <-time.After(within):
		d.t.Fatalf("rctl dev (pid %d) still running %s after being stopped; its children %v", d.cmd.Process.Pid, within, d.kids)
	}
}

// checkCleanExit checks that the supervisor exited 0 after Ctrl-C, rather
// than dying of a signal (SIGPIPE while printing "stopping").
func (d *devSupervisor) checkCleanExit() {
	d.t.Helper()
	ws := d.cmd.ProcessState.Sys().(syscall.WaitStatus)
	switch {
	case ws.Signaled():
		d.t.Errorf("rctl dev (pid %d) died of %s after Ctrl-C with its stdout reader gone; it must stop its children %v and exit",
			d.cmd.Process.Pid, ws.Signal(), d.kids)
	case ws.ExitStatus() != 0:
		d.t.Errorf("rctl dev (pid %d) exited %d after Ctrl-C; want 0", d.cmd.Process.Pid, ws.ExitStatus())
	}
}

// checkNothingLeft waits until no recorded child of the supervisor is alive
// and no server port accepts connections.
func (d *devSupervisor) checkNothingLeft(within time.Duration) {
	d.t.Helper()
	eventually(d.t, within, func() error {
		var alive []string
		for _, k := range d.kids {
			if ok, state := k.alive(); ok {
				alive = append(alive, fmt.Sprintf("%s state %s", k, state))
			}
		}
		if len(alive) > 0 {
			return fmt.Errorf("children of rctl dev (pid %d) still alive: %s (all children: %v)",
				d.cmd.Process.Pid, strings.Join(alive, ", "), d.kids)
		}
		for _, a := range d.addrs {
			if c, err := net.DialTimeout("tcp", a, 500*time.Millisecond); err == nil {
				c.Close()
				return fmt.Errorf("%s still accepts connections after rctl dev (pid %d) stopped; children were %v",
					a, d.cmd.Process.Pid, d.kids)
			}
		}
		return nil
	})
}

// cleanup kills whatever a failed test left running, and shows the logs.
func (d *devSupervisor) cleanup() {
	_ = d.cmd.Process.Signal(syscall.SIGKILL)
	<-d.done
	for _, k := range d.kids {
		if ok, _ := k.alive(); ok {
			_ = syscall.Kill(k.pid, syscall.SIGKILL)
		}
	}
	if d.t.Failed() {
		d.t.Logf("rctl dev first line: %q\nstderr:\n%s", d.first, d.stderr.String())
		logs, _ := filepath.Glob(filepath.Join(d.dir, "*.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			d.t.Logf("---- %s ----\n%s", filepath.Base(l), b)
		}
	}
}

// childrenOf scans /proc for the processes whose parent is ppid.
func childrenOf(ppid int) ([]procID, error) {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	var out []procID
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		st, err := readStat(pid)
		if err != nil {
			continue // gone meanwhile
		}
		if st.ppid == ppid && st.state != "Z" && st.state != "X" {
			out = append(out, procID{pid: pid, start: st.start, comm: st.comm})
		}
	}
	return out, nil
}

type procStat struct {
	comm, state, start string
	ppid               int
}

func readStat(pid int) (procStat, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStat{}, err
	}
	s := string(b)
	open, end := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
	if open < 0 || end < open {
		return procStat{}, fmt.Errorf("bad /proc/%d/stat: %q", pid, s)
	}
	// Fields after "pid (comm)": state(3) ppid(4) ... starttime(22).
	f := strings.Fields(s[end+1:])
	if len(f) < 20 {
		return procStat{}, fmt.Errorf("short /proc/%d/stat: %q", pid, s)
	}
	ppid, err := strconv.Atoi(f[1])
	if err != nil {
		return procStat{}, fmt.Errorf("bad ppid in /proc/%d/stat: %q", pid, s)
	}
	return procStat{comm: s[open+1 : end], state: f[0], ppid: ppid, start: f[19]}, nil
}

// alive reports whether p still runs: it exists, is not a zombie (its
// new parent may never reap it) and is the same process (not a reused pid).
func (p procID) alive() (bool, string) {
	st, err := readStat(p.pid)
	if errors.Is(err, os.ErrNotExist) || (err == nil && st.start != p.start) {
		return false, "gone"
	}
	if err != nil {
		return true, err.Error()
	}
	if st.state == "Z" || st.state == "X" {
		return false, st.state
	}
	return true, st.state
}

// devFreePorts finds n consecutive free loopback ports below the usual
// ephemeral range and returns the first.
func devFreePorts(t *testing.T, n int) int {
	t.Helper()
	for range 200 {
		base := 20000 + rand.IntN(12000)
		ok := true
		for i := 0; i < n && ok; i++ {
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(base+i)))
			if err != nil {
				ok = false
				break
			}
			ln.Close()
		}
		if ok {
			return base
		}
	}
	t.Fatalf("no %d consecutive free ports found", n)
	return 0
}
