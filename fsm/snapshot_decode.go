package fsm

import (
	"encoding/binary"
	"errors"
	"math"
)

// Task records are most of a snapshot (a million of them for a million
// tasks), and decoding them through the reflection-based codec was most
// of the time a restore took. taskDecoder decodes the msgpack that
// writeSnapshot produces for a Task directly: a map keyed by field name,
// strings, integers, nil for an absent Result, History or Payload.
//
// It handles only those shapes. On anything else (an unknown key, a
// binary string, an array-encoded struct, a nil where a scalar belongs,
// an integer out of range, a float, an extension…) it returns
// errSlowPath and the caller decodes the same record with the codec,
// which is then the one that accepts or refuses it. So the fast path
// never accepts a record the codec would refuse, and when it accepts one
// it builds the Task the codec would have built.
type taskDecoder struct {
	b []byte
	i int
	// Interned strings: statuses map to the package constants and short,
	// repeated strings (types, clouds, node ids, payload keys) are shared
	// instead of allocated per task.
	intern map[string]string
}

// errSlowPath: the record is not in the shape the fast path handles.
var errSlowPath = errors.New("fsm: record needs the generic decoder")

// maxInterned bounds the intern table: a snapshot with more distinct
// types, clouds, node ids and payload keys than this still decodes, the
// rest are just allocated per task.
const maxInterned = 1 << 14

func newTaskDecoder() *taskDecoder {
	return &taskDecoder{intern: make(map[string]string)}
}

// decodeTask decodes b (one whole record) into t, which must be zero.
func (d *taskDecoder) decodeTask(b []byte, t *Task) error {
	d.b, d.i = b, 0
	n, err := d.mapLen()
	if err != nil {
		return err
	}
	for range n {
		k, err := d.rawStr()
		if err != nil {
			return err
		}
		switch string(k) {
		case "id":
			t.ID, err = d.str()
		case "type":
			t.Type, err = d.internStr()
		case "payload":
			t.Payload, err = d.payload()
		case "cloud":
			t.Cloud, err = d.internStr()
		case "max_attempts":
			t.MaxAttempts, err = d.int()
		case "status":
			t.Status, err = d.status()
		case "node_id":
			t.NodeID, err = d.internStr()
		case "attempts":
			t.Attempts, err = d.int()
		case "result":
			t.Result, err = d.result()
		case "created_at":
			t.CreatedAt, err = d.int64()
		case "updated_at":
			t.UpdatedAt, err = d.int64()
		case "create_index":
			t.CreateIndex, err = d.uint64()
		case "modify_index":
			t.ModifyIndex, err = d.uint64()
		case "history":
			t.History, err = d.history()
		default:
			return errSlowPath
		}
		if err != nil {
			return err
		}
	}
	if d.i != len(d.b) {
		return errSlowPath // trailing bytes: let the codec judge
	}
	return nil
}

func (d *taskDecoder) payload() (Payload, error) {
	if d.isNil() {
		return nil, nil
	}
	n, err := d.mapLen()
	if err != nil {
		return nil, err
	}
	if n > MaxPayloadKeys*4 { // far beyond the limits; not worth a fast path
		return nil, errSlowPath
	}
	p := make(Payload, 2*n)
	for i := 0; i < 2*n; i += 2 {
		if p[i], err = d.internStr(); err != nil {
			return nil, err
		}
		if p[i+1], err = d.str(); err != nil {
			return nil, err
		}
	}
	return p, nil
}

func (d *taskDecoder) result() (*Result, error) {
	if d.isNil() {
		return nil, nil
	}
	n, err := d.mapLen()
	if err != nil {
		return nil, err
	}
	r := new(Result)
	for range n {
		k, err := d.rawStr()
		if err != nil {
			return nil, err
		}
		switch string(k) {
		case "exit_code":
			r.ExitCode, err = d.int()
		case "output":
			r.Output, err = d.str()
		case "error":
			r.Error, err = d.str()
		default:
			return nil, errSlowPath
		}
		if err != nil {
			return nil, err
		}
	}
	return r, nil
}

func (d *taskDecoder) history() ([]Event, error) {
	if d.isNil() {
		return nil, nil
	}
	n, err := d.arrayLen()
	if err != nil {
		return nil, err
	}
	if n > MaxHistory*4 {
		return nil, errSlowPath
	}
	h := make([]Event, n)
	for j := range h {
		ev := &h[j]
		m, err := d.mapLen()
		if err != nil {
			return nil, err
		}
		for range m {
			k, err := d.rawStr()
			if err != nil {
				return nil, err
			}
			switch string(k) {
			case "time":
				ev.Time, err = d.int64()
			case "index":
				ev.Index, err = d.uint64()
			case "status":
				ev.Status, err = d.status()
			case "node_id":
				ev.NodeID, err = d.internStr()
			case "message":
				ev.Message, err = d.str()
			default:
				return nil, errSlowPath
			}
			if err != nil {
				return nil, err
			}
		}
	}
	return h, nil
}

// status decodes a status, sharing the package constant when known.
func (d *taskDecoder) status() (TaskStatus, error) {
	b, err := d.rawStr()
	if err != nil {
		return "", err
	}
	switch string(b) {
	case string(TaskPending):
		return TaskPending, nil
	case string(TaskAssigned):
		return TaskAssigned, nil
	case string(TaskRunning):
		return TaskRunning, nil
	case string(TaskComplete):
		return TaskComplete, nil
	case string(TaskFailed):
		return TaskFailed, nil
	case string(TaskCancelled):
		return TaskCancelled, nil
	}
	return TaskStatus(b), nil
}

func (d *taskDecoder) str() (string, error) {
	b, err := d.rawStr()
	if err != nil {
		return "", err
	}
	return string(b), nil
}

func (d *taskDecoder) internStr() (string, error) {
	b, err := d.rawStr()
	if err != nil || len(b) == 0 {
		return "", err
	}
	if s, ok := d.intern[string(b)]; ok {
		return s, nil
	}
	s := string(b)
	if len(b) <= 256 && len(d.intern) < maxInterned {
		d.intern[s] = s
	}
	return s, nil
}

// rawStr returns the bytes of a msgpack str (fixstr, str8/16/32), which
// alias the record buffer.
func (d *taskDecoder) rawStr() ([]byte, error) {
	if d.i >= len(d.b) {
		return nil, errSlowPath
	}
	c := d.b[d.i]
	var n, h int
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n, h = int(c&0x1f), 1
	case c == 0xd9:
		if d.i+2 > len(d.b) {
			return nil, errSlowPath
		}
		n, h = int(d.b[d.i+1]), 2
	case c == 0xda:
		if d.i+3 > len(d.b) {
			return nil, errSlowPath
		}
		n, h = int(binary.BigEndian.Uint16(d.b[d.i+1:])), 3
	case c == 0xdb:
		if d.i+5 > len(d.b) {
			return nil, errSlowPath
		}
		n, h = int(binary.BigEndian.Uint32(d.b[d.i+1:])), 5
	default:
		return nil, errSlowPath
	}
	start := d.i + h
	if n > len(d.b)-start {
		return nil, errSlowPath
	}
	d.i = start + n
	return d.b[start:d.i:d.i], nil
}

func (d *taskDecoder) isNil() bool {
	if d.i < len(d.b) && d.b[d.i] == 0xc0 {
		d.i++
		return true
	}
	return false
}

func (d *taskDecoder) mapLen() (int, error) {
	return d.containerLen(0x80, 0xde, 0xdf)
}

func (d *taskDecoder) arrayLen() (int, error) {
	return d.containerLen(0x90, 0xdc, 0xdd)
}

// containerLen reads a map or array header: fix (base + 0..15), 16-bit
// or 32-bit length. Each element takes at least one byte, so a length
// beyond the bytes left is refused here (no huge allocation).
func (d *taskDecoder) containerLen(fix, c16, c32 byte) (int, error) {
	if d.i >= len(d.b) {
		return 0, errSlowPath
	}
	c := d.b[d.i]
	var n int
	switch {
	case c >= fix && c <= fix+0x0f:
		n = int(c - fix)
		d.i++
	case c == c16:
		if d.i+3 > len(d.b) {
			return 0, errSlowPath
		}
		n = int(binary.BigEndian.Uint16(d.b[d.i+1:]))
		d.i += 3
	case c == c32:
		if d.i+5 > len(d.b) {
			return 0, errSlowPath
		}
		n = int(binary.BigEndian.Uint32(d.b[d.i+1:]))
		d.i += 5
	default:
		return 0, errSlowPath
	}
	if n > len(d.b)-d.i {
		return 0, errSlowPath
	}
	return n, nil
}

// integer reads any msgpack integer as a sign and magnitude.
func (d *taskDecoder) integer() (neg bool, u uint64, err error) {
	if d.i >= len(d.b) {
		return false, 0, errSlowPath
	}
	c := d.b[d.i]
	if c <= 0x7f {
		d.i++
		return false, uint64(c), nil
	}
	if c >= 0xe0 {
		d.i++
		return true, uint64(-int64(int8(c))), nil
	}
	var size int
	switch c {
	case 0xcc, 0xd0:
		size = 1
	case 0xcd, 0xd1:
		size = 2
	case 0xce, 0xd2:
		size = 4
	case 0xcf, 0xd3:
		size = 8
	default:
		return false, 0, errSlowPath
	}
	if d.i+1+size > len(d.b) {
		return false, 0, errSlowPath
	}
	p := d.b[d.i+1 : d.i+1+size]
	d.i += 1 + size
	if c <= 0xcf { // unsigned
		switch size {
		case 1:
			return false, uint64(p[0]), nil
		case 2:
			return false, uint64(binary.BigEndian.Uint16(p)), nil
		case 4:
			return false, uint64(binary.BigEndian.Uint32(p)), nil
		}
		return false, binary.BigEndian.Uint64(p), nil
	}
	var v int64
	switch size {
	case 1:
		v = int64(int8(p[0]))
	case 2:
		v = int64(int16(binary.BigEndian.Uint16(p)))
	case 4:
		v = int64(int32(binary.BigEndian.Uint32(p)))
	default:
		v = int64(binary.BigEndian.Uint64(p))
	}
	if v < 0 {
		if v == math.MinInt64 {
			return true, 1 << 63, nil
		}
		return true, uint64(-v), nil
	}
	return false, uint64(v), nil
}

func (d *taskDecoder) int64() (int64, error) {
	neg, u, err := d.integer()
	switch {
	case err != nil:
		return 0, err
	case neg && u <= 1<<63:
		return -int64(u-1) - 1, nil
	case !neg && u <= math.MaxInt64:
		return int64(u), nil
	}
	return 0, errSlowPath
}

func (d *taskDecoder) int() (int, error) {
	v, err := d.int64()
	if err != nil || v < math.MinInt || v > math.MaxInt {
		return 0, errSlowPath
	}
	return int(v), nil
}

func (d *taskDecoder) uint64() (uint64, error) {
	neg, u, err := d.integer()
	if err != nil || neg {
		return 0, errSlowPath
	}
	return u, nil
}
