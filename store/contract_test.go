package store

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// The contract: behaviour every implementation of the store interfaces
// must have. TestContract runs each case against every implementation.

var contractCases = []struct {
	name string
	fn   func(t *testing.T, open func(t testing.TB, opts ...Option) full)
}{
	{"Identity", testIdentity},
	{"KeyPackages", testKeyPackages},
	{"Contacts", testContacts},
	{"GroupLifecycle", testGroupLifecycle},
	{"BranchSwitch", testBranchSwitch},
	{"CanonicalChain", testCanonicalChain},
	{"TransitionAtomic", testTransitionAtomic},
	{"TransitionJoin", testTransitionJoin},
	{"Messages", testMessages},
	{"Retention", testRetention},
	{"Search", testSearch},
	{"Outbox", testOutbox},
	{"Proposals", testProposals},
	{"Invitations", testInvitations},
	{"InvitationAccepted", testInvitationAccepted},
	{"TopicLog", testTopicLog},
	{"TopicQuotas", testTopicQuotas},
	{"AppendFrames", testAppendFrames},
	{"TransitionFrames", testTransitionFrames},
	{"HeldMessages", testHeldMessages},
	{"Mailbox", testMailbox},
	{"KeyPackageCache", testKeyPackageCache},
	{"Closed", testClosed},
}

func TestContract(t *testing.T) {
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range contractCases {
				t.Run(c.name, func(t *testing.T) { c.fn(t, impl.open) })
			}
		})
	}
}

var ctx = context.Background()

func testIdentity(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	_, err := s.Identity(ctx)
	wantErr(t, err, ErrNotFound)
	id := Identity{SignaturePublic: []byte("pub"), SignaturePrivate: []byte("priv"), Credential: []byte("cred"),
		CipherSuite: 1, P2PPrivateKey: []byte("p2p"), CreatedAt: t0}
	ok(t, s.PutIdentity(ctx, id))
	got := must[Identity](t)(s.Identity(ctx))
	if !bytes.Equal(got.SignaturePrivate, id.SignaturePrivate) || !bytes.Equal(got.P2PPrivateKey, id.P2PPrivateKey) ||
		!bytes.Equal(got.Credential, id.Credential) || !bytes.Equal(got.SignaturePublic, id.SignaturePublic) ||
		got.CipherSuite != 1 || !got.CreatedAt.Equal(t0) || got.UpdatedAt.IsZero() {
		t.Fatalf("identity round trip: %+v", got)
	}
	// A relay has only a libp2p key.
	ok(t, s.PutIdentity(ctx, Identity{P2PPrivateKey: []byte("relay")}))
	got = must[Identity](t)(s.Identity(ctx))
	if got.SignaturePrivate != nil || string(got.P2PPrivateKey) != "relay" {
		t.Fatalf("replaced identity: %+v", got)
	}
}

func testKeyPackages(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	for i, lr := range []bool{false, false, true} {
		ok(t, s.PutKeyPackage(ctx, KeyPackage{Ref: []byte{byte(i + 1)}, CipherSuite: 1, Data: []byte("kp"), Private: []byte(fmt.Sprint("secret", i)),
			LastResort: lr, CreatedAt: t0.Add(time.Duration(i) * time.Second)}))
	}
	ok(t, s.PutKeyPackage(ctx, KeyPackage{Ref: []byte{9}, Data: []byte("old"), Private: []byte("x"), CreatedAt: t0.Add(time.Hour), ExpiresAt: t0}))
	list := must[[]KeyPackage](t)(s.ListKeyPackages(ctx))
	if len(list) != 4 || list[0].Ref[0] != 1 || string(list[1].Private) != "secret1" {
		t.Fatalf("list: %+v", list)
	}
	kp := must[KeyPackage](t)(s.ConsumeKeyPackage(ctx, []byte{1}))
	if string(kp.Private) != "secret0" {
		t.Fatalf("consumed %+v", kp)
	}
	_, err := s.KeyPackage(ctx, []byte{1})
	wantErr(t, err, ErrNotFound)
	_, err = s.ConsumeKeyPackage(ctx, []byte{1})
	wantErr(t, err, ErrNotFound)
	// Last resort: handed out, kept.
	for range 2 {
		kp = must[KeyPackage](t)(s.ConsumeKeyPackage(ctx, []byte{3}))
		if !kp.LastResort {
			t.Fatal("not last resort")
		}
	}
	if n := must[int64](t)(s.DeleteExpiredKeyPackages(ctx, t0.Add(time.Minute))); n != 1 {
		t.Fatalf("expired: %d", n)
	}
	ok(t, s.DeleteKeyPackage(ctx, []byte{2}))
	ok(t, s.DeleteKeyPackage(ctx, []byte{2}))
	if list = must[[]KeyPackage](t)(s.ListKeyPackages(ctx)); len(list) != 1 || list[0].Ref[0] != 3 {
		t.Fatalf("after deletes: %+v", list)
	}
	wantErr(t, s.PutKeyPackage(ctx, KeyPackage{}), ErrInvalid)
}

func testContacts(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	changed := must[bool](t)(s.PutContact(ctx, Contact{ID: "peerA", Petname: "Alice", Fingerprint: []byte("fp1"), Card: []byte("card")}))
	if changed {
		t.Fatal("new contact reported key change")
	}
	_, err := s.PutContact(ctx, Contact{ID: "peerB", Petname: "alice"})
	wantErr(t, err, ErrConflict)
	ok(t, s.SetVerification(ctx, "peerA", []byte("fp1"), Verified, t0))
	c := must[Contact](t)(s.ContactByPetname(ctx, "ALICE"))
	if c.ID != "peerA" || c.Verification != Verified || !c.VerifiedAt.Equal(t0) || string(c.Card) != "card" {
		t.Fatalf("contact: %+v", c)
	}
	// Same key again: nothing changes.
	if must[bool](t)(s.PutContact(ctx, Contact{ID: "peerA", Petname: "Alice", Fingerprint: []byte("fp1")})) {
		t.Fatal("same key reported as changed")
	}
	// New key: verification does not carry over.
	if !must[bool](t)(s.PutContact(ctx, Contact{ID: "peerA", Petname: "Alice", Fingerprint: []byte("fp2")})) {
		t.Fatal("key change not reported")
	}
	c = must[Contact](t)(s.Contact(ctx, "peerA"))
	if c.Verification != KeyChanged || !c.VerifiedAt.IsZero() {
		t.Fatalf("after key change: %+v", c)
	}
	wantErr(t, s.SetVerification(ctx, "peerA", []byte("fp1"), Verified, t0), ErrConflict)
	ok(t, s.SetVerification(ctx, "peerA", []byte("fp2"), Verified, t0))
	wantErr(t, s.SetVerification(ctx, "nobody", nil, Verified, t0), ErrNotFound)
	hist := must[[]KeyRecord](t)(s.KeyHistory(ctx, "peerA"))
	if len(hist) != 2 || string(hist[0].Fingerprint) != "fp1" || string(hist[1].Fingerprint) != "fp2" {
		t.Fatalf("history: %+v", hist)
	}
	must[bool](t)(s.PutContact(ctx, Contact{ID: "peerB", Petname: "bob"}))
	if l := must[[]Contact](t)(s.ListContacts(ctx)); len(l) != 2 || l[0].ID != "peerA" {
		t.Fatalf("list: %+v", l)
	}
	ok(t, s.DeleteContact(ctx, "peerA"))
	_, err = s.Contact(ctx, "peerA")
	wantErr(t, err, ErrNotFound)
	if h := must[[]KeyRecord](t)(s.KeyHistory(ctx, "peerA")); len(h) != 0 {
		t.Fatal("key history survived the contact")
	}
	_, err = s.PutContact(ctx, Contact{})
	wantErr(t, err, ErrInvalid)
}

var gid = []byte("group-1")

func createGroup(t testing.TB, s full, id []byte) {
	t.Helper()
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: id, Epoch: 0, State: []byte("s0"),
		Group: &Group{Name: "friends " + string(id)}, At: t0}))
}

func msg(id string, text string) Message {
	return Message{ID: []byte(id), Sender: []byte("alice"), Text: text, SentAt: t0, ReceivedAt: t0}
}

func testGroupLifecycle(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	_, err := s.CommitEpoch(ctx, EpochTransition{GroupID: gid, State: []byte("s")})
	wantErr(t, err, ErrNotFound)
	_, err = s.CommitEpoch(ctx, EpochTransition{GroupID: gid})
	wantErr(t, err, ErrInvalid)
	createGroup(t, s, gid)
	g := must[Group](t)(s.Group(ctx, gid))
	if g.Name != "friends group-1" || g.Epoch != 0 || len(g.CommitHash) != 0 || !g.CreatedAt.Equal(t0) {
		t.Fatalf("group: %+v", g)
	}
	// Same-epoch update (a message decrypted advanced the secret tree).
	res := must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 0, State: []byte("s0'"),
		Messages: []Message{msg("m1", "hello")}}))
	if res.MessagesInserted != 1 {
		t.Fatalf("inserted %d", res.MessagesInserted)
	}
	for e := uint64(1); e <= 3; e++ {
		must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: e, CommitHash: []byte{byte(e)},
			State: []byte(fmt.Sprint("s", e)), At: t0.Add(time.Duration(e) * time.Minute)}))
	}
	cur := must[EpochState](t)(s.CurrentState(ctx, gid))
	if cur.Epoch != 3 || string(cur.State) != "s3" || !bytes.Equal(cur.CommitHash, []byte{3}) {
		t.Fatalf("current: %+v", cur)
	}
	st := must[EpochState](t)(s.EpochState(ctx, gid, EpochRef{Epoch: 0}))
	if string(st.State) != "s0'" {
		t.Fatalf("epoch 0 state: %q", st.State)
	}
	hist := must[[]EpochRecord](t)(s.EpochHistory(ctx, gid, 0))
	if len(hist) != 4 || hist[2].Epoch != 2 || !bytes.Equal(hist[2].CommitHash, []byte{2}) || !hist[2].At.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("history: %+v", hist)
	}
	// A late message for epoch 1, decrypted with the retained state, does
	// not move the current state.
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, CommitHash: []byte{1}, State: []byte("s1'"),
		Retained: true, Messages: []Message{msg("late", "late message")}}))
	if cur = must[EpochState](t)(s.CurrentState(ctx, gid)); cur.Epoch != 3 {
		t.Fatalf("retained update moved current to %d", cur.Epoch)
	}
	if st = must[EpochState](t)(s.EpochState(ctx, gid, EpochRef{1, []byte{1}})); string(st.State) != "s1'" {
		t.Fatalf("retained update: %q", st.State)
	}
	// Forward secrecy: old states go; the current one never does.
	if n := must[int64](t)(s.DeleteEpochStates(ctx, gid, 2)); n != 2 {
		t.Fatalf("deleted %d states", n)
	}
	if n := must[int64](t)(s.DeleteEpochStates(ctx, gid, 100)); n != 1 {
		t.Fatalf("deleted %d states (current must stay)", n)
	}
	refs := must[[]EpochRef](t)(s.RetainedEpochs(ctx, gid))
	if len(refs) != 1 || refs[0].Epoch != 3 {
		t.Fatalf("retained: %+v", refs)
	}
	_, err = s.EpochState(ctx, gid, EpochRef{Epoch: 0})
	wantErr(t, err, ErrNotFound)
	// History is kept forever.
	if hist = must[[]EpochRecord](t)(s.EpochHistory(ctx, gid, 2)); len(hist) != 2 {
		t.Fatalf("history after pruning: %+v", hist)
	}
	ok(t, s.UpdateGroup(ctx, Group{ID: gid, Name: "renamed", Retention: time.Hour, Meta: []byte("m")}))
	g = must[Group](t)(s.Group(ctx, gid))
	if g.Name != "renamed" || g.Retention != time.Hour || string(g.Meta) != "m" || g.Epoch != 3 {
		t.Fatalf("updated: %+v", g)
	}
	wantErr(t, s.UpdateGroup(ctx, Group{ID: []byte("nope")}), ErrNotFound)
	createGroup(t, s, []byte("group-2"))
	if gs := must[[]Group](t)(s.ListGroups(ctx)); len(gs) != 2 {
		t.Fatalf("groups: %+v", gs)
	}
	ok(t, s.Enqueue(ctx, OutboxEntry{GroupID: gid, ID: []byte("o")}))
	ok(t, s.PutProposal(ctx, Proposal{GroupID: gid, Ref: []byte("p"), Data: []byte("d")}))
	ok(t, s.DeleteGroup(ctx, gid))
	_, err = s.Group(ctx, gid)
	wantErr(t, err, ErrNotFound)
	_, err = s.CurrentState(ctx, gid)
	wantErr(t, err, ErrNotFound)
	if m := must[[]Message](t)(s.Messages(ctx, gid, MessageQuery{})); len(m) != 0 {
		t.Fatal("messages survived their group")
	}
	if r := must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "hello"})); len(r) != 0 {
		t.Fatal("search finds a deleted group's messages")
	}
	if o := must[[]OutboxEntry](t)(s.Outbox(ctx, nil)); len(o) != 0 {
		t.Fatal("outbox survived its group")
	}
	if h := must[[]EpochRecord](t)(s.EpochHistory(ctx, gid, 0)); len(h) != 0 {
		t.Fatal("history survived its group")
	}
}

func testBranchSwitch(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	createGroup(t, s, gid)
	for e := uint64(1); e <= 4; e++ {
		must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: e, CommitHash: []byte{'a', byte(e)}, State: []byte{'a', byte(e)}}))
	}
	// A better commit for epoch 1→2 arrives: roll back to epoch 1's state
	// and apply it; the losing branch's later states are discarded.
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 2, CommitHash: []byte{'b', 2}, State: []byte{'b', 2},
		Discard:  []EpochRef{{2, []byte{'a', 2}}, {3, []byte{'a', 3}}, {4, []byte{'a', 4}}},
		Messages: []Message{msg("from-losing-branch", "kept anyway")}}))
	hist := must[[]EpochRecord](t)(s.EpochHistory(ctx, gid, 0))
	if len(hist) != 3 || !bytes.Equal(hist[2].CommitHash, []byte{'b', 2}) {
		t.Fatalf("history after switch: %+v", hist)
	}
	refs := must[[]EpochRef](t)(s.RetainedEpochs(ctx, gid))
	if len(refs) != 3 || !bytes.Equal(refs[2].CommitHash, []byte{'b', 2}) {
		t.Fatalf("retained after switch: %+v", refs)
	}
	// Discarding the current state is refused silently (it is kept).
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 2, CommitHash: []byte{'b', 2}, State: []byte("x"),
		Discard: []EpochRef{{2, []byte{'b', 2}}}}))
	if cur := must[EpochState](t)(s.CurrentState(ctx, gid)); string(cur.State) != "x" {
		t.Fatalf("current: %+v", cur)
	}
}

// testCanonicalChain: the retained canonical states come back oldest first
// with their Commit info, consecutive up to the current state; pruned
// epochs, states of a losing branch and holes in the history end the run.
func testCanonicalChain(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	_, err := s.CanonicalChain(ctx, gid)
	wantErr(t, err, ErrNotFound)
	createGroup(t, s, gid)
	chain := func() []EpochState {
		t.Helper()
		return must[[]EpochState](t)(s.CanonicalChain(ctx, gid))
	}
	if c := chain(); len(c) != 1 || c[0].Epoch != 0 || string(c[0].State) != "s0" || c[0].Info != nil {
		t.Fatalf("chain of a new group: %+v", c)
	}
	for e := uint64(1); e <= 6; e++ {
		must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: e, CommitHash: []byte{'a', byte(e)},
			State: []byte{'a', byte(e)}, CommitInfo: []byte{'i', byte(e)}, PruneBelow: max(e, 3) - 3}))
	}
	// A later write of the same state without info keeps the info.
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 6, CommitHash: []byte{'a', 6}, State: []byte("a6'")}))
	c := chain()
	if len(c) != 4 || c[0].Epoch != 3 || c[3].Epoch != 6 {
		t.Fatalf("chain after pruning below 3: %+v", c)
	}
	for i, st := range c {
		e := byte(3 + i)
		if !bytes.Equal(st.CommitHash, []byte{'a', e}) || !bytes.Equal(st.Info, []byte{'i', e}) {
			t.Fatalf("state %d: %+v", i, st)
		}
	}
	if string(c[3].State) != "a6'" {
		t.Fatalf("current state %q", c[3].State)
	}
	if cur := must[EpochState](t)(s.CurrentState(ctx, gid)); !bytes.Equal(cur.Info, []byte{'i', 6}) {
		t.Fatalf("current state's info: %q", cur.Info)
	}
	// A switch at epoch 4 straight to epoch 5 of branch b: the state of
	// epoch 4 of branch a stays retained but is not in the history; the
	// run stops below the current state.
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 5, CommitHash: []byte{'b', 5},
		State: []byte{'b', 5}, CommitInfo: []byte{'j', 5}}))
	if c := chain(); len(c) != 3 || !bytes.Equal(c[2].CommitHash, []byte{'b', 5}) || !bytes.Equal(c[2].Info, []byte{'j', 5}) || c[0].Epoch != 3 {
		// Epochs 3 and 4 (branch a, still in the history) come with it:
		// parentage is the engine's to check.
		t.Fatalf("chain after a switch: %+v", c)
	}
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 7, CommitHash: []byte{'b', 7},
		State: []byte{'b', 7}, CommitInfo: []byte{'j', 7}}))
	if c := chain(); len(c) != 1 || c[0].Epoch != 7 {
		// Epoch 6 of branch b was never written: a hole.
		t.Fatalf("chain after a hole: %+v", c)
	}
	// Other groups are not mixed in.
	createGroup(t, s, []byte("other"))
	if c := chain(); len(c) != 1 || c[0].Epoch != 7 {
		t.Fatalf("chain with another group: %+v", c)
	}
}

func testTransitionAtomic(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	createGroup(t, s, gid)
	ok(t, s.Enqueue(ctx, OutboxEntry{GroupID: gid, ID: []byte("o1")}))
	// The last part of this transition is invalid: nothing of it may stay.
	_, err := s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, CommitHash: []byte("c1"), State: []byte("s1"),
		Messages:   []Message{msg("m1", "one"), msg("m2", "two")},
		OutboxDone: [][]byte{[]byte("o1")},
		OutboxAdd:  []OutboxEntry{{ID: []byte("o2")}, {ID: nil}},
	})
	wantErr(t, err, ErrInvalid)
	if g := must[Group](t)(s.Group(ctx, gid)); g.Epoch != 0 {
		t.Fatalf("epoch moved to %d", g.Epoch)
	}
	if m := must[[]Message](t)(s.Messages(ctx, gid, MessageQuery{})); len(m) != 0 {
		t.Fatalf("messages of a failed transition: %d", len(m))
	}
	if o := must[[]OutboxEntry](t)(s.Outbox(ctx, gid)); len(o) != 1 || string(o[0].ID) != "o1" {
		t.Fatalf("outbox changed: %+v", o)
	}
	if h := must[[]EpochRecord](t)(s.EpochHistory(ctx, gid, 0)); len(h) != 1 {
		t.Fatalf("history changed: %+v", h)
	}
	// A message of another group in a transition is refused.
	_, err = s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, State: []byte("s1"),
		Messages: []Message{{GroupID: []byte("other"), ID: []byte("x")}}})
	wantErr(t, err, ErrInvalid)
	// The valid version commits everything.
	res := must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, CommitHash: []byte("c1"), State: []byte("s1"),
		Messages:   []Message{msg("m1", "one"), msg("m2", "two"), msg("m1", "one again")},
		OutboxDone: [][]byte{[]byte("o1")},
		OutboxAdd:  []OutboxEntry{{ID: []byte("o2"), Payload: []byte("p2")}},
	}))
	if res.MessagesInserted != 2 || !slices.Equal(res.Inserted, []bool{true, true, false}) {
		t.Fatalf("inserted %d %v", res.MessagesInserted, res.Inserted)
	}
	if o := must[[]OutboxEntry](t)(s.Outbox(ctx, gid)); len(o) != 1 || string(o[0].ID) != "o2" || string(o[0].Payload) != "p2" {
		t.Fatalf("outbox: %+v", o)
	}
	// Replaying the same transition (e.g. after a crash before the caller
	// learned it committed) changes nothing and duplicates nothing.
	res = must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 1, CommitHash: []byte("c1"), State: []byte("s1"),
		Messages: []Message{msg("m1", "one"), msg("m2", "two")}}))
	if res.MessagesInserted != 0 || !slices.Equal(res.Inserted, []bool{false, false}) {
		t.Fatalf("replay inserted %d %v", res.MessagesInserted, res.Inserted)
	}
	if m := must[[]Message](t)(s.Messages(ctx, gid, MessageQuery{})); len(m) != 2 {
		t.Fatalf("messages: %d", len(m))
	}
}

func testTransitionJoin(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	ok(t, s.PutKeyPackage(ctx, KeyPackage{Ref: []byte("kp1"), Data: []byte("d"), Private: []byte("init")}))
	ok(t, s.PutKeyPackage(ctx, KeyPackage{Ref: []byte("lr"), Data: []byte("d"), Private: []byte("init"), LastResort: true}))
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 7, State: []byte("joined"),
		Group: &Group{Name: "joined"}, ConsumedKeyPackage: []byte("kp1"),
		ProposalsAdd: []Proposal{{Ref: []byte("p1"), Data: []byte("prop"), Private: []byte("leaf")}}}))
	_, err := s.KeyPackage(ctx, []byte("kp1"))
	wantErr(t, err, ErrNotFound)
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: []byte("g2"), Epoch: 0, State: []byte("j"),
		Group: &Group{}, ConsumedKeyPackage: []byte("lr")}))
	must[KeyPackage](t)(s.KeyPackage(ctx, []byte("lr")))
	if g := must[Group](t)(s.Group(ctx, gid)); g.Epoch != 7 {
		t.Fatalf("joined at %d", g.Epoch)
	}
	ps := must[[]Proposal](t)(s.Proposals(ctx, gid))
	if len(ps) != 1 || string(ps[0].Private) != "leaf" {
		t.Fatalf("proposals: %+v", ps)
	}
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 8, CommitHash: []byte("c"), State: []byte("s8"),
		ProposalsDone: [][]byte{[]byte("p1")}, PruneBelow: 8}))
	if ps = must[[]Proposal](t)(s.Proposals(ctx, gid)); len(ps) != 0 {
		t.Fatalf("proposals after commit: %+v", ps)
	}
	if refs := must[[]EpochRef](t)(s.RetainedEpochs(ctx, gid)); len(refs) != 1 || refs[0].Epoch != 8 {
		t.Fatalf("retained: %+v", refs)
	}
}

func testMessages(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	createGroup(t, s, gid)
	_, err := s.AddMessages(ctx, Message{GroupID: []byte("nope"), ID: []byte("x")})
	wantErr(t, err, ErrNotFound)
	_, err = s.AddMessages(ctx, Message{GroupID: gid})
	wantErr(t, err, ErrInvalid)
	var ms []Message
	for i := range 10 {
		m := msg(fmt.Sprint("m", i), fmt.Sprint("message number ", i))
		m.GroupID, m.Epoch, m.Kind, m.Payload, m.State = gid, 3, 1, []byte{byte(i)}, Received
		ms = append(ms, m)
	}
	if n := must[int](t)(s.AddMessages(ctx, ms...)); n != 10 {
		t.Fatalf("added %d", n)
	}
	if n := must[int](t)(s.AddMessages(ctx, ms[3:5]...)); n != 0 {
		t.Fatalf("duplicates added: %d", n)
	}
	got := must[Message](t)(s.Message(ctx, gid, []byte("m3")))
	if got.Text != "message number 3" || got.Epoch != 3 || got.Kind != 1 || got.Payload[0] != 3 || !got.SentAt.Equal(t0) ||
		string(got.Sender) != "alice" || got.Seq == 0 {
		t.Fatalf("message: %+v", got)
	}
	page := must[[]Message](t)(s.Messages(ctx, gid, MessageQuery{Limit: 4}))
	if len(page) != 4 || string(page[0].ID) != "m9" || string(page[3].ID) != "m6" {
		t.Fatalf("page 1: %v", ids(page))
	}
	page = must[[]Message](t)(s.Messages(ctx, gid, MessageQuery{Limit: 4, BeforeSeq: page[3].Seq}))
	if len(page) != 4 || string(page[0].ID) != "m5" {
		t.Fatalf("page 2: %v", ids(page))
	}
	ok(t, s.SetDeliveryState(ctx, gid, []byte("m1"), Read))
	if got = must[Message](t)(s.Message(ctx, gid, []byte("m1"))); got.State != Read {
		t.Fatalf("state %v", got.State)
	}
	wantErr(t, s.SetDeliveryState(ctx, gid, []byte("zz"), Read), ErrNotFound)
	wantErr(t, s.SetDeliveryState(ctx, gid, []byte("m1"), 99), ErrInvalid)
	ok(t, s.EditMessage(ctx, gid, []byte("m2"), "edited zebra", nil))
	if r := must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "zebra"})); len(r) != 1 || string(r[0].ID) != "m2" {
		t.Fatalf("search after edit: %+v", r)
	}
	if r := must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "number 2"})); len(r) != 0 {
		t.Fatalf("old text still found: %+v", r)
	}
	ok(t, s.DeleteMessage(ctx, gid, []byte("m2")))
	_, err = s.Message(ctx, gid, []byte("m2"))
	wantErr(t, err, ErrNotFound)
	if r := must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "zebra"})); len(r) != 0 {
		t.Fatal("deleted message still found")
	}
	wantErr(t, s.EditMessage(ctx, gid, []byte("m2"), "x", nil), ErrNotFound)
	// Invalid UTF-8 is stored repaired, not rejected.
	must[int](t)(s.AddMessages(ctx, Message{GroupID: gid, ID: []byte("bad"), Text: "ok \xff\xfe ok"}))
	if got = must[Message](t)(s.Message(ctx, gid, []byte("bad"))); got.Text != "ok \uFFFD ok" {
		t.Fatalf("repaired text %q", got.Text)
	}
}

func ids(ms []Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, string(m.ID))
	}
	return out
}

func testRetention(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	createGroup(t, s, gid)
	createGroup(t, s, []byte("keep"))
	ok(t, s.UpdateGroup(ctx, Group{ID: gid, Retention: 24 * time.Hour}))
	for i := range 5 {
		for _, g := range [][]byte{gid, []byte("keep")} {
			m := msg(fmt.Sprint("m", i), "old news")
			m.GroupID, m.ReceivedAt = g, t0.Add(time.Duration(i)*12*time.Hour)
			must[int](t)(s.AddMessages(ctx, m))
		}
	}
	// now = t0+48h: messages received before t0+24h go (m0, m1).
	if n := must[int64](t)(s.ApplyRetention(ctx, t0.Add(48*time.Hour))); n != 2 {
		t.Fatalf("retention deleted %d", n)
	}
	if m := must[[]Message](t)(s.Messages(ctx, gid, MessageQuery{})); len(m) != 3 {
		t.Fatalf("left %d", len(m))
	}
	if m := must[[]Message](t)(s.Messages(ctx, []byte("keep"), MessageQuery{})); len(m) != 5 {
		t.Fatalf("group without retention lost messages: %d", len(m))
	}
	if n := must[int64](t)(s.DeleteMessagesBefore(ctx, []byte("keep"), t0.Add(time.Hour))); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	if r := must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "news"})); len(r) != 7 {
		t.Fatalf("search after retention: %d", len(r))
	}
}

func testSearch(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	g2 := []byte("group-2")
	createGroup(t, s, gid)
	createGroup(t, s, g2)
	texts := []string{
		"Let's meet at the Café tomorrow",
		"the cafe is closed on Mondays",
		"bring the presentation slides",
		"Presentations are boring",
		`quotes " and NEAR(x y) and col:umn * AND OR NOT`,
		"東京で会いましょう",
	}
	for i, tx := range texts {
		g := gid
		if i%2 == 1 {
			g = g2
		}
		m := msg(fmt.Sprint("s", i), tx)
		m.GroupID = g
		must[int](t)(s.AddMessages(ctx, m))
	}
	cases := []struct {
		q     string
		group []byte
		want  []string
	}{
		{"cafe", nil, []string{"s1", "s0"}},     // diacritics and case folded, across groups, newest first
		{"CAFÉ", gid, []string{"s0"}},           // group filter
		{"the cafe", nil, []string{"s1", "s0"}}, // every word
		{"cafe slides", nil, nil},               // no message has both
		{"present*", nil, []string{"s3", "s2"}}, // prefix (the '*' is optional)
		{"presen", nil, []string{"s3", "s2"}},   // prefix by default
		{"entation", nil, []string{"s3", "s2"}}, // and inside words
		{"caf", nil, []string{"s1", "s0"}},      // three letters, diacritics folded
		{`"the cafe is"`, nil, []string{"s1"}},  // phrase
		{"presentations", nil, []string{"s3"}},  // a longer word is more specific
		{`NEAR(x y)`, nil, []string{"s4"}},      // operators are words
		{`col:umn`, nil, []string{"s4"}},        // no column filters
		{`AND OR NOT`, nil, []string{"s4"}},     // no boolean operators
		{`"unterminated phrase`, nil, nil},      // tolerated
		{"東京で会いましょう", nil, []string{"s5"}},      // non-Latin script
		{"会いまし", nil, []string{"s5"}},           // CJK substring
		{"東京", nil, []string{"s5"}},             // two characters (LIKE)
		{"京", gid, nil},                         // one character, other group
		{"x y", nil, []string{"s4"}},            // short terms only
		{"100%", nil, nil},                      // LIKE metacharacters are not operators
	}
	for _, c := range cases {
		r, err := s.Search(ctx, SearchQuery{Text: c.q, GroupID: c.group})
		if err != nil {
			t.Fatalf("search %q: %v", c.q, err)
		}
		var got []string
		for _, x := range r {
			got = append(got, string(x.ID))
		}
		if strings.Join(got, ",") != strings.Join(c.want, ",") {
			t.Errorf("search %q: got %v, want %v", c.q, got, c.want)
		}
	}
	r := must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "slides"}))
	if len(r) != 1 || !strings.Contains(r[0].Snippet, SnippetStart+"slides"+SnippetEnd) {
		t.Fatalf("snippet: %+v", r)
	}
	// Paging.
	r = must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "cafe", Limit: 1}))
	r2 := must[[]SearchResult](t)(s.Search(ctx, SearchQuery{Text: "cafe", Limit: 1, BeforeSeq: r[0].Seq}))
	if len(r) != 1 || len(r2) != 1 || string(r2[0].ID) != "s0" {
		t.Fatalf("paging: %+v %+v", r, r2)
	}
	for _, bad := range []string{"", "   ", "!!! ???", strings.Repeat("a ", 600)} {
		_, err := s.Search(ctx, SearchQuery{Text: bad})
		wantErr(t, err, ErrInvalid)
	}
}

func testOutbox(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	wantErr(t, s.Enqueue(ctx, OutboxEntry{GroupID: gid, ID: []byte("x")}), ErrNotFound)
	createGroup(t, s, gid)
	createGroup(t, s, []byte("g2"))
	ok(t, s.Enqueue(ctx, OutboxEntry{GroupID: gid, ID: []byte("a"), Kind: 1, Epoch: 4, Payload: []byte("hello"), Wire: []byte("w"), CreatedAt: t0}))
	ok(t, s.Enqueue(ctx, OutboxEntry{GroupID: []byte("g2"), ID: []byte("b")}))
	ok(t, s.Enqueue(ctx, OutboxEntry{GroupID: gid, ID: []byte("c")}))
	all := must[[]OutboxEntry](t)(s.Outbox(ctx, nil))
	if len(all) != 3 || string(all[0].ID) != "a" || string(all[1].ID) != "b" {
		t.Fatalf("outbox: %+v", all)
	}
	e := all[0]
	if e.Kind != 1 || e.Epoch != 4 || string(e.Payload) != "hello" || string(e.Wire) != "w" || !e.CreatedAt.Equal(t0) {
		t.Fatalf("entry: %+v", e)
	}
	ok(t, s.MarkAttempt(ctx, gid, []byte("a"), 5, []byte("w2"), t0.Add(time.Minute)))
	ok(t, s.MarkAttempt(ctx, gid, []byte("a"), 0, nil, t0.Add(2*time.Minute)))
	wantErr(t, s.MarkAttempt(ctx, gid, []byte("zz"), 0, nil, t0), ErrNotFound)
	e = must[[]OutboxEntry](t)(s.Outbox(ctx, gid))[0]
	if e.Attempts != 2 || e.Epoch != 5 || string(e.Wire) != "w2" || !e.LastAttemptAt.Equal(t0.Add(2*time.Minute)) {
		t.Fatalf("after attempts: %+v", e)
	}
	ok(t, s.Settle(ctx, gid, []byte("a"), []byte("never")))
	if o := must[[]OutboxEntry](t)(s.Outbox(ctx, gid)); len(o) != 1 || string(o[0].ID) != "c" {
		t.Fatalf("after settle: %+v", o)
	}
}

func testProposals(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	wantErr(t, s.PutProposal(ctx, Proposal{GroupID: gid, Ref: []byte("r")}), ErrNotFound)
	createGroup(t, s, gid)
	for i := range 3 {
		ok(t, s.PutProposal(ctx, Proposal{GroupID: gid, Ref: []byte{byte(i)}, Epoch: uint64(i), Sender: []byte("bob"), Data: []byte("d"), Own: i == 1}))
	}
	ok(t, s.PutProposal(ctx, Proposal{GroupID: gid, Ref: []byte{1}, Epoch: 1, Data: []byte("d2"), Private: []byte("k"), Own: true}))
	ps := must[[]Proposal](t)(s.Proposals(ctx, gid))
	if len(ps) != 3 || string(ps[1].Data) != "d2" || string(ps[1].Private) != "k" || !ps[1].Own || ps[0].Private != nil {
		t.Fatalf("proposals: %+v", ps)
	}
	if n := must[int64](t)(s.DeleteProposalsBefore(ctx, gid, 1)); n != 1 {
		t.Fatalf("deleted %d", n)
	}
	ok(t, s.DeleteProposals(ctx, gid, []byte{2}))
	if ps = must[[]Proposal](t)(s.Proposals(ctx, gid)); len(ps) != 1 || ps[0].Ref[0] != 1 {
		t.Fatalf("left: %+v", ps)
	}
}

func testInvitations(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	if l := must[[]Invitation](t)(s.ListInvitations(ctx)); len(l) != 0 {
		t.Fatalf("new store has invitations: %+v", l)
	}
	_, err := s.Invitation(ctx, "nope")
	wantErr(t, err, ErrNotFound)
	// Stored out of order: listed oldest first (ties by id).
	ok(t, s.PutInvitation(ctx, Invitation{ID: "b", Payload: []byte("welcome b"), CreatedAt: t0.Add(time.Minute)}))
	ok(t, s.PutInvitation(ctx, Invitation{ID: "c", Payload: []byte("welcome c"), CreatedAt: t0}))
	ok(t, s.PutInvitation(ctx, Invitation{ID: "a", Payload: []byte("welcome a"), CreatedAt: t0.Add(time.Minute)}))
	list := must[[]Invitation](t)(s.ListInvitations(ctx))
	var got []string
	for _, inv := range list {
		got = append(got, inv.ID+"="+string(inv.Payload))
	}
	if strings.Join(got, ",") != "c=welcome c,a=welcome a,b=welcome b" {
		t.Fatalf("list: %v", got)
	}
	inv := must[Invitation](t)(s.Invitation(ctx, "c"))
	if string(inv.Payload) != "welcome c" || !inv.CreatedAt.Equal(t0) {
		t.Fatalf("invitation: %+v", inv)
	}
	// The same id again: the payload is replaced, the first CreatedAt (and
	// so the place in the list) is kept; no duplicate row.
	ok(t, s.PutInvitation(ctx, Invitation{ID: "c", Payload: []byte("welcome c, again"), CreatedAt: t0.Add(time.Hour)}))
	list = must[[]Invitation](t)(s.ListInvitations(ctx))
	if len(list) != 3 || list[0].ID != "c" || string(list[0].Payload) != "welcome c, again" || !list[0].CreatedAt.Equal(t0) {
		t.Fatalf("after upsert: %+v", list)
	}
	// A zero CreatedAt is set by the store.
	ok(t, s.PutInvitation(ctx, Invitation{ID: "d", Payload: []byte{0}}))
	if inv = must[Invitation](t)(s.Invitation(ctx, "d")); inv.CreatedAt.IsZero() || !bytes.Equal(inv.Payload, []byte{0}) {
		t.Fatalf("default time: %+v", inv)
	}
	ok(t, s.DeleteInvitation(ctx, "c"))
	ok(t, s.DeleteInvitation(ctx, "c")) // absent: no error
	_, err = s.Invitation(ctx, "c")
	wantErr(t, err, ErrNotFound)
	if list = must[[]Invitation](t)(s.ListInvitations(ctx)); len(list) != 3 || list[0].ID != "a" {
		t.Fatalf("after delete: %+v", list)
	}
	wantErr(t, s.PutInvitation(ctx, Invitation{Payload: []byte("x")}), ErrInvalid)
	wantErr(t, s.PutInvitation(ctx, Invitation{ID: strings.Repeat("x", maxIDLen+1), Payload: []byte("x")}), ErrInvalid)
	wantErr(t, s.PutInvitation(ctx, Invitation{ID: "e"}), ErrInvalid)
	wantErr(t, s.PutInvitation(ctx, Invitation{ID: "e", Payload: make([]byte, maxSecret+1)}), ErrInvalid)
	if list = must[[]Invitation](t)(s.ListInvitations(ctx)); len(list) != 3 {
		t.Fatalf("invalid puts stored something: %+v", list)
	}
}

// testInvitationAccepted: joining from an invitation deletes it in the
// join's transaction, and a failed join keeps it.
func testInvitationAccepted(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	ok(t, s.PutInvitation(ctx, Invitation{ID: "inv1", Payload: []byte("welcome")}))
	ok(t, s.PutInvitation(ctx, Invitation{ID: "inv2", Payload: []byte("other")}))
	ok(t, s.PutKeyPackage(ctx, KeyPackage{Ref: []byte("kp1"), Data: []byte("d"), Private: []byte("init")}))
	_, err := s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 3, State: []byte("joined"), Group: &Group{Name: "g"},
		ConsumedKeyPackage: []byte("kp1"), InvitationDone: "inv1",
		OutboxAdd: []OutboxEntry{{ID: nil}}}) // invalid: nothing may happen
	wantErr(t, err, ErrInvalid)
	must[Invitation](t)(s.Invitation(ctx, "inv1"))
	must[KeyPackage](t)(s.KeyPackage(ctx, []byte("kp1")))
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 3, State: []byte("joined"), Group: &Group{Name: "g"},
		ConsumedKeyPackage: []byte("kp1"), InvitationDone: "inv1"}))
	_, err = s.Invitation(ctx, "inv1")
	wantErr(t, err, ErrNotFound)
	_, err = s.KeyPackage(ctx, []byte("kp1"))
	wantErr(t, err, ErrNotFound)
	if l := must[[]Invitation](t)(s.ListInvitations(ctx)); len(l) != 1 || l[0].ID != "inv2" {
		t.Fatalf("left: %+v", l)
	}
	// An invitation that is already gone is no error.
	must[TransitionResult](t)(s.CommitEpoch(ctx, EpochTransition{GroupID: gid, Epoch: 3, State: []byte("joined'"), InvitationDone: "inv1"}))
}

func testClosed(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	createGroup(t, s, gid)
	ok(t, s.Close())
	ok(t, s.Close())
	_, err := s.Group(ctx, gid)
	wantErr(t, err, ErrClosed)
	_, err = s.CommitEpoch(ctx, EpochTransition{GroupID: gid, State: []byte("s")})
	wantErr(t, err, ErrClosed)
	_, err = s.Search(ctx, SearchQuery{Text: "x"})
	wantErr(t, err, ErrClosed)
	_, err = s.ListInvitations(ctx)
	wantErr(t, err, ErrClosed)
	wantErr(t, s.PutInvitation(ctx, Invitation{ID: "i", Payload: []byte("p")}), ErrClosed)
}
