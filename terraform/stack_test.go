package terraform_test

// An example evaluated end to end, without Terraform or a cloud: the
// example's variables, its module calls, each module with the arguments the
// example gives it, the modules' outputs (the cloud's answers are stubs:
// the addresses of the fixture below), the cross-cloud module fed with
// them, and the example's own outputs.

import (
	"fmt"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
)

// fixture is what the clouds would answer: the addresses and ids the
// recorded documents in testdata/ carry.
type fixture struct {
	awsRegion, gcpRegion string
	awsZones, gcpZones   []string
	awsPublic, gcpPublic []string // by server index
	awsInstance          []string
	gcpInstance          []string
}

var testFixture = fixture{
	awsRegion: "us-east-1", gcpRegion: "europe-west1",
	awsZones:    []string{"us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"},
	gcpZones:    []string{"europe-west1-d", "europe-west1-b", "europe-west1-c"},
	awsPublic:   []string{"198.51.100.11", "198.51.100.12", "198.51.100.13"},
	gcpPublic:   []string{"203.0.113.21", "203.0.113.22", "203.0.113.23"},
	awsInstance: []string{"i-0a1b2c3d4e5f60718", "i-0b2c3d4e5f6071829", "i-0c3d4e5f607182930"},
	gcpInstance: []string{"4816502749713522101", "7359241860032214817", "1298457302198734455"},
}

// stack is one example, evaluated with its modules.
type stack struct {
	example, aws, gcp, cross *evaluation
	moduleOutputs            map[string]cty.Value // module name -> object of outputs
}

// resourceStubs: every resource type of m unknown (cty.DynamicVal) unless
// given in known, so any attribute of any resource evaluates (to unknown).
func resourceStubs(m *tfModule, known map[string]cty.Value) map[string]cty.Value {
	out := map[string]cty.Value{}
	for key := range m.resources {
		if strings.HasPrefix(key, "data.") {
			continue
		}
		typ := key[:len(key)-len(m.resources[key].Labels[1])-1]
		out[typ] = cty.DynamicVal
	}
	for k, v := range known {
		out[k] = v
	}
	return out
}

func objects(n int, f func(i int) map[string]cty.Value) cty.Value {
	if n == 0 {
		return cty.EmptyTupleVal
	}
	vs := make([]cty.Value, n)
	for i := range vs {
		vs[i] = cty.ObjectVal(f(i))
	}
	return cty.TupleVal(vs)
}

func stringList(s []string) cty.Value {
	vs := make([]cty.Value, len(s))
	for i, x := range s {
		vs[i] = cty.StringVal(x)
	}
	return cty.ListVal(vs)
}

// moduleArgs evaluates the arguments of a module call in the caller.
func moduleArgs(t *testing.T, caller *evaluation, call *hclsyntax.Block) map[string]any {
	t.Helper()
	args := map[string]any{}
	for name, a := range call.Body.Attributes {
		switch name {
		case "source", "version", "providers", "depends_on", "count", "for_each":
			continue
		}
		args[name] = caller.value(t, a.Expr, nil)
	}
	return args
}

// outputs evaluates every output of an instance into one object.
func (ev *evaluation) outputs(t *testing.T) cty.Value {
	t.Helper()
	vals := map[string]cty.Value{}
	for name, blk := range ev.m.outputs {
		vals[name] = ev.value(t, blk.Body.Attributes["value"].Expr, nil)
	}
	return cty.ObjectVal(vals)
}

// evaluateStack evaluates example dir with the given example inputs; vpn
// stubs two AWS VPN connections when the example enables the VPN.
func evaluateStack(t *testing.T, dir string, inputs map[string]any) *stack {
	t.Helper()
	fx := testFixture
	s := &stack{moduleOutputs: map[string]cty.Value{}}
	ex := loadModule(t, dir)
	s.example = evaluate(t, ex, inputs, nil)

	// AWS servers.
	awsMod := loadModule(t, "modules/aws-servers")
	awsArgs := moduleArgs(t, s.example, ex.modules["aws"])
	n := asInt(t, toCty(t, awsArgs["server_count"]))
	if n > len(fx.awsPublic) {
		t.Fatalf("the fixture has %d AWS addresses, the example wants %d servers", len(fx.awsPublic), n)
	}
	s.aws = evaluate(t, awsMod, awsArgs, resourceStubs(awsMod, map[string]cty.Value{
		"data": cty.ObjectVal(map[string]cty.Value{
			"aws_region":             cty.ObjectVal(map[string]cty.Value{"current": cty.ObjectVal(map[string]cty.Value{"name": cty.StringVal(fx.awsRegion)})}),
			"aws_availability_zones": cty.ObjectVal(map[string]cty.Value{"available": cty.ObjectVal(map[string]cty.Value{"names": stringList(fx.awsZones)})}),
			"aws_ami": cty.ObjectVal(map[string]cty.Value{"ubuntu": objects(1, func(int) map[string]cty.Value {
				return map[string]cty.Value{"id": cty.StringVal("ami-0123456789abcdef0")}
			})}),
		}),
		"aws_eip": cty.ObjectVal(map[string]cty.Value{"server": objects(n, func(i int) map[string]cty.Value {
			return map[string]cty.Value{"public_ip": cty.StringVal(fx.awsPublic[i]), "id": cty.StringVal(fmt.Sprintf("eipalloc-%017d", i))}
		})}),
		"aws_eip_association": cty.ObjectVal(map[string]cty.Value{"server": objects(n, func(i int) map[string]cty.Value {
			return map[string]cty.Value{"instance_id": cty.StringVal(fx.awsInstance[i])}
		})}),
		"aws_ebs_volume": cty.ObjectVal(map[string]cty.Value{"data": objects(n, func(i int) map[string]cty.Value {
			return map[string]cty.Value{"id": cty.StringVal(fmt.Sprintf("vol-%017d", i))}
		})}),
	}))
	s.moduleOutputs["aws"] = s.aws.outputs(t)

	// GCP servers: the internal addresses are the ones the module asks for.
	gcpMod := loadModule(t, "modules/gcp-servers")
	gcpArgs := moduleArgs(t, s.example, ex.modules["gcp"])
	g := asInt(t, toCty(t, gcpArgs["server_count"]))
	if g > len(fx.gcpPublic) {
		t.Fatalf("the fixture has %d GCP addresses, the example wants %d servers", len(fx.gcpPublic), g)
	}
	gcpPre := evaluate(t, gcpMod, gcpArgs, resourceStubs(gcpMod, map[string]cty.Value{
		"data": cty.ObjectVal(map[string]cty.Value{
			"google_compute_zones": cty.ObjectVal(map[string]cty.Value{"available": cty.ObjectVal(map[string]cty.Value{"names": stringList(fx.gcpZones)})}),
		}),
	}))
	internal := make([]string, g)
	for i := range internal {
		v, ok := gcpPre.attr(t, gcpMod.resource(t, "google_compute_address.internal"), "address",
			map[string]cty.Value{"count": cty.ObjectVal(map[string]cty.Value{"index": cty.NumberIntVal(int64(i))})})
		if !ok {
			t.Fatalf("google_compute_address.internal has no fixed address")
		}
		internal[i] = asString(t, v)
	}
	gcpStubs := gcpPre.stubs
	gcpStubs["google_compute_address"] = cty.ObjectVal(map[string]cty.Value{
		"internal": objects(g, func(i int) map[string]cty.Value { return map[string]cty.Value{"address": cty.StringVal(internal[i])} }),
		"external": objects(g, func(i int) map[string]cty.Value {
			return map[string]cty.Value{"address": cty.StringVal(fx.gcpPublic[i])}
		}),
	})
	gcpStubs["google_compute_instance"] = cty.ObjectVal(map[string]cty.Value{"server": objects(g, func(i int) map[string]cty.Value {
		return map[string]cty.Value{"instance_id": cty.StringVal(fx.gcpInstance[i])}
	})})
	s.gcp = evaluate(t, gcpMod, gcpArgs, gcpStubs)
	s.moduleOutputs["gcp"] = s.gcp.outputs(t)

	// The cross-cloud rules, from the modules' outputs.
	s.example.stubs = map[string]cty.Value{"module": cty.ObjectVal(s.moduleOutputs)}
	crossMod := loadModule(t, "modules/cross-cloud")
	crossArgs := moduleArgs(t, s.example, ex.modules["cross_cloud"])
	conns := 0
	if v, ok := crossArgs["enable_vpn"]; ok && toCty(t, v).True() {
		conns = 2
	}
	s.cross = evaluate(t, crossMod, crossArgs, resourceStubs(crossMod, map[string]cty.Value{
		"aws_vpn_connection": cty.ObjectVal(map[string]cty.Value{"gcp": objects(conns, func(i int) map[string]cty.Value {
			o := map[string]cty.Value{}
			for _, tun := range []int{1, 2} {
				p := fmt.Sprintf("tunnel%d_", tun)
				o[p+"address"] = cty.StringVal(fmt.Sprintf("192.0.2.%d", 100+2*i+tun))
				o[p+"preshared_key"] = cty.StringVal("secret")
				o[p+"cgw_inside_address"] = cty.StringVal(fmt.Sprintf("169.254.%d.2", 10+2*i+tun))
				o[p+"vgw_inside_address"] = cty.StringVal(fmt.Sprintf("169.254.%d.1", 10+2*i+tun))
			}
			return o
		})}),
	}))
	s.moduleOutputs["cross_cloud"] = s.cross.outputs(t)
	s.example.stubs = map[string]cty.Value{"module": cty.ObjectVal(s.moduleOutputs)}
	return s
}

// exampleInputs are the required variables of both examples plus extra.
func exampleInputs(extra map[string]any) map[string]any {
	in := map[string]any{
		"gcp_project":    "rctl-test-123456",
		"ssh_public_key": "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBmF2rctltestkeyonlyforparsing ops@example",
		"operator_cidrs": []string{"192.0.2.0/24"},
	}
	for k, v := range extra {
		in[k] = v
	}
	return in
}
