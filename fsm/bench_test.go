package fsm

import (
	"bytes"
	"fmt"
	"runtime"
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
		if res := f.Apply(l).(*ApplyResult); res.Err != nil {
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
	b.Run("snapshot", func(b *testing.B) {
		f := buildTasks(b, n, false)
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
	})
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
		if res := f.Apply(&raft.Log{Index: ix, Type: raft.LogCommand, Data: encode(b, body)}).(*ApplyResult); res.Err != nil {
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
