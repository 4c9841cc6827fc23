package main

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/rctl-dev/rctl/internal/pki"
)

// Security modes (--security): plaintext, or mutual TLS for both systems.
//
// With "tls" one CA (rctl's own, internal/pki) signs everything, as an
// operator following docs/security.md would set it up:
//
//   - rctl: one server certificate per server (name = its node id, IP SAN =
//     its address) passed as --tls-ca/--tls-cert/--tls-key instead of
//     --insecure; the benchmark's clients (load and status polling) use an
//     operator certificate plus the management token that ACL.Bootstrap
//     creates once the cluster has a leader (a fixed secret, so that
//     bootstrapping again is harmless).
//   - etcd: the same server certificates (they carry IP SANs and both
//     server and client auth) for client and peer TLS, each with client
//     certificate auth (--client-cert-auth, --peer-client-cert-auth); the
//     clients use the operator certificate. etcd's own auth (users, roles)
//     stays off: certificates are its whole security here.
const (
	secPlain = "plain"
	secTLS   = "tls"
)

// chooseSecurity resolves --security.
func chooseSecurity(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	for _, m := range strings.Split(s, ",") {
		m = strings.TrimSpace(m)
		if m != secPlain && m != secTLS {
			return nil, fmt.Errorf("--security: unknown mode %q; use plain, tls or plain,tls", m)
		}
		if !seen[m] {
			seen[m] = true
			out = append(out, m)
		}
	}
	return out, nil
}

// pkiSet is the CA and the certificates of one benchmark run, made on
// first use under dir. Both systems and every network share it.
type pkiSet struct {
	dir    string
	caCert string
	// op is the operator certificate every client of the benchmark
	// presents: rctl's load and status polls (with the token), etcd's
	// clients.
	op     pki.Files
	opTLS  *pki.Store
	secret string // the management token's secret, given to ACL.Bootstrap

	mu      sync.Mutex
	servers map[string]pki.Files // by name/IP
}

// newPKI creates the CA and the operator certificate under dir.
func newPKI(dir string) (*pkiSet, error) {
	caDir := filepath.Join(dir, "ca")
	if err := pki.CreateCA(caDir, 0); err != nil {
		return nil, err
	}
	p := &pkiSet{dir: dir, caCert: filepath.Join(caDir, pki.CACertFile), servers: map[string]pki.Files{}}
	crt, key, err := pki.CreateCert(pki.CertRequest{CADir: caDir, Role: pki.RoleOperator, Name: "peerbench", OutDir: filepath.Join(dir, "operator")})
	if err != nil {
		return nil, err
	}
	p.op = pki.Files{CA: p.caCert, Cert: crt, Key: key}
	if p.opTLS, err = pki.Load(p.op); err != nil {
		return nil, err
	}
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	p.secret = hex.EncodeToString(b[:])
	return p, nil
}

// server returns the server certificate of h (name = h.Name, IP SAN =
// h.IP), creating it on first use.
func (p *pkiSet) server(h Host) (pki.Files, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	key := h.Name + "/" + h.IP
	if f, ok := p.servers[key]; ok {
		return f, nil
	}
	out := filepath.Join(p.dir, "servers", h.IP)
	crt, k, err := pki.CreateCert(pki.CertRequest{CADir: filepath.Join(p.dir, "ca"), Role: pki.RoleServer, Name: h.Name,
		Hosts: []string{h.IP}, OutDir: out})
	if err != nil {
		return pki.Files{}, err
	}
	f := pki.Files{CA: p.caCert, Cert: crt, Key: k}
	p.servers[key] = f
	return f, nil
}

// etcdClientTLS is the client config of etcd's clients: the operator
// certificate, the CA as the only root, TLS 1.3 as rctl's; the server
// name (its IP) comes from the endpoint.
func (p *pkiSet) etcdClientTLS() (*tls.Config, error) {
	pair, err := tls.LoadX509KeyPair(p.op.Cert, p.op.Key)
	if err != nil {
		return nil, err
	}
	caPEM, err := os.ReadFile(p.caCert)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("%s holds no certificate", p.caCert)
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{pair}, RootCAs: pool}, nil
}
