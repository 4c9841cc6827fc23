package fsm

import (
	"errors"
	"fmt"
)

// Sentinel kinds of refusal. Apply never returns them bare: it returns an
// *Error whose Kind is one of them, so callers test with errors.Is.
var (
	// ErrInvalid is the kind of a refusal caused by bad input in an entry:
	// a malformed body, a field outside its limits, an unknown node.
	ErrInvalid = errors.New("invalid_argument")
	// ErrConflict is the kind of a refusal of a transition the current
	// state does not allow, or of different content for an existing id.
	ErrConflict = errors.New("conflict")
	// ErrNotFound is the kind of a refusal because the task or node named
	// by the entry does not exist.
	ErrNotFound = errors.New("not_found")
)

// Error is a refused entry. Kind is one of ErrInvalid, ErrConflict or
// ErrNotFound; Msg is one human sentence without a prefix, e.g.
// `task "t1" is pending; only assigned or running tasks can complete`.
type Error struct {
	Kind error
	Msg  string
}

// Error returns the human message.
func (e *Error) Error() string { return e.Msg }

// Unwrap returns the kind, so errors.Is(err, ErrConflict) works.
func (e *Error) Unwrap() error { return e.Kind }

func invalidf(format string, args ...any) *Error {
	return &Error{Kind: ErrInvalid, Msg: fmt.Sprintf(format, args...)}
}

func conflictf(format string, args ...any) *Error {
	return &Error{Kind: ErrConflict, Msg: fmt.Sprintf(format, args...)}
}

func notFoundf(format string, args ...any) *Error {
	return &Error{Kind: ErrNotFound, Msg: fmt.Sprintf(format, args...)}
}
