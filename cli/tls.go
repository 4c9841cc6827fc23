package cli

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/internal/pki"
)

func newTLSCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "tls",
		Short: "Create the cluster's CA and the certificates of servers, agents and operators",
		Long: `Certificates for mutual TLS on the servers' one port. Each certificate names
one role and one name (URI SAN spiffe://rctl/<role>/<name>):

  server    a control-plane server; the name is its --node-id. Only server
            certificates may speak Raft, join, or act as a server.
  agent     a node agent; the name is its node id, and the agent may act only
            for that node.
  operator  a person or script; rights come from its ACL token (rctl acl).

Every file is written with mode 0600 and never overwritten. Keep ca.key off
the servers: it can mint any identity. docs/security.md walks through it.`,
	}
	cmd.AddCommand(newTLSCACommand(g), newTLSCertCommand(g))
	return cmd
}

func newTLSCACommand(g *globals) *cobra.Command {
	ca := &cobra.Command{Use: "ca", Short: "Manage the cluster's certificate authority"}
	var dir string
	var days int
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a new CA: DIR/ca.crt and DIR/ca.key",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if dir == "" {
				return usagef("--dir is required")
			}
			if days <= 0 {
				return usagef("--days must be positive, got %d", days)
			}
			if err := pki.CreateCA(dir, time.Duration(days)*24*time.Hour); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "created %s/%s and %s/%s (keep ca.key secret)\n", dir, pki.CACertFile, dir, pki.CAKeyFile)
			return nil
		},
	}
	create.Flags().StringVar(&dir, "dir", "", "directory to write ca.crt and ca.key into (created 0700 if missing; existing files are never overwritten)")
	create.Flags().IntVar(&days, "days", int(pki.CAValidity/(24*time.Hour)), "validity of the CA certificate in days")
	ca.AddCommand(create)
	return ca
}

func newTLSCertCommand(g *globals) *cobra.Command {
	cert := &cobra.Command{Use: "cert", Short: "Create certificates signed by the cluster's CA"}
	var req pki.CertRequest
	var role string
	var days int
	create := &cobra.Command{
		Use:   "create",
		Short: "Create OUT/NAME.crt and OUT/NAME.key for a server, agent or operator",
		Example: `  rctl tls cert create --ca-dir ca --role server --name aws-1 --host 10.0.1.5 --out certs
  rctl tls cert create --ca-dir ca --role agent --name worker-17 --out certs
  rctl tls cert create --ca-dir ca --role operator --name alice --out certs`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			if req.CADir == "" || role == "" || req.Name == "" || req.OutDir == "" {
				return usagef("--ca-dir, --role, --name and --out are required")
			}
			r, err := pki.ParseRole(role)
			if err != nil {
				return usageError{err}
			}
			if days <= 0 {
				return usagef("--days must be positive, got %d", days)
			}
			req.Role, req.Validity = r, time.Duration(days)*24*time.Hour
			crt, key, err := pki.CreateCert(req)
			if err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "created %s and %s (%s %s)\n", crt, key, req.Role, req.Name)
			return nil
		},
	}
	fl := create.Flags()
	fl.StringVar(&req.CADir, "ca-dir", "", "directory holding ca.crt and ca.key (from rctl tls ca create)")
	fl.StringVar(&role, "role", "", "server, agent or operator")
	fl.StringVar(&req.Name, "name", "", "the server's node id, the agent's node id, or the operator's name")
	fl.StringSliceVar(&req.Hosts, "host", nil, "servers only: an IP address or DNS name the server is reached at, added as a SAN (repeatable)")
	fl.StringVar(&req.OutDir, "out", "", "directory to write NAME.crt and NAME.key into (created 0700 if missing)")
	fl.IntVar(&days, "days", int(pki.CertValidity/(24*time.Hour)), "validity in days (capped at the CA's own expiry)")
	cert.AddCommand(create)
	return cert
}
