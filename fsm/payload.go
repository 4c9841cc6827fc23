package fsm

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"sort"
	"strings"
)

// Payload is a task's input: string keys to string values. It is stored as
// a slice of alternating keys and values sorted by key, which costs about a
// fifth of a Go map for the usual handful of keys (a million tasks are the
// target). On the wire, in snapshots and in JSON it is a map; msgpack
// encodes it as one through codec.MapBySlice.
type Payload []string

// MapBySlice tells the msgpack codec to encode Payload as a map.
func (Payload) MapBySlice() {}

// NewPayload builds a Payload from a map; nil for an empty one.
func NewPayload(m map[string]string) Payload {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	p := make(Payload, 0, 2*len(keys))
	for _, k := range keys {
		p = append(p, k, m[k])
	}
	return p
}

// Len is the number of keys.
func (p Payload) Len() int { return len(p) / 2 }

// Keys returns the keys in sorted order.
func (p Payload) Keys() []string {
	out := make([]string, 0, p.Len())
	for i := 0; i+1 < len(p); i += 2 {
		out = append(out, p[i])
	}
	return out
}

// Get returns the value of key k.
func (p Payload) Get(k string) (string, bool) {
	n := p.Len()
	i := sort.Search(n, func(i int) bool { return p[2*i] >= k })
	if i < n && p[2*i] == k {
		return p[2*i+1], true
	}
	return "", false
}

// Map returns the payload as a new map.
func (p Payload) Map() map[string]string {
	m := make(map[string]string, p.Len())
	for i := 0; i+1 < len(p); i += 2 {
		m[p[i]] = p[i+1]
	}
	return m
}

// Equal reports whether p holds exactly the entries of m (nil equals empty).
func (p Payload) Equal(m map[string]string) bool {
	if p.Len() != len(m) {
		return false
	}
	for i := 0; i+1 < len(p); i += 2 {
		if v, ok := m[p[i]]; !ok || v != p[i+1] {
			return false
		}
	}
	return true
}

// normalize checks a decoded payload (pairs, unique keys) and puts it in
// key order; nil for an empty one.
func (p Payload) normalize() (Payload, error) {
	if len(p) == 0 {
		return nil, nil
	}
	if len(p)%2 != 0 {
		return nil, errors.New("payload has a key without a value")
	}
	type kv struct{ k, v string }
	pairs := make([]kv, 0, len(p)/2)
	for i := 0; i < len(p); i += 2 {
		pairs = append(pairs, kv{p[i], p[i+1]})
	}
	sorted := slices.IsSortedFunc(pairs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	if !sorted {
		slices.SortStableFunc(pairs, func(a, b kv) int { return strings.Compare(a.k, b.k) })
	}
	for i := 1; i < len(pairs); i++ {
		if pairs[i].k == pairs[i-1].k {
			return nil, errors.New("payload repeats key " + pairs[i].k)
		}
	}
	if sorted {
		return p, nil
	}
	out := make(Payload, 0, len(p))
	for _, e := range pairs {
		out = append(out, e.k, e.v)
	}
	return out, nil
}

// MarshalJSON writes the payload as a JSON object in key order.
func (p Payload) MarshalJSON() ([]byte, error) {
	var b bytes.Buffer
	b.WriteByte('{')
	for i := 0; i+1 < len(p); i += 2 {
		if i > 0 {
			b.WriteByte(',')
		}
		k, err := json.Marshal(p[i])
		if err != nil {
			return nil, err
		}
		v, err := json.Marshal(p[i+1])
		if err != nil {
			return nil, err
		}
		b.Write(k)
		b.WriteByte(':')
		b.Write(v)
	}
	b.WriteByte('}')
	return b.Bytes(), nil
}

// UnmarshalJSON reads a JSON object (or null).
func (p *Payload) UnmarshalJSON(data []byte) error {
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return err
	}
	*p = NewPayload(m)
	return nil
}
