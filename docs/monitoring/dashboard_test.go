// Package monitoring_test checks the shipped monitoring files: the Grafana
// dashboard (rctl-dashboard.json) has the fields Grafana needs, and every
// metric name in its queries and in the Prometheus rules (alerts.yml) is
// one a running rctl server exports. The server side is real: three
// in-process servers with the metrics listener, written to, and scraped.
// promtool checks the rules themselves (check.sh).
package monitoring_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/rctl-dev/rctl/cluster"
	"github.com/rctl-dev/rctl/internal/testutil"
	"github.com/rctl-dev/rctl/rpc"
)

const (
	dashboardFile  = "rctl-dashboard.json"
	alertsFile     = "alerts.yml"
	alertTestsFile = "alerts_test.yml"
	readmeFile     = "README.md"
)

// notFromRctl are the metric names the files may use that no rctl server
// exports, each with where it comes from. Nothing else is allowed.
var notFromRctl = map[string]string{
	"up":                          "Prometheus itself, per scrape target",
	"node_filesystem_avail_bytes": "node_exporter (filesystem collector)",
	"node_filesystem_size_bytes":  "node_exporter (filesystem collector)",
	"node_filesystem_readonly":    "node_exporter (filesystem collector)",
}

// Target labels Prometheus adds to every series; never on /metrics.
var targetLabels = map[string]bool{"job": true, "instance": true}

// --- the dashboard ---------------------------------------------------------

type gridPos struct {
	H, W, X, Y int
}

type target struct {
	RefID string `json:"refId"`
	Expr  string `json:"expr"`
}

type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	GridPos    *gridPos        `json:"gridPos"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []target        `json:"targets"`
	Panels     []panel         `json:"panels"` // a collapsed row's panels
}

type variable struct {
	Name  string          `json:"name"`
	Type  string          `json:"type"`
	Query json.RawMessage `json:"query"`
}

type dashboard struct {
	Title         string    `json:"title"`
	UID           string    `json:"uid"`
	SchemaVersion int       `json:"schemaVersion"`
	Panels        []panel   `json:"panels"`
	Tags          []string  `json:"tags"`
	Time          *struct{} `json:"time"`
	Templating    struct {
		List []variable `json:"list"`
	} `json:"templating"`
}

func readDashboard(t *testing.T) dashboard {
	t.Helper()
	b, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	dec := json.NewDecoder(strings.NewReader(string(b)))
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	return d
}

// allPanels flattens rows (collapsed rows hold their panels inside).
func allPanels(ps []panel) []panel {
	var out []panel
	for _, p := range ps {
		out = append(out, p)
		out = append(out, allPanels(p.Panels)...)
	}
	return out
}

// TestDashboardIsAGrafanaDashboard checks the fields Grafana needs to
// import the file and draw every panel.
func TestDashboardIsAGrafanaDashboard(t *testing.T) {
	d := readDashboard(t)
	if d.Title == "" {
		t.Error("no title")
	}
	if !regexp.MustCompile(`^[A-Za-z0-9_-]{1,40}$`).MatchString(d.UID) {
		t.Errorf("uid %q: Grafana wants 1-40 of A-Z a-z 0-9 _ -", d.UID)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want a current one (>= 36, Grafana 9+)", d.SchemaVersion)
	}
	if d.Time == nil {
		t.Error("no time range")
	}
	vars := map[string]variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if ds, ok := vars["datasource"]; !ok || ds.Type != "datasource" || string(ds.Query) != `"prometheus"` {
		t.Errorf("want a datasource variable named datasource of Prometheus data sources, got %+v", ds)
	}
	for _, name := range []string{"job", "instance"} {
		if _, ok := vars[name]; !ok {
			t.Errorf("no $%s variable", name)
		}
	}

	ps := allPanels(d.Panels)
	if len(ps) == 0 {
		t.Fatal("no panels")
	}
	ids := map[int]string{}
	var boxes []panel
	graphs := 0
	for _, p := range ps {
		name := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if p.ID <= 0 || ids[p.ID] != "" {
			t.Errorf("%s: id missing or also used by %q", name, ids[p.ID])
		}
		ids[p.ID] = p.Title
		if p.Title == "" || p.Type == "" {
			t.Errorf("%s: needs a title and a type", name)
		}
		if g := p.GridPos; g == nil || g.W < 1 || g.H < 1 || g.X < 0 || g.Y < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside Grafana's 24-column grid", name, p.GridPos)
		} else {
			boxes = append(boxes, p)
		}
		if p.Type == "row" {
			continue
		}
		graphs++
		var ds struct{ Type, UID string }
		if err := json.Unmarshal(p.Datasource, &ds); err != nil || ds.Type != "prometheus" || ds.UID != "${datasource}" {
			t.Errorf("%s: datasource %s, want {type: prometheus, uid: ${datasource}}", name, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", name)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] || strings.TrimSpace(tg.Expr) == "" {
				t.Errorf("%s: target %+v needs a unique refId and an expr", name, tg)
			}
			refs[tg.RefID] = true
			if _, err := parseSelectors(tg.Expr); err != nil {
				t.Errorf("%s: %v", name, err)
			}
		}
	}
	if graphs < 10 {
		t.Errorf("only %d panels with queries", graphs)
	}
	for i, a := range boxes {
		for _, b := range boxes[:i] {
			ga, gb := a.GridPos, b.GridPos
			if ga.X < gb.X+gb.W && gb.X < ga.X+ga.W && ga.Y < gb.Y+gb.H && gb.Y < ga.Y+ga.H {
				t.Errorf("panels %q and %q overlap: %+v %+v", a.Title, b.Title, *ga, *gb)
			}
		}
	}
}

// dashboardExprs are the PromQL of every panel target and of the query
// variables (label_values(SELECTOR, label): the selector part).
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	d := readDashboard(t)
	out := map[string]string{}
	for _, p := range allPanels(d.Panels) {
		for _, tg := range p.Targets {
			out[fmt.Sprintf("dashboard panel %q %s", p.Title, tg.RefID)] = tg.Expr
		}
	}
	labelValues := regexp.MustCompile(`^label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)$`)
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var q struct{ Query string }
		if err := json.Unmarshal(v.Query, &q); err != nil {
			t.Fatalf("variable %s: query %s: %v", v.Name, v.Query, err)
		}
		m := labelValues.FindStringSubmatch(q.Query)
		if m == nil {
			t.Fatalf("variable %s: query %q is not label_values(selector, label)", v.Name, q.Query)
		}
		out["dashboard variable $"+v.Name] = m[1]
	}
	return out
}

// --- the alert rules -------------------------------------------------------

// alertRules reads alerts.yml's alert names and exprs. The file keeps
// each expr as a plain scalar on the expr: line or as a block scalar
// (expr: | or >-) below it; promtool check rules parses it properly.
func alertRules(t *testing.T) map[string]string {
	t.Helper()
	b, err := os.ReadFile(alertsFile)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	lines := strings.Split(string(b), "\n")
	alert := ""
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		trimmed := strings.TrimSpace(line)
		if name, ok := strings.CutPrefix(trimmed, "- alert:"); ok {
			alert = strings.TrimSpace(name)
			continue
		}
		v, ok := strings.CutPrefix(trimmed, "expr:")
		if !ok {
			continue
		}
		if alert == "" {
			t.Fatalf("%s:%d: expr before any alert (recording rules are not expected)", alertsFile, i+1)
		}
		v = strings.TrimSpace(v)
		if v == "|" || v == "|-" || v == ">" || v == ">-" {
			indent := len(line) - len(strings.TrimLeft(line, " "))
			var body []string
			for i+1 < len(lines) {
				next := lines[i+1]
				if strings.TrimSpace(next) != "" && len(next)-len(strings.TrimLeft(next, " ")) <= indent {
					break
				}
				body = append(body, next)
				i++
			}
			v = strings.Join(body, "\n")
		}
		if _, dup := out[alert]; dup {
			t.Fatalf("%s: alert %s twice", alertsFile, alert)
		}
		out[alert] = v
		alert = ""
	}
	if len(out) == 0 {
		t.Fatalf("%s: no alerts found", alertsFile)
	}
	return out
}

// TestAlertsAreTestedAndDocumented: every alert has promtool unit tests
// (alerts_test.yml) and a section in README.md.
func TestAlertsAreTestedAndDocumented(t *testing.T) {
	rules := alertRules(t)
	for _, want := range []string{"RctlNoLeader", "RctlLeaderLastContactHigh", "RctlElectionChurn",
		"RctlNodesUnreachable", "RctlFsyncSlow", "RctlDataDiskSpaceLow"} {
		if _, ok := rules[want]; !ok {
			t.Errorf("%s lacks %s", alertsFile, want)
		}
	}
	tests, err := os.ReadFile(alertTestsFile)
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile(readmeFile)
	if err != nil {
		t.Fatal(err)
	}
	for name := range rules {
		if n := strings.Count(string(tests), "alertname: "+name+"\n"); n < 2 {
			t.Errorf("%s tests %s %d times; want at least one case where it fires and one where it does not", alertTestsFile, name, n)
		}
		if !strings.Contains(string(readme), "### "+name) {
			t.Errorf("%s has no section \"### %s\"", readmeFile, name)
		}
	}
}

// --- PromQL: the metric names and label matchers of each selector ------------

type matcher struct{ label, op, value string }

type selector struct {
	metric   string
	matchers []matcher
}

// promqlKeywords are the words PromQL reserves (compared in lower case).
var promqlKeywords = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
	"inf": true, "nan": true, "atan2": true, "start": true, "end": true}

// labelListKeywords take a parenthesised list of label names.
var labelListKeywords = map[string]bool{"by": true, "without": true, "on": true, "ignoring": true,
	"group_left": true, "group_right": true}

func isIdentStart(c byte) bool {
	return c == '_' || c == ':' || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
}

func isIdent(c byte) bool { return isIdentStart(c) || (c >= '0' && c <= '9') }

// skipString returns the index after the string literal starting at i.
func skipString(s string, i int) (int, error) {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		switch {
		case s[j] == '\\' && q != '`':
			j++
		case s[j] == q:
			return j + 1, nil
		}
	}
	return 0, fmt.Errorf("unterminated string in %q", s)
}

// skipPast returns the index after the bracket closing the one at i.
func skipPast(s string, i int, open, close byte) (int, error) {
	depth := 0
	for j := i; j < len(s); j++ {
		switch c := s[j]; {
		case c == '"' || c == '\'' || c == '`':
			k, err := skipString(s, j)
			if err != nil {
				return 0, err
			}
			j = k - 1
		case c == open:
			depth++
		case c == close:
			depth--
			if depth == 0 {
				return j + 1, nil
			}
		}
	}
	return 0, fmt.Errorf("unbalanced %c in %q", open, s)
}

// parseMatchers reads {label op "value", ...} starting at the '{' at i.
func parseMatchers(s string, i int) ([]matcher, int, error) {
	var out []matcher
	j := i + 1
	for {
		for j < len(s) && (s[j] == ' ' || s[j] == '\n' || s[j] == '\t' || s[j] == ',') {
			j++
		}
		if j >= len(s) {
			return nil, 0, fmt.Errorf("unterminated { in %q", s)
		}
		if s[j] == '}' {
			return out, j + 1, nil
		}
		k := j
		for k < len(s) && isIdent(s[k]) {
			k++
		}
		label := s[j:k]
		for k < len(s) && s[k] == ' ' {
			k++
		}
		op := ""
		for _, o := range []string{"!=", "=~", "!~", "="} {
			if strings.HasPrefix(s[k:], o) {
				op = o
				break
			}
		}
		if label == "" || op == "" {
			return nil, 0, fmt.Errorf("bad label matcher at %q", s[j:])
		}
		k += len(op)
		for k < len(s) && s[k] == ' ' {
			k++
		}
		if k >= len(s) || (s[k] != '"' && s[k] != '\'' && s[k] != '`') {
			return nil, 0, fmt.Errorf("label matcher %s%s without a quoted value in %q", label, op, s)
		}
		end, err := skipString(s, k)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, matcher{label, op, s[k+1 : end-1]})
		j = end
	}
}

// parseSelectors finds the vector selectors of a PromQL expression (with
// Grafana's $variables) by lexing it: identifiers that are not keywords,
// not function names (followed by '(') and not inside by/on/... label
// lists, strings, {matchers} or [ranges] are metric names.
func parseSelectors(expr string) ([]selector, error) {
	var out []selector
	s := expr
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '#':
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '"' || c == '\'' || c == '`':
			j, err := skipString(s, i)
			if err != nil {
				return nil, err
			}
			i = j
		case c == '$': // Grafana: $var, ${var}, ${var:fmt}
			i++
			if i < len(s) && s[i] == '{' {
				j, err := skipPast(s, i, '{', '}')
				if err != nil {
					return nil, err
				}
				i = j
			}
			for i < len(s) && isIdent(s[i]) {
				i++
			}
		case c == '[':
			j, err := skipPast(s, i, '[', ']')
			if err != nil {
				return nil, err
			}
			i = j
		case c == '{':
			ms, j, err := parseMatchers(s, i)
			if err != nil {
				return nil, err
			}
			sel := selector{matchers: ms}
			for _, m := range ms {
				if m.label == "__name__" && m.op == "=" {
					sel.metric = m.value
				}
			}
			if sel.metric == "" {
				return nil, fmt.Errorf("selector without a metric name in %q", expr)
			}
			out = append(out, sel)
			i = j
		case c >= '0' && c <= '9' || (c == '.' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9'):
			for i < len(s) && (isIdent(s[i]) || s[i] == '.') { // 0.99, 1e3, 0x1f, 5m, 1h30m
				i++
			}
		case isIdentStart(c):
			j := i
			for j < len(s) && isIdent(s[j]) {
				j++
			}
			word := s[i:j]
			k := j
			for k < len(s) && (s[k] == ' ' || s[k] == '\t' || s[k] == '\n') {
				k++
			}
			lower := strings.ToLower(word)
			switch {
			case labelListKeywords[lower]:
				i = j
				if k < len(s) && s[k] == '(' {
					end, err := skipPast(s, k, '(', ')')
					if err != nil {
						return nil, err
					}
					i = end
				}
			case promqlKeywords[lower]:
				i = j
			case k < len(s) && s[k] == '(':
				i = j // a function or aggregation
			case nextWordIs(s[k:], "by", "without"):
				i = j // an aggregation: sum by (job) (...)
			default:
				sel := selector{metric: word}
				i = j
				if k < len(s) && s[k] == '{' {
					ms, end, err := parseMatchers(s, k)
					if err != nil {
						return nil, err
					}
					sel.matchers, i = ms, end
				}
				out = append(out, sel)
			}
		default:
			i++ // operators, parentheses, commas, @
		}
	}
	return out, nil
}

// nextWordIs reports whether s starts with one of words (any case) as a
// whole word.
func nextWordIs(s string, words ...string) bool {
	j := 0
	for j < len(s) && isIdent(s[j]) {
		j++
	}
	return j > 0 && slices.Contains(words, strings.ToLower(s[:j]))
}

func TestParseSelectors(t *testing.T) {
	for _, tc := range []struct {
		expr string
		want string // metric{label op value,...} joined with " "
	}{
		{`up == 0`, `up{}`},
		{`sum by (job) (rctl_raft_state{job="rctl", state="leader"}) == 0`, `rctl_raft_state{job=rctl,state=leader}`},
		{`max by (job) (increase(rctl_raft_leader_lost_total{job="rctl"}[15m])) > 2`, `rctl_raft_leader_lost_total{job=rctl}`},
		{`histogram_quantile(0.99, sum by (le, method) (rate(x_bucket{code!="ok"}[$__rate_interval])))`, `x_bucket{code!=ok}`},
		{"(a{m=~\"/|/var\"} / b) * 100 < 15\n  and on (instance, device) c == 0", `a{m=~/|/var} b{} c{}`},
		{`scalar(max(a{job="$job"})) - b{instance=~"$instance"} offset 5m`, `a{job=$job} b{instance=~$instance}`},
		{`{__name__="a", x="y"} unless ignoring (z) group_left (w) b bool > Inf`, `a{__name__=a,x=y} b{}`},
		{`label_replace(a, "dst", "$1", "src", "(.*)") # a comment naming c`, `a{}`},
		{`rate(a[5m:30s]) * on() group_right b`, `a{} b{}`},
		{`sum without (x) (a) + count BY(y) (b)`, `a{} b{}`},
	} {
		sels, err := parseSelectors(tc.expr)
		if err != nil {
			t.Errorf("%q: %v", tc.expr, err)
			continue
		}
		var got []string
		for _, s := range sels {
			var ms []string
			for _, m := range s.matchers {
				ms = append(ms, m.label+m.op+m.value)
			}
			got = append(got, s.metric+"{"+strings.Join(ms, ",")+"}")
		}
		if g := strings.Join(got, " "); g != tc.want {
			t.Errorf("%q: got %s, want %s", tc.expr, g, tc.want)
		}
	}
	for _, bad := range []string{`a{b}`, `a{b="c}`, `rate(a[5m)`, `{x="y"}`} {
		if _, err := parseSelectors(bad); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

// --- what a real server exports ---------------------------------------------

// exported is the scrape of a server: sample names, and for each the
// label names and label=value pairs seen.
type exported struct {
	names  map[string]bool
	labels map[string]map[string]bool // name → label names
	pairs  map[string]map[string]bool // name → "label=value"
}

func (e *exported) add(body string) error {
	sc := bufio.NewScanner(strings.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		series := line
		if i := strings.LastIndexByte(line, ' '); i > 0 {
			series = line[:i]
		}
		name, rest, _ := strings.Cut(series, "{")
		if e.names[name] = true; e.labels[name] == nil {
			e.labels[name], e.pairs[name] = map[string]bool{}, map[string]bool{}
		}
		if rest == "" {
			continue
		}
		ms, _, err := parseMatchers("{"+rest, 0)
		if err != nil {
			return fmt.Errorf("scrape line %q: %v", line, err)
		}
		for _, m := range ms {
			e.labels[name][m.label] = true
			e.pairs[name][m.label+"="+m.value] = true
		}
	}
	return sc.Err()
}

// problems says what of sel a server did not export ("" when all of it).
func (e *exported) problems(sel selector) string {
	if _, ok := notFromRctl[sel.metric]; ok {
		return ""
	}
	if !e.names[sel.metric] {
		return "metric " + sel.metric + " is not exported"
	}
	var out []string
	for _, m := range sel.matchers {
		switch {
		case targetLabels[m.label] || m.label == "__name__":
		case !e.labels[sel.metric][m.label]:
			out = append(out, fmt.Sprintf("%s has no label %s", sel.metric, m.label))
		case m.op == "=" && !strings.Contains(m.value, "$") && !e.pairs[sel.metric][m.label+"="+m.value]:
			out = append(out, fmt.Sprintf("%s never has %s=%q", sel.metric, m.label, m.value))
		}
	}
	return strings.Join(out, "; ")
}

// startServers runs n in-process rctl servers (insecure, lan timing) on
// loopback, each with its metrics listener, and returns them.
func startServers(t *testing.T, n int) ([]*cluster.Server, []string) {
	t.Helper()
	addrs := testutil.FreeAddrs(t, n)
	var peers []cluster.Peer
	for i, a := range addrs {
		peers = append(peers, cluster.Peer{ID: fmt.Sprintf("s%d", i+1), Address: a})
	}
	var servers []*cluster.Server
	t.Cleanup(func() {
		for _, s := range servers {
			_ = s.Shutdown()
		}
	})
	for i, a := range addrs {
		cfg := cluster.Default()
		cfg.NodeID, cfg.DataDir, cfg.Bind, cfg.Timing, cfg.Insecure = peers[i].ID, t.TempDir(), a, "lan", true
		cfg.Peers = peers
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
		cfg.LogOutput, cfg.LogLevel = io.Discard, "error"
		s, err := cluster.New(cfg, cluster.WithMetrics(cluster.MetricsConfig{Addr: "127.0.0.1:0"}))
		if err != nil {
			t.Fatalf("start %s: %v", cfg.NodeID, err)
		}
		servers = append(servers, s)
	}
	return servers, addrs
}

func scrape(url string) (string, error) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s: %s", url, resp.Status)
	}
	return string(b), err
}

// TestEveryMetricNameIsExported starts a three-server cluster (raft's
// leader-only and follower-only metrics need both roles), writes to it,
// and checks every selector of the dashboard and of alerts.yml against
// what the servers' /metrics serve: the metric name, its label names,
// and label values given literally (state="leader", quantile="0.99").
// Raft's metrics appear once raft has emitted them, so it scrapes until
// everything is there or 30 s have passed.
func TestEveryMetricNameIsExported(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a three-server cluster")
	}
	uses := map[string][]string{} // metric → where used
	var sels []struct {
		where string
		sel   selector
	}
	exprs := dashboardExprs(t)
	for name, expr := range alertRules(t) {
		exprs["alert "+name] = expr
	}
	for where, expr := range exprs {
		ss, err := parseSelectors(expr)
		if err != nil {
			t.Fatalf("%s: %v", where, err)
		}
		if len(ss) == 0 {
			t.Errorf("%s: no metric in %q", where, expr)
		}
		for _, s := range ss {
			uses[s.metric] = append(uses[s.metric], where)
			sels = append(sels, struct {
				where string
				sel   selector
			}{where, s})
		}
	}

	servers, addrs := startServers(t, 3)
	cl := rpc.NewClientWith(addrs, rpc.Credentials{})
	defer cl.Close()
	// Writes, so the commit, store and apply timings are emitted.
	testutil.Eventually(t, 30*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: "warm-up", Type: "sleep"}, nil)
	})
	for i := range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := cl.Call(ctx, rpc.MethodTaskAdd, &rpc.TaskAddArgs{ID: fmt.Sprintf("m-%d", i), Type: "sleep"}, nil)
		cancel()
		if err != nil {
			t.Fatalf("add task %d: %v", i, err)
		}
	}

	var missing []string
	var e *exported
	deadline := time.Now().Add(30 * time.Second)
	for {
		e = &exported{names: map[string]bool{}, labels: map[string]map[string]bool{}, pairs: map[string]map[string]bool{}}
		for _, s := range servers {
			body, err := scrape("http://" + s.MetricsAddr() + "/metrics")
			if err != nil {
				t.Fatal(err)
			}
			if err := e.add(body); err != nil {
				t.Fatal(err)
			}
		}
		missing = missing[:0]
		for _, u := range sels {
			if p := e.problems(u.sel); p != "" {
				missing = append(missing, fmt.Sprintf("%s: %s", u.where, p))
			}
		}
		if len(missing) == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	sort.Strings(missing)
	missing = slices.Compact(missing)
	for _, m := range missing {
		t.Error(m)
	}

	var used []string
	for m := range uses {
		used = append(used, m)
	}
	sort.Strings(used)
	t.Logf("metric names used by %s and %s (%d): %s", dashboardFile, alertsFile, len(used), strings.Join(used, " "))
	unused := map[string]bool{}
	for name := range e.names {
		base := name
		for _, suffix := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suffix)
		}
		if strings.HasPrefix(name, "rctl_") && uses[base] == nil && uses[base+"_bucket"] == nil &&
			uses[base+"_count"] == nil && uses[base+"_sum"] == nil {
			unused[base] = true
		}
	}
	t.Logf("rctl_ metrics the files do not use: %v", slices.Sorted(maps.Keys(unused)))
}
