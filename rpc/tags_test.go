package rpc

import (
	"context"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/rctl-dev/rctl/fsm"
)

// Every wire struct's codec (msgpack) and json tags name a field the same:
// docs/cli.md promises that `-o json` prints the wire names. A struct with
// json tags has one on every codec-tagged field.
func TestWireTagsAgree(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	checked := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(f, func(n ast.Node) bool {
			ts, ok := n.(*ast.TypeSpec)
			if !ok {
				return true
			}
			st, ok := ts.Type.(*ast.StructType)
			if !ok {
				return true
			}
			var codecOnly []string
			hasJSON := false
			for _, fld := range st.Fields.List {
				if fld.Tag == nil {
					continue
				}
				raw, _ := strconv.Unquote(fld.Tag.Value)
				tag := reflect.StructTag(raw)
				c, hasC := tag.Lookup("codec")
				j, hasJ := tag.Lookup("json")
				hasJSON = hasJSON || hasJ
				cn, jn := strings.Split(c, ",")[0], strings.Split(j, ",")[0]
				switch {
				case hasC && hasJ && jn != "-" && cn != jn:
					t.Errorf("%s: %s.%s has codec %q but json %q", fset.Position(fld.Pos()), ts.Name, fld.Names[0], cn, jn)
				case hasC && !hasJ:
					codecOnly = append(codecOnly, fld.Names[0].Name)
				}
				if hasC && hasJ {
					checked++
				}
			}
			if hasJSON && len(codecOnly) > 0 {
				t.Errorf("%s: %s has json tags but none on %v", fset.Position(ts.Pos()), ts.Name, codecOnly)
			}
			return true
		})
	}
	if checked < 100 {
		t.Fatalf("only %d tagged fields checked: the parse missed the wire structs", checked)
	}
}

// The error codes are the documented set (docs/rpc.md, "Errors"), and
// toError maps every kind of error an endpoint can meet onto one of them.
func TestErrorCodesAndMapping(t *testing.T) {
	doc, err := os.ReadFile("../docs/rpc.md")
	if err != nil {
		t.Fatal(err)
	}
	sec := string(doc)
	sec = sec[strings.Index(sec, "## Errors"):strings.Index(sec, "## Consistency and forwarding")]
	sec = sec[strings.Index(sec, "| code "):] // the table of codes, not of the error map's keys
	documented := map[Code]bool{}
	for _, m := range regexp.MustCompile("(?m)^\\| `([a-z_]+)` +\\|").FindAllStringSubmatch(sec, -1) {
		documented[Code(m[1])] = true
	}
	codes := []Code{CodeNotLeader, CodeNotFound, CodeInvalidArgument, CodeConflict, CodeUnavailable,
		CodeDeadlineExceeded, CodePermissionDenied, CodeInternal}
	for _, c := range codes {
		if !documented[c] {
			t.Errorf("code %s is not in docs/rpc.md's table", c)
		}
		delete(documented, c)
	}
	for c := range documented {
		t.Errorf("docs/rpc.md documents %s, which has no constant", c)
	}

	for _, tc := range []struct {
		err  error
		want Code
	}{
		{Errorf(CodeConflict, "x"), CodeConflict},
		{fmt.Errorf("wrapped: %w", Errorf(CodeNotLeader, "x")), CodeNotLeader},
		{&fsm.Error{Kind: fsm.ErrInvalid, Msg: "x"}, CodeInvalidArgument},
		{&fsm.Error{Kind: fsm.ErrConflict, Msg: "x"}, CodeConflict},
		{&fsm.Error{Kind: fsm.ErrNotFound, Msg: "x"}, CodeNotFound},
		{context.DeadlineExceeded, CodeDeadlineExceeded},
		{os.ErrDeadlineExceeded, CodeDeadlineExceeded},
		{fmt.Errorf("dial: %w", syscall.ECONNREFUSED), CodeUnavailable},
		{syscall.ECONNRESET, CodeUnavailable},
		{syscall.EPIPE, CodeUnavailable},
		{errors.New("anything else"), CodeInternal},
	} {
		e := toError(tc.err)
		if e == nil || e.Code != tc.want || e.Message == "" {
			t.Errorf("toError(%v) = %+v, want code %s with a message", tc.err, e, tc.want)
		}
		if CodeOf(tc.err) != tc.want {
			t.Errorf("CodeOf(%v) = %s, want %s", tc.err, CodeOf(tc.err), tc.want)
		}
	}
	if toError(nil) != nil || CodeOf(nil) != "" {
		t.Error("nil is not an error")
	}
	for _, c := range codes {
		want := c == CodeUnavailable || c == CodeNotLeader
		if got := IsRetryable(Errorf(c, "x")); got != want {
			t.Errorf("IsRetryable(%s) = %v, want %v (docs/rpc.md's retry column)", c, got, want)
		}
	}
}
