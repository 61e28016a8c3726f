package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Attacks by strangers who know a group's id (every relay carrying its
// topic does): frames with a valid MLS header but no member behind them.

// sybil is a throw-away libp2p node of a stranger, joined to a group's
// topic.
type sybil struct {
	node  *p2p.Node
	topic *p2p.Topic
}

func newSybil(t *testing.T, gid []byte, victims ...*testPeer) *sybil {
	t.Helper()
	key, err := p2p.GenerateIdentity()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	n, err := p2p.New(ctx, key, p2p.WithListenAddrs("/ip4/127.0.0.1/tcp/0"), p2p.WithMDNS(false), p2p.WithDHT(p2p.DHTOff),
		p2p.WithAutoNAT(false), p2p.WithHolePunching(false))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Close() })
	for _, v := range victims {
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		err := n.Connect(cctx, v.e.node.AddrInfo())
		cancel()
		if err != nil {
			t.Fatal(err)
		}
	}
	if gid == nil {
		return &sybil{node: n}
	}
	tp, err := n.JoinGroup(gid)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, waitLong)
	defer cancel()
	if err := tp.WaitPeers(wctx, len(victims)); err != nil {
		t.Fatal(err)
	}
	return &sybil{node: n, topic: tp}
}

func (s *sybil) publish(t *testing.T, frames [][]byte) {
	ctx, cancel := context.WithTimeout(context.Background(), waitLong)
	defer cancel()
	for _, f := range frames {
		if _, err := s.topic.Publish(ctx, f); err != nil {
			t.Errorf("sybil publish: %v", err)
			return
		}
	}
}

// strangerMLS is a stranger's own MLS group with the victims' group id:
// real MLS frames, valid in every respect except that no member sent them.
func strangerMLS(t *testing.T, gid []byte, epoch uint64) (*mls.Group, [][]byte) {
	return strangerMLSAs(t, gid, epoch, []byte("mallory"))
}

// strangerMLSAs is strangerMLS with the creator's credential identity
// (a peer id for groups the engine should take as valid).
func strangerMLSAs(t *testing.T, gid []byte, epoch uint64, identity []byte) (*mls.Group, [][]byte) {
	t.Helper()
	priv, _, err := suite.GenerateSignatureKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	g, err := mls.CreateGroup(suite, gid, priv, mls.NewBasicCredential(identity))
	if err != nil {
		t.Fatal(err)
	}
	var commits [][]byte
	for g.Epoch() < epoch {
		pc, err := g.Commit(mls.CommitOptions{ForcePath: true})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.MergePendingCommit(pc); err != nil {
			t.Fatal(err)
		}
		commits = append(commits, pc.Message)
	}
	return g, commits
}

// junkFrame is a frame with a valid header (PrivateMessage of ct at
// epoch) and size bytes of random content.
func junkFrame(t *testing.T, gid []byte, epoch uint64, ct mls.ContentType, size int) []byte {
	t.Helper()
	body := make([]byte, size)
	_, _ = rand.Read(body)
	m := mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: mls.WireFormatPrivateMessage, PrivateMessage: &mls.PrivateMessage{
		GroupID: gid, Epoch: epoch, ContentType: ct, EncryptedSenderData: body[:28], Ciphertext: body[28:],
	}}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// junkCommit is a PublicMessage Commit header at epoch from leaf 0, with
// size bytes of random body.
func junkCommit(t *testing.T, gid []byte, epoch uint64, size int) []byte {
	t.Helper()
	b := []byte{0, 1, 0, 1}
	b = append(b, byte(len(gid)))
	b = append(b, gid...)
	for i := 7; i >= 0; i-- {
		b = append(b, byte(epoch>>(8*i)))
	}
	b = append(b, 1, 0, 0, 0, 0, 0, 3) // member leaf 0, no authenticated data, commit
	body := make([]byte, size)
	_, _ = rand.Read(body)
	if _, err := p2p.ParseMLSHeader(b); err != nil {
		t.Errorf("junk commit header: %v", err) // (may run off the test goroutine)
	}
	return append(b, body...)
}

func dbSize(t *testing.T, dir string) int64 {
	t.Helper()
	var n int64
	matches, _ := filepath.Glob(filepath.Join(dir, "*.db*"))
	for _, m := range matches {
		if fi, err := os.Stat(m); err == nil {
			n += fi.Size()
		}
	}
	return n
}

// loggedFrames returns the hashes and total size of a group's frame log.
func loggedFrames(t *testing.T, p *testPeer, gid []byte) (map[[32]byte]bool, int) {
	t.Helper()
	out := map[[32]byte]bool{}
	total := 0
	var after int64
	for {
		fs, err := p.e.db.Frames(context.Background(), p2p.TopicName(gid), store.FrameQuery{AfterSeq: after, Limit: 500})
		if err != nil {
			t.Fatal(err)
		}
		if len(fs) == 0 {
			return out, total
		}
		for _, f := range fs {
			out[sha256.Sum256(f.Data)] = true
			total += len(f.Data)
			after = f.Seq
		}
	}
}

// TestJunkFramesWithValidHeaders: strangers flood a member with frames
// that have the group's id and plausible epochs (issue 13, item 1): a
// stranger's own MLS group with the same id, huge junk Commits, future
// epochs. The member forwards none of it, stores none of it, holds at
// most its bounds in memory, and the members' messages all get through.
func TestJunkFramesWithValidHeaders(t *testing.T) {
	dir := t.TempDir()
	alice := newPeer(t, "alice", func(c *Config) { c.Store, c.ProfileDir = nil, dir })
	bob := newPeer(t, "bob")
	connect(t, alice, bob)
	g := alice.run("", "/create hostile "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	gid, _ := hex.DecodeString(string(g))
	ag, bg := alice.e.group(g), bob.e.group(g)
	epoch := epochOf(t, ag)
	dbBefore := dbSize(t, dir)

	// CANOPY_HOSTILE_FULL=1 runs the scale: 8 strangers, each
	// with 4 Commits of nearly p2p's 8 MiB maximum (~256 MB in all).
	sybils, commitSize := 4, 1<<20
	if os.Getenv("CANOPY_HOSTILE_FULL") != "" {
		sybils, commitSize = 8, p2p.DefaultMaxMessageSize-(64<<10)
	}
	// Only hashes of the junk are kept: the big Commits are made while
	// the attack runs, so that the process's heap is mostly the victims'.
	var junkMu sync.Mutex
	junk := map[[32]byte]bool{}
	junkBytes := 0
	note := func(f []byte) []byte {
		junkMu.Lock()
		junk[sha256.Sum256(f)] = true
		junkBytes += len(f)
		junkMu.Unlock()
		return f
	}
	perSybil := make([][][]byte, sybils)
	for i := range sybils {
		sg, commits := strangerMLS(t, gid, epoch)
		var fs [][]byte
		for _, c := range commits {
			fs = append(fs, note(c))
		}
		for range 16 {
			big := make([]byte, 48<<10)
			m, err := sg.Protect(big, nil)
			if err != nil {
				t.Fatal(err)
			}
			fs = append(fs, note(m))
		}
		for _, ep := range []uint64{epoch + 1, epoch + 500} {
			for range 4 {
				fs = append(fs, note(junkFrame(t, gid, ep, mls.ContentTypeApplication, 60<<10)))
			}
		}
		// Over the size bound for application frames: rejected outright.
		fs = append(fs, note(junkFrame(t, gid, epoch, mls.ContentTypeApplication, 200<<10)))
		perSybil[i] = fs
	}
	ss := make([]*sybil, sybils)
	for i := range ss {
		ss[i] = newSybil(t, gid, alice)
	}

	// Sample the bounds while the attack runs.
	var peakHeld, peakTotal, peakHeap atomic.Int64
	var bobHeld atomic.Int64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		var ms runtime.MemStats
		for {
			if h := int64(ag.gate.heldBytes()); h > peakHeld.Load() {
				peakHeld.Store(h)
			}
			if h := alice.e.heldFrameBytes.Load(); h > peakTotal.Load() {
				peakTotal.Store(h)
			}
			if h := int64(bg.gate.heldBytes()); h > bobHeld.Load() {
				bobHeld.Store(h)
			}
			runtime.ReadMemStats(&ms)
			if h := int64(ms.HeapInuse); h > peakHeap.Load() {
				peakHeap.Store(h)
			}
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()

	var attack sync.WaitGroup
	for i, s := range ss {
		attack.Add(1)
		go func() {
			defer attack.Done()
			s.publish(t, perSybil[i])
			perSybil[i] = nil
			for range 4 {
				s.publish(t, [][]byte{note(junkCommit(t, gid, epoch, commitSize))})
			}
		}()
	}
	// The members talk while the attack runs.
	const rounds = 20
	for i := range rounds {
		alice.run(g, fmt.Sprintf("from alice %d", i))
		bob.run(g, fmt.Sprintf("from bob %d", i))
	}
	attack.Wait()
	delivered := 0
	for i := range rounds {
		bob.rec.wait(t, "alice's message", isMessage(g, fmt.Sprintf("from alice %d", i)))
		alice.rec.wait(t, "bob's message", isMessage(g, fmt.Sprintf("from bob %d", i)))
		delivered += 2
	}
	// The future-epoch junk reached alice (and is held, not stored).
	waitFor(t, "junk to arrive", func() bool { return ag.gate.heldBytes() > 0 })
	close(stop)
	sampler.Wait()

	// Nothing of the junk is in either member's frame log.
	for _, p := range []*testPeer{alice, bob} {
		logged, _ := loggedFrames(t, p, gid)
		for h := range junk {
			if logged[h] {
				t.Fatalf("%s stored a stranger's frame", p.e.nick())
			}
		}
	}
	_, aliceLog := loggedFrames(t, alice, gid)
	dbAfter := dbSize(t, dir)
	if peakHeld.Load() > heldGroupBytes || peakTotal.Load() > heldTotalBytes {
		t.Fatalf("held %d bytes in the group, %d in all (bounds %d, %d)", peakHeld.Load(), peakTotal.Load(), heldGroupBytes, heldTotalBytes)
	}
	// Alice forwarded none of it: bob, who only hears the strangers
	// through her, never saw a frame to hold.
	if bobHeld.Load() != 0 {
		t.Fatalf("bob held %d bytes: alice forwarded junk", bobHeld.Load())
	}
	if dbAfter-dbBefore > 8<<20 { // the honest traffic's states and WAL; the junk alone is ~22 MB (~256 MB at full scale)
		t.Fatalf("alice's database grew by %d bytes under %d bytes of junk", dbAfter-dbBefore, junkBytes)
	}
	if epochOf(t, ag) != epoch || len(alice.e.Members(g)) != 2 {
		t.Fatalf("alice's group changed: epoch %d (was %d), %d members", epochOf(t, ag), epoch, len(alice.e.Members(g)))
	}
	t.Logf("junk %d frames / %d bytes from %d strangers; honest delivered %d/%d; alice frame log %d bytes; db +%d bytes; held peak %d (group) %d (engine); heap in use peak %d MB; load %s",
		len(junk), junkBytes, sybils, delivered, 2*rounds, aliceLog, dbAfter-dbBefore, peakHeld.Load(), peakTotal.Load(), peakHeap.Load()>>20, loadavg())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return string(b[:min(len(b), 14)])
}

// TestJunkCannotOrphan: a stranger floods frames with valid headers at and
// below the member's tip (issue 12: junk that makes a member look
// orphaned opens the fork-heal path). None of it reaches the fork choice:
// the member is not orphaned, its state and roster are untouched, and the
// members keep talking.
func TestJunkCannotOrphan(t *testing.T) {
	const orphanTime = 100 * time.Millisecond
	fast := func(c *Config) { c.Ordering.OrphanTime = orphanTime }
	alice, bob := newPeer(t, "alice", fast), newPeer(t, "bob", fast)
	connect(t, alice, bob)
	g := alice.run("", "/create orphan "+bob.card()).Group
	bob.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(g)) == 2 && len(bob.e.Members(g)) == 2 })
	bob.run(g, "/update")
	ag := alice.e.group(g)
	waitFor(t, "epoch 2", func() bool { return epochOf(t, ag) >= 2 })
	epoch := epochOf(t, ag)
	gid, _ := hex.DecodeString(string(g))
	var before []string
	for _, m := range alice.e.Members(g) {
		before = append(before, m.Nick+"/"+m.Fingerprint)
	}

	// Real MLS Commits of a stranger's group with this id at every epoch
	// up to the tip, forged Commits and messages at and below the tip.
	sg, commits := strangerMLS(t, gid, epoch+1)
	frames := commits
	for ep := range epoch + 1 {
		frames = append(frames, junkCommit(t, gid, ep, 512), junkFrame(t, gid, ep, mls.ContentTypeCommit, 512),
			junkFrame(t, gid, ep, mls.ContentTypeApplication, 512))
	}
	if m, err := sg.Protect([]byte("hi"), nil); err == nil {
		frames = append(frames, m)
	}
	// Variants of bob's real (encrypted) Commit, as an on-path peer can
	// make them: the sender data still opens, the content does not.
	var bobCommit []byte
	fs, err := bob.e.db.Frames(context.Background(), p2p.TopicName(gid), store.FrameQuery{Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fs {
		if h, err := p2p.ParseMLSHeader(f.Data); err == nil && h.ContentType == p2p.ContentCommit && h.Epoch == epoch-1 && h.WireFormat == p2p.WirePrivateMessage {
			bobCommit = f.Data
		}
	}
	if bobCommit == nil {
		t.Fatal("bob's Commit is not in his frame log")
	}
	for _, back := range []int{1, 2, 17} {
		v := bytes.Clone(bobCommit)
		v[len(v)-back] ^= 0x80
		frames = append(frames, v)
	}
	s := newSybil(t, gid, alice)
	s.publish(t, frames)
	waitFor(t, "junk to arrive", func() bool { return ag.gate.heldBytes() > 0 })

	// Well past the orphan time, the members keep talking.
	start := time.Now()
	for i := 0; i < 5 || time.Since(start) < 10*orphanTime; i++ {
		alice.run(g, fmt.Sprintf("a%d", i))
		bob.rec.wait(t, "alice's message", isMessage(g, fmt.Sprintf("a%d", i)))
		bob.run(g, fmt.Sprintf("b%d", i))
		alice.rec.wait(t, "bob's message", isMessage(g, fmt.Sprintf("b%d", i)))
	}
	var orphaned bool
	var stats struct{ buffered int }
	if err := ag.do(context.Background(), func() {
		orphaned = ag.m.WelcomeAcceptable(ag.m.Epoch()+1, nil)
		stats.buffered = ag.m.Stats().Buffered
	}); err != nil {
		t.Fatal(err)
	}
	if orphaned {
		t.Fatal("junk frames made alice look orphaned: a Welcome would be taken as a fork heal")
	}
	if stats.buffered != 0 {
		t.Fatalf("the fork choice buffered %d unauthenticated frames", stats.buffered)
	}
	if epochOf(t, ag) != epoch {
		t.Fatalf("alice moved from epoch %d to %d", epoch, epochOf(t, ag))
	}
	var after []string
	for _, m := range alice.e.Members(g) {
		after = append(after, m.Nick+"/"+m.Fingerprint)
	}
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Fatalf("roster changed: %v -> %v", before, after)
	}
	if alice.rec.has(func(ev Event) bool {
		n, ok := ev.(NoticeEvent)
		return ok && (strings.Contains(n.Text, "rejoined") || strings.Contains(n.Text, "fork healed") || strings.Contains(n.Text, "no longer a member"))
	}) {
		t.Fatal("alice rejoined, healed a fork or left because of junk")
	}
}

// TestKeyPackageFetchBounded: throw-away peer ids fetch KeyPackages over
// and over (issue 13, item 4). Each requester gets at most
// maxHandedOutPerPeer one-time packages, the profile keeps at most
// maxHandedOut handed out, then only the last-resort package is served;
// a Welcome finds its package by reference, so a junk Welcome costs no
// trial decryptions; and a member can still invite the victim.
func TestKeyPackageFetchBounded(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	ctx := context.Background()
	const sybils, fetches = 20, 12
	var oneTime, lastResort int
	var taken []p2p.KeyPackage
	for range sybils {
		s := newSybil(t, nil, alice)
		got := 0
		for range fetches {
			fctx, cancel := context.WithTimeout(ctx, waitLong)
			kp, err := s.node.FetchKeyPackage(fctx, alice.e.id.id, alice.e.id.id)
			cancel()
			if err != nil {
				t.Fatalf("fetch: %v", err)
			}
			if kp.LastResort {
				lastResort++
			} else {
				oneTime++
				got++
				taken = append(taken, kp)
			}
		}
		if got > maxHandedOutPerPeer {
			t.Fatalf("one requester got %d one-time packages (bound %d)", got, maxHandedOutPerPeer)
		}
	}
	if oneTime > maxHandedOut {
		t.Fatalf("%d one-time packages handed out (bound %d)", oneTime, maxHandedOut)
	}
	if oneTime != maxHandedOut || lastResort != sybils*fetches-maxHandedOut {
		t.Fatalf("handed out %d one-time and %d last-resort packages", oneTime, lastResort)
	}
	stored := func() int {
		all, err := alice.e.db.ListKeyPackages(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return len(all)
	}
	// A fresh pool and a last-resort package of each suite offered, and
	// the handed-out packages waiting for their Welcomes.
	bound := len(alice.e.suites())*(keyPackagePool+1) + maxHandedOut
	waitFor(t, "the pool refilled", func() bool { return stored() == bound })

	// A Welcome naming none of alice's packages: found out by one lookup.
	mallory, _ := strangerMLS(t, []byte("mallory's group"), 0)
	other, err := newPeer(t, "other").e.newKeyPackage(false)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := mallory.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: other.KeyPackage}}}})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = alice.e.onWelcome(ctx, viaStream, bob.e.id.id, "", legacyEnvelope(t, pc.Welcome, nil))
	junkCost := time.Since(start)
	if err == nil {
		t.Fatal("a Welcome for another's KeyPackage was taken")
	}
	// A Welcome naming one of the handed-out packages is found by its
	// reference.
	pkg, err := mls.ParseKeyPackage(taken[len(taken)-1].Data)
	if err != nil {
		t.Fatal(err)
	}
	pc, err = mallory.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *pkg}}}})
	if err != nil {
		t.Fatal(err)
	}
	b, ref, err := alice.e.welcomeBundle(ctx, pc.Welcome)
	want, _ := pkg.Ref()
	if err != nil || b == nil || string(ref) != string(want) {
		t.Fatalf("welcome lookup by reference: %v", err)
	}

	// bob still invites alice, and they talk.
	connect(t, bob, alice)
	g := bob.run("", "/create after "+alice.card()).Group
	alice.acceptInvitation()
	bob.run(g, "still works")
	alice.rec.wait(t, "bob's message", isMessage(g, "still works"))
	t.Logf("%d strangers x %d fetches: %d one-time, %d last-resort; %d packages stored; junk Welcome handled in %v; load %s",
		sybils, fetches, oneTime, lastResort, stored(), junkCost, loadavg())
}

// welcomeFlood has a stranger's node s fetch a KeyPackage of victim and
// send n Welcomes with it into n groups of its own; it returns how many
// were taken.
func welcomeFlood(t *testing.T, s *sybil, victim *testPeer, n int) int {
	t.Helper()
	ctx := context.Background()
	taken := 0
	fctx, cancel := context.WithTimeout(ctx, waitLong)
	kp, err := s.node.FetchKeyPackage(fctx, victim.e.id.id, victim.e.id.id)
	cancel()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	pkg, err := mls.ParseKeyPackage(kp.Data)
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		g, _ := strangerMLSAs(t, []byte(fmt.Sprintf("%s group %d", s.node.ID(), i)), 0, []byte(s.node.ID()))
		pc, err := g.Commit(mls.CommitOptions{Proposals: []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *pkg}}}})
		if err != nil {
			t.Fatal(err)
		}
		sctx, cancel := context.WithTimeout(ctx, waitLong)
		err = s.node.SendInbox(sctx, victim.e.id.id, p2p.InboxMessage{Kind: p2p.InboxWelcome, Topic: p2p.TopicName(g.GroupID()), Data: legacyEnvelope(t, pc.Welcome, nil)})
		cancel()
		if err == nil {
			taken++
		}
	}
	return taken
}

// TestPendingInvitationsCapped: strangers leave invitations as fast as
// they can (issue 13, item 7). Each inviter keeps at most
// maxInvitesPerInviter pending, all strangers together at most
// maxInvites, and an invitation from a member of one of the victim's
// groups still arrives and can be accepted.
func TestPendingInvitationsCapped(t *testing.T) {
	alice, bob := newPeer(t, "alice"), newPeer(t, "bob")
	connect(t, alice, bob)
	first := bob.run("", "/create first "+alice.card()).Group
	alice.acceptInvitation()
	waitFor(t, "two members", func() bool { return len(alice.e.Members(first)) == 2 })

	from := func(p *sybil) int {
		n := 0
		alice.e.mu.Lock()
		for _, inv := range alice.e.invites {
			if inviterKey(inv) == p.node.ID() {
				n++
			}
		}
		alice.e.mu.Unlock()
		return n
	}
	mallory := newSybil(t, nil, alice)
	taken := welcomeFlood(t, mallory, alice, 60)
	if n := from(mallory); n != maxInvitesPerInviter || taken != 60 {
		t.Fatalf("one stranger has %d pending invitations (bound %d), %d of 60 taken", n, maxInvitesPerInviter, taken)
	}
	var refused int
	for range 12 {
		s := newSybil(t, nil, alice)
		refused += 5 - welcomeFlood(t, s, alice, 5)
	}
	if n := len(alice.e.Invitations()); n != maxInvites {
		t.Fatalf("%d pending invitations (bound %d)", n, maxInvites)
	}
	// bob, a member of alice's group, is known: his invitation is kept.
	g := bob.run("", "/create second "+alice.card()).Group
	var id string
	waitFor(t, "bob's invitation", func() bool {
		for _, inv := range alice.e.Invitations() {
			if inv.GroupName == "second" {
				id = inv.ID
				return true
			}
		}
		return false
	})
	if n := len(alice.e.Invitations()); n > maxInvites {
		t.Fatalf("%d pending invitations (bound %d)", n, maxInvites)
	}
	alice.run("", "/accept "+id)
	bob.run(g, "hello second")
	alice.rec.wait(t, "bob's message", isMessage(g, "hello second"))
	t.Logf("13 stranger ids sent 120 Welcomes: %d pending (bound %d), %d refused; a member's invitation accepted", len(alice.e.Invitations()), maxInvites, refused)
}

// TestHeldFrameForwarded: a message of the next epoch that reaches a
// member before the Commit that opens its epoch is held (not forwarded
// blindly), then, once the Commit is processed and the message
// authenticates, processed and forwarded: the member behind it gets it by
// gossip, without a sync.
func TestHeldFrameForwarded(t *testing.T) {
	noSync := func(c *Config) { c.SyncInterval = time.Hour }
	alice, bob, carol := newPeer(t, "alice"), newPeer(t, "bob"), newPeer(t, "carol", noSync)
	connect(t, alice, bob)
	connect(t, alice, carol)
	connect(t, bob, carol)
	g := alice.run("", "/create line "+bob.card()+" "+carol.card()).Group
	bob.acceptInvitation()
	carol.acceptInvitation()
	waitFor(t, "three members", func() bool {
		return len(alice.e.Members(g)) == 3 && len(bob.e.Members(g)) == 3 && len(carol.e.Members(g)) == 3
	})
	ag, bg, cg := alice.e.group(g), bob.e.group(g), carol.e.group(g)
	waitFor(t, "same epoch", func() bool { return epochOf(t, ag) == epochOf(t, bg) && epochOf(t, bg) == epochOf(t, cg) })

	// A Commit by alice and a message in the epoch it opens, made on a
	// copy of her state: nobody has seen either.
	var commit, msg []byte
	if err := ag.do(context.Background(), func() {
		work := ag.st.Clone()
		pc, err := work.Commit(mls.CommitOptions{ForcePath: true})
		if err == nil {
			_, err = work.MergePendingCommit(pc)
		}
		if err != nil {
			t.Error(err)
			return
		}
		am := appMessage{Kind: appText, ID: newID(), SentAt: time.Now().Truncate(time.Millisecond), Body: []byte("held then forwarded")}
		payload, err := am.Marshal()
		if err == nil {
			msg, err = work.Protect(payload, nil)
		}
		if err != nil {
			t.Error(err)
		}
		commit = pc.Message
	}); err != nil || t.Failed() {
		t.Fatal(err)
	}
	gid, _ := hex.DecodeString(string(g))
	s := newSybil(t, gid, bob)
	s.publish(t, [][]byte{msg})
	waitFor(t, "bob to hold the message", func() bool { return bg.gate.heldBytes() > 0 })
	s.publish(t, [][]byte{commit})
	carol.rec.wait(t, "the held message at carol", isMessage(g, "held then forwarded"))
	bob.rec.wait(t, "the held message at bob", isMessage(g, "held then forwarded"))
}

// epochOf reads a group's tip epoch on its loop.
func epochOf(t *testing.T, g *group) uint64 {
	t.Helper()
	var ep uint64
	if err := g.do(context.Background(), func() { ep = g.epoch() }); err != nil {
		t.Fatal(err)
	}
	return ep
}
