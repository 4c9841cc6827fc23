package rpc

import (
	"context"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
)

// testServer is a Server with a manifest and no raft: enough for the
// authorization decisions, which read only the manifest.
func testServer(t *testing.T) *Server {
	t.Helper()
	s := &Server{fsm: fsm.New(), cfg: Config{}}
	s.methods = (&Server{}).declarations()
	return s
}

func TestEveryMethodIsDeclaredAndDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/rpc.md")
	if err != nil {
		t.Fatal(err)
	}
	authz := string(doc[strings.Index(string(doc), "## Authorization"):strings.Index(string(doc), "## Methods")])
	documented := map[string]bool{}
	for _, h := range regexp.MustCompile("(?m)^### .*$").FindAllString(string(doc), -1) {
		for _, m := range regexp.MustCompile("`([A-Za-z]+\\.[A-Za-z]+)`").FindAllStringSubmatch(h, -1) {
			documented[m[1]] = true
		}
	}
	for name, m := range testServer(t).methods {
		if m.a == (access{}) {
			t.Errorf("%s declares no access: every method must say who may call it", name)
		}
		if !documented[name] {
			t.Errorf("%s has no section in docs/rpc.md", name)
		}
		if !strings.Contains(authz, "`"+name+"`") && !m.a.agent && m.a.token != levelReader {
			// reader methods and agent methods are listed by name too; the
			// rest must be named in the table.
			t.Errorf("%s is missing from the Authorization table of docs/rpc.md", name)
		}
	}
}

func TestAuthorizeDecisions(t *testing.T) {
	s := testServer(t)
	tok := func(role string) *fsm.ACLToken { return &fsm.ACLToken{AccessorID: "a-1", Role: role} }
	server := &caller{id: pki.Identity{Role: pki.RoleServer, Name: "s1"}}
	agent := &caller{id: pki.Identity{Role: pki.RoleAgent, Name: "w1"}}
	anon := &caller{id: pki.Identity{Role: pki.RoleOperator, Name: "o"}}
	reader := &caller{id: anon.id, token: tok(fsm.ACLReader)}
	operator := &caller{id: anon.id, token: tok(fsm.ACLOperator)}
	mgmt := &caller{id: anon.id, token: tok(fsm.ACLManagement)}
	insecure := &caller{insecure: true}
	cases := []struct {
		method string
		allow  []*caller
		deny   []*caller
	}{
		{MethodStatus, []*caller{server, agent, reader, insecure}, []*caller{anon}},
		{MethodTaskList, []*caller{server, reader, operator, mgmt}, []*caller{anon, agent}},
		{MethodTaskAdd, []*caller{server, operator, mgmt, insecure}, []*caller{anon, agent, reader}},
		{MethodOperatorRTT, []*caller{server, reader, operator, mgmt, insecure}, []*caller{anon, agent}},
		{MethodRaftRemovePeer, []*caller{server, mgmt}, []*caller{anon, agent, reader, operator}},
		{MethodRaftJoin, []*caller{server, insecure}, []*caller{anon, agent, reader, operator, mgmt}},
		{MethodServerLabels, []*caller{server}, []*caller{mgmt, agent}},
		{MethodNodeHeartbeat, []*caller{server, agent}, []*caller{anon, reader, operator, mgmt}},
		{MethodNodeDeregister, []*caller{server, agent, mgmt}, []*caller{anon, reader, operator}},
		{MethodACLTokenCreate, []*caller{server, mgmt}, []*caller{anon, agent, reader, operator}},
		{MethodACLBootstrap, []*caller{anon, agent, server}, []*caller{{}}}, // the state decides the rest
	}
	for _, tc := range cases {
		m, ok := s.methods[tc.method]
		if !ok {
			t.Fatalf("%s not registered", tc.method)
		}
		for _, c := range tc.allow {
			if err := s.authorize(c, tc.method, m.a); err != nil {
				t.Errorf("%s by %v (token %v): refused: %v", tc.method, c.id, c.token, err)
			}
		}
		for _, c := range tc.deny {
			err := s.authorize(c, tc.method, m.a)
			if CodeOf(err) != CodePermissionDenied {
				t.Errorf("%s by %v (token %v): %v, want permission_denied", tc.method, c.id, c.token, err)
			}
		}
	}
}

func TestAgentActsOnlyForItsNode(t *testing.T) {
	ctx := context.WithValue(context.Background(), callerKey{}, &caller{id: pki.Identity{Role: pki.RoleAgent, Name: "w1"}})
	if err := authorizeNode(ctx, MethodNodeHeartbeat, "w1"); err != nil {
		t.Fatalf("own node refused: %v", err)
	}
	if err := authorizeNode(ctx, MethodNodeHeartbeat, "w2"); CodeOf(err) != CodePermissionDenied {
		t.Fatalf("other node: %v", err)
	}
	srv := context.WithValue(context.Background(), callerKey{}, &caller{id: pki.Identity{Role: pki.RoleServer, Name: "s1"}})
	if err := authorizeServerID(srv, MethodRaftJoin, "s2"); CodeOf(err) != CodePermissionDenied {
		t.Fatalf("server s1 joining as s2: %v", err)
	}
	if err := authorizeServerID(srv, MethodRaftJoin, "s1"); err != nil {
		t.Fatalf("server s1 joining as itself: %v", err)
	}
	// No caller in the context (a bug) is nobody, refused.
	if err := authorizeServerID(context.Background(), MethodRaftJoin, "s1"); CodeOf(err) != CodePermissionDenied {
		t.Fatalf("no caller: %v", err)
	}
}
