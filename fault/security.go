//go:build linux

package fault

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/rpc"
)

// The harness runs clusters as they run in production: mutual TLS on every
// connection, an ACL token for the workload's clients (unless
// ClusterConfig.Insecure). This file makes the certificates and
// bootstraps ACLs.
//
//   - every server gets a server certificate for its name and address;
//   - every agent an agent certificate for its node;
//   - the observer ("ops", the harness's own view) a server certificate
//     named "ops": it needs no token;
//   - workload clients an operator certificate and the bootstrap
//     (management) token, which the harness bootstraps once a leader is up.

// clusterPKI is the harness's certificate material.
type clusterPKI struct {
	caDir    string
	observer *pki.Store
	operator *pki.Store
	cliFiles pki.Files // the operator certificate's files, for CLI processes
	secret   string
	ready    chan struct{} // closed once ACLs are bootstrapped
}

func newClusterPKI(dir string) (*clusterPKI, error) {
	p := &clusterPKI{caDir: filepath.Join(dir, "pki", "ca"), ready: make(chan struct{})}
	if err := pki.CreateCA(p.caDir, 0); err != nil {
		return nil, err
	}
	var err error
	if p.observer, err = p.load(pki.RoleServer, "ops", nil); err != nil {
		return nil, err
	}
	if p.cliFiles, err = p.files(pki.RoleOperator, "workload", nil); err != nil {
		return nil, err
	}
	if p.operator, err = pki.Load(p.cliFiles); err != nil {
		return nil, err
	}
	var b [24]byte
	_, _ = rand.Read(b[:])
	p.secret = hex.EncodeToString(b[:])
	return p, nil
}

// files issues a certificate and returns its files.
func (p *clusterPKI) files(role pki.Role, name string, hosts []string) (pki.Files, error) {
	out := filepath.Join(filepath.Dir(p.caDir), string(role)+"s")
	crt, key, err := pki.CreateCert(pki.CertRequest{CADir: p.caDir, Role: role, Name: name, Hosts: hosts, OutDir: out})
	if err != nil {
		return pki.Files{}, err
	}
	return pki.Files{CA: filepath.Join(p.caDir, pki.CACertFile), Cert: crt, Key: key}, nil
}

func (p *clusterPKI) load(role pki.Role, name string, hosts []string) (*pki.Store, error) {
	f, err := p.files(role, name, hosts)
	if err != nil {
		return nil, err
	}
	return pki.Load(f)
}

// flags issues a certificate and returns the --tls-* flags naming it.
func (p *clusterPKI) flags(role pki.Role, name string, hosts ...string) ([]string, error) {
	f, err := p.files(role, name, hosts)
	if err != nil {
		return nil, err
	}
	return []string{"--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key}, nil
}

// bootstrapACL bootstraps ACLs through the observer until it succeeds
// (the same secret every time: a retry is idempotent) or done closes.
func (c *Cluster) bootstrapACL(done <-chan struct{}) {
	for {
		for _, sv := range c.Servers {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := c.ops.Call(ctx, sv.Addr, rpc.MethodACLBootstrap, &rpc.ACLBootstrapArgs{Secret: c.pki.secret}, nil)
			cancel()
			if err == nil {
				close(c.pki.ready)
				return
			}
		}
		select {
		case <-done:
			return
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// WaitACL waits until the harness has bootstrapped ACLs (a no-op with
// Insecure), so that every server has applied the token before a test
// cuts the network: a server that missed it would refuse the workload's
// calls. StartCluster calls it; tests that start servers themselves
// (NoStart) get the same wait on their clients' first call.
func (c *Cluster) WaitACL() {
	c.T.Helper()
	if c.pki == nil {
		return
	}
	select {
	case <-c.pki.ready:
	case <-time.After(90 * time.Second):
		c.T.Fatal("fault: ACLs were not bootstrapped within 90 s of the start")
	}
	// Every running server has applied the bootstrap once it answers a
	// call with the token itself.
	for _, sv := range c.Servers {
		if !sv.Running() {
			continue
		}
		cred := c.clientCredentials(c.Net.Observer())
		pool := rpc.NewPoolWith(cred)
		deadline := time.Now().Add(30 * time.Second)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err := pool.Call(ctx, sv.Addr, rpc.MethodStatus, &rpc.StatusArgs{}, nil)
			cancel()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				pool.Close()
				c.T.Fatalf("fault: %s does not accept the bootstrapped token: %v", sv.Name, err)
			}
			time.Sleep(50 * time.Millisecond)
		}
		pool.Close()
	}
}

// opsCredentials are the observer's: a server certificate, or plaintext.
func (c *Cluster) opsCredentials() rpc.Credentials {
	if c.pki == nil {
		return rpc.Credentials{Dial: c.Net.Observer().Dial}
	}
	return rpc.Credentials{TLS: c.pki.observer, Dial: c.Net.Observer().Dial}
}

// clientCredentials are a workload client's in node n: an operator
// certificate and the management token.
func (c *Cluster) clientCredentials(n *Node) rpc.Credentials {
	if c.pki == nil {
		return rpc.Credentials{Dial: n.Dial}
	}
	return rpc.Credentials{TLS: c.pki.operator, Token: c.pki.secret, Dial: n.Dial}
}

// CLI returns the rctl command line as an operator runs it from the named
// client namespace: `rctl ARGS --addr ADDRS`, with the workload's
// operator certificate and the management token (in RCTL_TOKEN), or
// plaintext with Insecure. The caller starts it.
func (c *Cluster) CLI(node string, addrs []string, args ...string) *exec.Cmd {
	c.T.Helper()
	n := c.Net.Node(node)
	if n == nil {
		c.T.Fatalf("fault: no node %q", node)
	}
	args = append(args, "--addr", strings.Join(addrs, ","))
	env := os.Environ()
	if c.pki != nil {
		f := c.pki.cliFiles
		args = append(args, "--tls-ca", f.CA, "--tls-cert", f.Cert, "--tls-key", f.Key)
		env = append(env, "RCTL_TOKEN="+c.pki.secret)
	}
	cmd := n.Netns.Command(c.cfg.Bin, args...)
	cmd.Env = env
	return cmd
}
