package fault

import "testing"

func TestParseLogfmt(t *testing.T) {
	kv := ParseLogfmt(`time=2026-11-30T10:19:52.259Z level=INFO msg="leader silent for a quorum of voters" node_id=aws1 event=leader_gone leader_id="" silent_voters=3 stands=aws1 err="a \"quoted\" word"`)
	want := map[string]string{"time": "2026-11-30T10:19:52.259Z", "level": "INFO", "msg": "leader silent for a quorum of voters",
		"node_id": "aws1", "event": "leader_gone", "leader_id": "", "silent_voters": "3", "stands": "aws1", "err": `a "quoted" word`}
	for k, v := range want {
		if got, ok := kv[k]; !ok || got != v {
			t.Errorf("%s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if len(kv) != len(want) {
		t.Errorf("parsed %d keys, want %d: %v", len(kv), len(want), kv)
	}
	// raft's own (hclog) lines hold few key=value pairs and no time=.
	if kv := ParseLogfmt(`2026-11-30T10:19:52.262Z [INFO]  raft: entering candidate state: node="Node at 10.77.1.11:50051 [Candidate]" term=2`); kv["time"] != "" || kv["term"] != "2" {
		t.Errorf("hclog line parsed as %v", kv)
	}
}
