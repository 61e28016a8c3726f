package mls

import (
	"fmt"
	"testing"
)

// Benchmarks of group operations by group size. The groups are made the
// way canopy makes them: the creator adds everyone with one Commit and one
// Welcome, so the other members' direct paths start blank (their
// resolutions are wide until they commit). Sizes beyond 1,000 are left to
// the scale benchmarks of the package.

var benchGroupSizes = []int{10, 100, 1000}

// benchGroup returns the creator and one joined member of an n-member
// group.
func benchGroup(b *testing.B, cs CipherSuite, n int) (alice, bob *testClient, welcome []byte, bobKP *KeyPackageBundle) {
	b.Helper()
	alice = newTestClient(b, cs, "alice", 1)
	bob = newTestClient(b, cs, "bob", 2)
	g, err := CreateGroup(cs, []byte("bench"), alice.sigPriv, alice.cred, alice.opts()...)
	if err != nil {
		b.Fatal(err)
	}
	alice.g = g
	bobKP = bob.keyPackage(b, cs)
	adds := []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: bobKP.KeyPackage}}}
	for i := 2; i < n; i++ {
		c := newTestClient(b, cs, fmt.Sprintf("member-%d", i), uint64(i)+10)
		adds = append(adds, &Proposal{Type: ProposalTypeAdd, Add: &Add{KeyPackage: c.keyPackage(b, cs).KeyPackage}})
	}
	pc, err := g.Commit(CommitOptions{Proposals: adds})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := g.MergePendingCommit(pc); err != nil {
		b.Fatal(err)
	}
	if bob.g, err = JoinFromWelcome(pc.Welcome, bobKP, nil, bob.opts()...); err != nil {
		b.Fatal(err)
	}
	return alice, bob, pc.Welcome, bobKP
}

func benchEach(b *testing.B, f func(b *testing.B, n int)) {
	for _, n := range benchGroupSizes {
		b.Run(fmt.Sprintf("members-%d", n), func(b *testing.B) { f(b, n) })
	}
}

const benchSuite = MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// BenchmarkGroupCommit: a full (path) Commit created and merged by one
// member.
func BenchmarkGroupCommit(b *testing.B) {
	benchEach(b, func(b *testing.B, n int) {
		alice, _, _, _ := benchGroup(b, benchSuite, n)
		b.ResetTimer()
		for b.Loop() {
			pc, err := alice.g.Commit(CommitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := alice.g.MergePendingCommit(pc); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGroupProcessCommit: a member processes another's full Commit.
func BenchmarkGroupProcessCommit(b *testing.B) {
	benchEach(b, func(b *testing.B, n int) {
		alice, bob, _, _ := benchGroup(b, benchSuite, n)
		b.ResetTimer()
		for b.Loop() {
			b.StopTimer()
			pc, err := alice.g.Commit(CommitOptions{})
			if err != nil {
				b.Fatal(err)
			}
			if _, err := alice.g.MergePendingCommit(pc); err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			if _, err := bob.g.Process(pc.Message); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGroupJoin: joining from a Welcome that carries the tree (tree
// validation with every leaf signature is the O(n) part).
func BenchmarkGroupJoin(b *testing.B) {
	benchEach(b, func(b *testing.B, n int) {
		_, bob, welcome, kp := benchGroup(b, benchSuite, n)
		b.ResetTimer()
		for b.Loop() {
			if _, err := JoinFromWelcome(welcome, kp, nil, bob.opts()...); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGroupApplication: protecting and processing one application
// message.
func BenchmarkGroupApplication(b *testing.B) {
	benchEach(b, func(b *testing.B, n int) {
		alice, bob, _, _ := benchGroup(b, benchSuite, n)
		msg := make([]byte, 100)
		b.ResetTimer()
		for b.Loop() {
			ct, err := alice.g.Protect(msg, nil)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := bob.g.Process(ct); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// BenchmarkGroupClone and BenchmarkGroupMarshalState: the cost of keeping
// an epoch to roll back to, in memory and serialized.
func BenchmarkGroupClone(b *testing.B) {
	benchEach(b, func(b *testing.B, n int) {
		_, bob, _, _ := benchGroup(b, benchSuite, n)
		b.ResetTimer()
		for b.Loop() {
			_ = bob.g.Clone()
		}
	})
}

func BenchmarkGroupMarshalState(b *testing.B) {
	benchEach(b, func(b *testing.B, n int) {
		_, bob, _, _ := benchGroup(b, benchSuite, n)
		b.ResetTimer()
		for b.Loop() {
			s, err := bob.g.MarshalState()
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(len(s)))
		}
	})
}
