package chat

import (
	"bytes"
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
)

// The frame gate: a member accepts, forwards and stores only frames it has
// authenticated as far as its keys allow.
//
// Anyone who knows a group id (every relay carrying the topic does) can
// build frames with a valid MLS header. Before MLS processes a frame the
// gate checks it against the retained state of its epoch
// (mls.FrameAuthenticator): a PrivateMessage's sender data must open under
// the epoch's sender_data_secret, a member's PublicMessage must carry a
// valid membership tag, an external commit must be signed by a key some
// retained state has for a member. Only then is the frame accepted by
// gossip (and so forwarded), written to the frame log and given to the
// fork choice. The gossip validator and the group's loop both ask the
// gate: the validator for what is forwarded, the loop for what arrives
// by sync. A gossip frame the validator accepted carries its verdict (the
// authenticating state and sender, gateVerdict) to the loop through
// p2p.Message.Verdict, so the loop neither authenticates it again nor,
// for a Commit, looks for the state that did (precheckCommitWith).
//
// A frame the gate cannot judge yet (a future epoch, or an epoch whose
// state on the frame's branch this member does not have) is held in
// memory, never forwarded (gossip Ignore, no penalty: it may be honest)
// and never written to disk. Held frames are judged again whenever the
// retained states change and are dropped once authenticated-and-processed,
// past their epoch's window, or after heldTTL. Frames below the window
// can never be judged and are dropped. Unauthenticated frames therefore
// never reach the fork choice: they are no evidence of another branch or
// of this member being orphaned (#12).
//
// What a PrivateMessage's sender data does not cover (the ciphertext after
// its first Nh bytes) is checked by MLS when it opens the content. So that
// an on-path peer cannot turn one honest frame into many accepted
// variants, the validator accepts (and forwards) one frame per (epoch
// state, content type, sender leaf, generation); later ones are handed to
// the loop without being forwarded. And so that such a variant of a Commit
// cannot sit in the fork choice's buffer as "a Commit no state accepts"
// (evidence of being orphaned), the loop opens an encrypted Commit on a
// copy of the state that authenticated it before the fork choice sees it
// (precheckCommit); the fork choice then uses that result.

// Frame size bounds (a sane maximum per content type). The engine sends
// application messages of at most maxTextLen (16 KiB) plus a card or an
// id list, and proposals of one KeyPackage or settings; Commits can carry
// thousands of KeyPackages and keep p2p's gossip maximum
// (p2p.DefaultMaxMessageSize, 8 MiB).
const (
	maxAppFrame      = 64 << 10
	maxProposalFrame = 64 << 10
)

// Bounds of the held (not yet judgeable) frames.
const (
	heldGroupBytes  = 4 << 20  // per group
	heldGroupFrames = 512      // per group
	heldSourceBytes = 1 << 20  // per source peer within a group
	heldTotalBytes  = 16 << 20 // across all groups of the engine
	heldTTL         = 2 * time.Minute
	// heldLagAfter: held future-epoch frames older than this suggest we
	// are behind; the loop catches up, at most every heldCatchUpEvery.
	heldLagAfter     = 10 * time.Second
	heldCatchUpEvery = 30 * time.Second
	// maxSeenGenerations bounds the per-state memory of accepted
	// PrivateMessage generations (beyond it variants are no longer
	// recognised, which costs forwarding, not correctness).
	maxSeenGenerations = 1 << 15
)

type verdict int

const (
	frameAuthentic verdict = iota // a member of the frame's epoch sent it
	frameUndecided                // not judgeable yet: hold it
	frameDrop                     // below the window or too far ahead: never judgeable
	frameDuplicate                // another frame already used its key
)

// epochAuth is the authenticator of one retained state.
type epochAuth struct {
	a    *mls.FrameAuthenticator
	seen map[uint64]struct{} // content type, leaf, generation of accepted PrivateMessages
}

// unjudged is the generation of a held frame the loop has not judged.
const unjudged = ^uint64(0)

type heldFrame struct {
	data  []byte
	from  p2p.PeerID
	epoch uint64
	at    time.Time
	gen   uint64 // the gate's generation it was judged in
	// forward: it came by gossip and was not passed on; once it
	// authenticates (and is the first frame of its key), the loop
	// forwards it.
	forward bool
}

// frameGate is shared by the group's loop (which rebuilds it) and the
// gossip validator (which reads it concurrently).
type frameGate struct {
	total *atomic.Int64 // the engine's held bytes

	mu       sync.Mutex
	gen      uint64 // counts rebuilds: a held frame is judged once per set of states
	byEpoch  map[uint64][]*epochAuth
	lo, hi   uint64 // the retained states' epochs
	known    bool
	keys     map[string]bool // members' signature keys in the retained states
	held     []heldFrame
	bytes    int
	bySource map[p2p.PeerID]int
}

func newFrameGate(total *atomic.Int64) *frameGate {
	return &frameGate{total: total, byEpoch: map[uint64][]*epochAuth{}, keys: map[string]bool{}, bySource: map[p2p.PeerID]int{}}
}

// frameSizeOK bounds a frame by its content type.
func frameSizeOK(hdr p2p.MLSHeader, n int) bool {
	switch hdr.ContentType {
	case p2p.ContentApplication:
		return n <= maxAppFrame
	case p2p.ContentProposal:
		return n <= maxProposalFrame
	}
	return true // Commits: bounded by p2p's gossip maximum and the sync page
}

// judge authenticates data (of epoch) against the retained states. With
// dedupe, a PrivateMessage whose key (leaf, generation) another accepted
// frame used is a duplicate.
// The generation judged against is returned for hold.
func (gt *frameGate) judge(epoch uint64, data []byte, dedupe bool) (verdict, uint64) {
	v, gen, _ := gt.judgeAuth(epoch, data, dedupe)
	return v, gen
}

// gateVerdict is what the gate learnt authenticating a frame. The gossip
// validator hands it to the loop with the frame (p2p.Message.Verdict), so
// that the loop neither authenticates the frame again nor, for a Commit,
// searches the state that authenticated it; the sender's leaf and
// generation place the message in its sender's order (senderorder.go).
type gateVerdict struct {
	ea     *epochAuth
	sender mls.FrameSender
}

// judgeAuth is judge with the verdict of an authentic frame.
func (gt *frameGate) judgeAuth(epoch uint64, data []byte, dedupe bool) (verdict, uint64, *gateVerdict) {
	gt.mu.Lock()
	auths, lo, hi, known, gen := gt.byEpoch[epoch], gt.lo, gt.hi, gt.known, gt.gen
	gt.mu.Unlock()
	v, gv := gt.judgeWith(auths, epoch, lo, hi, known, data, dedupe)
	return v, gen, gv
}

func (gt *frameGate) judgeWith(auths []*epochAuth, epoch, lo, hi uint64, known bool, data []byte, dedupe bool) (verdict, *gateVerdict) {
	if known && epoch > hi+ordering.DefaultMaxAhead {
		return frameDrop, nil // the fork choice could not buffer it either
	}
	if !known || epoch > hi {
		return frameUndecided, nil
	}
	if len(auths) == 0 {
		if epoch < lo {
			return frameDrop, nil
		}
		return frameUndecided, nil // a gap (say, before a Welcome's epoch): maybe another branch
	}
	for _, ea := range auths {
		s, err := ea.a.Authenticate(data)
		if err != nil {
			continue
		}
		switch s.Type {
		case mls.SenderMember:
		case mls.SenderNewMemberCommit:
			gt.mu.Lock()
			ok := gt.keys[string(s.SignatureKey)]
			gt.mu.Unlock()
			if !ok {
				continue
			}
		default:
			continue
		}
		if dedupe && len(data) > 0 {
			if hdr, err := p2p.ParseMLSHeader(data); err == nil && hdr.WireFormat == p2p.WirePrivateMessage {
				k := uint64(hdr.ContentType)<<56 | uint64(s.Leaf)<<32 | uint64(s.Generation)
				gt.mu.Lock()
				_, dup := ea.seen[k]
				if !dup && len(ea.seen) < maxSeenGenerations {
					ea.seen[k] = struct{}{}
				}
				gt.mu.Unlock()
				if dup {
					return frameDuplicate, nil
				}
			}
		}
		return frameAuthentic, &gateVerdict{ea: ea, sender: s}
	}
	return frameUndecided, nil
}

// hold keeps an undecided frame within the bounds: a source over its share
// is refused; otherwise the oldest held frames make room.
func (gt *frameGate) hold(f heldFrame) bool {
	n := len(f.data)
	if n > heldSourceBytes {
		return false
	}
	gt.mu.Lock()
	defer gt.mu.Unlock()
	for _, h := range gt.held {
		if h.epoch == f.epoch && bytes.Equal(h.data, f.data) {
			return true
		}
	}
	if gt.bySource[f.from]+n > heldSourceBytes {
		return false
	}
	for len(gt.held) > 0 && (len(gt.held) >= heldGroupFrames || gt.bytes+n > heldGroupBytes) {
		gt.dropLocked(0)
	}
	// Reserve n of the engine's total, making room with this group's
	// oldest frames; other groups' frames are theirs.
	for gt.total.Add(int64(n)) > heldTotalBytes {
		gt.total.Add(-int64(n))
		if len(gt.held) == 0 {
			return false
		}
		gt.dropLocked(0)
	}
	gt.held = append(gt.held, f)
	gt.bytes += n
	gt.bySource[f.from] += n
	return true
}

func (gt *frameGate) dropLocked(i int) {
	h := gt.held[i]
	gt.held = append(gt.held[:i], gt.held[i+1:]...)
	n := len(h.data)
	gt.bytes -= n
	if gt.bySource[h.from] -= n; gt.bySource[h.from] <= 0 {
		delete(gt.bySource, h.from)
	}
	gt.total.Add(-int64(n))
}

// take removes and returns the held frames that may be judged now (their
// epoch has a state they were not judged against, or fell below the
// window), dropping expired ones.
func (gt *frameGate) take(now time.Time) []heldFrame {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	var out []heldFrame
	for i := 0; i < len(gt.held); {
		h := gt.held[i]
		switch {
		case now.Sub(h.at) > heldTTL:
			gt.dropLocked(i)
		case (h.gen != gt.gen && len(gt.byEpoch[h.epoch]) > 0) || (gt.known && h.epoch < gt.lo):
			out = append(out, h)
			gt.dropLocked(i)
		default:
			i++
		}
	}
	return out
}

// lagging reports whether a future-epoch frame has waited heldLagAfter.
func (gt *frameGate) lagging(now time.Time) bool {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	for _, h := range gt.held {
		if h.epoch > gt.hi && now.Sub(h.at) >= heldLagAfter {
			return true
		}
	}
	return false
}

// heldBytes is what the group holds (tests, status).
func (gt *frameGate) heldBytes() int {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	return gt.bytes
}

// heldCount is how many frames the group holds (status).
func (gt *frameGate) heldCount() int {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	return len(gt.held)
}

// clear drops everything (the group stopped).
func (gt *frameGate) clear() {
	gt.mu.Lock()
	defer gt.mu.Unlock()
	for len(gt.held) > 0 {
		gt.dropLocked(len(gt.held) - 1)
	}
}

// ---- the loop's side ----

// refreshGate rebuilds the gate from the retained states (the machine's
// live states, which the loop tracks in stateHash, and the tip) when they
// changed, then judges the held frames again.
func (g *group) refreshGate() {
	if g.m == nil {
		return
	}
	live := map[*mls.Group]bool{}
	for st := range g.stateHash {
		live[st] = true
	}
	if g.st != nil {
		live[g.st] = true
	}
	changed := len(live) != len(g.auths)
	for st := range live {
		if _, ok := g.auths[st]; !ok {
			changed = true
			a, err := st.FrameAuthenticator()
			if err != nil {
				g.auths[st] = nil
				continue
			}
			g.auths[st] = &epochAuth{a: a, seen: map[uint64]struct{}{}}
		}
	}
	for st := range g.auths {
		if !live[st] {
			delete(g.auths, st)
		}
	}
	if !changed {
		return
	}
	byEpoch := map[uint64][]*epochAuth{}
	keys := map[string]bool{}
	first := true
	var lo, hi uint64
	for st, ea := range g.auths {
		if ea == nil {
			continue
		}
		ep := ea.a.Epoch()
		byEpoch[ep] = append(byEpoch[ep], ea)
		if first || ep < lo {
			lo = ep
		}
		if first || ep > hi {
			hi = ep
		}
		first = false
		for _, m := range st.Members() {
			keys[string(m.SignatureKey)] = true
		}
	}
	gt := g.gate
	gt.mu.Lock()
	gt.byEpoch, gt.keys, gt.lo, gt.hi, gt.known = byEpoch, keys, lo, hi, !first
	gt.gen++
	gt.mu.Unlock()
	g.rejudgeHeld()
}

// rejudgeHeld hands held frames whose epoch can be judged now to the fork
// choice if they authenticate; the rest are dropped (stale) or held again.
func (g *group) rejudgeHeld() {
	if g.rejudging {
		g.rejudgeAgain = true
		return
	}
	g.rejudging = true
	defer func() { g.rejudging = false }()
	for {
		g.rejudgeAgain = false
		for _, h := range g.gate.take(g.e.now()) {
			hdr, err := p2p.ParseMLSHeader(h.data)
			if err != nil {
				continue
			}
			v, gen := g.gate.judge(h.epoch, h.data, h.forward)
			switch v {
			case frameAuthentic, frameDuplicate:
				g.receiveAuthentic(inFrame{data: h.data, from: h.from, synced: true}, hdr)
				if v == frameAuthentic && h.forward {
					g.forward(h.data)
				}
			case frameUndecided:
				// Another branch's state at that epoch may still come.
				h.gen = gen
				g.gate.hold(h)
			}
		}
		if !g.rejudgeAgain {
			return
		}
	}
}

// admitFrame is the loop's gate for a frame (gossip or sync): it reports
// whether the frame is authenticated; an undecided frame is held.
func (g *group) admitFrame(fr inFrame, hdr p2p.MLSHeader) bool {
	if !frameSizeOK(hdr, len(fr.data)) {
		return false
	}
	if g.stillLive(fr.verdict) {
		// The gossip validator authenticated it against a state the
		// loop still retains: judged once, not again.
		return true
	}
	v, gen := g.gate.judge(hdr.Epoch, fr.data, false)
	switch v {
	case frameAuthentic:
		return true
	case frameUndecided:
		g.gate.hold(heldFrame{data: fr.data, from: fr.from, epoch: hdr.Epoch, at: g.e.now(), gen: gen})
	}
	return false
}

// stillLive reports whether gv's authenticating state is still retained.
func (g *group) stillLive(gv *gateVerdict) bool {
	if gv == nil {
		return false
	}
	for _, ea := range g.auths {
		if ea == gv.ea {
			return true
		}
	}
	return false
}

// forward publishes a held gossip frame that authenticated after the
// validator had to ignore it (say, a message of the next epoch that
// arrived just before its Commit was processed), so that the mesh behind
// this member still gets it. It is logged already (receiveAuthentic).
func (g *group) forward(data []byte) {
	if g.topic == nil {
		return
	}
	select {
	case g.pubs <- pubItem{data: data}:
	default:
	}
}

// catchUpIfHeld fetches what the held future-epoch frames suggest we
// missed (rate-limited: junk can cost a sync round, not more).
func (g *group) catchUpIfHeld() {
	now := g.e.now()
	if now.Sub(g.heldCatchUp) < heldCatchUpEvery || !g.gate.lagging(now) {
		return
	}
	g.heldCatchUp = now
	g.catchUp(true)
}

// validate is the group topic's MLS-aware gossip validator (p2p has
// checked the size, header, group id and the neighbour's rate). Frames no
// member could have sent are rejected; frames the gate cannot judge yet
// are held and ignored (not forwarded, no penalty); only authenticated
// frames are accepted and forwarded.
func (g *group) validate(ctx context.Context, from p2p.PeerID, hdr p2p.MLSHeader, data []byte) p2p.ValidationResult {
	r, _ := g.validateVerdict(ctx, from, hdr, data)
	return r
}

// validateVerdict is validate for p2p.WithTopicVerdictValidator: an
// accepted frame carries its *gateVerdict to the loop (nil for our own).
func (g *group) validateVerdict(_ context.Context, from p2p.PeerID, hdr p2p.MLSHeader, data []byte) (p2p.ValidationResult, any) {
	if hdr.WireFormat == p2p.WirePublicMessage && hdr.ContentType == p2p.ContentApplication {
		// RFC 9420 §6.2: application data is never sent as a PublicMessage.
		return p2p.Reject, nil
	}
	if !frameSizeOK(hdr, len(data)) {
		// No member's engine sends it, and forwarders accept only what
		// passes this same bound.
		return p2p.Reject, nil
	}
	if from == g.e.id.id {
		return p2p.Accept, nil // our own frame (a rejoin's Commit is of an epoch we hold no state of)
	}
	v, gen, gv := g.gate.judgeAuth(hdr.Epoch, data, true)
	switch v {
	case frameAuthentic:
		return p2p.Accept, gv
	case frameUndecided:
		// Judged again when the states change.
		g.gate.hold(heldFrame{data: bytes.Clone(data), from: from, epoch: hdr.Epoch, at: g.e.now(), gen: gen, forward: true})
	case frameDuplicate:
		// Another frame used this key first. It is not forwarded, but
		// the loop still gets it (at the next tick): if the first was an
		// on-path peer's variant, this may be the honest frame.
		g.gate.hold(heldFrame{data: bytes.Clone(data), from: from, epoch: hdr.Epoch, at: g.e.now(), gen: unjudged})
	}
	return p2p.Ignore, nil
}

// preChecked is a Commit the loop processed on a copy of the state that
// authenticated it, kept for the fork choice's ProcessCommit.
type preChecked struct {
	base *mls.Group
	hash ordering.Hash
	next *mls.Group
	r    *mls.Received
}

// precheckCommit reports whether an authenticated frame may go to the fork
// choice. An encrypted Commit must also process on the state whose sender
// data secret opened it (or wait for a proposal): anything else is a
// variant made from an honest frame, which no member sent.
func (g *group) precheckCommit(data []byte, hdr p2p.MLSHeader) bool {
	return g.precheckCommitWith(data, hdr, nil)
}

// precheckCommitWith is precheckCommit for a frame whose authenticating
// state gv names (the validator's verdict): only that state is tried,
// without authenticating the frame again.
func (g *group) precheckCommitWith(data []byte, hdr p2p.MLSHeader, gv *gateVerdict) bool {
	if hdr.WireFormat != p2p.WirePrivateMessage || hdr.ContentType != p2p.ContentCommit {
		return true // the membership tag of a PublicMessage covers it all
	}
	h := ordering.HashOf(data)
	if g.commits[h] != nil {
		return true // known: the fork choice discards it as a duplicate
	}
	for st, ea := range g.auths {
		if ea == nil || ea.a.Epoch() != hdr.Epoch {
			continue
		}
		if gv != nil && g.stillLive(gv) {
			if ea != gv.ea {
				continue
			}
		} else if _, err := ea.a.Authenticate(data); err != nil {
			continue
		}
		next := st.Clone()
		r, err := next.Process(data)
		switch {
		case err == nil:
			g.pre = &preChecked{base: st, hash: h, next: next, r: r}
			return true
		case errors.Is(err, mls.ErrUnknownProposal):
			return true
		}
		g.e.log.Debug("commit frame does not open on the state that authenticated it", "group", g.gid, "epoch", hdr.Epoch, "err", err)
	}
	return false
}
