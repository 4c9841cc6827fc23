package pki

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// newCA creates a CA in a temp dir and returns the dir.
func newCA(t *testing.T) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "ca")
	if err := CreateCA(dir, 0); err != nil {
		t.Fatal(err)
	}
	return dir
}

// issue creates a certificate and returns its Files.
func issue(t *testing.T, caDir string, role Role, name string, hosts ...string) Files {
	t.Helper()
	out := t.TempDir()
	crt, key, err := CreateCert(CertRequest{CADir: caDir, Role: role, Name: name, Hosts: hosts, OutDir: out})
	if err != nil {
		t.Fatal(err)
	}
	return Files{CA: filepath.Join(caDir, CACertFile), Cert: crt, Key: key}
}

func TestCreateCAFilesAreSecretAndNeverOverwritten(t *testing.T) {
	dir := newCA(t)
	for _, f := range []string{CACertFile, CAKeyFile} {
		st, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", f, st.Mode().Perm())
		}
	}
	before, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if err := CreateCA(dir, 0); err == nil || !strings.Contains(err.Error(), "already exists") {
		t.Fatalf("second CreateCA: %v, want a refusal", err)
	}
	after, _ := os.ReadFile(filepath.Join(dir, CAKeyFile))
	if string(before) != string(after) {
		t.Fatal("the refused CreateCA changed ca.key")
	}
}

func TestCertIdentityAndSANs(t *testing.T) {
	ca := newCA(t)
	f := issue(t, ca, RoleServer, "aws-1", "10.0.1.5", "rctl-1.example.com")
	st, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	if got := st.Identity(); got != (Identity{RoleServer, "aws-1"}) {
		t.Fatalf("identity %v", got)
	}
	leaf := st.cur.Load().leaf
	if !strings.Contains(strings.Join(leaf.DNSNames, ","), ServerName) || len(leaf.IPAddresses) != 1 || !leaf.IPAddresses[0].Equal(net.ParseIP("10.0.1.5")) {
		t.Fatalf("SANs: dns %v ip %v", leaf.DNSNames, leaf.IPAddresses)
	}
	key, _ := os.Stat(f.Key)
	if key.Mode().Perm() != 0o600 {
		t.Fatalf("key mode %v", key.Mode().Perm())
	}
	a, err := Load(issue(t, ca, RoleAgent, "worker-1"))
	if err != nil {
		t.Fatal(err)
	}
	if a.Identity() != (Identity{RoleAgent, "worker-1"}) || len(a.cur.Load().leaf.DNSNames) != 0 {
		t.Fatalf("agent: %v %v", a.Identity(), a.cur.Load().leaf.DNSNames)
	}
}

func TestCreateCertRefusesBadInput(t *testing.T) {
	ca := newCA(t)
	for name, req := range map[string]CertRequest{
		"host on agent":  {CADir: ca, Role: RoleAgent, Name: "w", Hosts: []string{"10.0.0.1"}, OutDir: t.TempDir()},
		"unknown role":   {CADir: ca, Role: "admin", Name: "w", OutDir: t.TempDir()},
		"bad name":       {CADir: ca, Role: RoleServer, Name: "a/b", OutDir: t.TempDir()},
		"no CA":          {CADir: t.TempDir(), Role: RoleServer, Name: "s1", OutDir: t.TempDir()},
		"bad host":       {CADir: ca, Role: RoleServer, Name: "s1", Hosts: []string{"a b"}, OutDir: t.TempDir()},
		"empty host":     {CADir: ca, Role: RoleServer, Name: "s1", Hosts: []string{" "}, OutDir: t.TempDir()},
		"escape in name": {CADir: ca, Role: RoleOperator, Name: "al\x1bice", OutDir: t.TempDir()},
	} {
		out := req.OutDir
		if _, _, err := CreateCert(req); err == nil {
			t.Errorf("%s: accepted", name)
		}
		if ents, _ := os.ReadDir(out); len(ents) != 0 {
			t.Errorf("%s: refused request wrote %d files", name, len(ents))
		}
	}
}

func TestLoadRefusesMismatchedMaterial(t *testing.T) {
	ca1, ca2 := newCA(t), newCA(t)
	good := issue(t, ca1, RoleServer, "s1")
	other := issue(t, ca2, RoleServer, "s1")
	cases := map[string]Files{
		"cert from another CA": {CA: good.CA, Cert: other.Cert, Key: other.Key},
		"key of another cert":  {CA: good.CA, Cert: good.Cert, Key: other.Key},
		"missing file":         {CA: good.CA, Cert: good.Cert + ".nope", Key: good.Key},
		"CA is not PEM":        {CA: good.Key + ".x", Cert: good.Cert, Key: good.Key},
		"partial":              {CA: good.CA},
	}
	_ = os.WriteFile(good.Key+".x", []byte("not pem"), 0o600)
	for name, f := range cases {
		if _, err := Load(f); err == nil {
			t.Errorf("%s: loaded", name)
		}
	}
}

func TestReloadKeepsIdentity(t *testing.T) {
	ca := newCA(t)
	f := issue(t, ca, RoleServer, "s1")
	st, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	old := st.NotAfter()
	// A renewed certificate for the same server: accepted.
	renewed := issue(t, ca, RoleServer, "s1")
	copyFile(t, renewed.Cert, f.Cert)
	copyFile(t, renewed.Key, f.Key)
	if err := st.Reload(); err != nil {
		t.Fatalf("reload of a renewed certificate: %v", err)
	}
	if st.cur.Load().leaf.SerialNumber.Cmp(mustLeaf(t, renewed).SerialNumber) != 0 || st.NotAfter().Before(old) {
		t.Fatal("reload did not take the renewed certificate")
	}
	// Another identity: refused, the current material stays.
	imposter := issue(t, ca, RoleServer, "s2")
	copyFile(t, imposter.Cert, f.Cert)
	copyFile(t, imposter.Key, f.Key)
	if err := st.Reload(); err == nil || !strings.Contains(err.Error(), "cannot change who") {
		t.Fatalf("reload to another identity: %v", err)
	}
	if st.Identity() != (Identity{RoleServer, "s1"}) {
		t.Fatalf("identity after refused reload: %v", st.Identity())
	}
}

func mustLeaf(t *testing.T, f Files) *x509.Certificate {
	t.Helper()
	st, err := Load(f)
	if err != nil {
		t.Fatal(err)
	}
	return st.cur.Load().leaf
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}

// handshake runs a TLS handshake over a pipe and returns both errors and
// the identity the server saw.
func handshake(t *testing.T, server, client *Store) (serverErr, clientErr error, seen Identity) {
	t.Helper()
	a, b := net.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := tls.Server(a, server.ServerConfig())
		_ = sc.SetDeadline(time.Now().Add(5 * time.Second))
		serverErr = sc.Handshake()
		if serverErr == nil {
			seen, serverErr = PeerIdentity(sc.ConnectionState())
		}
		a.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	cc := tls.Client(b, client.ClientConfig())
	clientErr = cc.HandshakeContext(ctx)
	b.Close()
	<-done
	return serverErr, clientErr, seen
}

func TestHandshakeRoles(t *testing.T) {
	ca, ca2 := newCA(t), newCA(t)
	load := func(f Files) *Store {
		st, err := Load(f)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	srv := load(issue(t, ca, RoleServer, "s1"))
	agent := load(issue(t, ca, RoleAgent, "w1"))
	stranger := load(issue(t, ca2, RoleServer, "s1"))

	if se, ce, id := handshake(t, srv, agent); se != nil || ce != nil || id != (Identity{RoleAgent, "w1"}) {
		t.Fatalf("agent to server: server %v, client %v, identity %v", se, ce, id)
	}
	// A client of another CA is refused by the server.
	if se, _, _ := handshake(t, srv, stranger); se == nil {
		t.Fatal("a certificate from another CA was accepted")
	}
	// A peer posing as a server with an agent certificate is refused by
	// the client: no server.rctl SAN, no server role.
	if _, ce, _ := handshake(t, agent, srv); ce == nil {
		t.Fatal("client accepted an agent certificate as a server")
	}
}
