package rpc

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"time"

	"github.com/rctl-dev/rctl/fsm"
)

// ACL methods: tokens for operators, held hashed in the replicated state.
const (
	MethodACLBootstrap   = "ACL.Bootstrap"
	MethodACLTokenCreate = "ACL.TokenCreate"
	MethodACLTokenList   = "ACL.TokenList"
	MethodACLTokenRevoke = "ACL.TokenRevoke"
)

// MinSecretLen is the shortest secret ACL.Bootstrap accepts from a caller.
const MinSecretLen = 16

// ACLBootstrapArgs creates the first management token. Secret is
// optional: empty lets the server make one.
type ACLBootstrapArgs struct {
	Secret string `codec:"secret" json:"secret,omitempty"`
}

// ACLTokenCreateArgs creates a token. Secret and AccessorID are
// optional: left empty, the server makes both.
type ACLTokenCreateArgs struct {
	Role        string `codec:"role" json:"role"`
	Description string `codec:"description" json:"description"`
	Secret      string `codec:"secret" json:"secret,omitempty"`
	AccessorID  string `codec:"accessor_id" json:"accessor_id,omitempty"`
}

// ACLTokenRevokeArgs revokes a token by accessor id.
type ACLTokenRevokeArgs struct {
	AccessorID string `codec:"accessor_id" json:"accessor_id"`
}

// ACLTokenInfo is a token as listed: never its secret or its hash.
type ACLTokenInfo struct {
	AccessorID  string `codec:"accessor_id" json:"accessor_id"`
	Role        string `codec:"role" json:"role"`
	Description string `codec:"description" json:"description"`
	CreateTime  int64  `codec:"create_time" json:"create_time"`
	CreateIndex uint64 `codec:"create_index" json:"create_index"`
}

// ACLTokenReply answers Bootstrap and TokenCreate: the only time the
// secret is ever shown.
type ACLTokenReply struct {
	Token  ACLTokenInfo `codec:"token" json:"token"`
	Secret string       `codec:"secret" json:"secret"`
	Index  uint64       `codec:"index" json:"index"`
}

// ACLTokenListReply lists tokens.
type ACLTokenListReply struct {
	Tokens []ACLTokenInfo `codec:"tokens" json:"tokens"`
	QueryMeta
}

func tokenInfo(t *fsm.ACLToken) ACLTokenInfo {
	return ACLTokenInfo{AccessorID: t.AccessorID, Role: t.Role, Description: t.Description,
		CreateTime: t.CreateTime, CreateIndex: t.CreateIndex}
}

// newSecret returns 32 random bytes as hex.
func newSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// accessorFor derives the accessor id of a bootstrap token from its
// secret, so that re-running bootstrap with the same secret is the same
// entry (idempotent); other tokens get random accessors.
func accessorFor(secret string) string { return "a-" + HashSecret("accessor:" + secret)[:16] }

func newAccessor() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "a-" + hex.EncodeToString(b[:])
}

func (s *Server) aclBootstrap(ctx context.Context, req *Request) (any, error) {
	var a ACLBootstrapArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.Secret == "" {
		// Decided once, by the first server that sees the call, so a
		// forwarded call keeps its secret.
		a.Secret = newSecret()
		raw, err := encode(&a)
		if err != nil {
			return nil, err
		}
		req.Args = raw
	}
	if len(a.Secret) < MinSecretLen || len(a.Secret) > 256 {
		return nil, Errorf(CodeInvalidArgument, "a bootstrap secret must be %d to 256 characters, got %d", MinSecretLen, len(a.Secret))
	}
	var reply ACLTokenReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	tok := fsm.ACLToken{AccessorID: accessorFor(a.Secret), SecretHash: HashSecret(a.Secret),
		Role: fsm.ACLManagement, Description: "bootstrap management token", CreateTime: time.Now().UnixNano()}
	res, err := s.apply(ctx, &fsm.ACLBootstrapEntry{Token: tok, Time: tok.CreateTime})
	if err != nil {
		return nil, err
	}
	s.log.Info("ACLs bootstrapped", "event", "acl_bootstrap", "accessor_id", res.Token.AccessorID)
	return &ACLTokenReply{Token: tokenInfo(res.Token), Secret: a.Secret, Index: res.Index}, nil
}

func (s *Server) aclTokenCreate(ctx context.Context, req *Request) (any, error) {
	var a ACLTokenCreateArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if !fsm.ValidACLRole(a.Role) {
		return nil, Errorf(CodeInvalidArgument, "token role %q is unknown; use reader, operator or management", a.Role)
	}
	if a.Secret == "" {
		// Decided once, by the first server that sees the call, so a
		// forwarded call keeps them.
		a.Secret, a.AccessorID = newSecret(), newAccessor()
		raw, err := encode(&a)
		if err != nil {
			return nil, err
		}
		req.Args = raw
	}
	if len(a.Secret) < MinSecretLen || len(a.Secret) > 256 || a.AccessorID == "" {
		return nil, Errorf(CodeInvalidArgument, "a token secret must be %d to 256 characters and come with an accessor_id", MinSecretLen)
	}
	var reply ACLTokenReply
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	tok := fsm.ACLToken{AccessorID: a.AccessorID, SecretHash: HashSecret(a.Secret), Role: a.Role,
		Description: a.Description, CreateTime: time.Now().UnixNano()}
	res, err := s.apply(ctx, &fsm.ACLTokenCreateEntry{Token: tok, Time: tok.CreateTime})
	if err != nil {
		return nil, err
	}
	s.log.Info("ACL token created", "event", "acl_token_create", "accessor_id", a.AccessorID, "role", a.Role)
	return &ACLTokenReply{Token: tokenInfo(res.Token), Secret: a.Secret, Index: res.Index}, nil
}

func (s *Server) aclTokenList(ctx context.Context, req *Request) (any, error) {
	var q QueryOptions
	if err := args(req, &q); err != nil {
		return nil, err
	}
	var reply ACLTokenListReply
	err := s.blockingRead(ctx, req, q, &reply, &reply.QueryMeta, func() uint64 {
		reply.Tokens = []ACLTokenInfo{}
		for _, t := range s.fsm.ACLTokens() {
			reply.Tokens = append(reply.Tokens, tokenInfo(t))
		}
		return s.fsm.Indexes().ACL
	})
	if err != nil {
		return nil, err
	}
	return &reply, nil
}

func (s *Server) aclTokenRevoke(ctx context.Context, req *Request) (any, error) {
	var a ACLTokenRevokeArgs
	if err := args(req, &a); err != nil {
		return nil, err
	}
	if a.AccessorID == "" {
		return nil, Errorf(CodeInvalidArgument, "accessor_id is required (see `rctl acl token list`)")
	}
	var reply Empty
	if done, err := s.forward(ctx, req, &reply); done {
		return &reply, err
	}
	res, err := s.apply(ctx, &fsm.ACLTokenRevokeEntry{AccessorID: a.AccessorID, Time: time.Now().UnixNano()})
	if err != nil {
		return nil, err
	}
	s.log.Info("ACL token revoked", "event", "acl_token_revoke", "accessor_id", a.AccessorID)
	return &Empty{Index: res.Index}, nil
}
