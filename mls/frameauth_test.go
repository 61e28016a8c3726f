package mls

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// strangerGroup is a group a non-member made with the id and epoch of
// members' group (the id is in every frame header): its frames have a
// perfectly valid header.
func strangerGroup(t *testing.T, cs CipherSuite, of *Group, encrypt bool) (*testClient, *Group) {
	t.Helper()
	m := newTestClient(t, cs, "mallory", 424242)
	g, err := CreateGroup(cs, of.GroupID(), m.sigPriv, m.cred, m.opts(WithEncryptedHandshake(encrypt))...)
	if err != nil {
		t.Fatal(err)
	}
	for g.Epoch() < of.Epoch() {
		pc, err := g.Commit(CommitOptions{ForcePath: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.MergePendingCommit(pc); err != nil {
			t.Fatal(err)
		}
	}
	return m, g
}

func mustAuth(t *testing.T, g *Group) *FrameAuthenticator {
	t.Helper()
	a, err := g.FrameAuthenticator()
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestFrameAuthenticatorPrivate(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(fmt.Sprint(cs), func(t *testing.T) { testFrameAuthenticatorPrivate(t, cs) })
	}
}

func testFrameAuthenticatorPrivate(t *testing.T, cs CipherSuite) {
	m := newTestGroup(t, cs, true, "alice", "bob", "carol")
	alice, bob := m[0], m[1]
	auth := mustAuth(t, bob.g)
	if auth.Epoch() != bob.g.Epoch() {
		t.Fatalf("epoch %d, group at %d", auth.Epoch(), bob.g.Epoch())
	}
	msg, err := alice.g.Protect([]byte("hello"), nil)
	if err != nil {
		t.Fatal(err)
	}
	before, err := bob.g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // no key is consumed: checking twice gives the same answer
		s, err := auth.Authenticate(msg)
		if err != nil {
			t.Fatalf("member's message: %v", err)
		}
		if s.Type != SenderMember || s.Leaf != alice.g.LeafIndex() || !bytes.Equal(s.SignatureKey, alice.g.Members()[alice.g.LeafIndex()].SignatureKey) {
			t.Fatalf("sender %+v", s)
		}
	}
	after, err := bob.g.MarshalState()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(before, after) {
		t.Fatal("authenticating changed the group's state")
	}
	// The message still opens: nothing was consumed.
	if r, err := bob.g.Process(msg); err != nil || string(r.ApplicationData) != "hello" {
		t.Fatalf("process after authenticate: %v", err)
	}

	// A handshake message (encrypted) authenticates too.
	prop, err := alice.g.ProposeUpdate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(prop); err != nil {
		t.Fatalf("encrypted proposal: %v", err)
	}

	// A stranger's group with the same id and epoch: valid header, but
	// the sender data does not open.
	_, sg := strangerGroup(t, cs, bob.g, true)
	junk, err := sg.Protect([]byte("junk"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(junk); !errors.Is(err, ErrDecryption) {
		t.Fatalf("stranger's frame: %v", err)
	}
	// Tampering with the sender data or the ciphertext's sample (the rest
	// of the ciphertext is MLS's to check when it opens the content).
	var parsed MLSMessage
	if err := parsed.Unmarshal(bytes.Clone(msg)); err != nil {
		t.Fatal(err)
	}
	sample := bytes.Index(msg, parsed.PrivateMessage.Ciphertext)
	esd := bytes.Index(msg, parsed.PrivateMessage.EncryptedSenderData)
	for _, at := range []int{esd, esd + len(parsed.PrivateMessage.EncryptedSenderData) - 1, sample, sample + cs.Nh() - 1} {
		bad := bytes.Clone(msg)
		bad[at] ^= 1
		if _, err := auth.Authenticate(bad); err == nil {
			t.Fatalf("tampered byte %d authenticated", at)
		}
	}
	// Another epoch's authenticator refuses with ErrEpochMismatch.
	commitAndDeliver(t, alice, CommitOptions{ForcePath: true}, bob, m[2])
	next, err := alice.g.Protect([]byte("next"), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(next); !errors.Is(err, ErrEpochMismatch) {
		t.Fatalf("next epoch's frame: %v", err)
	}
	if _, err := mustAuth(t, bob.g).Authenticate(next); err != nil {
		t.Fatalf("new epoch: %v", err)
	}
	// The old authenticator is unaffected by the group moving on.
	if _, err := auth.Authenticate(msg); err != nil {
		t.Fatalf("old epoch's authenticator after the group advanced: %v", err)
	}
	// Garbage does not panic.
	for _, b := range [][]byte{nil, {0, 1}, msg[:len(msg)/2]} {
		if _, err := auth.Authenticate(b); err == nil {
			t.Fatalf("garbage %x authenticated", b)
		}
	}
}

func TestFrameAuthenticatorPublic(t *testing.T) {
	for _, cs := range CipherSuites {
		t.Run(fmt.Sprint(cs), func(t *testing.T) { testFrameAuthenticatorPublic(t, cs) })
	}
}

func testFrameAuthenticatorPublic(t *testing.T, cs CipherSuite) {
	m := newTestGroup(t, cs, false, "alice", "bob", "carol")
	alice, bob, carol := m[0], m[1], m[2]
	auth := mustAuth(t, bob.g)
	prop, err := alice.g.ProposeUpdate(nil)
	if err != nil {
		t.Fatal(err)
	}
	s, err := auth.Authenticate(prop)
	if err != nil || s.Type != SenderMember || s.Leaf != alice.g.LeafIndex() {
		t.Fatalf("member's proposal: %+v %v", s, err)
	}
	var pm MLSMessage
	if err := pm.Unmarshal(bytes.Clone(prop)); err != nil {
		t.Fatal(err)
	}
	pm.PublicMessage.MembershipTag[0] ^= 1
	bad, err := marshalStruct(&pm)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(bad); !errors.Is(err, ErrInvalidMembershipTag) {
		t.Fatalf("bad membership tag: %v", err)
	}
	_, sg := strangerGroup(t, cs, bob.g, false)
	junk, err := sg.ProposeUpdate(nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(junk); !errors.Is(err, ErrInvalidMembershipTag) {
		t.Fatalf("stranger's proposal: %v", err)
	}
	// A commit by a member authenticates; the group still processes it.
	deliver(t, prop, bob, carol)
	pc, err := alice.g.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := auth.Authenticate(pc.Message); err != nil {
		t.Fatalf("member's commit: %v", err)
	}
	if _, err := bob.g.Process(pc.Message); err != nil {
		t.Fatalf("process after authenticate: %v", err)
	}

	// An external commit: the signature is checked with the joiner's key,
	// which is returned for the caller to judge.
	gi, err := carol.g.GroupInfo(GroupInfoOptions{RatchetTree: true, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	dave := newTestClient(t, cs, "dave", 77)
	dg, ext, err := JoinExternal(gi, dave.sigPriv, dave.cred, ExternalJoinOptions{}, dave.opts()...)
	if err != nil {
		t.Fatal(err)
	}
	s, err = mustAuth(t, carol.g).Authenticate(ext)
	if err != nil || s.Type != SenderNewMemberCommit {
		t.Fatalf("external commit: %+v %v", s, err)
	}
	if want := dg.Members()[dg.LeafIndex()].SignatureKey; !bytes.Equal(s.SignatureKey, want) {
		t.Fatal("the external commit's signer is not the joiner's key")
	}
}

func TestFrameAuthenticatorConcurrent(t *testing.T) {
	cs := CipherSuites[0]
	m := newTestGroup(t, cs, true, "alice", "bob")
	auth := mustAuth(t, m[1].g)
	var msgs [][]byte
	for range 8 {
		b, err := m[0].g.Protect([]byte("x"), nil)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, b)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, b := range msgs {
				if _, err := auth.Authenticate(b); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func FuzzFrameAuthenticator(f *testing.F) {
	cs := CipherSuites[0]
	m := newTestGroup(f, cs, true, "alice", "bob")
	auth, err := m[1].g.FrameAuthenticator()
	if err != nil {
		f.Fatal(err)
	}
	msg, err := m[0].g.Protect([]byte("seed"), nil)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(msg)
	f.Add([]byte{0, 1, 0, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := auth.Authenticate(b)
		if err == nil && s.Type == SenderMember && int(s.Leaf) >= m[1].g.MemberCount()+8 {
			t.Fatalf("authenticated leaf %d", s.Leaf)
		}
	})
}
