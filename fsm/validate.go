package fsm

import (
	"fmt"
	"maps"
	"slices"
	"strings"
	"unicode/utf8"
)

// Limits that only this package needs.
const (
	maxAddressLen = 256
	maxLabelLen   = 64   // Cloud and Region
	maxMessageLen = 1024 // cancel reasons and other history messages
)

// quote formats an id or value for a message, cut short so that a huge
// rejected value does not become a huge error message.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		return fmt.Sprintf("%q…", truncateHead(s, limit))
	}
	return fmt.Sprintf("%q", s)
}

// checkID validates a task, node or server id: 1..MaxIDLen characters from
// [A-Za-z0-9._:-], starting with a letter or digit.
func checkID(what, id string) *Error {
	if id == "" {
		return invalidf("%s is empty; use 1 to %d characters from A-Z a-z 0-9 . _ : -", what, MaxIDLen)
	}
	if len(id) > MaxIDLen {
		return invalidf("%s %s is %d bytes long; the limit is %d", what, quote(id), len(id), MaxIDLen)
	}
	if !isAlnum(id[0]) {
		return invalidf("%s %s must start with a letter or digit", what, quote(id))
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isAlnum(c) && c != '.' && c != '_' && c != ':' && c != '-' {
			return invalidf("%s %s contains %s; use only A-Z a-z 0-9 . _ : -", what, quote(id), charQ(c))
		}
	}
	return nil
}

// checkRef validates an id that refers to an existing object: it must be
// present; whether it exists is the caller's check.
func checkRef(what, id string) *Error {
	if id == "" {
		return invalidf("%s is empty", what)
	}
	return nil
}

// CheckLabel validates a cloud or region label exactly as the manifest
// will: at most 64 bytes of [a-z0-9_.-] (lower case), empty allowed. Flags
// that end up in the manifest are checked with it before anything starts.
func CheckLabel(what, v string) error {
	if err := checkLabel(what, v, maxLabelLen, false); err != nil {
		return err
	}
	return nil
}

// checkLabel validates a task type, cloud or region: [a-z0-9_.-], at most
// limit bytes, empty allowed unless required.
func checkLabel(what, v string, limit int, required bool) *Error {
	if v == "" {
		if required {
			return invalidf("%s is empty; use 1 to %d characters from a-z 0-9 _ . -", what, limit)
		}
		return nil
	}
	if len(v) > limit {
		return invalidf("%s %s is %d bytes long; the limit is %d", what, quote(v), len(v), limit)
	}
	for i := 0; i < len(v); i++ {
		c := v[i]
		if !(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9') && c != '_' && c != '.' && c != '-' {
			return invalidf("%s %s contains %s; use only a-z 0-9 _ . -", what, quote(v), charQ(c))
		}
	}
	return nil
}

// checkText validates free text: valid UTF-8 (the agent's msgpack library
// rejects anything else) and at most limit bytes.
func checkText(what, v string, minLen, limit int) *Error {
	if len(v) < minLen {
		return invalidf("%s is empty", what)
	}
	if len(v) > limit {
		return invalidf("%s is %d bytes long; the limit is %d", what, len(v), limit)
	}
	if !utf8.ValidString(v) {
		return invalidf("%s %s is not valid UTF-8", what, quote(v))
	}
	return nil
}

// checkMap validates a task payload or node meta map. When several keys
// are bad, the first in key order is reported, so every server words the
// refusal the same way.
func checkMap(what string, m map[string]string) *Error {
	if len(m) > MaxPayloadKeys {
		return invalidf("%s has %d keys; the limit is %d", what, len(m), MaxPayloadKeys)
	}
	bad := false
	for k, v := range m {
		if checkPair(what, k, v) != nil {
			bad = true
			break
		}
	}
	if !bad {
		return nil
	}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		if err := checkPair(what, k, m[k]); err != nil {
			return err
		}
	}
	return nil
}

func checkPair(what, k, v string) *Error {
	if k == "" {
		return invalidf("%s has an empty key", what)
	}
	if len(k) > MaxPayloadKeyLen {
		return invalidf("%s key %s is %d bytes long; the limit is %d", what, quote(k), len(k), MaxPayloadKeyLen)
	}
	if !utf8.ValidString(k) {
		return invalidf("%s key %s is not valid UTF-8", what, quote(k))
	}
	if len(v) > MaxPayloadValueLen {
		return invalidf("%s value for key %s is %d bytes long; the limit is %d", what, quote(k), len(v), MaxPayloadValueLen)
	}
	if !utf8.ValidString(v) {
		return invalidf("%s value for key %s is not valid UTF-8", what, quote(k))
	}
	return nil
}

// checkTime validates a proposer timestamp.
func checkTime(t int64) *Error {
	if t <= 0 {
		return invalidf("entry time is %d; the proposer must stamp a positive unix-nanosecond time", t)
	}
	return nil
}

// charQ quotes one byte of an id for a message.
func charQ(c byte) string {
	return fmt.Sprintf("%q", string([]byte{c}))
}

func isAlnum(c byte) bool {
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')
}

// normMap returns nil for an empty map, so that nil and empty store and
// encode the same way.
func normMap(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return m
}

// sameMap compares maps, nil equal to empty.
func sameMap(a, b map[string]string) bool {
	return maps.Equal(a, b)
}

// truncateTail keeps the last limit bytes of s, made valid UTF-8 first and
// cut on a rune boundary.
func truncateTail(s string, limit int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= limit {
		return s
	}
	s = s[len(s)-limit:]
	for len(s) > 0 && !utf8.RuneStart(s[0]) {
		s = s[1:]
	}
	return s
}

// truncateHead keeps the first limit bytes of s, made valid UTF-8 first and
// cut on a rune boundary.
func truncateHead(s string, limit int) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= limit {
		return s
	}
	i := limit
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i]
}
