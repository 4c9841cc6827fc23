package fsm

import "slices"

// appliedWaiter is one AppliedCh caller: ch is closed once the applied
// index reaches index.
type appliedWaiter struct {
	index uint64
	ch    chan struct{}
}

// AppliedCh returns a channel that is closed once Indexes().Applied
// reaches index (at once if it already has). A linearizable read waits on
// it for its read index instead of polling. A caller that stops waiting
// leaves its channel to be closed, unread, when the index is reached.
func (f *FSM) AppliedCh(index uint64) <-chan struct{} {
	ch := make(chan struct{})
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st.idx.Applied >= index {
		close(ch)
		return ch
	}
	f.applied = append(f.applied, appliedWaiter{index: index, ch: ch})
	return ch
}

// wakeApplied closes the channels of the AppliedCh callers whose index is
// now applied. Callers hold f.mu for writing.
func (f *FSM) wakeApplied() {
	if len(f.applied) == 0 {
		return
	}
	at := f.st.idx.Applied
	f.applied = slices.DeleteFunc(f.applied, func(w appliedWaiter) bool {
		if w.index <= at {
			close(w.ch)
			return true
		}
		return false
	})
}
