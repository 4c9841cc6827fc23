package cli

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

func newTaskCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "task",
		Short: "Add, inspect, list, cancel and watch tasks in the manifest",
	}
	cmd.AddCommand(newTaskAdd(g), newTaskGet(g), newTaskList(g), newTaskCancel(g), newTaskWatch(g), newTaskGC(g))
	return cmd
}

func newTaskAdd(g *globals) *cobra.Command {
	var (
		typ, id, cloud, file string
		payload              []string
		maxAttempts          int
	)
	cmd := &cobra.Command{
		Use:   "add --type TYPE [--id ID] [--payload key=value]...",
		Short: "Add a task; prints its id (json: the task)",
		Long: `Add a task to the manifest in status pending. The leader's scheduler assigns
it to a node agent.

Without --id a fresh id is generated here, before the first attempt, so a retry
after a failover cannot create the task twice. Adding an id that exists with
identical content is a no-op that succeeds; with different content it fails
with conflict. Scripts that may rerun should pass --id.`,
		Example: `  rctl task add --type shell --payload cmd='echo hello'
  rctl task add --type sleep --id nightly-42 --payload seconds=5 --cloud gcp`,
		Args: exactArgs(0, "no positional arguments (use --type and --payload)"),
		RunE: func(*cobra.Command, []string) error {
			if file != "" {
				if typ != "" || id != "" || len(payload) > 0 || cloud != "" || maxAttempts != 0 {
					return usagef("--file takes every task from the file; drop --type, --id, --payload, --cloud and --max-attempts")
				}
				return addFromFile(g, file)
			}
			if typ == "" {
				return usagef("--type is required (e.g. shell or sleep)")
			}
			if maxAttempts < 0 {
				return usagef("--max-attempts must be ≥ 0, got %d", maxAttempts)
			}
			args := rpc.TaskAddArgs{ID: id, Type: typ, Cloud: cloud, MaxAttempts: maxAttempts}
			if args.ID == "" {
				args.ID = rpc.NewTaskID()
			}
			if len(payload) > 0 {
				args.Payload = map[string]string{}
				for _, kv := range payload {
					k, v, ok := strings.Cut(kv, "=")
					if !ok || k == "" {
						return usagef("--payload %q is not key=value", kv)
					}
					if _, dup := args.Payload[k]; dup {
						return usagef("--payload key %q given twice", k)
					}
					args.Payload[k] = v
				}
			}
			var reply rpc.TaskReply
			if err := g.call(rpc.MethodTaskAdd, &args, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(reply.Task)
			}
			fmt.Fprintln(g.stdout, termsafe.Field(reply.Task.ID))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&typ, "type", "", "task type, chosen by the agent's executors: shell, sleep, or a plugin's type (required)")
	f.StringVar(&id, "id", "", "task id (default: generated); re-adding the same id with the same content is a no-op")
	f.StringArrayVar(&payload, "payload", nil, "payload entry key=value, repeatable (shell: cmd=..., timeout=SECONDS; sleep: seconds=N)")
	f.StringVar(&cloud, "cloud", "", "only place the task on nodes in this cloud (a-z 0-9 _ . -, lower case)")
	f.IntVar(&maxAttempts, "max-attempts", 0, "how many times the task may be assigned before it fails when its nodes die (0: default 3)")
	f.StringVar(&file, "file", "", "add many tasks from a JSON Lines file (- for stdin), one object per line with keys id, type, payload, cloud, max_attempts; sent in batches of up to 1000, each committed as one entry")
	return cmd
}

// batchLine is one line of a `task add --file` input.
type batchLine struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"`
	Payload     map[string]string `json:"payload"`
	Cloud       string            `json:"cloud"`
	MaxAttempts int               `json:"max_attempts"`
}

// addFromFile reads every line first (a bad line changes nothing), then
// sends the tasks in batches. Ids are generated here for lines without
// one, so a batch retried after a failover cannot duplicate tasks.
func addFromFile(g *globals, path string) error {
	var r io.Reader = os.Stdin
	if path != "-" {
		f, err := os.Open(path)
		if err != nil {
			return fmt.Errorf("task add --file: %w", err)
		}
		defer f.Close()
		r = f
	}
	var all []rpc.TaskAddArgs
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		var b batchLine
		dec := json.NewDecoder(strings.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&b); err != nil {
			return usagef("--file %s line %d: %v", path, n, err)
		}
		if b.Type == "" {
			return usagef("--file %s line %d: \"type\" is required", path, n)
		}
		if b.ID == "" {
			b.ID = rpc.NewTaskID()
		}
		all = append(all, rpc.TaskAddArgs{ID: b.ID, Type: b.Type, Payload: b.Payload, Cloud: b.Cloud, MaxAttempts: b.MaxAttempts})
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("task add --file %s: %w", path, err)
	}
	if len(all) == 0 {
		return usagef("--file %s holds no tasks", path)
	}
	var added []*fsm.Task
	for start := 0; start < len(all); start += fsm.MaxBatch {
		end := min(start+fsm.MaxBatch, len(all))
		var reply rpc.TaskBatchReply
		if err := g.call(rpc.MethodTaskAddBatch, &rpc.TaskAddBatchArgs{Tasks: all[start:end]}, &reply); err != nil {
			if start > 0 {
				return fmt.Errorf("added the first %d tasks, then: %w", start, err)
			}
			return err
		}
		added = append(added, reply.Tasks...)
	}
	if g.json() {
		return g.printJSON(added)
	}
	for _, t := range added {
		fmt.Fprintln(g.stdout, termsafe.Field(t.ID))
	}
	return nil
}

func newTaskGet(g *globals) *cobra.Command {
	var stale bool
	cmd := &cobra.Command{
		Use:   "get ID",
		Short: "Show one task",
		Args:  exactArgs(1, "one task id"),
		RunE: func(_ *cobra.Command, a []string) error {
			var reply rpc.TaskGetReply
			err := g.call(rpc.MethodTaskGet, &rpc.TaskGetArgs{ID: a[0], QueryOptions: rpc.QueryOptions{Stale: stale}}, &reply)
			if err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(reply.Task)
			}
			printTask(g, reply.Task)
			return nil
		},
	}
	cmd.Flags().BoolVar(&stale, "stale", false, "answer from the contacted server's local state without asking the leader (may lag)")
	return cmd
}

func printTask(g *globals, t *fsm.Task) {
	w := g.stdout
	fmt.Fprintf(w, "id:           %s\n", termsafe.Field(t.ID))
	fmt.Fprintf(w, "type:         %s\n", termsafe.Field(t.Type))
	fmt.Fprintf(w, "status:       %s\n", termsafe.Field(string(t.Status)))
	fmt.Fprintf(w, "node:         %s\n", termsafe.Field(dash(t.NodeID)))
	fmt.Fprintf(w, "attempts:     %d of %d\n", t.Attempts, t.MaxAttempts)
	if t.Cloud != "" {
		fmt.Fprintf(w, "cloud:        %s\n", termsafe.Field(t.Cloud))
	}
	fmt.Fprintf(w, "created:      %s (%s ago)\n", time.Unix(0, t.CreatedAt).UTC().Format(time.RFC3339), ago(t.CreatedAt))
	fmt.Fprintf(w, "updated:      %s (%s ago)\n", time.Unix(0, t.UpdatedAt).UTC().Format(time.RFC3339), ago(t.UpdatedAt))
	for _, k := range t.Payload.Keys() {
		v, _ := t.Payload.Get(k)
		fmt.Fprintf(w, "payload:      %s=%s\n", termsafe.Field(k), termsafe.Field(v))
	}
	if t.Result != nil {
		fmt.Fprintf(w, "exit code:    %d\n", t.Result.ExitCode)
		if t.Result.Error != "" {
			fmt.Fprintf(w, "error:        %s\n", termsafe.Field(t.Result.Error))
		}
		if t.Result.Output != "" {
			fmt.Fprintf(w, "output:\n%s\n", indent(termsafe.Block(t.Result.Output)))
		}
	}
	fmt.Fprintln(w, "history:")
	for _, e := range t.History {
		fmt.Fprintf(w, "  %s  %-9s %s %s\n", time.Unix(0, e.Time).UTC().Format("15:04:05.000"), termsafe.Field(string(e.Status)), termsafe.Field(dash(e.NodeID)), termsafe.Field(e.Message))
	}
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  ")
}

func newTaskList(g *globals) *cobra.Command {
	var (
		status, node, typ string
		stale, newest     bool
		limit, pageSize   int
	)
	cmd := &cobra.Command{
		Use:   "list [--status S] [--node ID] [--type T] [--limit N] [--stale]",
		Short: "List tasks, oldest first (newest first with --newest), streamed page by page",
		Long: `List the manifest's tasks, oldest first, in pages of --page-size tasks:
rows are printed as each page arrives, so the first rows of a million-task
manifest appear at once and memory stays bounded (-o json prints one JSON
array, also streamed). --timeout bounds each page, not the whole listing.

The listing is one walk through the manifest: a task that exists from the
first page to the last is printed exactly once, whatever is added or removed
meanwhile; tasks added during the walk may or may not appear. Columns widen as
wider values arrive.`,
		Example: `  rctl task list --status pending --limit 20
  rctl task list --node node-7 --status running
  rctl task list -o json > tasks.json`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if status != "" && !fsm.TaskStatus(status).Valid() {
				return usagef("--status %q is not a status; use pending, assigned, running, complete, failed or cancelled", status)
			}
			if limit < 0 {
				return usagef("--limit must be 0 (all) or more, got %d", limit)
			}
			if pageSize < 1 || pageSize > rpc.MaxTaskListLimit {
				return usagef("--page-size must be 1 to %d, got %d", rpc.MaxTaskListLimit, pageSize)
			}
			args := rpc.TaskListArgs{Status: status, NodeID: node, Type: typ, Reverse: newest, QueryOptions: rpc.QueryOptions{Stale: stale}}
			return listTasks(g, args, limit, pageSize)
		},
	}
	f := cmd.Flags()
	f.StringVar(&status, "status", "", "only tasks in this status: pending, assigned, running, complete, failed, cancelled")
	f.StringVar(&node, "node", "", "only tasks on this node (the node holding the task, or the last one that held it)")
	f.StringVar(&typ, "type", "", "only tasks of this type")
	f.IntVar(&limit, "limit", 0, "print at most N tasks (0: all)")
	f.IntVar(&pageSize, "page-size", rpc.DefaultTaskListLimit, "tasks asked for per call (1-10000)")
	f.BoolVar(&newest, "newest", false, "newest first")
	f.BoolVar(&stale, "stale", false, "answer from the contacted server's local state without asking the leader (may lag)")
	return cmd
}

// listTasks walks Task.List page by page and prints each page as it
// arrives: table rows, or the elements of one JSON array. limit 0: all.
func listTasks(g *globals, args rpc.TaskListArgs, limit, pageSize int) error {
	c := g.client()
	defer c.Close()
	out := bufio.NewWriter(g.stdout)
	defer out.Flush()
	var (
		tbl = newStreamTable(out, "ID", "TYPE", "STATUS", "NODE", "ATTEMPTS", "AGE")
		arr = &jsonArray{w: out}
	)
	printed := 0
	var err error
	for {
		args.Limit = pageSize
		if limit > 0 {
			args.Limit = min(pageSize, limit-printed)
		}
		var reply rpc.TaskListReply
		ctx, cancel := g.ctx()
		err = c.Call(ctx, rpc.MethodTaskList, &args, &reply)
		cancel()
		if err != nil {
			if printed > 0 {
				out.Flush()
				return fmt.Errorf("listed %d tasks, then: %w", printed, err)
			}
			return err
		}
		if g.json() {
			for _, t := range reply.Tasks {
				if err := arr.add(t); err != nil {
					return err
				}
			}
		} else {
			rows := make([][]string, len(reply.Tasks))
			for i, t := range reply.Tasks {
				rows[i] = []string{t.ID, t.Type, string(t.Status), dash(t.NodeID), fmt.Sprint(t.Attempts), ago(t.CreatedAt)}
			}
			if err := tbl.rows(rows); err != nil {
				return err
			}
		}
		printed += len(reply.Tasks)
		if reply.NextCursor == "" || (limit > 0 && printed >= limit) {
			break
		}
		args.Cursor = reply.NextCursor
		if err := out.Flush(); err != nil {
			return err
		}
	}
	if g.json() {
		err = arr.close()
	} else {
		err = tbl.rows(nil) // the header, when there was no task
	}
	if err != nil {
		return err
	}
	return out.Flush()
}

func newTaskCancel(g *globals) *cobra.Command {
	var reason string
	cmd := &cobra.Command{
		Use:   "cancel ID",
		Short: "Cancel a task that has not finished (cancelling a cancelled task is a no-op)",
		Args:  exactArgs(1, "one task id"),
		RunE: func(_ *cobra.Command, a []string) error {
			var reply rpc.TaskReply
			if err := g.call(rpc.MethodTaskCancel, &rpc.TaskCancelArgs{ID: a[0], Reason: reason}, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(reply.Task)
			}
			fmt.Fprintf(g.stdout, "%s %s\n", termsafe.Field(reply.Task.ID), termsafe.Field(string(reply.Task.Status)))
			return nil
		},
	}
	cmd.Flags().StringVar(&reason, "reason", "", "why the task is cancelled; kept in its history")
	return cmd
}

func newTaskGC(g *globals) *cobra.Command {
	var olderThan time.Duration
	cmd := &cobra.Command{
		Use:   "gc --older-than D",
		Short: "Retire finished tasks now: those that finished more than D ago (operator role)",
		Long: `Retire, now, every finished task (complete, failed, cancelled) that finished
more than --older-than ago. The leader also does this on its own by the
retention rules of rctl serve (--retain-finished, --retain-finished-max).
Retired tasks leave the manifest and its snapshots; each leaves one line,
event=task_retired with its final status and result, in the leader's log;
task get on a retired id says so. A retired id may be used again.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if olderThan <= 0 {
				return usagef("--older-than must be positive, e.g. 1h")
			}
			var reply rpc.TaskGCReply
			if err := g.call(rpc.MethodTaskGC, &rpc.TaskGCArgs{OlderThanMS: olderThan.Milliseconds()}, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(&reply)
			}
			fmt.Fprintf(g.stdout, "retired %d finished tasks\n", reply.Retired)
			return nil
		},
	}
	cmd.Flags().DurationVar(&olderThan, "older-than", 0, "retire tasks that finished more than this long ago (required), e.g. 24h")
	return cmd
}

func newTaskWatch(g *globals) *cobra.Command {
	var (
		status string
		stale  bool
	)
	cmd := &cobra.Command{
		Use:   "watch [--status S]",
		Short: "Print task changes as they happen until Ctrl-C (one line, or one JSON object, per change)",
		Long: `Watch the manifest with blocking queries: the server answers as soon as a task
changes, so nothing is polled. The first answer prints every current task; then
each change prints the task's new state. Follows failovers across --addr.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if status != "" && !fsm.TaskStatus(status).Valid() {
				return usagef("--status %q is not a status", status)
			}
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return watchTasks(ctx, g, status, stale)
		},
	}
	cmd.Flags().StringVar(&status, "status", "", "only print tasks in this status")
	cmd.Flags().BoolVar(&stale, "stale", false, "let any server answer from local state")
	return cmd
}

func watchTasks(ctx context.Context, g *globals, status string, stale bool) error {
	c := g.client()
	defer c.Close()
	seen := map[string]uint64{}
	var index uint64
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		cctx, cancel := context.WithTimeout(ctx, 70*time.Second)
		var reply rpc.TaskListReply
		err := c.Call(cctx, rpc.MethodTaskList, &rpc.TaskListArgs{Status: status, Limit: rpc.MaxTaskListLimit,
			QueryOptions: rpc.QueryOptions{Stale: stale, MinIndex: index, MaxWaitMS: 60_000}}, &reply)
		cancel()
		// The rest of the manifest, page by page, without waiting.
		for cursor := reply.NextCursor; err == nil && cursor != "" && ctx.Err() == nil; {
			var more rpc.TaskListReply
			cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			err = c.Call(cctx, rpc.MethodTaskList, &rpc.TaskListArgs{Status: status, Limit: rpc.MaxTaskListLimit, Cursor: cursor,
				QueryOptions: rpc.QueryOptions{Stale: stale}}, &more)
			cancel()
			reply.Tasks = append(reply.Tasks, more.Tasks...)
			cursor = more.NextCursor
		}
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if !rpc.IsRetryable(err) && rpc.CodeOf(err) != rpc.CodeDeadlineExceeded {
				return err
			}
			fmt.Fprintf(g.stderr, "rctl: watch: %s; retrying\n", termsafe.Field(err.Error()))
			time.Sleep(backoff)
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		if reply.Index < index {
			index = 0 // the cluster was restored from a snapshot: start over
		} else {
			index = reply.Index
		}
		for _, t := range reply.Tasks {
			if seen[t.ID] == t.ModifyIndex {
				continue
			}
			seen[t.ID] = t.ModifyIndex
			if g.json() {
				if err := compactJSON(g, t); err != nil {
					return err
				}
				continue
			}
			fmt.Fprintf(g.stdout, "%s  %-20s %-9s %-10s node=%s attempts=%d\n",
				time.Unix(0, t.UpdatedAt).UTC().Format("15:04:05.000"), termsafe.Field(t.ID), termsafe.Field(string(t.Status)), termsafe.Field(t.Type), termsafe.Field(dash(t.NodeID)), t.Attempts)
		}
	}
	return nil
}
