package cli

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Children are forked from the spawner's own thread, whoever asks, and get
// SIGTERM when that thread ends.
func TestDevSpawnerForksFromItsLockedThread(t *testing.T) {
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skip("no sleep executable")
	}
	// A spawner that lands on the main thread is of no use here: the
	// runtime never ends that thread (it parks it when the goroutine locked
	// to it returns), so the Pdeathsig check below could not run. Closing
	// such a spawner parks the main thread for good, and the next spawner
	// lands elsewhere.
	s := newSpawner()
	for i := 0; s.tid == os.Getpid() && i < 3; i++ {
		s.close()
		s = newSpawner()
	}
	defer s.close()
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		kids []*child
	)
	for i := range 3 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := s.startChild("server", t.TempDir(), fmt.Sprint("k", i), sleep, "60")
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			kids = append(kids, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	defer stopChildren(kids, time.Second)

	b, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/children", s.tid))
	if errors.Is(err, os.ErrNotExist) {
		t.Skip("/proc/<pid>/task/<tid>/children not available")
	} else if err != nil {
		t.Fatal(err)
	}
	forked := strings.Fields(string(b))
	for _, c := range kids {
		if !contains(forked, strconv.Itoa(c.cmd.Process.Pid)) {
			t.Fatalf("child %d not forked from the spawner's thread %d (its children: %v)", c.cmd.Process.Pid, s.tid, forked)
		}
	}

	if s.tid == os.Getpid() {
		t.Skip("the spawner runs on the main thread, which the runtime never ends")
	}
	s.close() // the thread ends: every child gets its Pdeathsig
	for _, c := range kids {
		select {
		case <-c.exited:
		case <-time.After(10 * time.Second):
			t.Fatalf("child %d still running 10s after its thread ended", c.cmd.Process.Pid)
		}
		ws := c.cmd.ProcessState.Sys().(syscall.WaitStatus)
		if !ws.Signaled() || ws.Signal() != syscall.SIGTERM {
			t.Errorf("child %d: %v; want killed by SIGTERM", c.cmd.Process.Pid, c.cmd.ProcessState)
		}
	}
	if _, err := s.startChild("server", t.TempDir(), "late", sleep, "60"); err == nil {
		t.Error("startChild after close succeeded")
	}
}

func contains(xs []string, x string) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// blockingWriter blocks every Write until released, like a pipe whose
// reader stopped reading.
type blockingWriter struct{ release chan struct{} }

func (w blockingWriter) Write(p []byte) (int, error) { <-w.release; return len(p), nil }

type failingWriter struct {
	mu    sync.Mutex
	calls int
}

func (w *failingWriter) Write([]byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.calls++
	return 0, syscall.EPIPE
}

func TestDevOutputNeverBlocksNorFails(t *testing.T) {
	bw := blockingWriter{release: make(chan struct{})}
	defer close(bw.release)
	o := newDevOutput(bw)
	for range 1000 { // more than the queue holds
		if n, err := fmt.Fprintf(o, "line\n"); err != nil || n != 5 {
			t.Fatalf("Write = %d, %v; want 5, nil", n, err)
		}
	}
	o.close(10 * time.Millisecond) // returns although nothing could be written
	if _, err := o.Write([]byte("after close\n")); err != nil {
		t.Fatal(err)
	}

	fw := &failingWriter{}
	o = newDevOutput(fw)
	for range 10 {
		if _, err := fmt.Fprintf(o, "line\n"); err != nil {
			t.Fatal(err)
		}
	}
	o.close(5 * time.Second)
	fw.mu.Lock()
	defer fw.mu.Unlock()
	if fw.calls != 1 {
		t.Fatalf("%d writes after EPIPE; want the rest dropped", fw.calls-1)
	}
}

func TestDevOutputKeepsOrder(t *testing.T) {
	var b strings.Builder
	o := newDevOutput(&b)
	for i := range 100 {
		fmt.Fprintf(o, "%d\n", i)
	}
	o.close(5 * time.Second)
	var want strings.Builder
	for i := range 100 {
		fmt.Fprintf(&want, "%d\n", i)
	}
	if b.String() != want.String() {
		t.Fatalf("output out of order or incomplete:\n%s", b.String())
	}
}
