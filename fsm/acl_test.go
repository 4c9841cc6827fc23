package fsm

import (
	"bytes"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
)

// Every case of this file runs through runCases, so it also checks that
// Check returns what Apply then returns and changes nothing.

func TestACLBootstrap(t *testing.T) {
	boot := func(id, secret string, mod func(e *ACLBootstrapEntry)) func(h *harness) any {
		return func(h *harness) any {
			e := h.bootstrapE(id, secret)
			if mod != nil {
				mod(e)
			}
			return e
		}
	}
	bootstrapped := func(h *harness) { h.ok(h.bootstrapE("root", "root-secret")) }
	wantConflict := func(t *testing.T, h *harness, res *ApplyResult) {
		if !strings.HasPrefix(res.Err.Error(), "ACLs are already bootstrapped; ") {
			t.Fatalf("message %q", res.Err)
		}
		if !h.f.ACLBootstrapped() {
			t.Fatal("ACLBootstrapped() = false after a bootstrap")
		}
	}
	runCases(t, []applyCase{
		{name: "first bootstrap creates a management token", entry: boot("root", "root-secret", func(e *ACLBootstrapEntry) {
			e.Token.CreateTime, e.Token.CreateIndex = 5, 5 // ignored: Apply stamps them
		}), tables: []string{"acl"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				tk := h.f.ACLToken("root")
				if tk == nil || res.Token != tk || tk.Role != ACLManagement || tk.SecretHash != secretHash("root-secret") ||
					tk.CreateIndex != h.index || tk.CreateTime != h.now || tk.Description != "token root" {
					t.Fatalf("stored token %+v, result %+v", tk, res.Token)
				}
				if !h.f.ACLBootstrapped() || h.f.ACLTokenBySecretHash(secretHash("root-secret")) != tk {
					t.Fatal("bootstrap not visible through the reads")
				}
			}},
		{name: "bootstrap twice is refused", setup: bootstrapped, entry: boot("root2", "other-secret", nil), kind: ErrConflict, check: wantConflict},
		{name: "bootstrap again with the same secret is a no-op", setup: bootstrapped, entry: boot("root", "root-secret", func(e *ACLBootstrapEntry) {
			e.Token.Description = "re-run by automation"
		}), noop: true,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Token == nil || res.Token != h.f.ACLToken("root") || res.Token.Description != "token root" {
					t.Fatalf("no-op returned %+v, want the stored token", res.Token)
				}
			}},
		{name: "bootstrap again with the same accessor and another secret", setup: bootstrapped, entry: boot("root", "new-secret", nil), kind: ErrConflict, check: wantConflict},
		{name: "bootstrap again with the same secret and another accessor", setup: bootstrapped, entry: boot("root2", "root-secret", nil), kind: ErrConflict, check: wantConflict},
		{name: "bootstrap after the bootstrap token was revoked", setup: func(h *harness) {
			bootstrapped(h)
			h.ok(h.revokeE("root"))
		}, entry: boot("root", "root-secret", nil), kind: ErrConflict, check: wantConflict},
		{name: "bootstrap after the bootstrap token was revoked and created again", setup: func(h *harness) {
			bootstrapped(h)
			h.ok(h.revokeE("root"))
			h.ok(h.createE("root", "root-secret", ACLManagement))
		}, entry: boot("root", "root-secret", nil), kind: ErrConflict, check: wantConflict},
		{name: "bootstrap with the accessor of a token created before", setup: func(h *harness) {
			h.ok(h.createE("root", "early-secret", ACLManagement))
		}, entry: boot("root", "root-secret", nil), kind: ErrConflict},
		{name: "bootstrap with the secret of a token created before", setup: func(h *harness) {
			h.ok(h.createE("early", "root-secret", ACLReader))
		}, entry: boot("root", "root-secret", nil), kind: ErrConflict},
		{name: "operator role", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.Role = ACLOperator }), kind: ErrInvalid},
		{name: "unknown role", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.Role = "admin" }), kind: ErrInvalid},
		{name: "empty accessor", entry: boot("", "s", nil), kind: ErrInvalid},
		{name: "bad accessor", entry: boot("root token", "s", nil), kind: ErrInvalid},
		{name: "raw secret instead of a hash", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.SecretHash = "hunter2" }), kind: ErrInvalid},
		{name: "uppercase hash", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.SecretHash = strings.ToUpper(e.Token.SecretHash) }), kind: ErrInvalid},
		{name: "hash one character short", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.SecretHash = e.Token.SecretHash[1:] }), kind: ErrInvalid},
		{name: "description too long", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.Description = strings.Repeat("d", MaxACLDescriptionLen+1) }), kind: ErrInvalid},
		{name: "description not UTF-8", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.Description = "\xff" }), kind: ErrInvalid},
		{name: "zero time", entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Time = 0 }), kind: ErrInvalid},
		// The refusal of a second bootstrap is checked before the rest of
		// the state: a malformed entry is refused as invalid first.
		{name: "malformed second bootstrap is invalid", setup: bootstrapped, entry: boot("root", "s", func(e *ACLBootstrapEntry) { e.Token.SecretHash = "x" }), kind: ErrInvalid},
	})
}

func TestACLBootstrapFlagOutlivesItsToken(t *testing.T) {
	h := newHarness(t)
	if h.f.ACLBootstrapped() {
		t.Fatal("a new FSM is bootstrapped")
	}
	h.changes(h.bootstrapE("root", "root-secret"), "acl")
	h.changes(h.revokeE("root"), "acl")
	if !h.f.ACLBootstrapped() || len(h.f.ACLTokens()) != 0 {
		t.Fatalf("after revoking the bootstrap token: bootstrapped %v, tokens %v", h.f.ACLBootstrapped(), h.f.ACLTokens())
	}
	h.refuse(h.bootstrapE("root", "root-secret"), ErrConflict)
	// The flag survives a snapshot too.
	g := restoreBytes(t, snapBytes(t, h.f))
	if !g.ACLBootstrapped() {
		t.Fatal("a restored FSM forgot the bootstrap")
	}
	if err := g.Check(h.bootstrapE("root", "root-secret")); err == nil {
		t.Fatal("a restored FSM accepts a second bootstrap")
	}
}

func TestACLTokenCreate(t *testing.T) {
	create := func(id, secret, role string, mod func(e *ACLTokenCreateEntry)) func(h *harness) any {
		return func(h *harness) any {
			e := h.createE(id, secret, role)
			if mod != nil {
				mod(e)
			}
			return e
		}
	}
	runCases(t, []applyCase{
		{name: "new token", setup: withACL, entry: create("ci", "ci-secret", ACLOperator, nil), tables: []string{"acl"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				tk := h.f.ACLTokenBySecretHash(secretHash("ci-secret"))
				if tk == nil || res.Token != tk || h.f.ACLToken("ci") != tk || tk.Role != ACLOperator || tk.CreateIndex != h.index {
					t.Fatalf("stored token %+v, result %+v", tk, res.Token)
				}
			}},
		{name: "before any bootstrap", entry: create("ci", "ci-secret", ACLReader, nil), tables: []string{"acl"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if h.f.ACLBootstrapped() {
					t.Fatal("a token create bootstrapped ACLs")
				}
			}},
		{name: "every role", setup: withACL, entry: create("m2", "m2-secret", ACLManagement, nil), tables: []string{"acl"}},
		{name: "empty description", setup: withACL, entry: create("ci", "ci-secret", ACLReader, func(e *ACLTokenCreateEntry) { e.Token.Description = "" }), tables: []string{"acl"}},
		{name: "identical create is a no-op", setup: withACL, entry: create("ops", "ops-secret", ACLOperator, func(e *ACLTokenCreateEntry) {
			e.Token.CreateTime = 99 // stamps are not content
		}), noop: true,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Token != h.f.ACLToken("ops") {
					t.Fatal("no-op did not return the stored token")
				}
			}},
		{name: "same accessor, other secret", setup: withACL, entry: create("ops", "new-secret", ACLOperator, nil), kind: ErrConflict},
		{name: "same accessor, other role", setup: withACL, entry: create("ops", "ops-secret", ACLManagement, nil), kind: ErrConflict},
		{name: "same accessor, other description", setup: withACL, entry: create("ops", "ops-secret", ACLOperator, func(e *ACLTokenCreateEntry) { e.Token.Description = "x" }), kind: ErrConflict},
		{name: "other accessor, same secret", setup: withACL, entry: create("ci", "ops-secret", ACLOperator, nil), kind: ErrConflict,
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if strings.Contains(res.Err.Error(), "ops") {
					t.Fatalf("the refusal names the token holding the secret: %q", res.Err)
				}
			}},
		{name: "again after a revoke", setup: func(h *harness) {
			withACL(h)
			h.ok(h.revokeE("ops"))
		}, entry: create("ops", "ops-secret", ACLReader, nil), tables: []string{"acl"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if tk := h.f.ACLToken("ops"); tk.Role != ACLReader || tk.CreateIndex != h.index {
					t.Fatalf("stored token %+v", tk)
				}
			}},
		{name: "unknown role", setup: withACL, entry: create("ci", "s", "superuser", nil), kind: ErrInvalid},
		{name: "empty role", setup: withACL, entry: create("ci", "s", "", nil), kind: ErrInvalid},
		{name: "bad accessor", setup: withACL, entry: create("-ci", "s", ACLReader, nil), kind: ErrInvalid},
		{name: "accessor too long", setup: withACL, entry: create(strings.Repeat("a", MaxIDLen+1), "s", ACLReader, nil), kind: ErrInvalid},
		{name: "empty hash", setup: withACL, entry: create("ci", "s", ACLReader, func(e *ACLTokenCreateEntry) { e.Token.SecretHash = "" }), kind: ErrInvalid},
		{name: "hash not hex", setup: withACL, entry: create("ci", "s", ACLReader, func(e *ACLTokenCreateEntry) {
			e.Token.SecretHash = strings.Repeat("g", 64)
		}), kind: ErrInvalid},
		{name: "description too long", setup: withACL, entry: create("ci", "s", ACLReader, func(e *ACLTokenCreateEntry) {
			e.Token.Description = strings.Repeat("é", MaxACLDescriptionLen)
		}), kind: ErrInvalid},
		{name: "zero time", setup: withACL, entry: create("ci", "s", ACLReader, func(e *ACLTokenCreateEntry) { e.Time = -1 }), kind: ErrInvalid},
	})
}

func TestACLTokenRevoke(t *testing.T) {
	revoke := func(id string) func(h *harness) any { return func(h *harness) any { return h.revokeE(id) } }
	runCases(t, []applyCase{
		{name: "existing token", setup: withACL, entry: revoke("ops"), tables: []string{"acl"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if res.Token == nil || res.Token.AccessorID != "ops" {
					t.Fatalf("result token %+v, want the revoked one", res.Token)
				}
				if h.f.ACLToken("ops") != nil || h.f.ACLTokenBySecretHash(secretHash("ops-secret")) != nil || len(h.f.ACLTokens()) != 2 {
					t.Fatal("the revoked token is still found")
				}
			}},
		{name: "the bootstrap token", setup: withACL, entry: revoke("root"), tables: []string{"acl"},
			check: func(t *testing.T, h *harness, res *ApplyResult) {
				if !h.f.ACLBootstrapped() {
					t.Fatal("revoking the bootstrap token reset the bootstrap")
				}
			}},
		{name: "absent token", setup: withACL, entry: revoke("nope"), kind: ErrNotFound},
		{name: "revoked twice", setup: func(h *harness) {
			withACL(h)
			h.ok(h.revokeE("ops"))
		}, entry: revoke("ops"), kind: ErrNotFound},
		{name: "no tokens at all", entry: revoke("ops"), kind: ErrNotFound},
		{name: "empty accessor", setup: withACL, entry: revoke(""), kind: ErrInvalid},
		{name: "zero time", setup: withACL, entry: func(h *harness) any { return &ACLTokenRevokeEntry{AccessorID: "ops"} }, kind: ErrInvalid},
	})
}

func TestACLReads(t *testing.T) {
	h := newHarness(t)
	if h.f.ACLTokens() == nil || len(h.f.ACLTokens()) != 0 || h.f.ACLToken("x") != nil || h.f.ACLTokenBySecretHash(secretHash("x")) != nil {
		t.Fatal("a new FSM has tokens")
	}
	for _, id := range []string{"m", "b", "z", "a"} {
		h.ok(h.createE(id, id+"-secret", ACLReader))
	}
	var ids []string
	for _, tk := range h.f.ACLTokens() {
		ids = append(ids, tk.AccessorID)
	}
	if strings.Join(ids, ",") != "a,b,m,z" {
		t.Fatalf("ACLTokens() = %v, want sorted by accessor", ids)
	}
	if idx := h.f.Indexes(); idx.ACL != h.index || idx.Tasks != 0 {
		t.Fatalf("Indexes = %+v", idx)
	}
	// Copy-on-write: a token handed out never changes, even once revoked
	// and created again with other content.
	old := h.f.ACLToken("m")
	keep := *old
	h.ok(h.revokeE("m"))
	h.ok(h.createE("m", "m2-secret", ACLManagement))
	if *old != keep {
		t.Fatal("a token handed out was modified")
	}
	if h.f.ACLTokenBySecretHash(secretHash("m-secret")) != nil || h.f.ACLTokenBySecretHash(secretHash("m2-secret")) != h.f.ACLToken("m") {
		t.Fatal("the hash index does not follow revoke and create")
	}
	checkInvariants(t, h.f)
}

// TestACLSnapshot: tokens and both ACL indexes survive a snapshot, through
// Restore, PrepareRestore with Expect, and ReadSnapshotInfo.
func TestACLSnapshot(t *testing.T) {
	h := newWorld(t)
	withACL(h)
	h.ok(h.createE("ci", "ci-secret", ACLOperator))
	h.ok(h.revokeE("root")) // the bootstrap token is gone, the flag is not
	data := snapBytes(t, h.f)
	want := readView(h.f)

	r := restoreBytes(t, data)
	if got := readView(r); got != want {
		t.Fatalf("restored FSM reads differently:\n%s\nwant:\n%s", got, want)
	}
	if !bytes.Equal(snapBytes(t, r), data) {
		t.Fatal("a restored FSM writes other bytes")
	}
	if r.Indexes() != h.f.Indexes() || !r.ACLBootstrapped() || r.ACLTokenBySecretHash(secretHash("ci-secret")) == nil {
		t.Fatalf("restored indexes %+v, want %+v", r.Indexes(), h.f.Indexes())
	}
	checkInvariants(t, r)

	p, err := PrepareRestore(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	if p.Tokens() != 3 {
		t.Fatalf("prepared tokens = %d, want 3", p.Tokens())
	}
	f := New()
	defer f.Expect(p)()
	if err := f.Restore(readCloser{bytes.NewReader(data)}); err != nil {
		t.Fatal(err)
	}
	if f.st != p.st || readView(f) != want {
		t.Fatal("the prepared restore did not install the prepared tokens")
	}
	checkInvariants(t, f)

	info, err := ReadSnapshotInfo(bytes.NewReader(data))
	if err != nil || info.Version != 2 || info.Tokens != 3 || !info.ACLBootstrapped {
		t.Fatalf("ReadSnapshotInfo = %+v, %v", info, err)
	}

	// The restored FSM goes on applying ACL entries exactly as the
	// original.
	l := &raft.Log{Index: h.index + 1, Type: raft.LogCommand, Data: encode(t, h.createE("late", "late-secret", ACLReader))}
	for _, g := range []*FSM{h.f, r, f} {
		if res := g.ApplyRaft(l).(*ApplyResult); res.Err != nil || res.Token == nil {
			t.Fatalf("late create: %+v", res)
		}
	}
	if !bytes.Equal(snapBytes(t, r), snapBytes(t, h.f)) || !bytes.Equal(snapBytes(t, f), snapBytes(t, h.f)) {
		t.Fatal("restored FSMs diverged after one more entry")
	}
}
