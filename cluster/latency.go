package cluster

import (
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// Two health figures every server keeps for rctl top, rctl members and
// Status.Get, whether or not --metrics-addr is set (docs/operations.md,
// "Health figures"):
//
//   - commit: on the leader, how long a write takes from raft.Apply to the
//     state machine's result (queueing, replication to a quorum, the
//     quorum's fsyncs, apply): the latency clients see, less the network
//     to the leader;
//   - log sync: how long each batch of log entries takes to be stored on
//     this server's disk (raft-boltdb's transaction and fdatasync), on
//     leader and followers alike.
//
// Each is the 99th percentile of the samples of the last latencyMaxAge,
// at most latencySamples of them.

const (
	latencySamples = 1024
	latencyMaxAge  = time.Minute
	// latencyReuse is how long a computed p99 is answered again: every
	// Status.Get carries the figures, and after an election thousands of
	// agents' held calls are answered at once.
	latencyReuse = time.Second
)

// latencyWindow keeps the most recent samples of one duration.
type latencyWindow struct {
	mu   sync.Mutex
	d    [latencySamples]time.Duration
	at   [latencySamples]time.Time
	next int
	n    int
	// the last p99 computed, at when (zero: none)
	last     time.Duration
	lastOK   bool
	lastWhen time.Time
}

func (w *latencyWindow) observe(d time.Duration) {
	now := time.Now()
	w.mu.Lock()
	w.d[w.next], w.at[w.next] = d, now
	w.next = (w.next + 1) % latencySamples
	w.n = min(w.n+1, latencySamples)
	w.mu.Unlock()
}

// p99 is the 99th percentile (nearest rank) of the samples taken within
// latencyMaxAge; ok is false without any.
// A figure computed less than latencyReuse ago is answered again.
func (w *latencyWindow) p99() (time.Duration, bool) {
	now := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.lastWhen.IsZero() && now.Sub(w.lastWhen) < latencyReuse {
		return w.last, w.lastOK
	}
	cut := now.Add(-latencyMaxAge)
	s := make([]time.Duration, 0, w.n)
	for i := range w.n {
		if w.at[i].After(cut) {
			s = append(s, w.d[i])
		}
	}
	w.last, w.lastOK, w.lastWhen = 0, len(s) > 0, now
	if w.lastOK {
		slices.Sort(s)
		w.last = s[(len(s)*99+99)/100-1]
	}
	return w.last, w.lastOK
}

// timedLogStore times every store of log entries (the disk write and
// fdatasync of a batch).
type timedLogStore struct {
	raft.LogStore
	lat  *latencyWindow
	grew *signal // fired after entries are stored (nil: none)
}

func (t timedLogStore) StoreLog(l *raft.Log) error {
	t0 := time.Now()
	err := t.LogStore.StoreLog(l)
	t.lat.observe(time.Since(t0))
	t.stored(err)
	return err
}

func (t timedLogStore) StoreLogs(ls []*raft.Log) error {
	t0 := time.Now()
	err := t.LogStore.StoreLogs(ls)
	t.lat.observe(time.Since(t0))
	t.stored(err)
	return err
}

func (t timedLogStore) stored(err error) {
	if err == nil && t.grew != nil {
		t.grew.fire()
	}
}

// HealthFigures are this server's commit and log sync p99 (rpc.Backend);
// -1 when there is no sample of the last minute.
func (s *Server) HealthFigures() (commitP99MS, logSyncP99MS float64) {
	commitP99MS, logSyncP99MS = -1, -1
	if d, ok := s.commitLat.p99(); ok {
		commitP99MS = float64(d.Microseconds()) / 1000
	}
	if d, ok := s.logSyncLat.p99(); ok {
		logSyncP99MS = float64(d.Microseconds()) / 1000
	}
	return commitP99MS, logSyncP99MS
}
