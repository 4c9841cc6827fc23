package cli

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"
)

// child is a process rctl dev started.
type child struct {
	kind, id string // kind: "server" or "agent"
	cmd      *exec.Cmd
	exited   chan struct{} // closed once the process is reaped
	err      error         // cmd.Wait's result; read it after exited is closed
}

// spawner starts rctl dev's children, all from one goroutine that holds its
// OS thread locked for as long as they may run.
//
// Every child gets a parent-death signal (Pdeathsig: SIGTERM), so that it
// stops cleanly when rctl dev dies in a way it cannot handle (kill -9, a
// crash); servers shut down on SIGTERM and agents drain. The kernel sends
// that signal when the *thread* that forked the child exits, not when the
// process does (go.dev/issue/27505, documented on SysProcAttr.Pdeathsig).
// The Go runtime does end threads: when a goroutine locked to its thread
// (runtime.LockOSThread, which libraries use) returns without unlocking,
// its thread exits. If a child had been forked from whatever thread the
// calling goroutine happened to run on, that thread could later be taken
// by such a goroutine and end, sending SIGTERM to a server for no reason.
// Forking only from a goroutine locked to its thread rules that out: no
// other goroutine ever runs on that thread, and it lives until close, which
// is called after every child has been reaped. (close returns from the
// goroutine still locked, so the runtime ends the thread, and a child that
// somehow survived gets its SIGTERM then.)
//
// The race where rctl dev dies between the fork and the child's
// prctl(PR_SET_PDEATHSIG) is closed by package syscall: the child compares
// getppid() with the pid its parent had before the fork and, if they
// differ, sends the signal to itself before exec.
type spawner struct {
	reqs chan spawnReq
	tid  int // the thread every child is forked from

	mu     sync.Mutex
	closed bool
}

type spawnReq struct {
	cmd   *exec.Cmd
	reply chan error
}

func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq)}
	ready := make(chan struct{})
	go func() {
		runtime.LockOSThread()
		// Never unlocked; see the type's comment.
		s.tid = threadID()
		close(ready)
		for r := range s.reqs {
			r.reply <- r.cmd.Start()
		}
	}()
	<-ready
	return s
}

// start starts cmd from the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errors.New("dev: no more children: stopping")
	}
	reply := make(chan error, 1)
	s.reqs <- spawnReq{cmd, reply}
	return <-reply
}

// close ends the spawner and its thread. Call it once every child it
// started has been reaped.
func (s *spawner) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.closed {
		s.closed = true
		close(s.reqs)
	}
}

// startChild starts exe with args in its own process group, logging to
// dir/<id>.log. The child gets SIGTERM when rctl dev dies (see spawner).
func (s *spawner) startChild(kind, dir, id, exe string, args ...string) (*child, error) {
	logf, err := os.OpenFile(filepath.Join(dir, id+".log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o640)
	if err != nil {
		return nil, fmt.Errorf("dev: %w", err)
	}
	cmd := exec.Command(exe, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Env = devEnv()
	// Its own process group: Ctrl-C in the terminal reaches only rctl dev,
	// which stops the children in order (agents drain before the servers
	// go).
	cmd.SysProcAttr = childAttr()
	if err := s.start(cmd); err != nil {
		logf.Close()
		return nil, fmt.Errorf("dev: start %s (%s): %w", id, exe, err)
	}
	c := &child{kind: kind, id: id, cmd: cmd, exited: make(chan struct{})}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	return c, nil
}

// stopChildren sends SIGTERM to every child still running, waits up to grace
// for all of them, then kills the rest and waits for them to be reaped.
func stopChildren(cs []*child, grace time.Duration) {
	signalChildren(cs, syscall.SIGTERM)
	if waitChildren(cs, grace) {
		return
	}
	signalChildren(cs, syscall.SIGKILL)
	waitChildren(cs, 5*time.Second)
}

func signalChildren(cs []*child, s syscall.Signal) {
	for _, c := range cs {
		select {
		case <-c.exited: // reaped: its pid may belong to another process now
		default:
			_ = c.cmd.Process.Signal(s)
		}
	}
}

// waitChildren reports whether every child exited within d.
func waitChildren(cs []*child, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for _, c := range cs {
		select {
		case <-c.exited:
		case <-timer.C:
			return false
		}
	}
	return true
}

// devOutput is where rctl dev prints. Writes are queued and written by a
// goroutine of their own, so printing never holds up the supervisor: a
// reader that stops reading (a full pipe) cannot block it, and once a write
// fails (EPIPE: the reader is gone) the rest is dropped. Write never fails.
type devOutput struct {
	q    chan []byte
	done chan struct{}

	mu     sync.Mutex
	closed bool
}

func newDevOutput(w io.Writer) *devOutput {
	o := &devOutput{q: make(chan []byte, 256), done: make(chan struct{})}
	go func() {
		defer close(o.done)
		failed := false
		for b := range o.q {
			if !failed {
				_, err := w.Write(b)
				failed = err != nil
			}
		}
	}()
	return o
}

func (o *devOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if !o.closed {
		select {
		case o.q <- bytes.Clone(p):
		default: // the reader is far behind: drop
		}
	}
	return len(p), nil
}

// close takes no more output and waits up to wait for the queue to be
// written out.
func (o *devOutput) close(wait time.Duration) {
	o.mu.Lock()
	if !o.closed {
		o.closed = true
		close(o.q)
	}
	o.mu.Unlock()
	timer := time.NewTimer(wait)
	defer timer.Stop()
	select {
	case <-o.done:
	case <-timer.C:
	}
}
