package fsm

import (
	"strings"
	"testing"
)

func TestServerUpsert(t *testing.T) {
	up := func(sv Server) func(h *harness) any {
		return func(h *harness) any { return &ServerUpsertEntry{Server: sv} }
	}
	s1 := Server{ID: "s1", Address: "10.0.1.5:50051", Cloud: "aws", Region: "us-east-1"}
	withS1 := func(h *harness) { h.ok(&ServerUpsertEntry{Server: s1}) }
	runCases(t, []applyCase{
		{name: "new server", entry: up(s1), tables: []string{"servers"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if got := h.f.Server("s1"); got == nil || *got != s1 {
					t.Fatalf("stored server %+v, want %+v", got, s1)
				}
			}},
		{name: "identical is a no-op", setup: withS1, entry: up(s1), noop: true},
		{name: "new address", setup: withS1, entry: up(Server{ID: "s1", Address: "10.0.1.6:50051"}), tables: []string{"servers"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if got := h.f.Server("s1"); got.Address != "10.0.1.6:50051" || got.Cloud != "" {
					t.Fatalf("stored server %+v", got)
				}
			}},
		{name: "empty id", entry: up(Server{Address: "a:1"}), kind: ErrInvalid},
		{name: "bad id", entry: up(Server{ID: "s 1", Address: "a:1"}), kind: ErrInvalid},
		{name: "empty address", entry: up(Server{ID: "s1"}), kind: ErrInvalid},
		{name: "address too long", entry: up(Server{ID: "s1", Address: strings.Repeat("a", 257)}), kind: ErrInvalid},
		{name: "bad cloud", entry: up(Server{ID: "s1", Address: "a:1", Cloud: "A W S"}), kind: ErrInvalid},
	})
}

func TestServerRemove(t *testing.T) {
	withS1 := func(h *harness) { h.ok(&ServerUpsertEntry{Server: Server{ID: "s1", Address: "a:1"}}) }
	rm := func(id string) func(h *harness) any {
		return func(h *harness) any { return &ServerRemoveEntry{ID: id} }
	}
	runCases(t, []applyCase{
		{name: "present", setup: withS1, entry: rm("s1"), tables: []string{"servers"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if h.f.Server("s1") != nil || len(h.f.Servers()) != 0 {
					t.Fatal("s1 still listed")
				}
			}},
		{name: "absent is a no-op", setup: withS1, entry: rm("s2"), noop: true},
		{name: "empty id", entry: rm(""), kind: ErrInvalid},
	})
}
