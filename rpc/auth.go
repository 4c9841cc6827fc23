package rpc

import (
	"bufio"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"time"

	"github.com/rctl-dev/rctl/fsm"
	"github.com/rctl-dev/rctl/internal/pki"
)

// Authorization. Every method declares who may call it (default deny: a
// method without a declaration cannot be registered). Who a caller is
// comes from two places:
//
//   - the certificate of its TLS connection (the role and name the CA
//     signed: server, agent or operator), and
//   - for operators, the ACL token sent in the request envelope, looked
//     up by its SHA-256 in the replicated state.
//
// Servers hold every right (they can write the raft log anyway). An agent
// certificate acts only for its own node. Tokens grade operators:
// reader < operator < management. A server started with --insecure
// serves plaintext and checks nothing: every caller holds every right.
// docs/security.md has the table.

// level is the token role a method needs.
type level int

const (
	levelNone       level = iota // no token grants it
	levelReader                  // reads of the manifest and the cluster
	levelOperator                // task writes
	levelManagement              // membership, leadership, snapshots, ACLs
)

func tokenLevel(role string) level {
	switch role {
	case fsm.ACLReader:
		return levelReader
	case fsm.ACLOperator:
		return levelOperator
	case fsm.ACLManagement:
		return levelManagement
	}
	return levelNone
}

// access declares who may call a method.
type access struct {
	// token is the least token role that may call (levelNone: none).
	token level
	// agent lets agent certificates call; the handler then checks that
	// the node the call is about is the certificate's (authorizeNode).
	agent bool
	// bootstrap lets any certificate call (ACL.Bootstrap only: once ACLs
	// are bootstrapped only the original secret succeeds again, which
	// proves its caller already holds it).
	bootstrap bool
	// serverOnly: only server certificates may call (not even management
	// tokens): joining, and servers' own labels.
	serverOnly bool
}

// caller is who sent the call being served.
type caller struct {
	insecure  bool         // the server runs --insecure: everyone may do everything
	id        pki.Identity // from the connection's certificate
	token     *fsm.ACLToken
	tokenSent bool // the request carried a token secret (token: it was found)
}

type callerKey struct{}

func callerOf(ctx context.Context) *caller {
	if c, ok := ctx.Value(callerKey{}).(*caller); ok {
		return c
	}
	return &caller{} // nobody: refused everything
}

// trusted reports whether the caller holds every right.
func (c *caller) trusted() bool { return c.insecure || c.id.Role == pki.RoleServer }

// HashSecret is how a token secret is stored and looked up: lowercase
// hex SHA-256.
func HashSecret(secret string) string {
	h := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(h[:])
}

// authorize decides whether c may call a method declared with a. A
// refusal is permission_denied with one sentence saying what was missing.
func (s *Server) authorize(c *caller, method string, a access) error {
	if c.trusted() {
		return nil
	}
	if a.serverOnly {
		return Errorf(CodePermissionDenied, "%s needs a server certificate; this connection presents %s", method, c.id)
	}
	if a.agent && c.id.Role == pki.RoleAgent {
		return nil // the handler checks the node
	}
	if a.bootstrap && c.id.Role != "" {
		return nil
	}
	if a.token == levelNone {
		return Errorf(CodePermissionDenied, "%s is not open to %s", method, c.id)
	}
	if c.token == nil {
		if c.tokenSent {
			if err := s.notCaughtUp(); err != nil {
				return err
			}
		}
		return Errorf(CodePermissionDenied, "%s needs an ACL token with the %s role; pass --token or RCTL_TOKEN", method, levelName(a.token))
	}
	if tokenLevel(c.token.Role) < a.token {
		return Errorf(CodePermissionDenied, "%s needs the %s role; token %s has %s", method, levelName(a.token), c.token.AccessorID, c.token.Role)
	}
	return nil
}

func levelName(l level) string {
	switch l {
	case levelReader:
		return fsm.ACLReader
	case levelOperator:
		return fsm.ACLOperator
	case levelManagement:
		return fsm.ACLManagement
	}
	return "none"
}

// authorizeNode is the check of methods open to agents: an agent
// certificate may act only for its own node. Everyone else who got past
// authorize may act for any node.
func authorizeNode(ctx context.Context, method, nodeID string) error {
	c := callerOf(ctx)
	if c.trusted() || c.id.Role != pki.RoleAgent {
		return nil
	}
	if c.id.Name != nodeID {
		return Errorf(CodePermissionDenied, "%s: agent certificate %s may act only for node %s, not %s", method, c.id.Name, c.id.Name, nodeID)
	}
	return nil
}

// authorizeServerID is the check of methods only servers call about
// themselves (joining, their labels): a server certificate speaks only
// for its own node id.
func authorizeServerID(ctx context.Context, method, serverID string) error {
	c := callerOf(ctx)
	if c.insecure || (c.id.Role == pki.RoleServer && c.id.Name == serverID) {
		return nil
	}
	return Errorf(CodePermissionDenied, "%s: %s may not act for server %s", method, c.id, serverID)
}

// resolveCaller builds the caller of one request on a connection whose
// peer is id.
func (s *Server) resolveCaller(id pki.Identity, req *Request) *caller {
	c := &caller{insecure: s.cfg.Insecure, id: id}
	if c.insecure {
		return c
	}
	if req.Token != "" {
		c.tokenSent = true
		c.token = s.lookupToken(HashSecret(req.Token))
	}
	return c
}

// notCaughtUp is the unavailable error for a token this server does not
// know while its copy of the manifest may be behind the leader's: it
// follows no known leader, has not heard the commit index yet (a restart),
// or has not applied all of it. The token may have been created after
// what it has; another server, or this one a moment later, knows. nil
// when the server is caught up: an unknown token is then refused.
func (s *Server) notCaughtUp() error {
	st := s.b.RaftState()
	if st.State == "leader" {
		return nil
	}
	if addr, _ := s.leader(); addr != "" && st.CommitIndex > 0 && st.AppliedIndex >= st.CommitIndex {
		return nil
	}
	return Errorf(CodeUnavailable, "server %s has not caught up with the leader (applied %d of %d known committed entries) and may not know this token yet; retry, here or on another server",
		s.b.Self().ID, st.AppliedIndex, st.CommitIndex)
}

// tokenWait is how long a server waits for an unknown token to appear in
// its copy of the manifest: a token created a moment ago through the
// leader may not have been applied here yet. An unknown secret therefore
// costs its sender this long before the refusal.
const tokenWait = 500 * time.Millisecond

// lookupToken finds a token by hash, waiting up to tokenWait for the
// local state to change when it is not there yet.
func (s *Server) lookupToken(hash string) *fsm.ACLToken {
	var timer *time.Timer
	for {
		watch := s.fsm.WatchCh()
		if t := s.fsm.ACLTokenBySecretHash(hash); t != nil {
			return t
		}
		if timer == nil {
			timer = time.NewTimer(tokenWait)
			defer timer.Stop()
		}
		select {
		case <-watch:
		case <-timer.C:
			return nil
		}
	}
}

// Credentials are what a client presents to servers: its TLS material
// (nil: plaintext, for servers started with --insecure) and its ACL token.
type Credentials struct {
	TLS   *pki.Store
	Token string
	// Dial opens the TCP connection under TLS (default DialTCP); tests
	// inject network faults here.
	Dial DialFunc
}

// Dialer returns the DialFunc for these credentials: TCP, then, with TLS
// material, a handshake that verifies the server's certificate and role.
func (c Credentials) Dialer() DialFunc {
	dial := c.Dial
	if dial == nil {
		dial = DialTCP
	}
	if c.TLS == nil {
		return dial
	}
	store := c.TLS
	return func(ctx context.Context, addr string) (net.Conn, error) {
		nc, err := dial(ctx, addr)
		if err != nil {
			return nil, err
		}
		return ClientHandshake(ctx, nc, store)
	}
}

// ClientHandshake runs the client side of a TLS handshake on nc with the
// material current in store, bounded by ctx and pki.HandshakeTimeout.
func ClientHandshake(ctx context.Context, nc net.Conn, store *pki.Store) (net.Conn, error) {
	hctx, cancel := context.WithTimeout(ctx, pki.HandshakeTimeout)
	defer cancel()
	tc := tls.Client(nc, store.ClientConfig())
	if err := tc.HandshakeContext(hctx); err != nil {
		nc.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", nc.RemoteAddr(), err)
	}
	return tc, nil
}

// plaintextRefusalDeadline bounds everything RefusePlaintext does with a
// connection: reading the first request and answering it.
const plaintextRefusalDeadline = 5 * time.Second

// RefusePlaintext answers a plaintext RPC connection to a server that
// requires TLS: it reads the first request (at most 64 KiB, within a few
// seconds), answers it with permission_denied saying why, and closes c.
func RefusePlaintext(c net.Conn, self string) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(plaintextRefusalDeadline))
	var req Request
	if err := readFrame(bufio.NewReader(io.LimitReader(c, 64<<10)), &req); err != nil {
		return
	}
	_ = writeFrame(c, handle, &Response{Seq: req.Seq, Error: Errorf(CodePermissionDenied,
		"server %s requires mutual TLS: pass --tls-ca, --tls-cert and --tls-key (docs/security.md)", self)})
}

// AuthorizeToken decides a request that arrives outside the RPC port
// (the metrics listener, cluster/metrics.go) by its ACL token alone, with
// the RPC side's rules: an --insecure server allows everything; otherwise
// secret must be a token of at least role (reader, operator or
// management), looked up by its hash as for RPC calls (an unknown secret
// costs its sender up to 500 ms). Before ACLs are bootstrapped no token
// exists, so every secret is refused, as on the RPC side. A refusal is a
// permission_denied *Error whose sentence says what was missing.
func (s *Server) AuthorizeToken(secret, role string) error {
	if s.cfg.Insecure {
		return nil
	}
	need := tokenLevel(role)
	if need == levelNone {
		return Errorf(CodeInternal, "unknown ACL role %q", role)
	}
	if secret == "" {
		return Errorf(CodePermissionDenied, "an ACL token with the %s role (or higher) is required: send Authorization: Bearer <secret>", role)
	}
	t := s.lookupToken(HashSecret(secret))
	switch {
	case t == nil && !s.fsm.ACLBootstrapped():
		return Errorf(CodePermissionDenied, "ACLs are not bootstrapped yet, so no token is valid: run rctl acl bootstrap, then rctl acl token create --role %s", role)
	case t == nil:
		if err := s.notCaughtUp(); err != nil {
			return err
		}
		return Errorf(CodePermissionDenied, "the ACL token is unknown or revoked")
	case tokenLevel(t.Role) < need:
		return Errorf(CodePermissionDenied, "the %s role is required; token %s has %s", role, t.AccessorID, t.Role)
	}
	return nil
}
