package fsm

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// BenchmarkApplyAddTask measures Apply of add_task entries (decode,
// validate, insert) on a growing state.
func BenchmarkApplyAddTask(b *testing.B) {
	logs := make([]*raft.Log, b.N)
	for i := range logs {
		e := &AddTaskEntry{ID: fmt.Sprintf("task-%09d", i), Type: "shell",
			Payload: map[string]string{"cmd": "echo hi", "env": "prod"}, Time: int64(i + 1)}
		logs[i] = &raft.Log{Index: uint64(i + 1), Type: raft.LogCommand, Data: encode(b, e)}
	}
	f := New()
	b.ReportAllocs()
	b.ResetTimer()
	for _, l := range logs {
		if res := f.ApplyRaft(l).(*ApplyResult); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
}

// BenchmarkMillionTasks builds a state of one million tasks and reports
// the live heap per task (heap-B/task). It takes several seconds and is
// skipped with -short; like every benchmark it runs only under -bench,
// e.g. go test -run=^$ -bench=MillionTasks -benchtime=1x ./fsm/.
//
//   - pending: added, with a two-key payload (one history event).
//   - complete: added, assigned, started and completed with a short
//     output (three history events and a Result).
//   - snapshot: WriteSnapshot and Restore of the pending state, with the
//     snapshot size and the seconds each took.
func BenchmarkMillionTasks(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1M tasks; skipped with -short")
	}
	const n = 1_000_000
	for _, lifecycle := range []bool{false, true} {
		name := "pending"
		if lifecycle {
			name = "complete"
		}
		b.Run(name, func(b *testing.B) {
			for range b.N {
				before := liveHeap()
				f := buildTasks(b, n, lifecycle)
				after := liveHeap()
				b.ReportMetric(float64(after-before)/n, "heap-B/task")
				b.ReportMetric(float64(after-before)/(1<<20), "heap-MiB")
				runtime.KeepAlive(f)
			}
		})
	}
	b.Run("snapshot", func(b *testing.B) { benchSnapshot(b, buildTasks(b, n, false)) })
	// The same with a million finished tasks (built without Apply), whose
	// restore also builds the finish orders.
	b.Run("snapshot-finished", func(b *testing.B) { benchSnapshot(b, finishedFSM(n)) })
}

// benchSnapshot measures WriteSnapshot and Restore of f.
func benchSnapshot(b *testing.B, f *FSM) {
	b.ResetTimer()
	for range b.N {
		var buf bytes.Buffer
		start := time.Now()
		if err := f.WriteSnapshot(&buf); err != nil {
			b.Fatal(err)
		}
		wrote := time.Since(start)
		start = time.Now()
		if err := New().Restore(readCloser{bytes.NewReader(buf.Bytes())}); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(buf.Len())/(1<<20), "snapshot-MiB")
		b.ReportMetric(wrote.Seconds(), "write-s")
		b.ReportMetric(time.Since(start).Seconds(), "restore-s")
	}
}

func liveHeap() uint64 {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// buildTasks applies n add_task entries (and, with lifecycle, assign,
// start and complete for each) to a new FSM. Entries are encoded one at a
// time so that only the FSM stays live.
func buildTasks(b *testing.B, n int, lifecycle bool) *FSM {
	f := New()
	var ix uint64
	apply := func(body any) {
		ix++
		if res := f.ApplyRaft(&raft.Log{Index: ix, Type: raft.LogCommand, Data: encode(b, body)}).(*ApplyResult); res.Err != nil {
			b.Fatal(res.Err)
		}
	}
	apply(&NodeRegisterEntry{ID: "node-1", Address: "10.0.0.1:7000", Cloud: "aws", Capacity: 16, Time: 1})
	for i := range n {
		id := fmt.Sprintf("task-%09d", i)
		now := int64(1_700_000_000_000_000_000 + i)
		apply(&AddTaskEntry{ID: id, Type: "shell", Payload: map[string]string{"cmd": "echo hi", "env": "prod"}, Time: now})
		if lifecycle {
			apply(&AssignTaskEntry{TaskID: id, NodeID: "node-1", Time: now + 1})
			apply(&StartTaskEntry{TaskID: id, NodeID: "node-1", Time: now + 2})
			apply(&CompleteTaskEntry{TaskID: id, NodeID: "node-1", Result: Result{Output: "hi\n"}, Time: now + 3})
		}
	}
	return f
}

// finishedFSM builds, without going through Apply (for speed), an FSM
// holding n finished tasks as Apply would have stored them: task i is
// added at index 2i+1 and finished at 2i+2, one millisecond later, as
// complete, failed or cancelled in turn, with one history event.
func finishedFSM(n int) *FSM {
	f := New()
	st := f.st
	st.tasks = newTaskTable(n)
	statuses := finishedStatuses
	for i := range n {
		at := int64(1_700_000_000_000_000_000) + int64(i)*int64(time.Millisecond)
		s := statuses[i%3]
		t := &Task{ID: fmt.Sprintf("task-%09d", i), Type: "shell", Payload: Payload{"cmd", "echo hi"}, MaxAttempts: 3,
			Status: s, CreatedAt: at, UpdatedAt: at + int64(time.Millisecond), CreateIndex: uint64(2*i + 1), ModifyIndex: uint64(2*i + 2),
			History: []Event{{Time: at + int64(time.Millisecond), Index: uint64(2*i + 2), Status: s}}}
		if s != TaskCancelled {
			t.NodeID, t.Attempts, t.Result = "node-1", 1, &Result{Output: "hi\n"}
		}
		st.tasks.insert(t)
	}
	st.idx.Tasks, st.idx.Applied = uint64(2*n), uint64(2*n)
	return f
}

// BenchmarkRetire1MTasks measures Apply of retire_tasks entries of
// MaxRetireBatch ids on a manifest of one million finished tasks
// (go test -run=^$ -bench=Retire1MTasks ./fsm/):
//
//   - oldest: each op retires the 1000 oldest tasks left, as the count
//     and age rules do; ns/task is per retired task.
//   - scattered: each op retires 1000 ids spread over the whole table.
//   - all: one op retires all 1M tasks in 1000 entries, every compaction
//     of the table included; max-entry-ms is the slowest entry.
//   - compact: one op is the removal that triggers the first compaction
//     of a 1M-slot table (500k tasks left): the pause it adds, once per
//     at least as many removals as tasks left.
//   - compact-shrink: the removal that triggers the next one (250k tasks
//     left, under a quarter of the peak): the ids map is rebuilt too.
//
// The table is rebuilt (timer stopped) when an op would run out of tasks.
func BenchmarkRetire1MTasks(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1M tasks; skipped with -short")
	}
	const n = 1_000_000
	ids := make([]string, n)
	for i := range ids {
		ids[i] = fmt.Sprintf("task-%09d", i)
	}
	entries := func(order []string) []*raft.Log {
		var out []*raft.Log
		for start := 0; start < len(order); start += MaxRetireBatch {
			e := &RetireTasksEntry{TaskIDs: order[start : start+MaxRetireBatch], Reason: "count", Time: 1_800_000_000_000_000_000}
			out = append(out, &raft.Log{Type: raft.LogCommand, Data: encode(b, e)})
		}
		return out
	}
	scattered := slices.Clone(ids)
	rand.New(rand.NewPCG(1, 2)).Shuffle(n, func(i, j int) { scattered[i], scattered[j] = scattered[j], scattered[i] })
	for _, bc := range []struct {
		name  string
		order []string
	}{{"oldest", ids}, {"scattered", scattered}} {
		b.Run(bc.name, func(b *testing.B) {
			logs := entries(bc.order)
			var f *FSM
			next := len(logs)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if next == len(logs) {
					b.StopTimer()
					f, next = finishedFSM(n), 0
					runtime.GC()
					b.StartTimer()
				}
				l := logs[next]
				l.Index = uint64(2*n + 1 + next)
				if res := f.ApplyRaft(l).(*ApplyResult); res.Err != nil || len(res.Retired) != MaxRetireBatch {
					b.Fatalf("retired %d: %v", len(res.Retired), res.Err)
				}
				next++
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*MaxRetireBatch), "ns/task")
		})
	}
	b.Run("all", func(b *testing.B) {
		logs := entries(ids)
		for range b.N {
			b.StopTimer()
			f := finishedFSM(n)
			runtime.GC()
			b.StartTimer()
			var worst time.Duration
			for i, l := range logs {
				l.Index = uint64(2*n + 1 + i)
				start := time.Now()
				if res := f.ApplyRaft(l).(*ApplyResult); res.Err != nil {
					b.Fatal(res.Err)
				}
				worst = max(worst, time.Since(start))
			}
			if len(f.Tasks("")) != 0 {
				b.Fatal("tasks left")
			}
			b.ReportMetric(float64(worst.Microseconds())/1000, "max-entry-ms")
		}
	})
	for _, bc := range []struct {
		name string
		at   int // the removal that compacts
	}{{"compact", n / 2}, {"compact-shrink", 3 * n / 4}} {
		b.Run(bc.name, func(b *testing.B) {
			for range b.N {
				b.StopTimer()
				f := finishedFSM(n)
				tt := &f.st.tasks
				for _, id := range ids[:bc.at] {
					tt.remove(id)
				}
				if tt.dead == 0 {
					b.Fatal("compacted too late")
				}
				runtime.GC()
				b.StartTimer()
				tt.remove(ids[bc.at])
				b.StopTimer()
				if tt.dead != 0 {
					b.Fatal("no compaction")
				}
				b.StartTimer()
			}
		})
	}
}

// BenchmarkRetireCandidates1M measures RetireCandidates on one million
// finished tasks (a third in each finished status):
//
//   - age-few: the age rule selects the 10 oldest.
//   - count-few: the count rule selects 3 per status.
//   - batch: the age rule selects 100k; the call returns MaxRetireBatch.
//   - none: both rules on, nothing to retire.
//   - scan-baseline: for comparison, one pass over the finished tasks
//     (Tasks of each finished status, checking UpdatedAt), what a
//     selection without the finish order would cost at least.
func BenchmarkRetireCandidates1M(b *testing.B) {
	if testing.Short() {
		b.Skip("builds 1M tasks; skipped with -short")
	}
	const n = 1_000_000
	f := finishedFSM(n)
	first := int64(1_700_000_000_000_000_000) + int64(time.Millisecond) // the oldest UpdatedAt
	counts := f.TaskCounts()
	perStatus := min(counts[TaskComplete], counts[TaskFailed], counts[TaskCancelled])
	excess := counts[TaskComplete] + counts[TaskFailed] + counts[TaskCancelled] - 3*(perStatus-3)
	ms := int64(time.Millisecond)
	cases := []struct {
		name   string
		now    int64
		maxAge time.Duration
		maxPer int
		limit  int
		want   int
	}{
		{"age-few", first + 10*ms + int64(time.Hour), time.Hour, 0, MaxRetireBatch, 10},
		{"count-few", first, 0, perStatus - 3, MaxRetireBatch, excess},
		{"batch", first + 100_000*ms + int64(time.Hour), time.Hour, 0, MaxRetireBatch, MaxRetireBatch},
		{"none", first, time.Hour, max(counts[TaskComplete], counts[TaskFailed], counts[TaskCancelled]), MaxRetireBatch, 0},
	}
	for _, bc := range cases {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for range b.N {
				if got := f.RetireCandidates(bc.now, bc.maxAge, bc.maxPer, bc.limit); len(got) != bc.want {
					b.Fatalf("%d candidates, want %d", len(got), bc.want)
				}
			}
		})
	}
	b.Run("scan-baseline", func(b *testing.B) {
		for range b.N {
			old := 0
			for _, s := range finishedStatuses {
				for _, t := range f.Tasks(s) {
					if t.UpdatedAt < first+10*ms {
						old++
					}
				}
			}
			if old != 10 {
				b.Fatal(old)
			}
		}
	})
}

// BenchmarkRetiredMemory reports the heap one record of the retired
// record costs (heap-B/entry: record, map entry, FIFO slot and a 14-byte
// id, which a retired task leaves behind) and its snapshot size
// (snap-B/entry), for a full record of RetiredMemory ids.
func BenchmarkRetiredMemory(b *testing.B) {
	for range b.N {
		ids := make([]string, RetiredMemory)
		before := liveHeap()
		f := New()
		for i := range ids {
			ids[i] = fmt.Sprintf("task-%09d", i)
			f.st.retired.add(RetiredTask{ID: ids[i], Status: TaskComplete, RetiredAt: int64(i + 1), RetireIndex: uint64(i + 1)})
		}
		after := liveHeap()
		b.ReportMetric(float64(after-before)/RetiredMemory, "heap-B/entry")
		var buf bytes.Buffer
		if err := f.WriteSnapshot(&buf); err != nil {
			b.Fatal(err)
		}
		b.ReportMetric(float64(buf.Len())/RetiredMemory, "snap-B/entry")
		runtime.KeepAlive(f)
	}
}
