package terraform_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/hashicorp/hcl/v2/hclwrite"
	"github.com/zclconf/go-cty/cty"
	ctyjson "github.com/zclconf/go-cty/cty/json"
)

// TestFormatted: every .tf file is in canonical format (what hclwrite.Format,
// the core of `terraform fmt`, makes of it). terraform/check.sh also runs
// `terraform fmt -check` itself.
func TestFormatted(t *testing.T) {
	for _, dir := range allDirs() {
		m := loadModule(t, dir)
		for name, src := range m.src {
			if got := hclwrite.Format(src); !bytes.Equal(got, src) {
				t.Errorf("%s/%s is not formatted: run terraform fmt -recursive terraform/", dir, name)
			}
		}
	}
}

// TestModuleShape: main.tf, variables.tf, outputs.tf and versions.tf, and
// nothing else; variables and outputs only in their files; versions.tf
// pins Terraform and the providers.
func TestModuleShape(t *testing.T) {
	want := []string{"main.tf", "outputs.tf", "variables.tf", "versions.tf"}
	for _, dir := range allDirs() {
		m := loadModule(t, dir)
		var got []string
		for name := range m.src {
			got = append(got, name)
		}
		if !slices.Equal(sorted(got), want) {
			t.Errorf("%s: files %v, want %v", dir, sorted(got), want)
		}
		for blk, file := range m.blockFile {
			if (blk.Type == "variable" && file != "variables.tf") || (blk.Type == "output" && file != "outputs.tf") {
				t.Errorf("%s: %s %s is in %s", dir, blk.Type, blk.Labels[0], file)
			}
		}
		v := string(m.src["versions.tf"])
		if !strings.Contains(v, "required_version") || !strings.Contains(v, "required_providers") {
			t.Errorf("%s/versions.tf: want required_version and required_providers", dir)
		}
	}
}

// TestVariablesDescribedAndTyped: every variable of every module and
// example has a non-empty description and a type.
func TestVariablesDescribedAndTyped(t *testing.T) {
	for _, dir := range allDirs() {
		m := loadModule(t, dir)
		for name, blk := range m.variables {
			d, ok := blk.Body.Attributes["description"]
			if !ok {
				t.Errorf("%s: variable %s has no description", dir, name)
			} else if v, diags := d.Expr.Value(nil); diags.HasErrors() || v.Type() != cty.String || strings.TrimSpace(v.AsString()) == "" {
				t.Errorf("%s: variable %s: the description must be a non-empty string", dir, name)
			}
			if _, ok := blk.Body.Attributes["type"]; !ok {
				t.Errorf("%s: variable %s has no type", dir, name)
			}
		}
	}
}

// TestValidations: in the modules, every count, CIDR and disk size
// variable has a validation block; each refuses the bad values below and
// accepts its default.
func TestValidations(t *testing.T) {
	needs := regexp.MustCompile(`_count$|cidrs?$|disk_size`)
	bad := map[string][]any{
		"server_count":      {0, 8, 2.5},
		"nonvoter_count":    {-1, 7, 0.5},
		"data_disk_size_gb": {0, 10, 19, 100000, 50.5},
		"root_disk_size_gb": {0, 4, 5000},
		"vpc_cidr":          {"10.0.0.0/8", "10.10.0.0/25", "nonsense", "10.10.0.0", "0.0.0.0/0"},
		"subnet_cidr":       {"10.0.0.0/8", "10.20.0.0/29", "nonsense", "0.0.0.0/0"},
		"operator_cidrs":    {[]string{}, []string{"0.0.0.0/0"}, []string{"192.0.2.0/24", "0.0.0.0/0"}, []string{"192.0.2.0"}, []string{"192.0.2.0/33"}, []string{"2001:db8::/32"}},
		"agent_cidrs":       {[]string{"0.0.0.0/0"}, []string{"10.0.0.0"}, []string{"nonsense/8"}},
		"aws_servers":       {[]any{}},
		"gcp_servers":       {[]any{}},
		"vpn_aws_asn":       {100, 65535},
		"vpn_gcp_asn":       {0, 4294967295},
	}
	good := map[string][]any{
		"operator_cidrs": {[]string{"192.0.2.0/24"}, []string{"198.51.100.7/32", "10.0.0.0/8"}},
		"agent_cidrs":    {[]string{}, []string{"10.30.0.0/16"}},
		"server_count":   {1, 3, 7},
		"vpc_cidr":       {"10.10.0.0/16", "172.16.0.0/24"},
		"subnet_cidr":    {"10.20.0.0/20", "10.20.0.0/28"},
	}
	for _, dir := range moduleDirs {
		m := loadModule(t, dir)
		for name, blk := range m.variables {
			nv := 0
			for _, b := range blk.Body.Blocks {
				if b.Type == "validation" {
					nv++
				}
			}
			if needs.MatchString(name) && nv == 0 {
				t.Errorf("%s: variable %s has no validation block", dir, name)
			}
			if def, ok := defaultValue(t, blk); ok && nv > 0 {
				if f := validationFailures(t, m, name, def); len(f) > 0 {
					t.Errorf("%s: variable %s: its default is refused: %v", dir, name, f)
				}
			}
			for _, v := range good[name] {
				if f := validationFailures(t, m, name, v); len(f) > 0 {
					t.Errorf("%s: variable %s = %v is refused: %v", dir, name, v, f)
				}
			}
			for _, v := range bad[name] {
				if f := validationFailures(t, m, name, v); len(f) == 0 {
					t.Errorf("%s: variable %s = %v is accepted, want it refused", dir, name, v)
				}
			}
		}
	}
}

// TestModuleDefaults: the server modules on their own defaults: t3.medium
// with a 50 GB gp3 data disk, n1-standard-2 with a 50 GB pd-ssd one, 3 and 2
// servers, all voters.
func TestModuleDefaults(t *testing.T) {
	want := map[string]map[string]any{
		"modules/aws-servers": {"server_count": 3, "nonvoter_count": 0, "instance_type": "t3.medium", "data_disk_size_gb": 50},
		"modules/gcp-servers": {"server_count": 2, "nonvoter_count": 0, "machine_type": "n1-standard-2", "data_disk_size_gb": 50},
	}
	for dir, vars := range want {
		m := loadModule(t, dir)
		for name, w := range vars {
			blk, ok := m.variables[name]
			if !ok {
				t.Errorf("%s: no variable %s", dir, name)
				continue
			}
			got, ok := defaultValue(t, blk)
			if !ok || !got.RawEquals(toCty(t, w)) {
				t.Errorf("%s: variable %s defaults to %#v, want %v", dir, name, got, w)
			}
		}
	}
	s := evaluateStack(t, "examples/3aws-2gcp", exampleInputs(nil))
	for _, ev := range []*evaluation{s.aws, s.gcp} {
		// The same module, on its defaults alone.
		args := map[string]any{"ssh_public_key": ev.vars["ssh_public_key"]}
		if _, ok := ev.m.variables["project"]; ok {
			args["project"], args["region"] = ev.vars["project"], ev.vars["region"]
		}
		def := evaluate(t, ev.m, args, ev.stubs)
		cloud := map[string]string{"modules/aws-servers": "aws", "modules/gcp-servers": "gcp"}[ev.m.dir]
		checkInstances(t, def, cloud, map[string]int{"aws": 3, "gcp": 2}[cloud], 0)
	}
}

// TestExamplesInstances: the counts, machine types, disks and image of
// both examples, through their module calls into the modules' resources.
func TestExamplesInstances(t *testing.T) {
	for _, tc := range []struct {
		dir          string
		aws, gcp     int
		gcpNonvoters int
	}{
		{"examples/3aws-2gcp", 3, 2, 0},
		{"examples/3aws-3gcp", 3, 3, 1},
	} {
		t.Run(filepath.Base(tc.dir), func(t *testing.T) {
			s := evaluateStack(t, tc.dir, exampleInputs(nil))
			checkInstances(t, s.aws, "aws", tc.aws, 0)
			checkInstances(t, s.gcp, "gcp", tc.gcp, tc.gcpNonvoters)
		})
	}
}

func checkInstances(t *testing.T, ev *evaluation, cloud string, n, nonvoters int) {
	t.Helper()
	m := ev.m
	instanceKey, diskKey := "aws_instance.server", "aws_ebs_volume.data"
	typeAttr, typeWant, diskType, image, imageWant := "instance_type", "t3.medium", "gp3", "ami", "ubuntu-jammy-22.04-amd64-server-"
	if cloud == "gcp" {
		instanceKey, diskKey = "google_compute_instance.server", "google_compute_disk.data"
		typeAttr, typeWant, diskType, image, imageWant = "machine_type", "n1-standard-2", "pd-ssd", "boot_disk.initialize_params.image", "ubuntu-2204-lts"
	}
	instance, disk := m.resource(t, instanceKey), m.resource(t, diskKey)
	insts := ev.instances(t, instance)
	if len(insts) != n {
		t.Errorf("%s: %d servers, want %d", cloud, len(insts), n)
	}
	if disks := ev.instances(t, disk); len(disks) != n {
		t.Errorf("%s: %d data disks, want %d", cloud, len(disks), n)
	}
	for _, ctx := range insts {
		if v, _ := ev.attr(t, instance, typeAttr, ctx); asString(t, v) != typeWant {
			t.Errorf("%s: %s %s, want %s", cloud, typeAttr, asString(t, v), typeWant)
		}
		if cloud == "gcp" {
			if v, _ := ev.attr(t, instance, image, ctx); !strings.Contains(asString(t, v), imageWant) {
				t.Errorf("gcp: image %s, want Ubuntu 22.04 (%s)", asString(t, v), imageWant)
			}
		}
	}
	if cloud == "aws" {
		filters := ""
		for _, b := range m.resources["data.aws_ami.ubuntu"].Body.Blocks {
			filters += m.text(b.Body.Attributes["values"].Expr)
		}
		if !strings.Contains(filters, imageWant) {
			t.Errorf("aws: the AMI lookup does not ask for Ubuntu 22.04 (%s)", imageWant)
		}
		if m.text(instance.Body.Attributes["ami"].Expr) != "local.ami_id" {
			t.Errorf("aws: the instances do not use the looked-up AMI")
		}
	}
	for _, ctx := range ev.instances(t, disk) {
		if v, _ := ev.attr(t, disk, "type", ctx); asString(t, v) != diskType {
			t.Errorf("%s: data disk type %s, want %s", cloud, asString(t, v), diskType)
		}
		if v, _ := ev.attr(t, disk, "size", ctx); asInt(t, v) != 50 {
			t.Errorf("%s: data disk size %d GB, want 50", cloud, asInt(t, v))
		}
	}
	// cloud-init formats and mounts the data disk at /var/lib/rctl.
	ud := m.text(m.locals["user_data"].Expr)
	for _, want := range []string{"#cloud-config", "mkfs.ext4", "/var/lib/rctl ext4", "mount /var/lib/rctl", "runcmd:"} {
		if !strings.Contains(ud, want) {
			t.Errorf("%s: cloud-init does not contain %q", cloud, want)
		}
	}
	// Tags / labels role, cloud, region.
	tagLocal := map[string]string{"aws": "tags", "gcp": "labels"}[cloud]
	tags, ok := ev.locals[tagLocal]
	if !ok {
		t.Fatalf("%s: local.%s did not evaluate", cloud, tagLocal)
	}
	region := map[string]string{"aws": testFixture.awsRegion, "gcp": testFixture.gcpRegion}[cloud]
	for k, want := range map[string]string{"role": "rctl-server", "cloud": cloud, "region": region} {
		if !tags.Type().HasAttribute(k) || asString(t, tags.GetAttr(k)) != want {
			t.Errorf("%s: tag/label %s is not %q", cloud, k, want)
		}
	}
	tagAttr := map[string]string{"aws": "tags", "gcp": "labels"}[cloud]
	if !strings.Contains(m.text(instance.Body.Attributes[tagAttr].Expr), "local."+tagLocal) {
		t.Errorf("%s: the instances do not carry local.%s", cloud, tagLocal)
	}
	// Voters: the last nonvoters servers are non-voters.
	servers := ev.outputs(t).GetAttr("servers")
	gotNon := 0
	for i, srv := range servers.AsValueSlice() {
		voter := srv.GetAttr("voter").True()
		if !voter {
			gotNon++
		}
		if voter != (i < n-nonvoters) {
			t.Errorf("%s: server %d voter=%v", cloud, i, voter)
		}
	}
	if gotNon != nonvoters {
		t.Errorf("%s: %d non-voters, want %d", cloud, gotNon, nonvoters)
	}
}

// TestQuorumWarning: the 3+3 example carries the quorum-geometry table of
// docs/operations.md and warns at plan time when all six vote.
func TestQuorumWarning(t *testing.T) {
	ops, err := os.ReadFile("../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	m := loadModule(t, "examples/3aws-3gcp")
	norm := func(line string) string {
		var cells []string
		for _, c := range strings.Split(strings.Trim(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#")), "|"), "|") {
			cells = append(cells, strings.Trim(strings.TrimSpace(c), "*"))
		}
		return strings.Join(cells, "|")
	}
	have := map[string]bool{}
	for _, l := range strings.Split(string(m.src["main.tf"]), "\n") {
		have[norm(l)] = true
	}
	rows := 0
	for _, l := range strings.Split(string(ops), "\n") {
		if strings.HasPrefix(l, "| 3 AWS") {
			rows++
			if !have[norm(l)] {
				t.Errorf("examples/3aws-3gcp/main.tf lacks the quorum row %q of docs/operations.md", l)
			}
		}
	}
	if rows != 3 {
		t.Errorf("docs/operations.md: found %d quorum rows, want 3 (did the table move?)", rows)
	}
	if !strings.Contains(string(m.src["main.tf"]), "WARNING: quorum geometry") {
		t.Errorf("examples/3aws-3gcp/main.tf: no quorum-geometry WARNING")
	}
	c, ok := m.checks["quorum_geometry"]
	if !ok {
		t.Fatal("examples/3aws-3gcp: no check \"quorum_geometry\" block")
	}
	cond := c.Body.Blocks[0].Body.Attributes["condition"].Expr
	for v, want := range map[int]bool{1: true, 0: false} {
		ev := evaluate(t, m, exampleInputs(map[string]any{"gcp_nonvoters": v}), nil)
		if got := ev.value(t, cond, nil).True(); got != want {
			t.Errorf("quorum_geometry check with gcp_nonvoters=%d: %v, want %v", v, got, want)
		}
	}
}

// --- firewall -------------------------------------------------------------------------

// rule is one ingress rule instance: cloud, ports and sources.
type rule struct {
	name     string
	cloud    string
	from, to int // inclusive; 0-65535 for all
	sources  []string
}

func (r rule) covers(port int) bool { return r.from <= port && port <= r.to }

// ingressRules collects every ingress rule of an evaluated module, refusing
// the kinds of rule whose sources it could not check.
func ingressRules(t *testing.T, ev *evaluation) []rule {
	t.Helper()
	var out []rule
	for key, blk := range ev.m.resources {
		switch blk.Labels[0] {
		case "aws_security_group":
			for _, b := range blk.Body.Blocks {
				if b.Type == "ingress" {
					t.Errorf("%s: %s has an inline ingress block; use aws_vpc_security_group_ingress_rule", ev.m.dir, key)
				}
			}
		case "aws_security_group_rule":
			t.Errorf("%s: %s: use aws_vpc_security_group_ingress_rule", ev.m.dir, key)
		case "aws_vpc_security_group_ingress_rule":
			for _, a := range []string{"cidr_ipv6", "referenced_security_group_id", "prefix_list_id"} {
				if _, ok := blk.Body.Attributes[a]; ok {
					t.Errorf("%s: %s uses %s; the test only understands cidr_ipv4 sources", ev.m.dir, key, a)
				}
			}
			for _, ctx := range ev.instances(t, blk) {
				r := rule{name: key, cloud: "aws", from: 0, to: 65535}
				proto, _ := ev.attr(t, blk, "ip_protocol", ctx)
				if p := asString(t, proto); p != "-1" && p != "all" {
					f, _ := ev.attr(t, blk, "from_port", ctx)
					to, _ := ev.attr(t, blk, "to_port", ctx)
					r.from, r.to = asInt(t, f), asInt(t, to)
				}
				cidr, ok := ev.attr(t, blk, "cidr_ipv4", ctx)
				if !ok {
					t.Fatalf("%s: %s has no cidr_ipv4", ev.m.dir, key)
				}
				r.sources = []string{asString(t, cidr)}
				out = append(out, r)
			}
		case "google_compute_firewall":
			for _, a := range []string{"source_tags", "source_service_accounts"} {
				if _, ok := blk.Body.Attributes[a]; ok {
					t.Errorf("%s: %s uses %s; the test only understands source_ranges", ev.m.dir, key, a)
				}
			}
			for _, ctx := range ev.instances(t, blk) {
				if d, ok := ev.attr(t, blk, "direction", ctx); ok && asString(t, d) != "INGRESS" {
					continue
				}
				src, ok := ev.attr(t, blk, "source_ranges", ctx)
				if !ok || len(asStrings(t, src)) == 0 {
					// GCP reads no source ranges as 0.0.0.0/0.
					t.Errorf("%s: %s has no source_ranges: GCP would admit 0.0.0.0/0", ev.m.dir, key)
					continue
				}
				for _, b := range blk.Body.Blocks {
					if b.Type == "deny" {
						continue
					}
					if b.Type != "allow" {
						continue
					}
					r := rule{name: key, cloud: "gcp", sources: asStrings(t, src), from: 0, to: 65535}
					pv, ok := b.Body.Attributes["ports"]
					if !ok {
						out = append(out, r)
						continue
					}
					for _, p := range asStrings(t, ev.value(t, pv.Expr, ctx)) {
						rr := r
						lo, hi, _ := strings.Cut(p, "-")
						rr.from, _ = strconv.Atoi(lo)
						rr.to = rr.from
						if hi != "" {
							rr.to, _ = strconv.Atoi(hi)
						}
						out = append(out, rr)
					}
				}
			}
		}
	}
	return out
}

// TestNoIngressInServerModules: all ingress rules live in cross-cloud, where
// a reviewer sees both clouds side by side.
func TestNoIngressInServerModules(t *testing.T) {
	s := evaluateStack(t, "examples/3aws-2gcp", exampleInputs(nil))
	for _, ev := range []*evaluation{s.aws, s.gcp} {
		if rs := ingressRules(t, ev); len(rs) > 0 {
			t.Errorf("%s has ingress rules %v; they belong in modules/cross-cloud", ev.m.dir, rs)
		}
	}
}

// TestFirewall: in both examples, with and without the VPN and agent
// networks, every rule that admits 50051/tcp, with all its sources: the
// servers of both clouds, operator_cidrs and agent_cidrs, no 0.0.0.0/0,
// AWS and GCP mirror images; SSH only from operator_cidrs; no other port.
func TestFirewall(t *testing.T) {
	for _, dir := range exampleDirs {
		for _, vpn := range []bool{false, true} {
			for _, agents := range [][]string{nil, {"10.30.0.0/16", "192.0.2.0/24"}} {
				name := fmt.Sprintf("%s/vpn=%v/agents=%d", filepath.Base(dir), vpn, len(agents))
				t.Run(name, func(t *testing.T) {
					extra := map[string]any{"enable_vpn": vpn}
					if agents != nil {
						extra["agent_cidrs"] = agents
					}
					s := evaluateStack(t, dir, exampleInputs(extra))
					checkFirewall(t, s, vpn, []string{"192.0.2.0/24"}, agents)
				})
			}
		}
	}
}

type server struct{ id, cloud, private, public string }

func stackServers(t *testing.T, s *stack) []server {
	t.Helper()
	var out []server
	for _, cloud := range []string{"aws", "gcp"} {
		for _, v := range s.moduleOutputs[cloud].GetAttr("addresses").AsValueSlice() {
			out = append(out, server{asString(t, v.GetAttr("id")), cloud, asString(t, v.GetAttr("private_ip")), asString(t, v.GetAttr("public_ip"))})
		}
	}
	return out
}

func checkFirewall(t *testing.T, s *stack, vpn bool, operators, agents []string) {
	t.Helper()
	rules := ingressRules(t, s.cross)
	servers := stackServers(t, s)
	sources := map[string][]string{} // cloud -> sources admitted to 50051
	for _, r := range rules {
		for _, src := range r.sources {
			if strings.HasSuffix(src, "/0") {
				t.Errorf("%s (%s) admits %s", r.name, r.cloud, src)
			}
		}
		switch {
		case r.covers(50051):
			if r.from != 50051 || r.to != 50051 {
				t.Errorf("%s (%s) opens ports %d-%d, want 50051 alone", r.name, r.cloud, r.from, r.to)
			}
			sources[r.cloud] = append(sources[r.cloud], r.sources...)
		case r.covers(22):
			if r.from != 22 || r.to != 22 {
				t.Errorf("%s (%s) opens ports %d-%d, want 22 alone", r.name, r.cloud, r.from, r.to)
			}
			if !slices.Equal(sorted(r.sources), sorted(operators)) && !(len(r.sources) == 1 && slices.Contains(operators, r.sources[0])) {
				t.Errorf("%s (%s): SSH from %v, want operator_cidrs %v only", r.name, r.cloud, r.sources, operators)
			}
		default:
			t.Errorf("%s (%s) opens ports %d-%d: only 22 and 50051 may be open", r.name, r.cloud, r.from, r.to)
		}
	}
	for _, cloud := range []string{"aws", "gcp"} {
		var ssh []string
		for _, r := range rules {
			if r.cloud == cloud && r.covers(22) {
				ssh = append(ssh, r.sources...)
			}
		}
		if !slices.Equal(sorted(ssh), sorted(operators)) {
			t.Errorf("%s: SSH admits %v, want operator_cidrs %v", cloud, sorted(ssh), operators)
		}
	}

	// The exact sources, worked out here from the addresses.
	for _, cloud := range []string{"aws", "gcp"} {
		var want []string
		for _, sv := range servers {
			if sv.cloud == cloud || vpn {
				want = append(want, sv.private+"/32")
			}
			if !vpn {
				want = append(want, sv.public+"/32")
			}
		}
		want = append(want, operators...)
		for _, a := range agents {
			if !slices.Contains(operators, a) {
				want = append(want, a)
			}
		}
		if got := sorted(sources[cloud]); !slices.Equal(got, sorted(want)) {
			t.Errorf("%s: 50051 admits\n  %v\nwant\n  %v", cloud, got, sorted(want))
		}
	}

	// Mirror images: describe each source relative to the cloud that
	// admits it (its own or the other cloud's servers, by address kind;
	// operators; agents) and compare the two descriptions.
	describe := func(cloud string) []string {
		var roles []string
		seen := map[string]int{}
		for _, src := range sources[cloud] {
			role := "unknown " + src
			for _, sv := range servers {
				rel := "other-cloud"
				if sv.cloud == cloud {
					rel = "same-cloud"
				}
				switch src {
				case sv.private + "/32":
					role = rel + " private"
				case sv.public + "/32":
					role = rel + " public"
				}
			}
			if slices.Contains(operators, src) {
				role = "operators " + src
			} else if slices.Contains(agents, src) {
				role = "agents " + src
			}
			seen[role]++
		}
		count := map[string]int{"aws": 0, "gcp": 0}
		for _, sv := range servers {
			count[sv.cloud]++
		}
		other := map[string]string{"aws": "gcp", "gcp": "aws"}[cloud]
		for role, n := range seen {
			switch {
			case strings.HasPrefix(role, "same-cloud") && n != count[cloud],
				strings.HasPrefix(role, "other-cloud") && n != count[other]:
				t.Errorf("%s admits %d servers as %q, want all %d or none", cloud, n, role, count[map[bool]string{true: cloud, false: other}[strings.HasPrefix(role, "same")]])
			}
			roles = append(roles, role)
		}
		return sorted(roles)
	}
	if a, g := describe("aws"), describe("gcp"); !slices.Equal(a, g) {
		t.Errorf("the 50051 rules are not mirror images:\n  aws admits %v\n  gcp admits %v", a, g)
	}
}

// TestRulesNameAddressesNotInstances: the cross-cloud module gets the
// modules' addresses outputs, which come from aws_eip and
// google_compute_address, never from an instance: no dependency cycle,
// and the rules exist before the servers do.
func TestRulesNameAddressesNotInstances(t *testing.T) {
	instanceTypes := []string{"aws_instance", "google_compute_instance", "aws_eip_association"}
	for _, dir := range moduleDirs {
		m := loadModule(t, dir)
		var exprs []hclsyntax.Expression
		if dir == "modules/cross-cloud" {
			for _, a := range m.locals {
				exprs = append(exprs, a.Expr)
			}
			for _, r := range m.resources {
				for _, a := range r.Body.Attributes {
					exprs = append(exprs, a.Expr)
				}
			}
		} else {
			exprs = append(exprs, m.outputs["addresses"].Body.Attributes["value"].Expr)
		}
		for _, e := range exprs {
			for _, tr := range e.Variables() {
				if slices.Contains(instanceTypes, tr.RootName()) {
					t.Errorf("%s: %s refers to an instance (%s)", dir, m.text(e), tr.RootName())
				}
			}
		}
	}
	for _, dir := range exampleDirs {
		m := loadModule(t, dir)
		for _, arg := range []string{"aws_servers", "gcp_servers"} {
			a := m.modules["cross_cloud"].Body.Attributes[arg]
			if got := m.text(a.Expr); !strings.HasSuffix(got, ".addresses") {
				t.Errorf("%s: cross_cloud.%s = %s, want module.*.addresses", dir, arg, got)
			}
		}
	}
}

// TestOutputs: the outputs the inventory and reviewers need.
func TestOutputs(t *testing.T) {
	want := map[string][]string{
		"modules/aws-servers": {"servers", "addresses", "region", "vpc_id", "vpc_cidr", "route_table_ids", "security_group_id"},
		"modules/gcp-servers": {"servers", "addresses", "region", "network_id", "network_name", "subnet_cidr", "target_tag"},
		"modules/cross-cloud": {"advertise_addresses", "rpc_port", "rpc_sources", "ssh_sources", "vpn_tunnels"},
		"examples/3aws-2gcp":  {"rctl_servers", "rctl_agents", "ssh_user", "rpc_sources", "ssh_sources"},
		"examples/3aws-3gcp":  {"rctl_servers", "rctl_agents", "ssh_user", "rpc_sources", "ssh_sources"},
	}
	for dir, names := range want {
		m := loadModule(t, dir)
		var got []string
		for name, blk := range m.outputs {
			got = append(got, name)
			if _, ok := blk.Body.Attributes["description"]; !ok {
				t.Errorf("%s: output %s has no description", dir, name)
			}
		}
		if !slices.Equal(sorted(got), sorted(names)) {
			t.Errorf("%s: outputs %v, want %v", dir, sorted(got), sorted(names))
		}
	}
}

// TestRecordedOutputs: testdata/output*.json are what `terraform output
// -json` prints for the examples with the fixture's addresses: the
// example's outputs, evaluated, have exactly their values and types.
func TestRecordedOutputs(t *testing.T) {
	for _, tc := range []struct {
		file, dir string
		inputs    map[string]any
	}{
		{"testdata/output.json", "examples/3aws-2gcp", exampleInputs(map[string]any{
			"agents": []any{map[string]any{"id": "aws-3"}, map[string]any{"id": "gcp-2"}},
		})},
		{"testdata/output-3aws-3gcp.json", "examples/3aws-3gcp", exampleInputs(map[string]any{
			"agent_cidrs": []string{"198.51.100.32/27", "203.0.113.32/27"},
			"agents": []any{
				map[string]any{"id": "worker-1", "address": "198.51.100.40", "cloud": "aws", "region": "us-east-1"},
				map[string]any{"id": "worker-2", "address": "203.0.113.40", "cloud": "gcp", "region": "europe-west1"},
			},
		})},
	} {
		t.Run(tc.file, func(t *testing.T) {
			var recorded map[string]struct {
				Sensitive bool            `json:"sensitive"`
				Type      json.RawMessage `json:"type"`
				Value     json.RawMessage `json:"value"`
			}
			b, err := os.ReadFile(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal(b, &recorded); err != nil {
				t.Fatalf("%s: %v", tc.file, err)
			}
			s := evaluateStack(t, tc.dir, tc.inputs)
			var names []string
			for name := range recorded {
				names = append(names, name)
			}
			var outs []string
			for name := range s.example.m.outputs {
				outs = append(outs, name)
			}
			if !slices.Equal(sorted(names), sorted(outs)) {
				t.Fatalf("%s has outputs %v, %s has %v", tc.file, sorted(names), tc.dir, sorted(outs))
			}
			for _, name := range outs {
				v := s.example.value(t, s.example.m.outputs[name].Body.Attributes["value"].Expr, nil)
				gotVal, err := ctyjson.Marshal(v, v.Type())
				if err != nil {
					t.Fatalf("output %s: %v", name, err)
				}
				gotType, _ := ctyjson.MarshalType(v.Type())
				if !jsonEqual(t, gotVal, recorded[name].Value) {
					t.Errorf("output %s:\n  evaluated %s\n  recorded  %s", name, gotVal, compact(recorded[name].Value))
				}
				if !jsonEqual(t, gotType, recorded[name].Type) {
					t.Errorf("output %s type:\n  evaluated %s\n  recorded  %s", name, gotType, compact(recorded[name].Type))
				}
			}
		})
	}
}

func jsonEqual(t *testing.T, a, b []byte) bool {
	t.Helper()
	var x, y any
	if err := json.Unmarshal(a, &x); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &y); err != nil {
		t.Fatal(err)
	}
	return reflect.DeepEqual(x, y)
}

func compact(b []byte) string {
	var buf bytes.Buffer
	if err := json.Compact(&buf, b); err != nil {
		return string(b)
	}
	return buf.String()
}
