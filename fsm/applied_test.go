package fsm

import (
	"bytes"
	"testing"
)

// A read waits on AppliedCh for its read index: the channel closes when
// Apply reaches the index (command, refused and non-command entries alike,
// since each advances Applied) or a restore installs a state at or past it,
// and never earlier.
func TestAppliedCh(t *testing.T) {
	h := newHarness(t)
	if !closed(h.f.AppliedCh(0)) {
		t.Fatal("AppliedCh(0) on an empty manifest is not closed")
	}
	at1, at2, at3 := h.f.AppliedCh(1), h.f.AppliedCh(2), h.f.AppliedCh(3)
	h.f.Apply(&Log{Index: 1}) // a no-op/barrier entry
	if !closed(at1) || closed(at2) || closed(at3) {
		t.Fatalf("after index 1: closed 1/2/3 = %v/%v/%v, want true/false/false", closed(at1), closed(at2), closed(at3))
	}
	h.index = 1
	h.apply(&NodeRegisterEntry{ID: "node-1", Address: "10.0.0.1:7000", Cloud: "aws", Capacity: 1, Time: h.now})
	if !closed(at2) || closed(at3) {
		t.Fatalf("after index 2: closed 2/3 = %v/%v, want true/false", closed(at2), closed(at3))
	}
	h.applyRaw([]byte{0xff}) // malformed: refused, but index 3 is applied
	if !closed(at3) {
		t.Fatal("a refused entry at index 3 did not close AppliedCh(3)")
	}
	if !closed(h.f.AppliedCh(3)) || closed(h.f.AppliedCh(4)) {
		t.Fatal("AppliedCh after the fact: want closed for 3, open for 4")
	}

	var snap bytes.Buffer
	if err := h.f.WriteSnapshot(&snap); err != nil {
		t.Fatal(err)
	}
	other := New()
	waiting := other.AppliedCh(3)
	beyond := other.AppliedCh(4)
	if err := other.Restore(readCloser{bytes.NewReader(snap.Bytes())}); err != nil {
		t.Fatal(err)
	}
	if !closed(waiting) || closed(beyond) {
		t.Fatalf("after restoring a snapshot at 3: closed 3/4 = %v/%v, want true/false", closed(waiting), closed(beyond))
	}
}
