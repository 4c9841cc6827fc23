package fsm

import (
	"slices"
	"strings"
)

// This file holds the ACL tokens: the type, its validation, the acl_*
// entries (checkX and applyX, as for tasks and nodes) and the reads.
//
// Secrets are never stored. The proposer hashes the bearer secret with
// SHA-256 and puts the lowercase hex digest in the entry; the FSM keeps
// only that hash, indexed for an O(1) lookup when a request presents a
// secret.

// ACL roles, from least to most privileged.
const (
	// ACLReader may read.
	ACLReader = "reader"
	// ACLOperator may read and change tasks and nodes.
	ACLOperator = "operator"
	// ACLManagement may do anything, tokens and cluster membership
	// included.
	ACLManagement = "management"
)

// ACL limits.
const (
	// MaxACLDescriptionLen bounds a token's Description.
	MaxACLDescriptionLen = 256
	// aclSecretHashLen is the length of a hex SHA-256 digest.
	aclSecretHashLen = 64
)

// ValidACLRole reports whether role is one of ACLReader, ACLOperator and
// ACLManagement.
func ValidACLRole(role string) bool {
	return role == ACLReader || role == ACLOperator || role == ACLManagement
}

// ACLToken is an operator's bearer token, without its secret. Like every
// stored object it is never modified once stored.
type ACLToken struct {
	// AccessorID is the token's public id (the charset of other ids).
	AccessorID string `codec:"accessor_id" json:"accessor_id"`
	// SecretHash is the lowercase hex SHA-256 of the secret: 64
	// characters from 0-9 a-f.
	SecretHash string `codec:"secret_hash" json:"secret_hash"`
	// Role is ACLReader, ACLOperator or ACLManagement.
	Role        string `codec:"role" json:"role"`
	Description string `codec:"description" json:"description,omitempty"`
	// CreateTime (unix nanoseconds, the proposer's) and CreateIndex are
	// stamped by Apply from the entry that created the token.
	CreateTime  int64  `codec:"create_time" json:"create_time"`
	CreateIndex uint64 `codec:"create_index" json:"create_index"`
}

// aclTable is the token table. Guarded by FSM.mu like the rest of state.
type aclTable struct {
	tokens map[string]*ACLToken // by AccessorID
	byHash map[string]*ACLToken // by SecretHash; hashes are unique
	// bootstrapIndex is the log index of the accepted acl_bootstrap entry,
	// 0 before. It is never reset: revoking the token it created does not
	// allow a second bootstrap.
	bootstrapIndex uint64
}

func newACLTable() aclTable {
	return aclTable{tokens: make(map[string]*ACLToken), byHash: make(map[string]*ACLToken)}
}

func (a *aclTable) put(t *ACLToken) {
	a.tokens[t.AccessorID] = t
	a.byHash[t.SecretHash] = t
}

func (a *aclTable) sorted() []*ACLToken {
	out := make([]*ACLToken, 0, len(a.tokens))
	for _, t := range a.tokens {
		out = append(out, t)
	}
	slices.SortFunc(out, func(x, y *ACLToken) int { return strings.Compare(x.AccessorID, y.AccessorID) })
	return out
}

// validACLToken validates the token an entry carries, on its own.
func validACLToken(t *ACLToken) *Error {
	if err := checkID("token accessor id", t.AccessorID); err != nil {
		return err
	}
	if err := checkSecretHash(t.SecretHash); err != nil {
		return err
	}
	if !ValidACLRole(t.Role) {
		return invalidf("token role %s is not one of %s, %s, %s", quote(t.Role), ACLReader, ACLOperator, ACLManagement)
	}
	return checkText("token description", t.Description, 0, MaxACLDescriptionLen)
}

// checkSecretHash validates a SecretHash: 64 characters from 0-9 a-f.
func checkSecretHash(h string) *Error {
	const want = "; send the lowercase hex SHA-256 of the secret (64 characters from 0-9 a-f), never the secret"
	if len(h) != aclSecretHashLen {
		return invalidf("token secret hash is %d characters long%s", len(h), want)
	}
	for i := 0; i < len(h); i++ {
		if c := h[i]; !(c >= '0' && c <= '9') && !(c >= 'a' && c <= 'f') {
			return invalidf("token secret hash contains %s%s", charQ(c), want)
		}
	}
	return nil
}

// sameToken reports whether an entry's token has the content of a stored
// one (the stamps CreateTime and CreateIndex aside).
func sameToken(stored, e *ACLToken) bool {
	return stored.AccessorID == e.AccessorID && stored.SecretHash == e.SecretHash &&
		stored.Role == e.Role && stored.Description == e.Description
}

// newToken is the token an accepted bootstrap or create stores.
func newToken(e *ACLToken, now int64, ix uint64) *ACLToken {
	return &ACLToken{
		AccessorID:  e.AccessorID,
		SecretHash:  e.SecretHash,
		Role:        knownRole(e.Role),
		Description: e.Description,
		CreateTime:  now,
		CreateIndex: ix,
	}
}

// knownRole returns the package constant equal to r.
func knownRole(r string) string {
	switch r {
	case ACLReader:
		return ACLReader
	case ACLOperator:
		return ACLOperator
	case ACLManagement:
		return ACLManagement
	}
	return r
}

// checkACLBootstrap validates an acl_bootstrap entry. It returns the
// stored bootstrap token when the entry repeats the bootstrap that
// created it (an idempotent no-op), nil for a first bootstrap.
func (s *state) checkACLBootstrap(e *ACLBootstrapEntry) (old *ACLToken, err *Error) {
	if err := firstErr(validACLToken(&e.Token), checkTime(e.Time)); err != nil {
		return nil, err
	}
	if e.Token.Role != ACLManagement {
		return nil, invalidf("the bootstrap token has role %s; it must have role %s", quote(e.Token.Role), ACLManagement)
	}
	if ix := s.acl.bootstrapIndex; ix != 0 {
		t := s.acl.tokens[e.Token.AccessorID]
		if t != nil && t.CreateIndex == ix && t.SecretHash == e.Token.SecretHash {
			return t, nil // the same bootstrap, re-run: idempotent
		}
		return nil, conflictf("ACLs are already bootstrapped; use a management token to create more tokens (the bootstrap was applied at log index %d)", ix)
	}
	return nil, s.checkTokenUnique(&e.Token)
}

// checkTokenUnique refuses a new token whose AccessorID or SecretHash is
// taken.
func (s *state) checkTokenUnique(t *ACLToken) *Error {
	if s.acl.tokens[t.AccessorID] != nil {
		return conflictf("token %s already exists; use a new accessor id", quote(t.AccessorID))
	}
	if s.acl.byHash[t.SecretHash] != nil {
		return conflictf("another token already has this secret hash; generate a new secret")
	}
	return nil
}

// applyACLBootstrap stores the first management token and marks the
// cluster bootstrapped for good.
func (s *state) applyACLBootstrap(e *ACLBootstrapEntry, ix uint64, res *ApplyResult) bool {
	old, err := s.checkACLBootstrap(e)
	switch {
	case err != nil:
		res.Err = err
		return false
	case old != nil:
		res.Token = old
		return false
	}
	t := newToken(&e.Token, e.Time, ix)
	s.acl.put(t)
	s.acl.bootstrapIndex = ix
	bump(&s.idx.ACL, ix)
	res.Token = t
	return true
}

// checkACLTokenCreate validates an acl_token_create entry. It returns the
// stored token when the same token was already created (a no-op).
func (s *state) checkACLTokenCreate(e *ACLTokenCreateEntry) (old *ACLToken, err *Error) {
	if err := firstErr(validACLToken(&e.Token), checkTime(e.Time)); err != nil {
		return nil, err
	}
	if old := s.acl.tokens[e.Token.AccessorID]; old != nil {
		if !sameToken(old, &e.Token) {
			field := "description"
			switch {
			case old.SecretHash != e.Token.SecretHash:
				field = "secret hash"
			case old.Role != e.Token.Role:
				field = "role"
			}
			return nil, conflictf("token %s already exists with a different %s; use a new accessor id", quote(old.AccessorID), field)
		}
		return old, nil // the same create, resent: idempotent
	}
	return nil, s.checkTokenUnique(&e.Token)
}

// applyACLTokenCreate stores a new token.
func (s *state) applyACLTokenCreate(e *ACLTokenCreateEntry, ix uint64, res *ApplyResult) bool {
	old, err := s.checkACLTokenCreate(e)
	switch {
	case err != nil:
		res.Err = err
		return false
	case old != nil:
		res.Token = old
		return false
	}
	t := newToken(&e.Token, e.Time, ix)
	s.acl.put(t)
	bump(&s.idx.ACL, ix)
	res.Token = t
	return true
}

// checkACLTokenRevoke validates an acl_token_revoke entry and returns the
// token.
func (s *state) checkACLTokenRevoke(e *ACLTokenRevokeEntry) (*ACLToken, *Error) {
	if err := firstErr(checkRef("token accessor id", e.AccessorID), checkTime(e.Time)); err != nil {
		return nil, err
	}
	t := s.acl.tokens[e.AccessorID]
	if t == nil {
		return nil, notFoundf("token %s does not exist", quote(e.AccessorID))
	}
	return t, nil
}

// applyACLTokenRevoke deletes a token; the result carries the token as
// it was.
func (s *state) applyACLTokenRevoke(e *ACLTokenRevokeEntry, ix uint64, res *ApplyResult) bool {
	t, err := s.checkACLTokenRevoke(e)
	if err != nil {
		res.Err = err
		return false
	}
	delete(s.acl.tokens, t.AccessorID)
	delete(s.acl.byHash, t.SecretHash)
	bump(&s.idx.ACL, ix)
	res.Token = t
	return true
}

// ACLTokenBySecretHash returns the token whose SecretHash is hash (the
// lowercase hex SHA-256 of the presented secret), or nil. It is a map
// lookup. Callers compare what they hashed, not the secret: never pass a
// secret here.
func (f *FSM) ACLTokenBySecretHash(hash string) *ACLToken {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.acl.byHash[hash]
}

// ACLToken returns the token with the given accessor id, or nil.
func (f *FSM) ACLToken(accessorID string) *ACLToken {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.acl.tokens[accessorID]
}

// ACLTokens returns every token sorted by AccessorID.
func (f *FSM) ACLTokens() []*ACLToken {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.acl.sorted()
}

// ACLBootstrapped reports whether an acl_bootstrap entry was ever
// accepted. It stays true after the bootstrap token is revoked.
func (f *FSM) ACLBootstrapped() bool {
	f.mu.RLock()
	defer f.mu.RUnlock()
	return f.st.acl.bootstrapIndex != 0
}
