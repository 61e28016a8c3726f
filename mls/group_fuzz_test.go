package mls

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// FuzzProcess feeds arbitrary bytes (seeded with genuine application
// messages, proposals and a Commit that the member can apply, in both wire
// formats, and an external Commit) to a live group member. Processing must never panic, and when it
// fails the state must be exactly what it was.
//
// The seed corpus in testdata/fuzz/FuzzProcess is regenerated with
//
//	go test ./mls -run FuzzProcess -write-fuzz-seeds
//
// (the fixture is deterministic: suite 1 signatures and HPKE take their
// randomness from the seeded reader).
func FuzzProcess(f *testing.F) {
	fx := newProcessFixture(f)
	if *writeFuzzSeeds {
		writeProcessSeeds(f, fx)
	}
	for _, s := range fx.seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g, err := UnmarshalState(fx.state, fx.opts...)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.Process(data); err != nil {
			after, err := g.MarshalState()
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(after, fx.state) {
				t.Fatalf("a failed Process changed the state (input %x)", data)
			}
		}
	})
}

type processFixture struct {
	state []byte   // bob's state
	opts  []Option // bob's policy
	seeds [][]byte
}

// newProcessFixture builds a three-member group (public handshakes) and a
// four-member group (encrypted handshakes) and the messages bob could
// receive next. Bob's senders are cold: his secret tree derives a sender's
// leaf on the first message from it, and only if that message is accepted,
// so the seeds from dave (whose leaf bob never derived) check that a failed
// Process leaves the state untouched in that case too.
func newProcessFixture(tb testing.TB) *processFixture {
	cs := MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519
	pub := newTestGroup(tb, cs, false, "alice", "bob", "carol")
	priv := newTestGroup(tb, cs, true, "alice", "bob", "carol", "dave")
	fx := &processFixture{}
	for i, m := range [][]*testClient{pub, priv} {
		alice, bob, carol := m[0], m[1], m[2]
		appSender := alice
		if i == 1 {
			appSender = m[3] // dave: cold for bob
		}
		app, err := appSender.g.Protect([]byte("hello"), []byte("ad"))
		if err != nil {
			tb.Fatal(err)
		}
		prop, err := carol.g.ProposeUpdate(nil)
		if err != nil {
			tb.Fatal(err)
		}
		rem, err := alice.g.ProposeRemove(carol.g.LeafIndex(), nil)
		if err != nil {
			tb.Fatal(err)
		}
		// Bob holds both proposals, so that the seed Commit (which covers
		// alice's Remove by reference) is valid for him.
		for _, p := range [][]byte{prop, rem} {
			if _, err := bob.g.Process(p); err != nil {
				tb.Fatal(err)
			}
		}
		pc, err := alice.g.Commit(CommitOptions{ForcePath: true})
		if err != nil {
			tb.Fatal(err)
		}
		fx.seeds = append(fx.seeds, app, prop, rem, pc.Message)
		if i == 0 {
			gi, err := alice.g.GroupInfo(GroupInfoOptions{ExternalPub: true, RatchetTree: true})
			if err != nil {
				tb.Fatal(err)
			}
			dan := newTestClient(tb, cs, "dan", 4242)
			_, ext, err := JoinExternal(gi, dan.sigPriv, dan.cred, ExternalJoinOptions{}, dan.opts()...)
			if err != nil {
				tb.Fatal(err)
			}
			fx.seeds = append(fx.seeds, ext)
			continue
		}
		// Dave proposes and commits his own proposal, which bob never
		// received: bob decrypts the Commit (deriving dave's leaf on the
		// side) and then rejects it (unknown proposal reference).
		dave := m[3]
		dprop, err := dave.g.ProposeRemove(alice.g.LeafIndex(), nil)
		if err != nil {
			tb.Fatal(err)
		}
		dpc, err := dave.g.Commit(CommitOptions{})
		if err != nil {
			tb.Fatal(err)
		}
		fx.seeds = append(fx.seeds, dprop, dpc.Message)
		// The encrypted group's bob is the one fuzzed: the public group's
		// messages still exercise decoding and deeper checks (same group
		// id, other keys).
		if fx.state, err = bob.g.MarshalState(); err != nil {
			tb.Fatal(err)
		}
		fx.opts = bob.opts()
		g, err := UnmarshalState(fx.state, fx.opts...)
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := g.Process(dpc.Message); !errors.Is(err, ErrUnknownProposal) {
			tb.Fatalf("dave's commit: %v, want an unknown proposal", err)
		}
		if after, _ := g.MarshalState(); !bytes.Equal(after, fx.state) {
			tb.Fatal("a rejected Commit from a cold sender changed the state")
		}
	}
	return fx
}

var writeFuzzSeeds = flag.Bool("write-fuzz-seeds", false, "rewrite testdata/fuzz/FuzzProcess from the fixture")

func writeProcessSeeds(tb testing.TB, fx *processFixture) {
	dir := filepath.Join("testdata", "fuzz", "FuzzProcess")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		tb.Fatal(err)
	}
	names := []string{"public-group-application", "public-update", "public-remove", "public-commit", "external-commit",
		"private-application", "private-update", "private-remove", "private-commit",
		"private-cold-proposal", "private-cold-commit-unknown-proposal"}
	for i, s := range fx.seeds {
		body := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", s)
		if err := os.WriteFile(filepath.Join(dir, "seed-"+names[i]), []byte(body), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
}
