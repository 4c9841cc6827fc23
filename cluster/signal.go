package cluster

import "sync"

// signal wakes whoever waits for something to change: watch returns a
// channel that the next fire closes. Take the channel before looking at
// the state, then wait on it: a change between the two closes it.
type signal struct {
	mu sync.Mutex
	ch chan struct{} // nil while nobody watches
}

func (g *signal) watch() <-chan struct{} {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch == nil {
		g.ch = make(chan struct{})
	}
	return g.ch
}

func (g *signal) fire() {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.ch != nil {
		close(g.ch)
		g.ch = nil
	}
}
