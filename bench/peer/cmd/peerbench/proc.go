package main

import (
	"fmt"
	"os"
	"os/exec"
	"sync"
	"syscall"
)

// Proc is one server process the benchmark started. It can be killed with
// SIGKILL and started again with the same arguments (and so the same data
// dir). Its stdout and stderr go to LogPath.
type Proc struct {
	Name    string
	Host    Host
	Bin     string
	Args    []string
	LogPath string
	Net     Network

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Start starts the process; it is an error if it is already running.
func (p *Proc) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd != nil {
		select {
		case <-p.done:
		default:
			return fmt.Errorf("%s is already running", p.Name)
		}
	}
	logf, err := os.OpenFile(p.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := p.Net.Command(p.Host, p.Bin, p.Args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start %s: %w", p.Name, err)
	}
	done := make(chan struct{})
	p.cmd, p.done = cmd, done
	live.Store(p, struct{}{})
	go func() {
		_ = cmd.Wait()
		logf.Close()
		live.Delete(p)
		close(done)
	}()
	return nil
}

// live holds every running Proc, so that an interrupted benchmark kills
// exactly the processes it started (killLive).
var live sync.Map

// killLive kills every process still running.
func killLive() {
	live.Range(func(k, _ any) bool {
		k.(*Proc).Kill()
		return true
	})
}

// Kill sends SIGKILL and waits until the process is gone. It does nothing
// to a process that is not running.
func (p *Proc) Kill() {
	p.mu.Lock()
	cmd, done := p.cmd, p.done
	p.mu.Unlock()
	if cmd == nil {
		return
	}
	select {
	case <-done:
		return
	default:
	}
	_ = cmd.Process.Signal(syscall.SIGKILL)
	<-done
}

// Freeze sends SIGSTOP: the process keeps its sockets open (its kernel
// still acknowledges TCP) but answers nothing, like a hung host or a
// partition from the peers' point of view. Kill ends a frozen process.
func (p *Proc) Freeze() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return fmt.Errorf("%s is not running", p.Name)
	}
	return p.cmd.Process.Signal(syscall.SIGSTOP)
}

// Running reports whether the process is alive.
func (p *Proc) Running() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil {
		return false
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// startAll starts every process, killing those already started if one
// fails.
func startAll(procs []*Proc) error {
	for i, p := range procs {
		if err := p.Start(); err != nil {
			for _, q := range procs[:i] {
				q.Kill()
			}
			return err
		}
	}
	return nil
}

// killAll kills every process.
func killAll(procs []*Proc) {
	for _, p := range procs {
		p.Kill()
	}
}
