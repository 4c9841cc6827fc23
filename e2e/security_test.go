package e2e

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// pkiDir makes a CA and certificates with the real CLI, as an operator
// following docs/security.md would.
type pkiDir struct {
	t    *testing.T
	dir  string
	ca   string
	cert string // output dir of certificates
}

func newPKIDir(t *testing.T) *pkiDir {
	t.Helper()
	d := &pkiDir{t: t, dir: t.TempDir()}
	d.ca, d.cert = filepath.Join(d.dir, "ca"), filepath.Join(d.dir, "certs")
	mustRctl(t, "tls", "ca", "create", "--dir", d.ca)
	return d
}

func (d *pkiDir) issue(role, name, out string) []string {
	d.t.Helper()
	args := []string{"tls", "cert", "create", "--ca-dir", d.ca, "--role", role, "--name", name, "--out", out}
	if role == "server" {
		args = append(args, "--host", "127.0.0.1")
	}
	mustRctl(d.t, args...)
	return []string{"--tls-ca", filepath.Join(d.ca, "ca.crt"), "--tls-cert", filepath.Join(out, name+".crt"), "--tls-key", filepath.Join(out, name+".key")}
}

func TestSecureClusterWithTokensAndRotation(t *testing.T) {
	d := newPKIDir(t)
	c := startClusterWith(t, 3, func(p *proc) []string { return d.issue("server", p.id, d.cert) })
	// `--host` is only for servers: an operator certificate without it.
	mustRctl(t, "tls", "cert", "create", "--ca-dir", d.ca, "--role", "operator", "--name", "alice", "--out", d.cert)
	alice := []string{"--addr", c.addrs(), "--tls-ca", filepath.Join(d.ca, "ca.crt"),
		"--tls-cert", filepath.Join(d.cert, "alice.crt"), "--tls-key", filepath.Join(d.cert, "alice.key")}

	// Files are private.
	for _, f := range []string{filepath.Join(d.ca, "ca.key"), filepath.Join(d.cert, "alice.key"), filepath.Join(d.cert, "s1.crt")} {
		if st, err := os.Stat(f); err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("%s: %v %v, want mode 0600", f, st.Mode(), err)
		}
	}

	// Before bootstrap an operator certificate alone reads nothing.
	eventually(t, 15*time.Second, func() error {
		_, errOut, code := rctl(t, append(alice, "--timeout", "2s", "status")...)
		if code == 1 && strings.Contains(errOut, "permission_denied") {
			return nil
		}
		return fmt.Errorf("status without a token: exit %d: %s", code, errOut)
	})

	// Bootstrap with a chosen secret, twice: the second run is a no-op.
	secret := filepath.Join(d.dir, "bootstrap.secret")
	if err := os.WriteFile(secret, []byte("0123456789abcdef0123456789abcdef\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var first, second struct {
		Token struct {
			AccessorID string `json:"accessor_id"`
		} `json:"token"`
	}
	eventually(t, 15*time.Second, func() error {
		out, errOut, code := rctl(t, append(alice, "acl", "bootstrap", "--secret-file", secret, "-o", "json")...)
		if code != 0 {
			return fmt.Errorf("bootstrap: %s", errOut)
		}
		mustJSON(t, out, &first)
		return nil
	})
	mustJSON(t, mustRctl(t, append(alice, "acl", "bootstrap", "--secret-file", secret, "-o", "json")...), &second)
	if first.Token.AccessorID == "" || first.Token.AccessorID != second.Token.AccessorID {
		t.Fatalf("bootstrap twice with one secret: %q then %q", first.Token.AccessorID, second.Token.AccessorID)
	}
	// Another secret is refused.
	if _, errOut, code := rctl(t, append(alice, "acl", "bootstrap")...); code != 1 || !strings.Contains(errOut, "conflict") {
		t.Fatalf("second bootstrap with a new secret: exit %d: %s", code, errOut)
	}
	mgmt := append(alice, "--token", "0123456789abcdef0123456789abcdef")

	// An operator token writes tasks; a reader token only reads.
	opSecret := tokenSecret(t, mustRctl(t, append(mgmt, "acl", "token", "create", "--role", "operator", "--description", "ci")...))
	rdSecret := tokenSecret(t, mustRctl(t, append(mgmt, "acl", "token", "create", "--role", "reader")...))
	op := append(alice[:len(alice):len(alice)], "--token", opSecret)
	rd := append(alice[:len(alice):len(alice)], "--token", rdSecret)
	mustRctl(t, append(op, "task", "add", "--id", "job-1", "--type", "sleep", "--payload", "seconds=1")...)
	if out := mustRctl(t, append(rd, "task", "get", "job-1")...); !strings.Contains(out, "job-1") {
		t.Fatalf("reader task get: %s", out)
	}
	if _, errOut, code := rctl(t, append(rd, "task", "add", "--type", "sleep")...); code != 1 || !strings.Contains(errOut, "permission_denied") {
		t.Fatalf("reader task add: exit %d: %s", code, errOut)
	}
	if out := mustRctl(t, append(mgmt, "acl", "token", "list")...); strings.Contains(out, opSecret) || !strings.Contains(out, "ci") {
		t.Fatalf("token list shows a secret or misses the description:\n%s", out)
	}

	// A plaintext client is told what to do.
	if _, errOut, code := rctl(t, "--addr", c.addrs(), "status"); code != 1 || !strings.Contains(errOut, "requires mutual TLS") {
		t.Fatalf("plaintext status: exit %d: %s", code, errOut)
	}

	// Rotate s1's certificate: a new one in a new directory is copied over
	// the old files and SIGHUP makes s1 serve it, without a restart.
	s1 := c.procs[0]
	oldSerial := servedSerial(t, d, s1.addr)
	d.issue("server", "s1", filepath.Join(d.dir, "renewed"))
	for _, ext := range []string{".crt", ".key"} {
		b, err := os.ReadFile(filepath.Join(d.dir, "renewed", "s1"+ext))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d.cert, "s1"+ext), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := s1.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, func() error {
		if servedSerial(t, d, s1.addr) == oldSerial {
			return fmt.Errorf("s1 still serves the old certificate")
		}
		return nil
	})
	// The cluster still works through s1 with the new certificate.
	mustRctl(t, append([]string{"--addr", s1.addr}, append(op[2:], "task", "add", "--type", "sleep", "--payload", "seconds=1")...)...)
}

// tokenSecret reads the secret line of `rctl acl token create`.
func tokenSecret(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if v, ok := strings.CutPrefix(line, "secret:"); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatalf("no secret in %q", out)
	return ""
}

// servedSerial is the serial number of the certificate the server at addr
// presents now.
func servedSerial(t *testing.T, d *pkiDir, addr string) string {
	t.Helper()
	pool := x509.NewCertPool()
	pem, err := os.ReadFile(filepath.Join(d.ca, "ca.crt"))
	if err != nil {
		t.Fatal(err)
	}
	pool.AppendCertsFromPEM(pem)
	cert, err := tls.LoadX509KeyPair(filepath.Join(d.cert, "alice.crt"), filepath.Join(d.cert, "alice.key"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: pool, ServerName: "server.rctl", Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatalf("TLS dial %s: %v", addr, err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.String()
}

func TestServeRefusesToStartWithoutTLSOrInsecure(t *testing.T) {
	addr := freeAddrs(t, 1)[0]
	_, errOut, code := rctl(t, "serve", "--node-id", "s1", "--data-dir", t.TempDir(), "--bind", addr)
	if code != 2 || !strings.Contains(errOut, "--insecure") || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		t.Fatalf("serve without TLS: exit %d, stderr %q; want exit 2 and one line naming the choices", code, errOut)
	}
	d := newPKIDir(t)
	agentCert := d.issue("agent", "s1", d.cert)
	_, errOut, code = rctl(t, append([]string{"serve", "--node-id", "s1", "--data-dir", t.TempDir(), "--bind", addr}, agentCert...)...)
	if code != 2 || !strings.Contains(errOut, "server certificate") {
		t.Fatalf("serve with an agent certificate: exit %d: %s", code, errOut)
	}
}
