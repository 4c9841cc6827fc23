package fault

import (
	"bufio"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// SuccessionTimeline is how one failover went, read from the servers' own
// log lines (cluster/succession.go): when the server that confirmed the
// silence last heard from the old leader, noticed the silence and had a
// quorum's answer, when its successor stood, and when the new leader
// established its leadership. Zero times are steps the logs do not show
// (a crash is confirmed by the refused port, without a quorum probe).
type SuccessionTimeline struct {
	// By is the server whose succession stood a successor; Successor the
	// server it asked to stand; NewLeader the one that established
	// leadership.
	By, Successor, NewLeader string
	Evidence                 string // "quorum silent" or "port refused"
	LastContact              time.Time
	Noticed                  time.Time
	Confirmed                time.Time
	ConfirmTook              time.Duration
	Stood                    time.Time
	StandTook                time.Duration
	Established              time.Time
}

// Breakdown prints the steps relative to t0 (e.g. the moment of the cut).
func (tl SuccessionTimeline) Breakdown(t0 time.Time) string {
	rel := func(t time.Time) string {
		if t.IsZero() {
			return "-"
		}
		d := t.Sub(t0).Round(time.Millisecond)
		if d >= 0 {
			return "+" + d.String()
		}
		return d.String()
	}
	return fmt.Sprintf("last contact %s, silence noticed %s, quorum confirmed %s (probe %s), %s asked %s to stand %s (%s; TimeoutNow %s), %s leader %s",
		rel(tl.LastContact), rel(tl.Noticed), rel(tl.Confirmed), tl.ConfirmTook, tl.By, tl.Successor, rel(tl.Stood),
		tl.Evidence, tl.StandTook, tl.NewLeader, rel(tl.Established))
}

// SuccessionTimeline reads the first succession at or after since from
// the servers' logs.
func (c *Cluster) SuccessionTimeline(since time.Time) (SuccessionTimeline, error) {
	var tl SuccessionTimeline
	type line struct {
		at time.Time
		kv map[string]string
	}
	var all []line
	for _, sv := range c.Servers {
		f, err := os.Open(sv.LogPath)
		if err != nil {
			return tl, err
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			kv := ParseLogfmt(sc.Text())
			at, err := time.Parse(time.RFC3339Nano, kv["time"])
			if err != nil || at.Before(since) {
				continue
			}
			all = append(all, line{at, kv})
		}
		f.Close()
	}
	var stood *line
	for i := range all {
		l := &all[i]
		if l.kv["event"] == "succession" && (stood == nil || l.at.Before(stood.at)) {
			stood = l
		}
	}
	if stood == nil {
		return tl, fmt.Errorf("no succession in the servers' logs since %s", since.Format(time.RFC3339Nano))
	}
	tl.By, tl.Successor, tl.Evidence, tl.Stood = stood.kv["node_id"], stood.kv["successor"], stood.kv["evidence"], stood.at
	tl.StandTook, _ = time.ParseDuration(stood.kv["stand_took"])
	for _, l := range all {
		switch {
		case l.kv["event"] == "leader_gone" && l.kv["node_id"] == tl.By && !l.at.After(tl.Stood) && l.at.After(tl.Confirmed):
			if l.kv["msg"] == "leader silent for a quorum of voters" {
				tl.Confirmed = l.at
				tl.ConfirmTook, _ = time.ParseDuration(l.kv["confirm_took"])
				tl.LastContact, _ = time.Parse(time.RFC3339Nano, l.kv["last_contact"])
				tl.Noticed, _ = time.Parse(time.RFC3339Nano, l.kv["noticed"])
			}
		case l.kv["msg"] == "leadership established" && l.at.After(tl.Stood) && (tl.Established.IsZero() || l.at.Before(tl.Established)):
			tl.Established, tl.NewLeader = l.at, l.kv["node_id"]
		}
	}
	return tl, nil
}

// ParseLogfmt splits one line of log/slog's text format (key=value, values
// with spaces or quotes Go-quoted) into its keys and values; the lines of
// other formats give whatever key=value pairs they hold.
func ParseLogfmt(s string) map[string]string {
	kv := map[string]string{}
	for s != "" {
		s = strings.TrimLeft(s, " ")
		eq := strings.IndexByte(s, '=')
		if eq <= 0 || strings.ContainsAny(s[:eq], " \"") {
			sp := strings.IndexByte(s, ' ')
			if sp < 0 {
				break
			}
			s = s[sp+1:]
			continue
		}
		key, rest := s[:eq], s[eq+1:]
		var val string
		if strings.HasPrefix(rest, `"`) {
			q, err := strconv.QuotedPrefix(rest)
			if err != nil {
				break
			}
			val, _ = strconv.Unquote(q)
			rest = rest[len(q):]
		} else if sp := strings.IndexByte(rest, ' '); sp >= 0 {
			val, rest = rest[:sp], rest[sp:]
		} else {
			val, rest = rest, ""
		}
		kv[key] = val
		s = rest
	}
	return kv
}

// Established is when the named server logged that it established its
// leadership of term (cluster/server.go: from then on it answers node
// heartbeats and linearizable reads; a heartbeat that reaches it earlier
// is held until then).
func (c *Cluster) Established(name string, term uint64) (time.Time, error) {
	sv := c.Server(name)
	if sv == nil {
		return time.Time{}, fmt.Errorf("fault: no server %q", name)
	}
	f, err := os.Open(sv.LogPath)
	if err != nil {
		return time.Time{}, err
	}
	defer f.Close()
	want := strconv.FormatUint(term, 10)
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		kv := ParseLogfmt(sc.Text())
		if kv["msg"] == "leadership established" && kv["term"] == want {
			return time.Parse(time.RFC3339Nano, kv["time"])
		}
	}
	if err := sc.Err(); err != nil {
		return time.Time{}, err
	}
	return time.Time{}, fmt.Errorf("fault: %s has not logged establishing its leadership of term %d", name, term)
}
