package cluster

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// lockedBuffer is a log destination several goroutines write to.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestJSONLogOfALeaderKill: with JSON logs (rctl serve --log-format json)
// every line a server writes, raft's own included, is one JSON object;
// when the leader stops, the survivors' lines hold the events in order:
// the leader lost (leader "", from the old leader), then a leader elected
// in a higher term (leader and to the new one), and the winner's state
// changes Follower → Candidate → Leader.
func TestJSONLogOfALeaderKill(t *testing.T) {
	bufs := make([]*lockedBuffer, 3)
	c := newTestClusterWith(t, 3, func(i int, cfg *Config) {
		bufs[i] = &lockedBuffer{}
		cfg.Logger = slog.New(slog.NewJSONHandler(bufs[i], &slog.HandlerOptions{Level: slog.LevelInfo}))
		cfg.LogJSON, cfg.LogOutput, cfg.LogLevel = true, bufs[i], "info"
	})
	li := c.waitLeader(15 * time.Second)
	old := c.cfgs[li].NodeID
	oldTerm := c.servers[li].raft.CurrentTerm()
	marks := make([]int, 3)
	for i := range bufs {
		marks[i] = len(bufs[i].String())
	}
	c.stop(li)
	ni := c.waitLeader(15 * time.Second)
	newID := c.cfgs[ni].NodeID

	lostFirst := 0
	for i, b := range bufs {
		if i == li {
			continue
		}
		all := b.String()
		raftLines := 0
		var after []map[string]any // the lines written after the kill, in order
		for off := 0; off < len(all); {
			end := strings.IndexByte(all[off:], '\n')
			if end < 0 {
				t.Fatalf("%s: unterminated log line %q", c.cfgs[i].NodeID, all[off:])
			}
			line := all[off : off+end]
			var m map[string]any
			if err := json.Unmarshal([]byte(line), &m); err != nil {
				t.Fatalf("%s wrote a line that is not JSON: %q (%v)", c.cfgs[i].NodeID, line, err)
			}
			if m["@module"] != nil { // hclog's JSON: raft's own lines
				raftLines++
			}
			if off >= marks[i] {
				after = append(after, m)
			}
			off += end + 1
		}
		if raftLines == 0 {
			t.Errorf("%s: no raft library line in JSON (hclog JSONFormat)", c.cfgs[i].NodeID)
		}
		lost, elected := -1, -1
		var electedTerm float64
		for k, m := range after {
			if m["event"] != "leader_change" {
				continue
			}
			if m["leader"] == "" && m["from"] == old && lost < 0 {
				lost = k
			}
			if m["leader"] == newID && m["to"] == newID && m["leader_id"] == newID {
				term, _ := m["term"].(float64)
				if uint64(term) > oldTerm && elected < 0 {
					elected, electedTerm = k, term
				}
			}
		}
		if elected < 0 {
			t.Errorf("%s: no event=leader_change leader=%s with a term above %d after the kill", c.cfgs[i].NodeID, newID, oldTerm)
			continue
		}
		if lost >= 0 {
			if lost > elected {
				t.Errorf("%s: leader lost logged after the new leader was elected", c.cfgs[i].NodeID)
			}
			lostFirst++
		}
		t.Logf("%s: leader lost at line %d, %s elected in term %.0f at line %d", c.cfgs[i].NodeID, lost, newID, electedTerm, elected)
		if i == ni {
			var states []string
			for _, m := range after[max(lost, 0):] {
				if m["event"] == "state_change" {
					states = append(states, m["from"].(string)+">"+m["to"].(string))
				}
			}
			if got := strings.Join(states, ","); !strings.Contains(got, "Follower>Candidate") || !strings.Contains(got, "Candidate>Leader") {
				t.Errorf("%s (the new leader): state changes %q, want Follower>Candidate then Candidate>Leader", newID, got)
			}
		}
	}
	// A survivor that stood for election lost its leader first; the other
	// may learn of the new leader straight from its first AppendEntries.
	if lostFirst == 0 {
		t.Errorf("no survivor logged the leader lost before the new leader")
	}
}

// TestSnapshotEventsLogged: a snapshot written by raft is one
// event=snapshot_taken line (its index and size), and the one a restarted
// server installs from disk one event=snapshot_installed line.
func TestSnapshotEventsLogged(t *testing.T) {
	buf := &lockedBuffer{}
	c := newTestClusterWith(t, 1, func(i int, cfg *Config) {
		cfg.Logger = slog.New(slog.NewJSONHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	c.waitLeader(10 * time.Second)
	addTask(t, c.client(0), "snap-1")
	if err := c.servers[0].raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	events := func(name string) []map[string]any {
		var out []map[string]any
		for _, line := range strings.Split(strings.TrimSpace(buf.String()), "\n") {
			var m map[string]any
			if json.Unmarshal([]byte(line), &m) == nil && m["event"] == name {
				out = append(out, m)
			}
		}
		return out
	}
	taken := events("snapshot_taken")
	if len(taken) != 1 {
		t.Fatalf("%d snapshot_taken lines, want 1:\n%s", len(taken), buf.String())
	}
	if idx, _ := taken[0]["index"].(float64); idx < 1 {
		t.Errorf("snapshot_taken index %v, want the applied index", taken[0]["index"])
	}
	if n, _ := taken[0]["bytes"].(float64); n < 100 {
		t.Errorf("snapshot_taken bytes %v, want the snapshot's size", taken[0]["bytes"])
	}
	c.stop(0)
	c.start(0)
	c.waitLeader(10 * time.Second)
	installed := events("snapshot_installed")
	if len(installed) != 1 || installed[0]["index"] != taken[0]["index"] {
		t.Fatalf("snapshot_installed lines %v, want one at index %v", installed, taken[0]["index"])
	}
}
