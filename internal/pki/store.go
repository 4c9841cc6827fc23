package pki

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
	"sync/atomic"
	"time"
)

// Files names the three PEM files of one party: the CA that signs every
// certificate of the cluster, and this party's certificate and key.
type Files struct {
	CA, Cert, Key string
}

// Empty reports whether no file is named.
func (f Files) Empty() bool { return f.CA == "" && f.Cert == "" && f.Key == "" }

// Check reports a partial set: all three files or none.
func (f Files) Check() error {
	if f.Empty() || (f.CA != "" && f.Cert != "" && f.Key != "") {
		return nil
	}
	return errors.New("--tls-ca, --tls-cert and --tls-key go together: give all three or none")
}

// material is one loaded, consistent set of files.
type material struct {
	pair tls.Certificate
	pool *x509.CertPool
	id   Identity
	leaf *x509.Certificate
}

// Store holds this party's TLS material and hands out tls.Configs built
// from the current version. Reload swaps in new files atomically;
// connections already open keep what they negotiated.
type Store struct {
	files Files
	cur   atomic.Pointer[material]
}

// HandshakeTimeout bounds a TLS handshake on either side.
const HandshakeTimeout = 10 * time.Second

// Load reads and checks the files: the certificate matches the key, is
// signed by the CA, is valid now and names an rctl identity.
func Load(f Files) (*Store, error) {
	if f.Empty() {
		return nil, errors.New("no TLS files given")
	}
	if err := f.Check(); err != nil {
		return nil, err
	}
	m, err := load(f)
	if err != nil {
		return nil, err
	}
	s := &Store{files: f}
	s.cur.Store(m)
	return s, nil
}

func load(f Files) (*material, error) {
	caPEM, err := os.ReadFile(f.CA)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return nil, fmt.Errorf("--tls-ca %s holds no PEM certificate", f.CA)
	}
	pair, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert/--tls-key: %w", err)
	}
	leaf, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s: %w", f.Cert, err)
	}
	inter := x509.NewCertPool()
	for _, der := range pair.Certificate[1:] {
		if c, err := x509.ParseCertificate(der); err == nil {
			inter.AddCert(c)
		}
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		return nil, fmt.Errorf("--tls-cert %s is not valid under --tls-ca %s: %v", f.Cert, f.CA, err)
	}
	id, err := IdentityOf(leaf)
	if err != nil {
		return nil, fmt.Errorf("--tls-cert %s: %w", f.Cert, err)
	}
	pair.Leaf = leaf
	return &material{pair: pair, pool: pool, id: id, leaf: leaf}, nil
}

// Reload reads the files again. The new certificate must name the same
// identity; on any error the current material stays in use.
func (s *Store) Reload() error {
	m, err := load(s.files)
	if err != nil {
		return err
	}
	if old := s.cur.Load(); m.id != old.id {
		return fmt.Errorf("the new certificate names %s but this process is %s; a reload cannot change who a process is", m.id, old.id)
	}
	s.cur.Store(m)
	return nil
}

// Identity is the identity this party's own certificate names.
func (s *Store) Identity() Identity { return s.cur.Load().id }

// NotAfter is when the current certificate expires.
func (s *Store) NotAfter() time.Time { return s.cur.Load().leaf.NotAfter }

// ServerConfig is the config for accepting connections: TLS 1.3, a client
// certificate signed by the CA is required. Each handshake uses the
// material current at that moment.
func (s *Store) ServerConfig() *tls.Config {
	return &tls.Config{
		MinVersion: tls.VersionTLS13,
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			m := s.cur.Load()
			return &tls.Config{
				MinVersion:   tls.VersionTLS13,
				Certificates: []tls.Certificate{m.pair},
				ClientAuth:   tls.RequireAndVerifyClientCert,
				ClientCAs:    m.pool,
				// No resumption: every connection proves its certificate
				// anew (a revoked or rotated one cannot ride an old
				// ticket), and a server sends nothing unsolicited after the
				// handshake, which lets an idle connection be checked by
				// peeking (cluster/warm.go).
				SessionTicketsDisabled: true,
			}, nil
		},
	}
}

// ClientConfig is the config for dialling a server: the server must hold
// a certificate from the CA for ServerName with the server role.
func (s *Store) ClientConfig() *tls.Config {
	m := s.cur.Load()
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{m.pair},
		RootCAs:      m.pool,
		ServerName:   ServerName,
		VerifyConnection: func(cs tls.ConnectionState) error {
			id, err := PeerIdentity(cs)
			if err != nil {
				return err
			}
			if id.Role != RoleServer {
				return fmt.Errorf("the peer presented a %s certificate (%s), not a server certificate", id.Role, id.Name)
			}
			return nil
		},
	}
}

// PeerIdentity is the identity of the verified peer of a completed
// handshake.
func PeerIdentity(cs tls.ConnectionState) (Identity, error) {
	if len(cs.VerifiedChains) > 0 && len(cs.VerifiedChains[0]) > 0 {
		return IdentityOf(cs.VerifiedChains[0][0])
	}
	return Identity{}, errors.New("the peer presented no verified certificate")
}
