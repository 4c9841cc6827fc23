package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rctl-dev/rctl/internal/pki"
	"github.com/rctl-dev/rctl/internal/termsafe"
	"github.com/rctl-dev/rctl/rpc"
)

// Version is set at build time by goreleaser (-ldflags -X).
var Version = "dev"

// Exit codes.
const (
	ExitOK    = 0
	ExitError = 1
	ExitUsage = 2
	// ExitUnhealthy: a check ran and found the cluster not as asked
	// (rctl operator health).
	ExitUnhealthy = 3
)

// exitError ends the command with its own exit status and one line,
// without the usage hint: the command ran as asked and reports a verdict.
type exitError struct {
	code int
	err  error
}

func (e exitError) Error() string { return e.err.Error() }
func (e exitError) Unwrap() error { return e.err }

// usageError marks a mistake in how the command was called (exit 2).
type usageError struct{ err error }

func (u usageError) Error() string { return u.err.Error() }
func (u usageError) Unwrap() error { return u.err }

func usagef(format string, args ...any) error { return usageError{fmt.Errorf(format, args...)} }

// globals are the flags every client command shares.
type globals struct {
	addr    string
	output  string
	timeout time.Duration
	tlsFile pki.Files
	token   string
	tls     *pki.Store // loaded from tlsFile before a command runs; nil: plaintext
	stdout  io.Writer
	stderr  io.Writer
}

func (g *globals) addrs() []string {
	var out []string
	for _, a := range strings.Split(g.addr, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	return out
}

// credentials are what client commands present to servers.
func (g *globals) credentials() rpc.Credentials { return rpc.Credentials{TLS: g.tls, Token: g.token} }

func (g *globals) client() *rpc.Client { return rpc.NewClientWith(g.addrs(), g.credentials()) }

func (g *globals) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), g.timeout)
}

// call makes one RPC with failover across --addr, bounded by --timeout.
func (g *globals) call(method string, args, reply any) error {
	ctx, cancel := g.ctx()
	defer cancel()
	c := g.client()
	defer c.Close()
	return c.Call(ctx, method, args, reply)
}

func (g *globals) json() bool { return g.output == "json" }

func (g *globals) printJSON(v any) error {
	enc := json.NewEncoder(g.stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// NewRootCommand builds the whole command tree writing to stdout/stderr.
func NewRootCommand(stdout, stderr io.Writer) *cobra.Command {
	g := &globals{stdout: stdout, stderr: stderr}
	root := &cobra.Command{
		Use:   "rctl",
		Short: "rctl: a fault-tolerant control plane for a fleet of VMs",
		Long: `rctl keeps one Global Task Manifest (tasks, nodes, assignments) consistent
across a Raft cluster of servers spread over clouds. The same binary is the
server (rctl serve), a local development cluster (rctl dev) and the operator
tool (task, status, members, operator, snapshot).

Client commands talk to any server: writes are forwarded to the leader and
reads are linearizable unless --stale is given. Every flag can also be set
with an environment variable RCTL_<FLAG>, e.g. RCTL_ADDR=10.0.1.5:50051.

Exit codes: 0 ok, 1 error, 2 usage.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       Version,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := applyEnv(cmd); err != nil {
				return err
			}
			if g.output != "table" && g.output != "json" {
				return usagef("-o %q is not an output format; use table or json", g.output)
			}
			if g.timeout <= 0 {
				return usagef("--timeout must be positive, got %s", g.timeout)
			}
			if err := g.tlsFile.Check(); err != nil {
				return usageError{err}
			}
			if !g.tlsFile.Empty() {
				st, err := pki.Load(g.tlsFile)
				if err != nil {
					return usageError{err}
				}
				g.tls = st
			}
			return nil
		},
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	pf := root.PersistentFlags()
	pf.StringVar(&g.addr, "addr", "127.0.0.1:50051", "server addresses host:port[,host:port...]; the client moves on to the next one when one is down (env RCTL_ADDR)")
	pf.StringVarP(&g.output, "output", "o", "table", "output format: table or json (json field names are snake_case, documented in docs/cli.md)")
	pf.DurationVar(&g.timeout, "timeout", 15*time.Second, "how long a command may take, failovers included")
	pf.StringVar(&g.tlsFile.CA, "tls-ca", "", "PEM file of the cluster's CA: servers must present a certificate it signed (env RCTL_TLS_CA; with --tls-cert and --tls-key; see docs/security.md)")
	pf.StringVar(&g.tlsFile.Cert, "tls-cert", "", "PEM certificate this process presents, made by `rctl tls cert create` (env RCTL_TLS_CERT)")
	pf.StringVar(&g.tlsFile.Key, "tls-key", "", "PEM private key of --tls-cert (env RCTL_TLS_KEY)")
	pf.StringVar(&g.token, "token", "", "ACL token secret sent with every call: reader, operator or management rights (env RCTL_TOKEN; see rctl acl)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })

	root.AddCommand(
		newServeCommand(g),
		newDevCommand(g),
		newTaskCommand(g),
		newStatusCommand(g),
		newMembersCommand(g),
		newNodesCommand(g),
		newOperatorCommand(g),
		newSnapshotCommand(g),
		newTopCommand(g),
		newTLSCommand(g),
		newACLCommand(g),
		newVersionCommand(g),
	)
	return root
}

// applyEnv fills every flag that was not given on the command line from
// RCTL_<FLAG> (upper case, dashes as underscores).
func applyEnv(cmd *cobra.Command) error {
	var err error
	set := func(f *pflag.Flag) {
		if err != nil || f.Changed {
			return
		}
		name := "RCTL_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if serr := f.Value.Set(v); serr != nil {
				err = usagef("%s=%q: %v", name, v, serr)
			}
			f.Changed = true
		}
	}
	cmd.Flags().VisitAll(set)
	cmd.InheritedFlags().VisitAll(set)
	return err
}

// Execute runs the CLI on os.Args and returns the exit code.
func Execute() int {
	return Run(os.Args[1:], os.Stdout, os.Stderr)
}

// Run runs the CLI with args and returns the exit code. Errors are printed
// as one line on stderr.
func Run(args []string, stdout, stderr io.Writer) int {
	root := NewRootCommand(stdout, stderr)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	var xe exitError
	if errors.As(err, &xe) {
		fmt.Fprintf(stderr, "rctl: %s\n", termsafe.Field(err.Error()))
		return xe.code
	}
	var ue usageError
	if errors.As(err, &ue) || isCobraUsage(err) {
		fmt.Fprintf(stderr, "rctl: %v (see rctl --help)\n", err)
		return ExitUsage
	}
	var re *rpc.Error
	if errors.As(err, &re) {
		fmt.Fprintf(stderr, "rctl: %s [%s]\n", termsafe.Field(re.Message), termsafe.Field(string(re.Code)))
		return ExitError
	}
	fmt.Fprintf(stderr, "rctl: %s\n", termsafe.Field(err.Error()))
	return ExitError
}

func isCobraUsage(err error) bool {
	m := err.Error()
	return strings.HasPrefix(m, "unknown command") || strings.HasPrefix(m, "unknown flag") ||
		strings.HasPrefix(m, "accepts ") || strings.HasPrefix(m, "requires ") ||
		strings.Contains(m, "flag needs an argument") || strings.HasPrefix(m, "invalid argument")
}

// exactArgs is cobra.ExactArgs with usage errors that name the arguments.
func exactArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("expected %s, got %d argument(s)", names, len(args))
		}
		return nil
	}
}

func maxArgs(n int, names string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) > n {
			return usagef("expected at most %s, got %d arguments", names, len(args))
		}
		return nil
	}
}

func newVersionCommand(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print the rctl version",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(*cobra.Command, []string) error {
			fmt.Fprintln(g.stdout, "rctl", Version)
			return nil
		},
	}
}

// compactJSON writes v as one JSON line (for streams such as task watch).
func compactJSON(g *globals, v any) error {
	return json.NewEncoder(g.stdout).Encode(v)
}
