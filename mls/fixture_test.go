package mls

import (
	"bytes"
	"testing"
)

// The scale fixture must be a valid group: its tree passes the joiner's
// validation, a new member joins from a Welcome (with and without the tree
// in it), and members exchange Commits and messages.
func TestScaleFixtureValid(t *testing.T) {
	for _, n := range []int{1, 2, 3, 5, 8, 10, 37, 64, 100} {
		f, err := NewScaleFixture(benchSuite, n, 7)
		if err != nil {
			t.Fatal(err)
		}
		tree := f.tree.clone()
		tree.indexed = false // validate rebuilds the index
		if err := tree.validate(f.ctx.TreeHash, &leafValidation{GroupID: f.groupID}); err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		// No unmerged leaves and every parent hash genuine: the tree is
		// the one of a group where everyone committed.
		for x := NodeIndex(1); uint32(x) < tree.width(); x += 2 {
			if pn := tree.parentNode(x); pn != nil && len(pn.UnmergedLeaves) != 0 {
				t.Fatalf("n=%d: node %d has unmerged leaves", n, x)
			}
		}
		fixtureRoundTrip(t, f)
	}
}

func fixtureRoundTrip(t *testing.T, f *ScaleFixture) {
	t.Helper()
	n := f.Size()
	a, err := f.Member(0, WithRandom(treeTestRand(1)))
	if err != nil {
		t.Fatal(err)
	}
	last, err := f.Member(LeafIndex(n-1), WithRandom(treeTestRand(2)))
	if err != nil {
		t.Fatal(err)
	}
	kp, err := f.NewKeyPackage(1)
	if err != nil {
		t.Fatal(err)
	}
	for _, external := range []bool{false, true} {
		pc, err := a.Commit(CommitOptions{ForcePath: true, ExternalTree: external,
			Proposals: []*Proposal{{Type: ProposalTypeAdd, Add: &Add{KeyPackage: kp.KeyPackage}}}})
		if err != nil {
			t.Fatalf("n=%d: %v", n, err)
		}
		j, err := JoinFromWelcome(pc.Welcome, kp, pc.RatchetTree)
		if err != nil {
			t.Fatalf("n=%d external=%v: join: %v", n, external, err)
		}
		if n > 1 {
			other := last.Clone()
			if _, err := other.Process(pc.Message); err != nil {
				t.Fatalf("n=%d: process: %v", n, err)
			}
			if !bytes.Equal(other.EpochAuthenticator(), j.EpochAuthenticator()) {
				t.Fatalf("n=%d: joiner and member disagree", n)
			}
		}
		a.DiscardPendingCommit(pc)
	}
	if n == 1 {
		return
	}
	// A full Commit and an application message between two members.
	pc, err := a.Commit(CommitOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.MergePendingCommit(pc); err != nil {
		t.Fatal(err)
	}
	if _, err := last.Process(pc.Message); err != nil {
		t.Fatalf("n=%d: %v", n, err)
	}
	msg, err := last.Protect([]byte("hi"), nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := a.Process(msg)
	if err != nil || string(r.ApplicationData) != "hi" {
		t.Fatalf("n=%d: %v", n, err)
	}
	if !bytes.Equal(a.EpochAuthenticator(), last.EpochAuthenticator()) {
		t.Fatalf("n=%d: members disagree", n)
	}
}

// The fixture is deterministic.
func TestScaleFixtureDeterministic(t *testing.T) {
	f1, err := NewScaleFixture(benchSuite, 50, 3)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := NewScaleFixture(benchSuite, 50, 3)
	if err != nil {
		t.Fatal(err)
	}
	a, _ := f1.tree.marshal()
	b, _ := f2.tree.marshal()
	if !bytes.Equal(a, b) || !bytes.Equal(f1.ctx.TreeHash, f2.ctx.TreeHash) {
		t.Fatal("fixture is not deterministic")
	}
	f3, _ := NewScaleFixture(benchSuite, 50, 4)
	if bytes.Equal(f1.ctx.TreeHash, f3.ctx.TreeHash) {
		t.Fatal("seed ignored")
	}
}

// computeHashesParallel (used when joining and restoring large trees)
// gives the same hashes as the sequential computation.
func TestComputeHashesParallel(t *testing.T) {
	f, err := newScaleFixture(benchSuite, 3000, 9, &fixtureOptions{realKeys: []LeafIndex{0}})
	if err != nil {
		t.Fatal(err)
	}
	enc, err := f.tree.marshal()
	if err != nil {
		t.Fatal(err)
	}
	par, err := unmarshalTree(benchSuite, enc)
	if err != nil {
		t.Fatal(err)
	}
	seq := par.clone()
	if err := par.computeHashesParallel(); err != nil {
		t.Fatal(err)
	}
	if _, err := seq.treeHash(); err != nil {
		t.Fatal(err)
	}
	for x := NodeIndex(0); uint32(x) < par.width(); x++ {
		a, b := par.slot(x).hash, seq.slot(x).hash
		if a == nil || !bytes.Equal(a, b) {
			t.Fatalf("node %d: parallel hash %x, sequential %x", x, a, b)
		}
	}
	if !bytes.Equal(par.slot(par.root()).hash, f.ctx.TreeHash) {
		t.Fatal("root hash differs from the fixture's")
	}
}
