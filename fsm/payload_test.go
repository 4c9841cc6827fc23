package fsm

import (
	"encoding/json"
	"testing"

	"github.com/hashicorp/go-msgpack/v2/codec"
)

func TestPayloadTravelsAsAMap(t *testing.T) {
	p := NewPayload(map[string]string{"cmd": "echo hi", "a": "1", "timeout": "5"})
	if p.Len() != 3 || p.Keys()[0] != "a" {
		t.Fatalf("payload %v not sorted", p)
	}
	if v, ok := p.Get("timeout"); !ok || v != "5" {
		t.Fatalf("Get(timeout) = %q %v", v, ok)
	}
	if _, ok := p.Get("nope"); ok {
		t.Fatal("Get of a missing key succeeded")
	}

	// msgpack: a map, byte-identical to encoding the map canonically.
	var fromSlice, fromMap []byte
	if err := codec.NewEncoderBytes(&fromSlice, MsgpackHandle()).Encode(&Task{ID: "x", Payload: p}); err != nil {
		t.Fatal(err)
	}
	var generic map[string]any
	if err := codec.NewDecoderBytes(fromSlice, MsgpackHandle()).Decode(&generic); err != nil {
		t.Fatal(err)
	}
	pm, ok := generic["payload"].(map[string]any)
	if !ok || pm["cmd"] != "echo hi" || len(pm) != 3 {
		t.Fatalf("payload on the wire is %T %v, want a map", generic["payload"], generic["payload"])
	}
	if err := codec.NewEncoderBytes(&fromMap, MsgpackHandle()).Encode(map[string]string{"cmd": "echo hi", "a": "1", "timeout": "5"}); err != nil {
		t.Fatal(err)
	}
	var alone []byte
	if err := codec.NewEncoderBytes(&alone, MsgpackHandle()).Encode(p); err != nil {
		t.Fatal(err)
	}
	if string(alone) != string(fromMap) {
		t.Fatalf("payload encodes as % x, the canonical map as % x", alone, fromMap)
	}
	var back Task
	if err := codec.NewDecoderBytes(fromSlice, MsgpackHandle()).Decode(&back); err != nil || !back.Payload.Equal(p.Map()) {
		t.Fatalf("round trip: %v %v", back.Payload, err)
	}

	// JSON: an object.
	j, err := json.Marshal(p)
	if err != nil || string(j) != `{"a":"1","cmd":"echo hi","timeout":"5"}` {
		t.Fatalf("json %s %v", j, err)
	}
	var pj Payload
	if err := json.Unmarshal([]byte(`{"z":"1","b":"2"}`), &pj); err != nil || pj.Keys()[0] != "b" {
		t.Fatalf("json decode %v %v", pj, err)
	}
	if j, _ := json.Marshal(Payload(nil)); string(j) != "{}" {
		t.Fatalf("empty payload json %s", j)
	}
}

func TestPayloadNormalize(t *testing.T) {
	if _, err := (Payload{"a"}).normalize(); err == nil {
		t.Fatal("odd payload accepted")
	}
	if _, err := (Payload{"a", "1", "a", "2"}).normalize(); err == nil {
		t.Fatal("repeated key accepted")
	}
	got, err := (Payload{"b", "2", "a", "1"}).normalize()
	if err != nil || got[0] != "a" || got[2] != "b" {
		t.Fatalf("normalize = %v %v", got, err)
	}
}
