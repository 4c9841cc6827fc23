package terraform_test

// Loading and evaluating the Terraform in this directory without Terraform:
// hcl/v2 parses it, and the expressions the tests care about are evaluated
// with the modules' defaults (or given inputs) and a few functions written
// here to behave like Terraform's.

import (
	"fmt"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/ext/tryfunc"
	"github.com/hashicorp/hcl/v2/ext/typeexpr"
	"github.com/hashicorp/hcl/v2/hclparse"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/convert"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"
)

// The module and example directories, relative to this package.
var (
	moduleDirs  = []string{"modules/aws-servers", "modules/gcp-servers", "modules/cross-cloud"}
	exampleDirs = []string{"examples/3aws-2gcp", "examples/3aws-3gcp"}
)

func allDirs() []string { return append(append([]string{}, moduleDirs...), exampleDirs...) }

// tfModule is one directory of .tf files, by block.
type tfModule struct {
	dir       string
	src       map[string][]byte // file name -> content
	variables map[string]*hclsyntax.Block
	outputs   map[string]*hclsyntax.Block
	locals    map[string]*hclsyntax.Attribute
	resources map[string]*hclsyntax.Block // "type.name"
	modules   map[string]*hclsyntax.Block
	checks    map[string]*hclsyntax.Block
	blockFile map[*hclsyntax.Block]string
}

func loadModule(t *testing.T, dir string) *tfModule {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "*.tf"))
	if err != nil || len(files) == 0 {
		t.Fatalf("%s: no .tf files (%v)", dir, err)
	}
	m := &tfModule{
		dir: dir, src: map[string][]byte{},
		variables: map[string]*hclsyntax.Block{}, outputs: map[string]*hclsyntax.Block{},
		locals: map[string]*hclsyntax.Attribute{}, resources: map[string]*hclsyntax.Block{},
		modules: map[string]*hclsyntax.Block{}, checks: map[string]*hclsyntax.Block{},
		blockFile: map[*hclsyntax.Block]string{},
	}
	p := hclparse.NewParser()
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		name := filepath.Base(f)
		m.src[name] = b
		file, diags := p.ParseHCL(b, f)
		if diags.HasErrors() {
			t.Fatalf("%s: %s", f, diags.Error())
		}
		for _, blk := range file.Body.(*hclsyntax.Body).Blocks {
			m.blockFile[blk] = name
			key := strings.Join(blk.Labels, ".")
			switch blk.Type {
			case "variable":
				m.variables[key] = blk
			case "output":
				m.outputs[key] = blk
			case "resource":
				m.resources[key] = blk
			case "data":
				m.resources["data."+key] = blk
			case "module":
				m.modules[key] = blk
			case "check":
				m.checks[key] = blk
			case "locals":
				for name, a := range blk.Body.Attributes {
					if _, dup := m.locals[name]; dup {
						t.Fatalf("%s: local %s defined twice", dir, name)
					}
					m.locals[name] = a
				}
			}
		}
	}
	return m
}

func (m *tfModule) resource(t *testing.T, key string) *hclsyntax.Block {
	t.Helper()
	r, ok := m.resources[key]
	if !ok {
		t.Fatalf("%s: resource %s is missing", m.dir, key)
	}
	return r
}

// text is the source text of an expression.
func (m *tfModule) text(e hclsyntax.Expression) string {
	r := e.Range()
	b, err := os.ReadFile(r.Filename)
	if err != nil {
		return ""
	}
	return string(r.SliceBytes(b))
}

// --- evaluation -------------------------------------------------------------------

// evaluation is a module instance: its variables' values and the locals
// that could be evaluated from them (locals that need a resource's
// attributes stay missing unless stubs supplies the resource).
type evaluation struct {
	m      *tfModule
	vars   map[string]cty.Value
	locals map[string]cty.Value
	stubs  map[string]cty.Value // data, resource types, module
}

// varType is a variable's declared type (with optional() attributes).
func varType(t *testing.T, blk *hclsyntax.Block) (cty.Type, *typeexpr.Defaults) {
	t.Helper()
	a, ok := blk.Body.Attributes["type"]
	if !ok {
		return cty.DynamicPseudoType, nil
	}
	ty, defs, diags := typeexpr.TypeConstraintWithDefaults(a.Expr)
	if diags.HasErrors() {
		t.Fatalf("variable %s: type: %s", blk.Labels[0], diags.Error())
	}
	return ty, defs
}

// convertVar gives v the variable's declared type, as Terraform does.
func convertVar(t *testing.T, blk *hclsyntax.Block, v cty.Value) (cty.Value, error) {
	t.Helper()
	ty, defs := varType(t, blk)
	if defs != nil {
		v = defs.Apply(v)
	}
	if v.IsNull() {
		return cty.NullVal(ty), nil
	}
	return convert.Convert(v, ty)
}

// defaultValue is a variable's default (converted), or false if it has none.
func defaultValue(t *testing.T, blk *hclsyntax.Block) (cty.Value, bool) {
	t.Helper()
	a, ok := blk.Body.Attributes["default"]
	if !ok {
		return cty.NilVal, false
	}
	v, diags := a.Expr.Value(nil)
	if diags.HasErrors() {
		t.Fatalf("variable %s: default: %s", blk.Labels[0], diags.Error())
	}
	cv, err := convertVar(t, blk, v)
	if err != nil {
		t.Fatalf("variable %s: default does not fit its type: %v", blk.Labels[0], err)
	}
	return cv, true
}

// evaluate instantiates m with inputs (Go values or cty.Values) over the
// defaults. Every required variable must be given.
func evaluate(t *testing.T, m *tfModule, inputs map[string]any, stubs map[string]cty.Value) *evaluation {
	t.Helper()
	ev := &evaluation{m: m, vars: map[string]cty.Value{}, locals: map[string]cty.Value{}, stubs: stubs}
	for name := range inputs {
		if _, ok := m.variables[name]; !ok {
			t.Fatalf("%s: no variable %q", m.dir, name)
		}
	}
	for name, blk := range m.variables {
		if in, ok := inputs[name]; ok {
			v, err := convertVar(t, blk, toCty(t, in))
			if err != nil {
				t.Fatalf("%s: input %s does not fit its type: %v", m.dir, name, err)
			}
			ev.vars[name] = v
			continue
		}
		v, ok := defaultValue(t, blk)
		if !ok {
			t.Fatalf("%s: required variable %s needs an input in the test", m.dir, name)
		}
		ev.vars[name] = v
	}
	// Locals in dependency order, found by retrying until nothing changes.
	pending := map[string]*hclsyntax.Attribute{}
	for k, a := range m.locals {
		pending[k] = a
	}
	for progress := true; progress && len(pending) > 0; {
		progress = false
		for k, a := range pending {
			v, diags := a.Expr.Value(ev.ctx(nil))
			if diags.HasErrors() || !v.IsWhollyKnown() {
				continue
			}
			ev.locals[k] = v
			delete(pending, k)
			progress = true
		}
	}
	return ev
}

// ctx is the evaluation context; extra adds e.g. each or count.
func (ev *evaluation) ctx(extra map[string]cty.Value) *hcl.EvalContext {
	vars := map[string]cty.Value{"var": objectOrEmpty(ev.vars), "local": objectOrEmpty(ev.locals)}
	for k, v := range ev.stubs {
		vars[k] = v
	}
	for k, v := range extra {
		vars[k] = v
	}
	return &hcl.EvalContext{Variables: vars, Functions: tfFunctions}
}

func objectOrEmpty(m map[string]cty.Value) cty.Value {
	if len(m) == 0 {
		return cty.EmptyObjectVal
	}
	return cty.ObjectVal(m)
}

// value evaluates e in the instance; a failure stops the test.
func (ev *evaluation) value(t *testing.T, e hclsyntax.Expression, extra map[string]cty.Value) cty.Value {
	t.Helper()
	v, diags := e.Value(ev.ctx(extra))
	if diags.HasErrors() {
		t.Fatalf("%s: %s: %s", ev.m.dir, ev.m.text(e), diags.Error())
	}
	return v
}

// attr evaluates attribute name of blk (nested blocks by path "allow.ports").
func (ev *evaluation) attr(t *testing.T, blk *hclsyntax.Block, name string, extra map[string]cty.Value) (cty.Value, bool) {
	t.Helper()
	body := blk.Body
	parts := strings.Split(name, ".")
	for _, p := range parts[:len(parts)-1] {
		var next *hclsyntax.Body
		for _, b := range body.Blocks {
			if b.Type == p {
				next = b.Body
				break
			}
		}
		if next == nil {
			return cty.NilVal, false
		}
		body = next
	}
	a, ok := body.Attributes[parts[len(parts)-1]]
	if !ok {
		return cty.NilVal, false
	}
	return ev.value(t, a.Expr, extra), true
}

// instances expands blk's count or for_each: one context (count.index or
// each.key/each.value) per instance.
func (ev *evaluation) instances(t *testing.T, blk *hclsyntax.Block) []map[string]cty.Value {
	t.Helper()
	if a, ok := blk.Body.Attributes["count"]; ok {
		n := asInt(t, ev.value(t, a.Expr, nil))
		out := make([]map[string]cty.Value, n)
		for i := range out {
			out[i] = map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(i))})}
		}
		return out
	}
	if a, ok := blk.Body.Attributes["for_each"]; ok {
		v := ev.value(t, a.Expr, nil)
		var out []map[string]cty.Value
		if v.Type().IsSetType() {
			for _, e := range v.AsValueSlice() {
				out = append(out, map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": e, "value": e})})
			}
			return out
		}
		for it := v.ElementIterator(); it.Next(); {
			k, e := it.Element()
			out = append(out, map[string]cty.Value{"each": cty.ObjectVal(map[string]cty.Value{"key": k, "value": e})})
		}
		return out
	}
	return []map[string]cty.Value{nil}
}

// validationFailures runs every validation block of variable name with
// value v: the error messages of the conditions that are false.
func validationFailures(t *testing.T, m *tfModule, name string, v any) []string {
	t.Helper()
	blk, ok := m.variables[name]
	if !ok {
		t.Fatalf("%s: no variable %s", m.dir, name)
	}
	cv, err := convertVar(t, blk, toCty(t, v))
	if err != nil {
		return []string{"type: " + err.Error()}
	}
	ctx := &hcl.EvalContext{
		Variables: map[string]cty.Value{"var": cty.ObjectVal(map[string]cty.Value{name: cv})},
		Functions: tfFunctions,
	}
	var failed []string
	for _, b := range blk.Body.Blocks {
		if b.Type != "validation" {
			continue
		}
		cond, diags := b.Body.Attributes["condition"].Expr.Value(ctx)
		if diags.HasErrors() {
			failed = append(failed, "condition errs: "+diags.Error())
			continue
		}
		if cond.IsNull() || cond.False() {
			msg, _ := b.Body.Attributes["error_message"].Expr.Value(nil)
			failed = append(failed, msg.AsString())
		}
	}
	return failed
}

// --- values ------------------------------------------------------------------------

// toCty turns test inputs (string, int, float64, bool, []string, []any,
// map[string]any, cty.Value) into cty values.
func toCty(t *testing.T, v any) cty.Value {
	t.Helper()
	switch x := v.(type) {
	case cty.Value:
		return x
	case string:
		return cty.StringVal(x)
	case int:
		return cty.NumberIntVal(int64(x))
	case float64:
		return cty.NumberFloatVal(x)
	case bool:
		return cty.BoolVal(x)
	case []string:
		if len(x) == 0 {
			return cty.EmptyTupleVal
		}
		vs := make([]cty.Value, len(x))
		for i, s := range x {
			vs[i] = cty.StringVal(s)
		}
		return cty.TupleVal(vs)
	case []any:
		if len(x) == 0 {
			return cty.EmptyTupleVal
		}
		vs := make([]cty.Value, len(x))
		for i, e := range x {
			vs[i] = toCty(t, e)
		}
		return cty.TupleVal(vs)
	case map[string]any:
		m := map[string]cty.Value{}
		for k, e := range x {
			m[k] = toCty(t, e)
		}
		return objectOrEmpty(m)
	}
	t.Fatalf("toCty: unsupported %T", v)
	return cty.NilVal
}

func asInt(t *testing.T, v cty.Value) int {
	t.Helper()
	if v.IsNull() || !v.IsKnown() || v.Type() != cty.Number {
		t.Fatalf("want a number, got %#v", v)
	}
	f, _ := v.AsBigFloat().Float64()
	return int(f)
}

func asString(t *testing.T, v cty.Value) string {
	t.Helper()
	v, err := convert.Convert(v, cty.String)
	if err != nil || v.IsNull() || !v.IsKnown() {
		t.Fatalf("want a string, got %#v (%v)", v, err)
	}
	return v.AsString()
}

func asStrings(t *testing.T, v cty.Value) []string {
	t.Helper()
	if v.IsNull() {
		return nil
	}
	var out []string
	for it := v.ElementIterator(); it.Next(); {
		_, e := it.Element()
		out = append(out, asString(t, e))
	}
	return out
}

func sorted(s []string) []string {
	s = append([]string{}, s...)
	sort.Strings(s)
	return s
}

// --- functions -------------------------------------------------------------------------

// tfFunctions are the Terraform functions the modules use; most come from
// cty's stdlib, the network and a few others are written here.
var tfFunctions = map[string]function.Function{
	"alltrue":     allTrueFunc,
	"can":         tryfunc.CanFunc,
	"cidrhost":    cidrHostFunc,
	"cidrnetmask": cidrNetmaskFunc,
	"cidrsubnet":  cidrSubnetFunc,
	"coalesce":    stdlib.CoalesceFunc,
	"concat":      stdlib.ConcatFunc,
	"contains":    stdlib.ContainsFunc,
	"distinct":    stdlib.DistinctFunc,
	"flatten":     stdlib.FlattenFunc,
	"floor":       stdlib.FloorFunc,
	"format":      stdlib.FormatFunc,
	"keys":        stdlib.KeysFunc,
	"length":      lengthFunc,
	"lower":       stdlib.LowerFunc,
	"merge":       stdlib.MergeFunc,
	"min":         stdlib.MinFunc,
	"range":       stdlib.RangeFunc,
	"regex":       stdlib.RegexFunc,
	"replace":     stdlib.ReplaceFunc,
	"slice":       stdlib.SliceFunc,
	"sort":        stdlib.SortFunc,
	"tostring":    toStringFunc,
	"toset":       toSetFunc,
	"try":         tryfunc.TryFunc,
	"values":      stdlib.ValuesFunc,
}

var allTrueFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "list", Type: cty.List(cty.Bool)}},
	Type:   function.StaticReturnType(cty.Bool),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		for _, v := range args[0].AsValueSlice() {
			if v.IsNull() || v.False() {
				return cty.False, nil
			}
		}
		return cty.True, nil
	},
})

var toStringFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return convert.Convert(args[0], cty.String)
	},
})

// lengthFunc is length, which in Terraform also counts a string's
// characters and an object's attributes.
var lengthFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType, AllowDynamicType: true}},
	Type:   function.StaticReturnType(cty.Number),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		switch ty := args[0].Type(); {
		case ty == cty.String:
			return stdlib.Strlen(args[0])
		case ty.IsObjectType():
			return cty.NumberIntVal(int64(len(ty.AttributeTypes()))), nil
		}
		return stdlib.Length(args[0])
	},
})

// toSetFunc is toset for lists of strings (all the modules use it for).
var toSetFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "v", Type: cty.DynamicPseudoType}},
	Type:   function.StaticReturnType(cty.Set(cty.String)),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		return convert.Convert(args[0], cty.Set(cty.String))
	},
})

// parseCIDR accepts Terraform's IPv4 CIDR notation (host bits allowed).
func parseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("invalid CIDR %q: %w", s, err)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("only IPv4 here: %q", s)
	}
	return p.Masked(), nil
}

func addrPlus(a netip.Addr, n uint64) netip.Addr {
	b := a.As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	v += n
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func numArg(v cty.Value) (uint64, error) {
	bf := v.AsBigFloat()
	if !bf.IsInt() || bf.Sign() < 0 {
		return 0, fmt.Errorf("want a whole number >= 0, got %s", bf.Text('g', 10))
	}
	i, _ := bf.Int(new(big.Int))
	return i.Uint64(), nil
}

var cidrNetmaskFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := parseCIDR(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		mask := uint64(0xffffffff) << (32 - p.Bits()) & 0xffffffff
		return cty.StringVal(addrPlus(netip.AddrFrom4([4]byte{}), mask).String()), nil
	},
})

var cidrHostFunc = function.New(&function.Spec{
	Params: []function.Parameter{{Name: "prefix", Type: cty.String}, {Name: "hostnum", Type: cty.Number}},
	Type:   function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := parseCIDR(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		n, err := numArg(args[1])
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		if n >= 1<<(32-p.Bits()) {
			return cty.UnknownVal(cty.String), fmt.Errorf("host %d is outside %s", n, p)
		}
		return cty.StringVal(addrPlus(p.Addr(), n).String()), nil
	},
})

var cidrSubnetFunc = function.New(&function.Spec{
	Params: []function.Parameter{
		{Name: "prefix", Type: cty.String}, {Name: "newbits", Type: cty.Number}, {Name: "netnum", Type: cty.Number},
	},
	Type: function.StaticReturnType(cty.String),
	Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
		p, err := parseCIDR(args[0].AsString())
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		newbits, err := numArg(args[1])
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		netnum, err := numArg(args[2])
		if err != nil {
			return cty.UnknownVal(cty.String), err
		}
		bits := uint64(p.Bits()) + newbits
		if bits > 32 || netnum >= 1<<newbits {
			return cty.UnknownVal(cty.String), fmt.Errorf("cannot take subnet %d of %d new bits from %s", netnum, newbits, p)
		}
		sub := netip.PrefixFrom(addrPlus(p.Addr(), netnum<<(32-bits)), int(bits))
		return cty.StringVal(sub.String()), nil
	},
})
