package fault

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// NamePrefix starts the name of every network namespace and interface the
// harness creates: "rf<pid>-…" for namespaces, "rf<pid>t…" for TAP devices
// before they move into their namespace. The pid lets a later run tell a
// crashed run's leftovers (owner gone) from a concurrent run's (owner
// alive); see CleanupLeftovers.
const NamePrefix = "rf"

const netnsDir = "/run/netns"

// Netns is a named network namespace (`ip netns add`) the harness owns.
type Netns struct {
	Name string
	f    *os.File // /run/netns/<Name>, held open for setns
}

// createNetns adds the namespace name and brings its loopback up.
func createNetns(name string) (*Netns, error) {
	if err := runIP("netns", "add", name); err != nil {
		return nil, err
	}
	f, err := os.Open(filepath.Join(netnsDir, name))
	if err != nil {
		_ = runIP("netns", "del", name)
		return nil, fmt.Errorf("open namespace %s: %w", name, err)
	}
	n := &Netns{Name: name, f: f}
	if err := runIP("-n", name, "link", "set", "lo", "up"); err != nil {
		n.Delete()
		return nil, err
	}
	return n, nil
}

// Do runs fn on an OS thread that has entered the namespace, so every
// socket fn creates (listeners, dialled connections) lives in it. The
// sockets keep working afterwards from any goroutine. fn must not start
// goroutines that create sockets: they run in the harness's namespace.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("open own network namespace: %w", err)
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(int(n.f.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("enter namespace %s: %w", n.Name, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: the runtime ends it with this
			// goroutine instead of reusing a thread in the wrong namespace.
			errc <- fmt.Errorf("leave namespace %s: %w", n.Name, err)
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Dial opens a TCP connection from inside the namespace. It has the
// signature of rpc.DialFunc.
func (n *Netns) Dial(ctx context.Context, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.Do(func() error {
		d := net.Dialer{Timeout: 2 * time.Second, KeepAlive: 15 * time.Second}
		var err error
		c, err = d.DialContext(ctx, "tcp", addr)
		return err
	})
	return c, err
}

// Listen opens a TCP listener inside the namespace.
func (n *Netns) Listen(addr string) (net.Listener, error) {
	var ln net.Listener
	err := n.Do(func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	})
	return ln, err
}

// Command returns a command that runs bin inside the namespace (through
// `ip netns exec`, which execs without forking, so the command's pid is
// bin's pid). The process gets SIGKILL if the harness dies, and its own
// process group.
func (n *Netns) Command(bin string, args ...string) *exec.Cmd {
	cmd := exec.Command("ip", append([]string{"netns", "exec", n.Name, bin}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	return cmd
}

// Delete kills every process still in the namespace and removes it.
func (n *Netns) Delete() error {
	if n.f != nil {
		n.f.Close()
		n.f = nil
	}
	return deleteNetns(n.Name)
}

func deleteNetns(name string) error {
	deadline := time.Now().Add(10 * time.Second)
	for {
		pids := netnsPids(name)
		if len(pids) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("namespace %s: processes %v survive SIGKILL", name, pids)
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return runIP("netns", "del", name)
}

// netnsPids lists the processes inside the named namespace.
func netnsPids(name string) []int {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return nil
	}
	var pids []int
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// CleanupLeftovers removes what crashed harness runs left behind:
// namespaces named NamePrefix<pid>-… whose owning process no longer
// exists, with every process inside them. Namespaces of live runs
// (concurrent tests) are left alone. It returns the names it removed.
func CleanupLeftovers() ([]string, error) {
	ents, err := os.ReadDir(netnsDir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var removed []string
	var errs []error
	for _, e := range ents {
		owner, ok := ownerPid(e.Name())
		if !ok || owner == os.Getpid() || processAlive(owner) {
			continue
		}
		if err := deleteNetns(e.Name()); err != nil {
			errs = append(errs, err)
			continue
		}
		removed = append(removed, e.Name())
	}
	return removed, errors.Join(errs...)
}

// ownerPid parses "rf<pid>-…".
func ownerPid(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, NamePrefix)
	if !ok {
		return 0, false
	}
	digits, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(digits)
	return pid, err == nil && pid > 0
}

func processAlive(pid int) bool {
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// runIP runs the ip(8) command.
func runIP(args ...string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("ip", args...)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// runIPBatch runs several ip commands at once (`ip -batch -`), with global
// options such as -n NAME.
func runIPBatch(global []string, lines []string) error {
	var stderr bytes.Buffer
	cmd := exec.Command("ip", append(global, "-batch", "-")...)
	cmd.Stdin = strings.NewReader(strings.Join(lines, "\n") + "\n")
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s -batch (%s): %w: %s", strings.Join(global, " "), strings.Join(lines, "; "), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}
