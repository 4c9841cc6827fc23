package cli

import (
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

func newACLCommand(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "acl",
		Short: "Bootstrap ACLs and manage operators' tokens",
		Long: `Operators authorize with tokens held hashed in the replicated state. A token
has one role:

  reader      status, members, nodes, task get/list/watch, rctl top
  operator    all of that, plus task add and cancel
  management  all of that, plus membership, leadership transfer, snapshots
              and ACLs

Send a token with --token or RCTL_TOKEN. Agents and servers authorize with
their certificates and need no token. Servers started with --insecure check
nothing. The secret is shown once, when the token is created.`,
	}
	cmd.AddCommand(newACLBootstrapCommand(g), newACLTokenCommand(g))
	return cmd
}

func newACLBootstrapCommand(g *globals) *cobra.Command {
	var secretFile string
	cmd := &cobra.Command{
		Use:   "bootstrap",
		Short: "Create the first management token (once per cluster) and print its secret",
		Long: `Create the cluster's first management token. It works once: a second call
is refused with conflict. For automation, --secret-file supplies the secret:
running bootstrap again with the same secret succeeds and changes nothing, so
a playbook can run it every time.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			var a rpc.ACLBootstrapArgs
			if secretFile != "" {
				b, err := os.ReadFile(secretFile)
				if err != nil {
					return usagef("--secret-file: %v", err)
				}
				a.Secret = strings.TrimSpace(string(b))
				if len(a.Secret) < rpc.MinSecretLen {
					return usagef("--secret-file %s holds %d characters; a secret needs at least %d", secretFile, len(a.Secret), rpc.MinSecretLen)
				}
			}
			var reply rpc.ACLTokenReply
			if err := g.call(rpc.MethodACLBootstrap, &a, &reply); err != nil {
				return err
			}
			return printToken(g, &reply)
		},
	}
	cmd.Flags().StringVar(&secretFile, "secret-file", "", "file holding the secret to use (at least 16 characters; default: the server makes one)")
	return cmd
}

func newACLTokenCommand(g *globals) *cobra.Command {
	tok := &cobra.Command{Use: "token", Short: "Create, list and revoke tokens (management)"}
	var role, desc string
	create := &cobra.Command{
		Use:   "create",
		Short: "Create a token and print its secret (shown only this once)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			var reply rpc.ACLTokenReply
			if err := g.call(rpc.MethodACLTokenCreate, &rpc.ACLTokenCreateArgs{Role: role, Description: desc}, &reply); err != nil {
				return err
			}
			return printToken(g, &reply)
		},
	}
	create.Flags().StringVar(&role, "role", "", "reader, operator or management (required)")
	create.Flags().StringVar(&desc, "description", "", "what the token is for, shown in rctl acl token list")
	list := &cobra.Command{
		Use:   "list",
		Short: "List tokens: accessor id, role, description, age (never secrets)",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			var reply rpc.ACLTokenListReply
			if err := g.call(rpc.MethodACLTokenList, &rpc.QueryOptions{}, &reply); err != nil {
				return err
			}
			if g.json() {
				return g.printJSON(reply.Tokens)
			}
			t := newTable(g.stdout, "ACCESSOR", "ROLE", "AGE", "DESCRIPTION")
			for _, k := range reply.Tokens {
				t.row(termsafe.Field(k.AccessorID), termsafe.Field(k.Role), ago(k.CreateTime), termsafe.Field(dash(k.Description)))
			}
			return t.flush()
		},
	}
	revoke := &cobra.Command{
		Use:   "revoke ACCESSOR_ID",
		Short: "Revoke a token: every server refuses it from the moment the revocation commits",
		Args:  exactArgs(1, "ACCESSOR_ID"),
		RunE: func(_ *cobra.Command, args []string) error {
			if err := g.call(rpc.MethodACLTokenRevoke, &rpc.ACLTokenRevokeArgs{AccessorID: args[0]}, nil); err != nil {
				return err
			}
			fmt.Fprintf(g.stdout, "revoked %s\n", termsafe.Field(args[0]))
			return nil
		},
	}
	tok.AddCommand(create, list, revoke)
	return tok
}

func printToken(g *globals, r *rpc.ACLTokenReply) error {
	if g.json() {
		return g.printJSON(r)
	}
	fmt.Fprintf(g.stdout, "accessor_id: %s\nrole:        %s\ncreated:     %s\nsecret:      %s\n",
		termsafe.Field(r.Token.AccessorID), termsafe.Field(r.Token.Role), time.Unix(0, r.Token.CreateTime).UTC().Format(time.RFC3339), termsafe.Field(r.Secret))
	return nil
}
