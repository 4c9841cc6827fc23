package main

import (
	"fmt"
	"log"
	"sync"
	"testing"
)

// harnessTB lets this program use package fault, whose API takes a
// testing.TB (it was written for tests). It implements the methods fault
// calls: Fatal panics with harnessFatal (recovered by newWAN), Cleanup
// functions run in runCleanups. Any other testing.TB method would panic on
// the nil embedded interface; fault uses none.
type harnessTB struct {
	testing.TB

	mu       sync.Mutex
	cleanups []func()
	failed   bool
}

// harnessFatal is the panic value of harnessTB.Fatal.
type harnessFatal string

func (*harnessTB) Helper()      {}
func (*harnessTB) Name() string { return "peerbench" }

func (t *harnessTB) Cleanup(f func()) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.cleanups = append(t.cleanups, f)
}

func (*harnessTB) Log(args ...any)                 { log.Print(args...) }
func (*harnessTB) Logf(format string, args ...any) { log.Printf(format, args...) }

func (t *harnessTB) Error(args ...any) {
	t.setFailed()
	log.Print(args...)
}

func (t *harnessTB) Errorf(format string, args ...any) {
	t.setFailed()
	log.Printf(format, args...)
}

func (t *harnessTB) Fatal(args ...any) { t.setFailed(); panic(harnessFatal(fmt.Sprint(args...))) }
func (t *harnessTB) Fatalf(format string, args ...any) {
	t.setFailed()
	panic(harnessFatal(fmt.Sprintf(format, args...)))
}
func (t *harnessTB) Skip(args ...any) { panic(harnessFatal(fmt.Sprint(args...))) }

func (t *harnessTB) Failed() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.failed
}

func (t *harnessTB) setFailed() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.failed = true
}

// runCleanups runs the registered cleanups, last first, once.
func (t *harnessTB) runCleanups() {
	t.mu.Lock()
	fs := t.cleanups
	t.cleanups = nil
	t.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		fs[i]()
	}
}
