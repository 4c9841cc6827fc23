package rpc

import (
	"context"
	"errors"
	"fmt"
	"os"
	"syscall"

	"github.com/rctl-dev/rctl/fsm"
)

// Code is a stable, machine-readable error code. The set is closed and
// documented in docs/rpc.md; scripts match on codes, never on messages.
type Code string

// Error codes.
const (
	CodeNotLeader        Code = "not_leader"
	CodeNotFound         Code = "not_found"
	CodeInvalidArgument  Code = "invalid_argument"
	CodeConflict         Code = "conflict"
	CodeUnavailable      Code = "unavailable"
	CodeDeadlineExceeded Code = "deadline_exceeded"
	CodePermissionDenied Code = "permission_denied"
	CodeInternal         Code = "internal"
)

// Error is the error half of every response: a code, one human sentence,
// and for not_leader the leader the caller should talk to instead.
type Error struct {
	Code       Code   `codec:"code" json:"code"`
	Message    string `codec:"message" json:"message"`
	LeaderID   string `codec:"leader_id" json:"leader_id,omitempty"`
	LeaderAddr string `codec:"leader_addr" json:"leader_addr,omitempty"`
}

func (e *Error) Error() string { return e.Message }

// Errorf builds an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// CodeOf returns the code of err: the code of an *Error in its chain, a
// mapping of well-known library errors, or internal.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	return toError(err).Code
}

// toError maps any error to an *Error. It is used at the edge of every
// endpoint so that nothing but documented codes reaches the wire.
func toError(err error) *Error {
	var e *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &e):
		return e
	case errors.Is(err, fsm.ErrInvalid):
		return &Error{Code: CodeInvalidArgument, Message: err.Error()}
	case errors.Is(err, fsm.ErrConflict):
		return &Error{Code: CodeConflict, Message: err.Error()}
	case errors.Is(err, fsm.ErrNotFound):
		return &Error{Code: CodeNotFound, Message: err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded):
		return &Error{Code: CodeDeadlineExceeded, Message: "the request deadline passed before the cluster answered"}
	case errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return &Error{Code: CodeUnavailable, Message: err.Error()}
	}
	return &Error{Code: CodeInternal, Message: err.Error()}
}

// IsRetryable reports whether a call that failed with err may be retried on
// the same or another server without risk (the request did not take effect,
// or the method is idempotent and the caller knows it).
func IsRetryable(err error) bool {
	switch CodeOf(err) {
	case CodeUnavailable, CodeNotLeader:
		return true
	}
	return false
}
