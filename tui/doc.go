// Package tui is `rctl top`: a live terminal view of an rctl cluster built on
// Bubble Tea and lipgloss.
//
// The package has two halves that meet only through messages:
//
//   - Model (model.go, keys.go, view.go) is pure. It holds the last answer of
//     each read (Status.Get, Status.Members, Node.List, Task.List), the
//     connection state and the events derived by diffing successive answers,
//     and renders them. It never touches the network or the clock: data
//     arrives as StatusMsg, MembersMsg, NodesMsg, TasksMsg, ConnMsg and
//     ConnLostMsg, each stamped with the time it was received, and the clock
//     advances with TickMsg. Tests feed it messages and compare View with
//     golden files.
//
//   - Watcher (fetch.go) talks to the cluster through a Caller (an
//     *rpc.Pool in production, a fake in tests). It owns the connected
//     server: a blocking Status.Get on it doubles as a liveness probe, and
//     when that call fails the watcher moves to the next address it knows
//     (the --addr list plus every address learned from Status.Members) and
//     says so with a ConnMsg. Node.List and Task.List run as blocking
//     queries (min_index + max_wait_ms) in their own goroutines; Members,
//     which has no blocking form, is refreshed on a timer and whenever the
//     leader or term changes (the leader reuses its probe of the servers
//     for 2 s, so viewers do not multiply it). Nothing in the UI waits for
//     the network.
//
//   - The tasks panel holds one bounded page, never the manifest (which
//     may hold millions of tasks): the newest WatchConfig.TaskPage tasks
//     matching the view's filter, whose status:, node: and type: parts
//     the server applies (TaskListArgs), plus the counts of the whole
//     manifest. The model reports filter changes through Options.OnFilter
//     (the watcher's SetTaskFilter), which re-asks at once. Task events
//     (failed, requeued) compare successive pages of one filter.
//
// FetchOnce gathers one snapshot synchronously for `rctl top --once`, and
// Model.Plain renders it without colour.
//
// # Untrusted text
//
// Ids, types, payloads, labels, addresses, event messages, errors and task
// output are written by whoever can submit a task or register a node; a
// control sequence in one of them must not reach the operator's terminal.
// The model keeps the servers' answers raw (matching, sorting, selection and
// the filter work on the real values) and escapes each string with
// internal/termsafe where it becomes display text, before it is styled or
// measured, at one choke point per kind of text:
//
//   - table cells: txt and styled (table.go), for the servers, nodes and
//     tasks panels and a task's history;
//   - the events log: addEvent escapes each event's text once;
//   - banners: banners escapes every banner's text;
//   - the header (headerLines), the panels' data notes (dataNote), the task
//     detail (detailLines: kv, kvStyled, payload and output lines) and the
//     filter shown in the footer, explicitly;
//   - Plain: tabRow for its tables, plus its header and notes.
//
// Escaping is idempotent and free for clean text, so a value that passes
// two of these points is not harmed.
package tui
