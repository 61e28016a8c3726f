package mls

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// lifetimeKeyPackage returns a KeyPackage of a new client whose leaf is
// valid from nb to na (seconds from testNow).
func lifetimeKeyPackage(t *testing.T, cs CipherSuite, name string, nb, na int64) *KeyPackageBundle {
	t.Helper()
	c := newTestClient(t, cs, name, 4242)
	now := testNow.Unix()
	b, err := NewKeyPackage(cs, c.sigPriv, c.cred, c.opts(WithLifetime(Lifetime{NotBefore: uint64(now + nb), NotAfter: uint64(now + na)}))...)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestAddRefusesKeyPackageOutsideLifetime: a member adding an expired or a
// not yet valid KeyPackage (by value in its Commit, or by proposal) is
// refused with an error that says which bound failed (§7.3, §10.1); the
// group is unchanged.
func TestAddRefusesKeyPackageOutsideLifetime(t *testing.T) {
	cs := CipherSuites[0]
	cases := []struct {
		name   string
		nb, na int64
		want   string
	}{
		{"expired", -10 * 86400, -86400, "expired at"},
		{"not-yet-valid", 86400, 10 * 86400, "not valid before"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newTestGroup(t, cs, false, "alice", "bob")
			kp := lifetimeKeyPackage(t, cs, "carol", tc.nb, tc.na)
			epoch := m[0].g.Epoch()
			_, err := m[0].g.Commit(CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}})
			if !errors.Is(err, ErrLifetime) || !errors.Is(err, ErrInvalidProposal) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("commit: %v, want a lifetime error saying %q", err, tc.want)
			}
			if _, err := m[0].g.ProposeAdd(&kp.KeyPackage, nil); !errors.Is(err, ErrLifetime) {
				t.Fatalf("propose: %v, want ErrLifetime", err)
			}
			if m[0].g.Epoch() != epoch || m[0].g.MemberCount() != 2 {
				t.Fatal("the refused add changed the group")
			}
			// The same KeyPackage inside its lifetime is fine.
			ok := lifetimeKeyPackage(t, cs, "carol", -3600, 86400)
			commitAndDeliver(t, m[0], CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: ok.KeyPackage}}}}, m[1])
			if m[1].g.MemberCount() != 3 {
				t.Fatalf("bob sees %d members", m[1].g.MemberCount())
			}
		})
	}
}

// TestReceivedAddNotCheckedAgainstLocalClock: a Commit adding a KeyPackage
// that was valid when its committer sent it is accepted by a member whose
// clock is past the KeyPackage's end: the validity of others' Commits may
// not depend on the receiver's clock (the fork choice needs every member,
// and every re-processing, to agree on it; §7.3 only recommends the
// check for received leaves).
func TestReceivedAddNotCheckedAgainstLocalClock(t *testing.T) {
	cs := CipherSuites[0]
	m := newTestGroup(t, cs, true, "alice", "bob")
	kp := lifetimeKeyPackage(t, cs, "carol", -3600, 3600)
	m[1].g.cfg.now = func() time.Time { return testNow.Add(48 * time.Hour) }
	_, rs := commitAndDeliver(t, m[0], CommitOptions{Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}}, m[1])
	if rs[0] == nil || m[1].g.MemberCount() != 3 {
		t.Fatal("bob refused a Commit because of his own clock")
	}
	sameEpoch(t, m[0], m[1])
	// Bob, sending, does check his clock: the same KeyPackage is expired
	// for him.
	if _, err := m[1].g.ProposeAdd(&lifetimeKeyPackage(t, cs, "dave", -3600, 3600).KeyPackage, nil); !errors.Is(err, ErrLifetime) {
		t.Fatalf("bob proposing an add expired on his clock: %v", err)
	}
}
