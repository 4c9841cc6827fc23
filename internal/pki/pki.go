// Package pki makes and loads rctl's certificates and turns a peer's
// certificate into an identity.
//
// Every rctl certificate names one role and one name in a URI SAN,
// spiffe://rctl/<role>/<name>:
//
//	server    a control-plane server; name = its node id. Also carries the
//	          DNS SAN "server.rctl" (what every client verifies as the
//	          server name) and each --host given at creation.
//	agent     a node agent; name = its node id. Client auth only.
//	operator  a person or a script; name = who. Client auth only.
//
// Only server certificates may speak Raft or act as a server; an agent
// may act only for its own node; an operator's rights come from its ACL
// token (docs/security.md). The role is read from the certificate the
// CA signed, never from anything the peer says.
package pki

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// Role is what a certificate allows its holder to be.
type Role string

const (
	RoleServer   Role = "server"
	RoleAgent    Role = "agent"
	RoleOperator Role = "operator"
)

// ServerName is the DNS SAN every server certificate carries and every
// client verifies: an agent or operator certificate never has it, so a
// client cannot be fooled by a peer holding one of those.
const ServerName = "server.rctl"

// uriPrefix starts the URI SAN that names a certificate's role and name.
const uriPrefix = "spiffe://rctl/"

// Identity is who a verified peer certificate says its holder is.
type Identity struct {
	Role Role
	Name string
}

func (id Identity) String() string {
	if id.Role == "" {
		return "anonymous"
	}
	return string(id.Role) + " " + id.Name
}

// ParseRole checks a role name given on the command line.
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case RoleServer, RoleAgent, RoleOperator:
		return r, nil
	}
	return "", fmt.Errorf("role %q is unknown; use server, agent or operator", s)
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$`)

// CheckName checks a certificate name: the same charset as node ids.
func CheckName(name string) error {
	if !nameRE.MatchString(name) {
		return fmt.Errorf("name %q is invalid: use letters, digits, '.', '_', ':', '-' (at most 128, starting with a letter or digit)", name)
	}
	return nil
}

// IdentityOf reads the role and name from a certificate that has already
// been verified against the CA. A certificate without exactly one rctl
// URI SAN, or with an unknown role, has no identity.
func IdentityOf(cert *x509.Certificate) (Identity, error) {
	var found []Identity
	for _, u := range cert.URIs {
		s := u.String()
		if !strings.HasPrefix(s, uriPrefix) {
			continue
		}
		role, name, ok := strings.Cut(strings.TrimPrefix(s, uriPrefix), "/")
		r, err := ParseRole(role)
		if !ok || err != nil || CheckName(name) != nil {
			return Identity{}, fmt.Errorf("certificate %q has a malformed rctl identity %q", cert.Subject.CommonName, s)
		}
		found = append(found, Identity{Role: r, Name: name})
	}
	if len(found) != 1 {
		return Identity{}, fmt.Errorf("certificate %q names %d rctl identities, want exactly 1 (was it made by `rctl tls cert create`?)", cert.Subject.CommonName, len(found))
	}
	return found[0], nil
}

// CA file names inside a CA directory.
const (
	CACertFile = "ca.crt"
	CAKeyFile  = "ca.key"
)

// Validity defaults.
const (
	CAValidity   = 10 * 365 * 24 * time.Hour
	CertValidity = 365 * 24 * time.Hour
)

// CreateCA writes DIR/ca.crt and DIR/ca.key (0600), refusing to overwrite
// an existing CA.
func CreateCA(dir string, validity time.Duration) error {
	if validity <= 0 {
		validity = CAValidity
	}
	certPath, keyPath := filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile)
	for _, p := range []string{certPath, keyPath} {
		if _, err := os.Stat(p); err == nil {
			return fmt.Errorf("%s already exists; a CA is created once (move it away to start over)", p)
		}
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "rctl CA", Organization: []string{"rctl"}},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(validity),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("sign CA: %w", err)
	}
	return writePair(certPath, keyPath, der, key)
}

// CertRequest describes a leaf certificate to create.
type CertRequest struct {
	CADir    string
	Role     Role
	Name     string
	Hosts    []string // servers only: IPs and DNS names added as SANs
	OutDir   string
	Validity time.Duration
}

// CreateCert signs a leaf certificate with the CA in req.CADir and writes
// OUT/NAME.crt and OUT/NAME.key (0600). It returns the paths.
func CreateCert(req CertRequest) (certPath, keyPath string, err error) {
	if _, err := ParseRole(string(req.Role)); err != nil {
		return "", "", err
	}
	if err := CheckName(req.Name); err != nil {
		return "", "", err
	}
	if req.Role != RoleServer && len(req.Hosts) > 0 {
		return "", "", fmt.Errorf("--host is for server certificates; %s certificates name no host", req.Role)
	}
	if req.Validity <= 0 {
		req.Validity = CertValidity
	}
	caCert, caKey, err := loadCA(req.CADir)
	if err != nil {
		return "", "", err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", "", err
	}
	u, _ := url.Parse(uriPrefix + string(req.Role) + "/" + req.Name)
	now := time.Now()
	notAfter := now.Add(req.Validity)
	if notAfter.After(caCert.NotAfter) {
		notAfter = caCert.NotAfter
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: req.Name, Organization: []string{"rctl"}, OrganizationalUnit: []string{string(req.Role)}},
		NotBefore:    now.Add(-time.Minute),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		URIs:         []*url.URL{u},
	}
	if req.Role == RoleServer {
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageServerAuth)
		tmpl.DNSNames = []string{ServerName}
		for _, h := range req.Hosts {
			h = strings.TrimSpace(h)
			switch {
			case h == "":
				return "", "", errors.New("--host must not be empty")
			case net.ParseIP(h) != nil:
				tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(h))
			case h == ServerName:
			default:
				if strings.ContainsAny(h, " /,\t") {
					return "", "", fmt.Errorf("--host %q is neither an IP address nor a DNS name", h)
				}
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		return "", "", fmt.Errorf("sign certificate: %w", err)
	}
	if err := os.MkdirAll(req.OutDir, 0o700); err != nil {
		return "", "", fmt.Errorf("create %s: %w", req.OutDir, err)
	}
	certPath, keyPath = filepath.Join(req.OutDir, req.Name+".crt"), filepath.Join(req.OutDir, req.Name+".key")
	return certPath, keyPath, writePair(certPath, keyPath, der, key)
}

func loadCA(dir string) (*x509.Certificate, crypto.Signer, error) {
	pair, err := tls.LoadX509KeyPair(filepath.Join(dir, CACertFile), filepath.Join(dir, CAKeyFile))
	if err != nil {
		return nil, nil, fmt.Errorf("load the CA from %s: %v (create one with `rctl tls ca create --dir %s`)", dir, err, dir)
	}
	cert, err := x509.ParseCertificate(pair.Certificate[0])
	if err != nil {
		return nil, nil, fmt.Errorf("parse %s: %w", filepath.Join(dir, CACertFile), err)
	}
	signer, ok := pair.PrivateKey.(crypto.Signer)
	if !ok || !cert.IsCA {
		return nil, nil, fmt.Errorf("%s is not a CA certificate with a signing key", filepath.Join(dir, CACertFile))
	}
	return cert, signer, nil
}

func writePair(certPath, keyPath string, der []byte, key *ecdsa.PrivateKey) error {
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	if err := writeFile(keyPath, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})); err != nil {
		return err
	}
	return writeFile(certPath, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}))
}

// writeFile writes a new file with mode 0600, refusing to follow or
// replace anything already there.
func writeFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", path, err)
	}
	return f.Close()
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	return n
}
