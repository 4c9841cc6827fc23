package terraform_test

// tf-inventory.py: `terraform output -json` -> Ansible inventory.

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// The recorded documents and the inventories they must give. Set
// RCTL_UPDATE_GOLDEN=1 to rewrite the inventories after a deliberate change.
var inventoryCases = []struct{ output, inventory string }{
	{"testdata/output.json", "testdata/inventory.yml"},
	{"testdata/output-3aws-3gcp.json", "testdata/inventory-3aws-3gcp.yml"},
}

func python(t *testing.T) string {
	t.Helper()
	p, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 is not installed: tf-inventory.py cannot be tested")
	}
	return p
}

// runConverter runs tf-inventory.py with args (and stdin) and returns
// stdout, stderr and the exit status.
func runConverter(t *testing.T, stdin string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(python(t), append([]string{"tf-inventory.py"}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	code := 0
	if ee := (*exec.ExitError)(nil); errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("tf-inventory.py: %v", err)
	}
	return out.String(), errOut.String(), code
}

// TestInventoryGolden: each recorded document gives its inventory, from a
// file, from stdin and with -o.
func TestInventoryGolden(t *testing.T) {
	for _, tc := range inventoryCases {
		out, errOut, code := runConverter(t, "", tc.output)
		if code != 0 {
			t.Fatalf("tf-inventory.py %s: exit %d: %s", tc.output, code, errOut)
		}
		if os.Getenv("RCTL_UPDATE_GOLDEN") == "1" {
			if err := os.WriteFile(tc.inventory, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		want, err := os.ReadFile(tc.inventory)
		if err != nil {
			t.Fatal(err)
		}
		if out != string(want) {
			t.Errorf("tf-inventory.py %s differs from %s:\n%s", tc.output, tc.inventory, out)
		}
		doc, _ := os.ReadFile(tc.output)
		if stdinOut, _, code := runConverter(t, string(doc), "-"); code != 0 || stdinOut != out {
			t.Errorf("tf-inventory.py - (stdin) gave exit %d and a different inventory", code)
		}
		dest := filepath.Join(t.TempDir(), "inventory.yml")
		if _, errOut, code := runConverter(t, "", tc.output, "-o", dest); code != 0 {
			t.Errorf("tf-inventory.py -o: exit %d: %s", code, errOut)
		} else if b, _ := os.ReadFile(dest); string(b) != out {
			t.Errorf("tf-inventory.py -o wrote a different inventory")
		}
	}
}

// TestInventoryBadInput: bad documents give one line on stderr naming the
// problem and exit status 1, never a traceback.
func TestInventoryBadInput(t *testing.T) {
	good, err := os.ReadFile("testdata/output.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(good, &doc); err != nil {
		t.Fatal(err)
	}
	// mutate returns the recorded document changed by f, as JSON.
	mutate := func(f func(d map[string]any)) string {
		var d map[string]any
		_ = json.Unmarshal(good, &d)
		f(d)
		b, _ := json.Marshal(d)
		return string(b)
	}
	servers := func(d map[string]any) []any { return d["rctl_servers"].(map[string]any)["value"].([]any) }
	server0 := func(d map[string]any) map[string]any { return servers(d)[0].(map[string]any) }
	agents := func(d map[string]any) []any { return d["rctl_agents"].(map[string]any)["value"].([]any) }
	cases := []struct{ name, input, want string }{
		{"empty", "", "is not JSON"},
		{"not json", "Error: No outputs found", "is not JSON"},
		{"one output", `[{"id": "aws-1"}]`, "not one output"},
		{"a string", `"x"`, "must be a JSON object"},
		{"no servers", `{"ssh_user": {"value": "ubuntu"}}`, "output 'rctl_servers' is missing"},
		{"no value", `{"rctl_servers": {"type": "string"}}`, "has no 'value'"},
		{"servers not a list", mutate(func(d map[string]any) { d["rctl_servers"].(map[string]any)["value"] = "x" }), "non-empty list"},
		{"no servers listed", mutate(func(d map[string]any) { d["rctl_servers"].(map[string]any)["value"] = []any{} }), "non-empty list"},
		{"server not an object", mutate(func(d map[string]any) { servers(d)[0] = "aws-1" }), "rctl_servers[0] must be an object"},
		{"missing address", mutate(func(d map[string]any) { delete(server0(d), "address") }), "server aws-1: 'address' must be a non-empty string"},
		{"unknown address", mutate(func(d map[string]any) { server0(d)["public_ip"] = "(known after apply)" }), "is not an IP address"},
		{"bad id", mutate(func(d map[string]any) { server0(d)["id"] = "aws:1" }), "id 'aws:1' must be"},
		{"duplicate id", mutate(func(d map[string]any) { servers(d)[1].(map[string]any)["id"] = "aws-1" }), "server aws-1 appears twice"},
		{"duplicate address", mutate(func(d map[string]any) { server0(d)["address"] = "198.51.100.12" }), "used by another server"},
		{"upper-case cloud", mutate(func(d map[string]any) { server0(d)["cloud"] = "AWS" }), "cloud 'AWS' must be lower case"},
		{"voter not bool", mutate(func(d map[string]any) { server0(d)["voter"] = "yes" }), "'voter' must be true or false"},
		{"no voter", mutate(func(d map[string]any) {
			for _, s := range servers(d) {
				s.(map[string]any)["voter"] = false
			}
		}), "has no voter"},
		{"agent unknown without address", mutate(func(d map[string]any) {
			agents(d)[0].(map[string]any)["id"] = "worker-9"
		}), "agent worker-9 is not a server id, so it needs an address"},
		{"agent on server elsewhere", mutate(func(d map[string]any) {
			agents(d)[0].(map[string]any)["address"] = "192.0.2.99"
		}), "agent aws-3 has a server's id but another address"},
		{"duplicate agent", mutate(func(d map[string]any) {
			agents(d)[1].(map[string]any)["id"] = "aws-3"
		}), "agent aws-3 appears twice"},
		{"bad ssh user", mutate(func(d map[string]any) { d["ssh_user"].(map[string]any)["value"] = "Root User" }), "'ssh_user' must be a user name"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			out, errOut, code := runConverter(t, tc.input, "-")
			if code != 1 {
				t.Errorf("exit %d, want 1 (stdout %q, stderr %q)", code, out, errOut)
			}
			if out != "" {
				t.Errorf("wrote to stdout: %q", out)
			}
			lines := strings.Split(strings.TrimRight(errOut, "\n"), "\n")
			if len(lines) != 1 || !strings.HasPrefix(lines[0], "tf-inventory: ") || strings.Contains(errOut, "Traceback") {
				t.Errorf("stderr is not one 'tf-inventory: ...' line: %q", errOut)
			}
			if !strings.Contains(errOut, tc.want) {
				t.Errorf("stderr %q does not say %q", errOut, tc.want)
			}
		})
	}
	t.Run("missing file", func(t *testing.T) {
		_, errOut, code := runConverter(t, "", filepath.Join(t.TempDir(), "nope.json"))
		if code != 1 || !strings.Contains(errOut, "cannot read") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("unwritable output", func(t *testing.T) {
		_, errOut, code := runConverter(t, "", "testdata/output.json", "-o", filepath.Join(t.TempDir(), "no", "dir", "inv.yml"))
		if code != 1 || !strings.Contains(errOut, "cannot write") || strings.Count(errOut, "\n") != 1 {
			t.Errorf("exit %d, stderr %q", code, errOut)
		}
	})
	t.Run("usage", func(t *testing.T) {
		if _, _, code := runConverter(t, "", "--no-such-flag"); code != 2 {
			t.Errorf("exit %d, want 2 for a usage mistake", code)
		}
	})
}

// ansibleInventory finds ansible-inventory: $ANSIBLE_VENV, the
// repository's .tools/ansible-venv (make ansible-venv), or PATH.
func ansibleInventory() string {
	var candidates []string
	if v := os.Getenv("ANSIBLE_VENV"); v != "" {
		candidates = append(candidates, filepath.Join(v, "bin", "ansible-inventory"))
	}
	candidates = append(candidates, filepath.Join("..", ".tools", "ansible-venv", "bin", "ansible-inventory"))
	for _, c := range candidates {
		if fi, err := os.Stat(c); err == nil && !fi.IsDir() {
			abs, _ := filepath.Abs(c)
			return abs
		}
	}
	if p, err := exec.LookPath("ansible-inventory"); err == nil {
		return p
	}
	return ""
}

// TestInventoryAcceptedByAnsible: ansible-inventory --list reads each
// generated inventory and finds the groups and host variables the rollout
// uses (ansible/site.yml, roles/rctl_common/defaults/main.yml), as the
// recorded document says.
func TestInventoryAcceptedByAnsible(t *testing.T) {
	ai := ansibleInventory()
	if ai == "" {
		t.Skip("ansible-inventory is not installed (`make ansible-venv` puts it in .tools/ansible-venv, or set ANSIBLE_VENV); " +
			"the inventories were checked against the files in testdata/ only")
	}
	for _, tc := range inventoryCases {
		t.Run(filepath.Base(tc.output), func(t *testing.T) {
			tmp := t.TempDir()
			inv := filepath.Join(tmp, "inventory.yml")
			if _, errOut, code := runConverter(t, "", tc.output, "-o", inv); code != 0 {
				t.Fatalf("tf-inventory.py: exit %d: %s", code, errOut)
			}
			cmd := exec.Command(ai, "-i", inv, "--list")
			cmd.Env = append(os.Environ(), "ANSIBLE_HOME="+tmp, "ANSIBLE_LOCAL_TEMP="+tmp, "ANSIBLE_NOCOLOR=1",
				// Fail instead of warning when the inventory cannot be parsed.
				"ANSIBLE_INVENTORY_UNPARSED_FAILED=1", "ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=1")
			var out, errOut bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &errOut
			if err := cmd.Run(); err != nil {
				t.Fatalf("ansible-inventory --list: %v: %s", err, errOut.String())
			}
			var list map[string]any
			if err := json.Unmarshal(out.Bytes(), &list); err != nil {
				t.Fatalf("ansible-inventory --list printed no JSON: %v", err)
			}
			checkAnsibleList(t, tc.output, list)
		})
	}
}

func checkAnsibleList(t *testing.T, outputFile string, list map[string]any) {
	t.Helper()
	var doc struct {
		Servers struct {
			Value []struct {
				ID, Cloud, Region, Address string
				PublicIP                   string `json:"public_ip"`
				Voter                      bool
			}
		} `json:"rctl_servers"`
		Agents struct {
			Value []struct {
				ID                     string
				Address, Cloud, Region *string
			}
		} `json:"rctl_agents"`
		SSHUser struct{ Value string } `json:"ssh_user"`
	}
	b, _ := os.ReadFile(outputFile)
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	group := func(name string) []string {
		g, _ := list[name].(map[string]any)
		var hosts []string
		for _, h := range asSlice(g["hosts"]) {
			hosts = append(hosts, h.(string))
		}
		return sorted(hosts)
	}
	hostvars := list["_meta"].(map[string]any)["hostvars"].(map[string]any)
	var voters, nonvoters, agents []string
	for _, s := range doc.Servers.Value {
		if s.Voter {
			voters = append(voters, s.ID)
		} else {
			nonvoters = append(nonvoters, s.ID)
		}
		want := map[string]any{
			"ansible_host": s.PublicIP, "rctl_address": s.Address, "cloud": s.Cloud, "region": s.Region,
			"ansible_user": doc.SSHUser.Value,
		}
		if !s.Voter {
			want["rctl_nonvoter"] = true
		}
		if got := hostvars[s.ID]; !reflect.DeepEqual(got, want) {
			t.Errorf("host %s: variables %v, want %v", s.ID, got, want)
		}
	}
	for _, a := range doc.Agents.Value {
		agents = append(agents, a.ID)
		if a.Address == nil {
			continue // on a server: that host's variables
		}
		want := map[string]any{"ansible_host": *a.Address, "cloud": *a.Cloud, "region": *a.Region, "ansible_user": doc.SSHUser.Value}
		if got := hostvars[a.ID]; !reflect.DeepEqual(got, want) {
			t.Errorf("agent %s: variables %v, want %v", a.ID, got, want)
		}
	}
	if got := group("rctl_servers"); !slices.Equal(got, sorted(voters)) {
		t.Errorf("group rctl_servers: %v, want the voters %v", got, sorted(voters))
	}
	if got := group("rctl_nonvoters"); !slices.Equal(got, sorted(nonvoters)) {
		t.Errorf("group rctl_nonvoters: %v, want %v", got, sorted(nonvoters))
	}
	if got := group("rctl_agents"); !slices.Equal(got, sorted(agents)) {
		t.Errorf("group rctl_agents: %v, want %v", got, sorted(agents))
	}
	if len(voters) == 0 {
		t.Errorf("%s: no voters", outputFile)
	}
}

func asSlice(v any) []any {
	s, _ := v.([]any)
	return s
}
