package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"golang.org/x/crypto/cryptobyte"
)

// Tests that play the attackers of issue 12 against real engines: a
// stranger who knows a group's id, a relay that lies about who wrote its
// mailbox items, and a stranger who reuses a member's peer id and nick
// under its own key. Each asserts that the victim's group (state, roster,
// messages) is untouched, that the user is told in plain words, and that
// the honest group still works afterwards.

// groupView is what must not change under attack.
type groupView struct {
	epoch   uint64
	auth    []byte
	members []Member
}

func viewOf(t *testing.T, p *testPeer, gid GroupID) groupView {
	t.Helper()
	e, a := p.state(t, gid)
	return groupView{epoch: e, auth: a, members: p.e.Members(gid)}
}

func (v groupView) same(o groupView) bool {
	return v.epoch == o.epoch && bytes.Equal(v.auth, o.auth) && slices.Equal(v.members, o.members)
}

// strangerGroup is a non-member's own MLS group with the id of a victim's
// group: its creator leaf names posingAs (a member's peer id, with that
// member's nick) under the stranger's key. states keeps the stranger's
// state at each epoch.
type strangerGroup struct {
	mallory *testPeer
	st      *mls.Group
	states  map[uint64]*mls.Group
}

func newStrangerGroup(t *testing.T, mallory *testPeer, gid []byte, name string, posingAs p2p.PeerID, nick string, epochs int) *strangerGroup {
	t.Helper()
	exts, err := groupExtensions(nil, groupSettings{Name: name})
	if err != nil {
		t.Fatal(err)
	}
	leafExt, err := profileExtension(nick)
	if err != nil {
		t.Fatal(err)
	}
	opts := append([]mls.Option{mls.WithGroupExtensions(exts), mls.WithCapabilities(capabilities()), mls.WithLeafExtensions(leafExt)}, mallory.e.mlsOptions()...)
	st, err := mls.CreateGroup(suite, gid, mallory.e.id.sigPriv, mls.NewBasicCredential([]byte(posingAs)), opts...)
	if err != nil {
		t.Fatal(err)
	}
	sg := &strangerGroup{mallory: mallory, st: st, states: map[uint64]*mls.Group{0: st.Clone()}}
	for range epochs {
		sg.commit(t, nil)
	}
	return sg
}

func (sg *strangerGroup) commit(t *testing.T, props []*mls.Proposal) *mls.PendingCommit {
	t.Helper()
	pc, err := sg.st.Commit(mls.CommitOptions{Proposals: props, ForcePath: len(props) == 0})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sg.st.MergePendingCommit(pc); err != nil {
		t.Fatal(err)
	}
	sg.states[sg.st.Epoch()] = sg.st.Clone()
	return pc
}

// add adds the owner of the KeyPackage kpData and returns the Welcome.
func (sg *strangerGroup) add(t *testing.T, kpData []byte) []byte {
	t.Helper()
	kp, err := mls.ParseKeyPackage(kpData)
	if err != nil {
		t.Fatal(err)
	}
	return sg.commit(t, []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *kp}}}).Welcome
}

// forgedHistory is the made-up compact history of the issue: class 0,
// ticket 0 at every epoch before the Welcome's.
func forgedHistory(epochs uint64) []ordering.Entry {
	var out []ordering.Entry
	for e := range epochs {
		k := ordering.Key{Epoch: e, Class: 0, Ticket: 0}
		_, _ = rand.Read(k.Hash[:])
		out = append(out, k)
	}
	return out
}

// legacyEnvelope is the unsigned envelope of older versions (tag 0xC1).
func legacyEnvelope(t *testing.T, welcome []byte, hist []ordering.Entry) []byte {
	t.Helper()
	var b cryptobyte.Builder
	b.AddUint8(welcomeTagV1)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(welcome) })
	addHistory(&b, hist)
	out, err := b.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// signedStrangerEnvelope is a current envelope, signed by the stranger's
// leaf, with the best continuity proofs a stranger can make: signed with
// its own key over exporters of its own states at the victim's epochs.
func (sg *strangerGroup) signedEnvelope(t *testing.T, welcome []byte, hist []ordering.Entry, victimEpochs ...uint64) []byte {
	t.Helper()
	mallory := sg.mallory
	data, err := mallory.e.sealWelcome(welcome, hist, sg.st, nil, "")
	if err != nil {
		t.Fatal(err)
	}
	env, err := decodeWelcome(data)
	if err != nil {
		t.Fatal(err)
	}
	wh := sha256Sum(welcome)
	for _, ep := range victimEpochs {
		st := sg.states[ep]
		if st == nil {
			t.Fatalf("the stranger has no state at epoch %d", ep)
		}
		for leaf := range uint32(2) {
			tbs, err := continuityTBSOf(st, leaf, wh)
			if err != nil {
				t.Fatal(err)
			}
			sig, err := suite.SignWithLabel(mallory.e.id.sigPriv, continuityLabel, tbs, nil)
			if err != nil {
				t.Fatal(err)
			}
			env.Proofs = append(env.Proofs, continuityProof{Epoch: ep, Leaf: leaf, Sig: sig})
		}
	}
	out, err := env.marshal()
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func isNotice(substr string) func(Event) bool {
	return func(ev Event) bool {
		n, ok := ev.(NoticeEvent)
		return ok && strings.Contains(n.Text, substr)
	}
}

// lyingRelay is a relay whose operator can write mailbox items itself.
func newLyingRelay(t *testing.T) (*p2p.Relay, *p2p.MemoryMailbox) {
	t.Helper()
	mb := p2p.NewMemoryMailbox()
	r, err := p2p.NewRelay(context.Background(), nil, p2p.RelayConfig{Mailbox: mb, Circuit: p2p.CircuitLimits{AllowPrivateAddrs: true}},
		p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithMDNS(false), p2p.WithAutoNAT(false), p2p.WithHolePunching(false),
		p2p.WithLogger(testLogger(t, "relay")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r, mb
}

func viaRelayOpts(r *p2p.Relay) engineOpt {
	boot := r.Node().Addrs()[0].String()
	return func(c *Config) {
		c.Bootstrap = []string{boot}
		c.MailboxInterval = time.Hour // the test polls (PollMailboxes)
	}
}

// forge writes an inbox item into to's mailbox in the name of from.
func forge(t *testing.T, mb *p2p.MemoryMailbox, to, from p2p.PeerID, msg p2p.InboxMessage) {
	t.Helper()
	data := p2p.EncodeInboxMessage(msg)
	now := time.Now()
	big := p2p.Quota{Count: 1 << 20, Bytes: 1 << 30}
	if err := mb.Deposit(context.Background(), p2p.MailItem{ID: p2p.IDOf(data), Recipient: to, From: from, Data: data, Deposited: now, Expires: now.Add(time.Hour)}, p2p.MailQuota{PerRecipient: big, PerSender: big}); err != nil {
		t.Fatal(err)
	}
}

func poll(p *testPeer) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	p.e.PollMailboxes(ctx)
}

// chatStillWorks sends a message each way in gid.
func chatStillWorks(t *testing.T, gid GroupID, a, b *testPeer, tag string) {
	t.Helper()
	a.run(gid, tag+" from "+a.e.nick())
	b.rec.wait(t, b.e.nick()+" gets "+tag, isMessage(gid, tag+" from "+a.e.nick()))
	b.run(gid, tag+" from "+b.e.nick())
	a.rec.wait(t, a.e.nick()+" gets "+tag, isMessage(gid, tag+" from "+b.e.nick()))
}

// assertSeparateInvitation checks that victim kept the stranger's Welcome
// as a separate invitation it cannot accept while in the group.
func assertSeparateInvitation(t *testing.T, victim *testPeer, name string) {
	t.Helper()
	var inv *Invitation
	for _, i := range victim.e.Invitations() {
		if strings.Contains(i.Warning, "does not continue your group") {
			inv = &i
		}
	}
	if inv == nil {
		t.Fatalf("no separate invitation listed: %+v", victim.e.Invitations())
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	if _, err := victim.e.Run(ctx, "", "/accept "+inv.ID); err == nil || !strings.Contains(err.Error(), "/leave "+name) {
		t.Fatalf("accepting the stranger's invitation while in %s: %v", name, err)
	}
	if _, err := victim.e.Run(ctx, "", "/decline "+inv.ID); err != nil {
		t.Fatalf("declining the stranger's invitation: %v", err)
	}
}

// Issue 12, item 1, directly: a stranger who knows the group id makes its
// own group with that id, posing as alice (her peer id and nick, its own
// key), adds bob with a KeyPackage fetched from him and sends the Welcome
// over /canopy/inbox/1, first in the old unsigned envelope with a made-up
// history (class 0, ticket 0 at every epoch), then signed with forged
// continuity proofs. Bob stays in his group; he is told that someone
// invited him into a different group claiming the id; alice's and bob's
// messages still go through, and the stranger's group never gets bob.
func TestStrangerWelcomeDirectIsNotAForkHeal(t *testing.T) {
	alice, bob, mallory := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "mallory")
	connect(t, alice, bob)
	connect(t, mallory, bob)
	gid := alice.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return convergedWith(t, gid, 2, alice, bob) })
	chatStillWorks(t, gid, alice, bob, "before")
	before := viewOf(t, bob, gid)

	g := bob.e.group(gid)
	sg := newStrangerGroup(t, mallory, g.id, "team", alice.e.id.id, "alice", 4)
	fetch := func() []byte {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		kp, err := mallory.e.node.FetchKeyPackage(ctx, bob.e.id.id, bob.e.id.id)
		if err != nil {
			t.Fatal(err)
		}
		return kp.Data
	}
	send := func(data []byte) {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		defer cancel()
		_ = mallory.e.node.SendInbox(ctx, bob.e.id.id, p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: p2p.TopicName(g.id), Data: data})
	}

	w1 := sg.add(t, fetch())
	send(legacyEnvelope(t, w1, forgedHistory(sg.st.Epoch()-1)))
	bob.rec.wait(t, "the plain-words notice", isNotice("invited you into a different group that claims the id of team; it does not continue your group"))
	assertSeparateInvitation(t, bob, "team")
	if now := viewOf(t, bob, gid); !now.same(before) {
		t.Fatalf("bob's group changed under the stranger's Welcome: %+v, was %+v", now, before)
	}

	sg2 := newStrangerGroup(t, mallory, g.id, "team", alice.e.id.id, "alice", 4)
	w2 := sg2.add(t, fetch())
	send(sg2.signedEnvelope(t, w2, forgedHistory(sg2.st.Epoch()-1), 0, 1))
	bob.rec.wait(t, "the notice names the posing key", isNotice("uses the name of alice but not the key you know for alice"))
	if now := viewOf(t, bob, gid); !now.same(before) {
		t.Fatalf("bob's group changed under the signed stranger Welcome: %+v, was %+v", now, before)
	}
	for _, m := range bob.e.Members(gid) {
		if m.KeyChanged {
			t.Fatalf("bob's honest roster shows a key change: %+v", m)
		}
	}
	chatStillWorks(t, gid, alice, bob, "after")
	if !converged(t, gid, alice, bob) {
		t.Fatal("alice and bob no longer share a state")
	}
}

// Issue 12, item 1, through a relay mailbox: the stranger only shares a
// relay with bob; it fetches bob's KeyPackage from the relay and deposits
// its Welcome (signed, forged history) in bob's mailbox.
func TestStrangerWelcomeViaRelayIsNotAForkHeal(t *testing.T) {
	relay, _ := newLyingRelay(t)
	via := viaRelayOpts(relay)
	alice, bob, mallory := newPeer(t, "alice", via), newPeer(t, "bob", via), newPeer(t, "mallory", via)
	connect(t, alice, bob)
	gid := alice.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return convergedWith(t, gid, 2, alice, bob) })
	before := viewOf(t, bob, gid)
	g := bob.e.group(gid)

	var kp []byte
	waitFor(t, "bob's KeyPackage on the relay", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		k, err := mallory.e.node.FetchKeyPackage(ctx, relay.Node().ID(), bob.e.id.id)
		kp = k.Data
		return err == nil
	})
	sg := newStrangerGroup(t, mallory, g.id, "team", alice.e.id.id, "alice", 3)
	w := sg.add(t, kp)
	for _, data := range [][]byte{legacyEnvelope(t, w, forgedHistory(sg.st.Epoch()-1)), sg.signedEnvelope(t, w, forgedHistory(sg.st.Epoch()-1), 0, 1)} {
		ctx, cancel := context.WithTimeout(context.Background(), waitLong)
		err := mallory.e.node.Deposit(ctx, relay.Node().ID(), bob.e.id.id, p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: p2p.TopicName(g.id), Data: data}, time.Hour)
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	poll(bob)
	bob.rec.wait(t, "the plain-words notice", isNotice("invited you into a different group that claims the id of team"))
	assertSeparateInvitation(t, bob, "team")
	if now := viewOf(t, bob, gid); !now.same(before) {
		t.Fatalf("bob's group changed under the relayed stranger Welcome: %+v, was %+v", now, before)
	}
	chatStillWorks(t, gid, alice, bob, "after")
}

// Issue 12, item 2: the relay writes mailbox items in bob's name to alice:
// an unsigned decline, a decline signed with another key, bob's real
// signature over a decline of a leaf he does not have (a replay of an old
// decline), unsigned and signed claims, and hellos that would change bob's
// key and nick. Alice removes nobody, keeps bob's key and nick, says that
// the relay delivered messages in bob's name that were not his, and the
// group keeps working.
func TestLyingRelayCannotSpeakForMembers(t *testing.T) {
	relay, mb := newLyingRelay(t)
	via := viaRelayOpts(relay)
	alice, bob, mallory := newPeer(t, "alice", via), newPeer(t, "bob", via), newPeer(t, "mallory")
	connect(t, alice, bob)
	gid := alice.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return convergedWith(t, gid, 2, alice, bob) })
	before := viewOf(t, alice, gid)
	g := alice.e.group(gid)
	topic := p2p.TopicName(g.id)
	aliceID, bobID := alice.e.id.id, bob.e.id.id

	var bobLeafKey []byte
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	_ = g.do(ctx, func() {
		for _, m := range g.st.Members() {
			if p, _ := peerOfCredential(&m.Credential); p == bobID {
				bobLeafKey = m.LeafNode.EncryptionKey
			}
		}
	})
	cancel()
	if bobLeafKey == nil {
		t.Fatal("bob's leaf not found")
	}
	// signedAs signs a control message in bob's name with mallory's key.
	signedAs := func(kind byte, topic string, body []byte) []byte {
		c := &signedControl{Kind: kind, Sender: bobID, SigKey: mallory.e.id.sigPub, Topic: topic, Body: body}
		tbs, err := c.tbs()
		if err != nil {
			t.Fatal(err)
		}
		if c.Signature, err = suite.SignWithLabel(mallory.e.id.sigPriv, controlLabel, tbs, nil); err != nil {
			t.Fatal(err)
		}
		out, err := c.marshal()
		if err != nil {
			t.Fatal(err)
		}
		return append([]byte{dmSigned}, out...)
	}
	bobSigned := func(kind byte, topic string, body []byte) []byte {
		data, err := bob.e.signControl(kind, topic, body)
		if err != nil {
			t.Fatal(err)
		}
		return data
	}
	var claim []byte
	bg := bob.e.group(gid)
	ctx, cancel = context.WithTimeout(context.Background(), waitLong)
	_ = bg.do(ctx, func() {
		c := bg.m.MakeClaim(nil)
		claim, _ = ordering.MarshalClaim(&c)
	})
	cancel()
	evilCard := Card{PeerID: bobID, Fingerprint: mallory.e.id.fp, Nick: "bob-evil"}
	cardBytes, err := evilCard.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	staleKey := bytes.Repeat([]byte{7}, len(bobLeafKey))
	direct := func(data []byte) p2p.InboxMessage {
		return p2p.InboxMessage{Kind: p2p.InboxDirect, Topic: topic, Data: data}
	}
	for _, m := range []p2p.InboxMessage{
		direct([]byte{dmDecline}),
		direct(signedAs(dmDecline, topic, bobLeafKey)),
		direct(bobSigned(dmDecline, topic, staleKey)),
		direct(append([]byte{dmClaim}, claim...)),
		direct(bobSigned(dmClaim, topic, claim)),
		{Kind: p2p.InboxDirect, Data: append([]byte{dmHello}, cardBytes...)},
		{Kind: p2p.InboxDirect, Data: signedAs(dmHello, "", cardBytes)},
	} {
		forge(t, mb, aliceID, bobID, m)
	}
	poll(alice)
	for _, what := range []string{"ignored a decline that relay", "ignored a decline for team", "ignored a fork claim", "ignored a hello"} {
		alice.rec.wait(t, what, isNotice(what))
	}
	chatStillWorks(t, gid, alice, bob, "after")
	if got := alice.e.Members(gid); len(got) != 2 || !hasMember(got, "bob") {
		t.Fatalf("alice's members after the forged declines: %v", memberNames(got))
	}
	if now := viewOf(t, alice, gid); now.epoch != before.epoch || !bytes.Equal(now.auth, before.auth) {
		t.Fatalf("alice's group moved: epoch %d, was %d", now.epoch, before.epoch)
	}
	alice.e.mu.Lock()
	ci := alice.e.contacts[bobID]
	alice.e.mu.Unlock()
	if ci == nil || !bytes.Equal(ci.fp, bob.e.id.fp) || ci.nick == "bob-evil" {
		t.Fatalf("alice's contact for bob changed: %+v", ci)
	}
	if alice.rec.has(isNotice("declined the invitation")) {
		t.Fatal("a forged decline was taken for bob's")
	}
}

// Identity by key: a stranger invites bob into a new group where its own
// leaf reuses alice's peer id and nick with another key. The invitation
// says so; once bob accepts it (explicitly), that member is flagged as a
// key change there, bob is warned, and alice's key in bob's contacts and
// in the honest group stays the real one.
func TestImpostorNickWithAnotherKeyIsFlagged(t *testing.T) {
	alice, bob, mallory := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "mallory")
	connect(t, alice, bob)
	connect(t, mallory, bob)
	gid := alice.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return convergedWith(t, gid, 2, alice, bob) })

	newID := make([]byte, 16)
	_, _ = rand.Read(newID)
	sg := newStrangerGroup(t, mallory, newID, "party", alice.e.id.id, "alice", 0)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	kp, err := mallory.e.node.FetchKeyPackage(ctx, bob.e.id.id, bob.e.id.id)
	if err != nil {
		t.Fatal(err)
	}
	w := sg.add(t, kp.Data)
	if err := mallory.e.node.SendInbox(ctx, bob.e.id.id, p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: p2p.TopicName(newID), Data: sg.signedEnvelope(t, w, nil)}); err != nil {
		t.Fatal(err)
	}
	inv := bob.rec.wait(t, "the invitation", func(ev Event) bool {
		i, ok := ev.(InvitationEvent)
		return ok && i.Invitation.GroupName == "party"
	}).(InvitationEvent).Invitation
	if inv.From != "alice" || !strings.Contains(inv.Warning, "not the key you know for alice") {
		t.Fatalf("invitation %+v: want it from alice with a key warning", inv)
	}
	party := bob.run("", "/accept "+inv.ID).Group
	bob.rec.wait(t, "the key warning", isNotice("the member called alice has the key"))
	waitFor(t, "party members", func() bool { return len(bob.e.Members(party)) == 2 })
	for _, m := range bob.e.Members(party) {
		if m.Nick == "alice" && !m.KeyChanged {
			t.Fatalf("the impostor is not flagged: %+v", m)
		}
	}
	for _, m := range bob.e.Members(gid) {
		if m.KeyChanged {
			t.Fatalf("the real alice is flagged in the honest group: %+v", m)
		}
	}
	bob.e.mu.Lock()
	ci := bob.e.contacts[alice.e.id.id]
	bob.e.mu.Unlock()
	if ci == nil || !bytes.Equal(ci.fp, alice.e.id.fp) {
		t.Fatalf("bob's contact for alice lost her key: %+v", ci)
	}
	if out := bob.run(party, "/members").Text; !strings.Contains(out, "KEY CHANGED") {
		t.Fatalf("/members does not flag the impostor:\n%s", out)
	}
	chatStillWorks(t, gid, alice, bob, "after")
}

// ownCommitUnpublished makes and applies an own Commit in g's loop as
// commitIntents does, without publishing it.
func ownCommitUnpublished(t *testing.T, g *group, props []*mls.Proposal) *mls.PendingCommit {
	base := g.st
	work := base.Clone()
	pc, err := work.Commit(mls.CommitOptions{Proposals: props})
	if err == nil {
		_, err = work.MergePendingCommit(pc)
	}
	if err != nil {
		t.Error(err)
		return nil
	}
	info := commitInfoOf(base, work, pc.Update)
	h := ordering.HashOf(pc.Message)
	g.commits[h] = &commitRec{info: info, parent: g.tipHash, epoch: work.Epoch(), settings: settingsOf(work.Extensions())}
	g.stateHash[work] = h
	g.exec(g.m.OwnCommit(g.proc, pc.Message, work, info, nil, false, g.e.now()))
	return pc
}

// The honest side of item 1: bob misses alice's Commits that remove him
// and add him back, and gets her Welcome first, while he is still a
// member. The Welcome carries a continuity proof from a state both hold,
// so it is not a stranger's: the fork choice keeps it until it leads
// forward (bob sees his removal), then bob continues in the group without
// a prompt, and they chat again.
func TestReAddWelcomeProvesContinuity(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	gid := alice.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return convergedWith(t, gid, 2, alice, bob) })
	bobID := bob.e.id.id
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	kp, _, err := alice.e.fetchKeyPackage(ctx, bobID, nil)
	if err != nil {
		t.Fatal(err)
	}
	ag := alice.e.group(gid)
	var kick, add *mls.PendingCommit
	var env []byte
	if err := ag.do(ctx, func() {
		var leaf mls.LeafIndex
		for _, m := range ag.st.Members() {
			if p, _ := peerOfCredential(&m.Credential); p == bobID {
				leaf = m.Index
			}
		}
		if kick = ownCommitUnpublished(t, ag, []*mls.Proposal{{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: uint32(leaf)}}}); kick == nil {
			return
		}
		if add = ownCommitUnpublished(t, ag, []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *kp}}}); add == nil {
			return
		}
		env, err = alice.e.sealWelcome(add.Welcome, ag.m.MakeClaim(nil).Entries, ag.st, ag.heldStates(), bobID)
		if err != nil {
			t.Error(err)
		}
	}); err != nil || t.Failed() {
		t.Fatal("alice's commits:", err)
	}
	if e, _ := bob.state(t, gid); e != 1 {
		t.Fatalf("bob at epoch %d before the Welcome, want 1", e)
	}
	if err := alice.e.node.SendInbox(ctx, bobID, p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: p2p.TopicName(ag.id), Data: env}); err != nil {
		t.Fatal(err)
	}
	bg := bob.e.group(gid)
	waitFor(t, "bob keeps the Welcome for the fork choice", func() bool {
		n := 0
		_ = bg.do(ctx, func() { n = len(bg.refused) })
		return n == 1
	})
	if bob.rec.has(isNotice("different group")) || len(bob.e.Invitations()) != 0 {
		t.Fatalf("alice's proven Welcome was taken for a stranger's: invitations %+v", bob.e.Invitations())
	}
	_ = ag.do(ctx, func() {
		ag.publish(kick.Message, 1, nil)
		ag.publish(add.Message, 2, nil)
	})
	bob.rec.wait(t, "bob back", isNotice("you are a member of team again"))
	waitFor(t, "two members again", func() bool { return convergedWith(t, gid, 2, alice, bob) })
	chatStillWorks(t, gid, alice, bob, "again")
}

func sha256Sum(b []byte) []byte {
	s := sha256.Sum256(b)
	return s[:]
}

// The honest side of item 2: carol's signed decline of alice's invitation
// reaches alice through the relay's mailbox (deposited as SendOrDeposit
// does when alice is unreachable), and alice removes carol's leaf.
func TestSignedDeclineThroughRelay(t *testing.T) {
	relay, _ := newLyingRelay(t)
	via := viaRelayOpts(relay)
	alice, carol := newPeer(t, "alice", via), newPeer(t, "carol", via)
	connect(t, alice, carol)
	gid := alice.run("", "/create club "+carol.card()).Group
	carol.rec.wait(t, "invitation", isInvitation)
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	inv, err := carol.e.findInvitation("")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := carol.e.bundleFor(ctx, inv.Welcome)
	if err != nil {
		t.Fatal(err)
	}
	topic := p2p.TopicName(inv.GroupID)
	data, err := carol.e.signControl(dmDecline, topic, b.KeyPackage.LeafNode.EncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	if err := carol.e.node.Deposit(ctx, relay.Node().ID(), alice.e.id.id, p2p.InboxMessage{Kind: p2p.InboxDirect, Topic: topic, Data: data}, time.Hour); err != nil {
		t.Fatal(err)
	}
	poll(alice)
	alice.rec.wait(t, "carol's decline", isNotice("carol declined the invitation to club"))
	waitFor(t, "carol's leaf removed", func() bool { return len(alice.e.Members(gid)) == 1 })
	if alice.rec.has(isNotice("ignored")) {
		t.Fatal("alice distrusted carol's genuine decline")
	}
}

// The rejoin path of a deep fork (order.go rejoin) follows a member's
// signed claim to the GroupInfo it carries: only to that member's own
// state of this group, signed with the key bob knows for it; never to a
// GroupInfo of a stranger's group with the same id whose leaf poses as
// that member.
func TestRejoinOnlyToClaimantsOwnState(t *testing.T) {
	alice, bob, mallory := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "mallory")
	connect(t, alice, bob)
	gid := alice.run("", "/create team "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return convergedWith(t, gid, 2, alice, bob) })
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	ag, bg := alice.e.group(gid), bob.e.group(gid)
	var honestGI []byte
	var aliceTip *mls.Group
	if err := ag.do(ctx, func() {
		honestGI, _ = ag.st.GroupInfo(mls.GroupInfoOptions{RatchetTree: true, ExternalPub: true})
		aliceTip = ag.st.Clone()
	}); err != nil || honestGI == nil {
		t.Fatal("alice's GroupInfo", err)
	}
	sg := newStrangerGroup(t, mallory, bg.id, "team", alice.e.id.id, "alice", 2)
	strangerGI, err := sg.st.GroupInfo(mls.GroupInfoOptions{RatchetTree: true, ExternalPub: true})
	if err != nil {
		t.Fatal(err)
	}
	join := func(gi []byte, removePrior bool) *mls.Group {
		leafExt, _ := profileExtension("bob")
		opts := append([]mls.Option{mls.WithCapabilities(capabilities()), mls.WithLeafExtensions(leafExt)}, bob.e.mlsOptions()...)
		st, _, err := mls.JoinExternal(gi, bob.e.id.sigPriv, bob.e.id.cred, mls.ExternalJoinOptions{RemovePrior: removePrior}, opts...)
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	honest, stranger := join(honestGI, true), join(strangerGI, false)
	aliceID := ident(alice.e.id.id)
	var okHonest, okWrongSigner, okStranger bool
	_ = bg.do(ctx, func() {
		okHonest = bg.rejoinTargetTrusted(honestGI, honest, aliceID)
		okWrongSigner = bg.rejoinTargetTrusted(honestGI, honest, ident(mallory.e.id.id))
		okStranger = bg.rejoinTargetTrusted(strangerGI, stranger, aliceID)
	})
	// A Welcome into a state bob holds (a replayed Welcome) is recognised
	// as such; a stranger's state with the same id and epoch is not.
	var holdsOwn, holdsStranger bool
	_ = bg.do(ctx, func() {
		holdsOwn = holdsState(bg.canonicalStates(), aliceTip)
		holdsStranger = holdsState(bg.canonicalStates(), sg.states[aliceTip.Epoch()])
	})
	if !holdsOwn || holdsStranger {
		t.Fatalf("holdsState: own chain %v (want true), stranger's %v (want false)", holdsOwn, holdsStranger)
	}
	if !okHonest || okWrongSigner || okStranger {
		t.Fatalf("trusted: alice's own state %v (want true), named for another signer %v, stranger's group %v (want false)", okHonest, okWrongSigner, okStranger)
	}
}
