package chat

import (
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"slices"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"golang.org/x/crypto/cryptobyte"
)

// Welcome envelopes.
//
// A Welcome travels in an envelope with the adder's compact history
// (ordering), so that the joiner's fork choice can compare its branch with
// the others' from the start; the adder signs the envelope, and adds
// continuity proofs for a joiner that may already be in the group:
//
//	struct {
//	    uint8  tag = 0xC2;
//	    opaque welcome<0..2^32-1>;    // MLSMessage(Welcome)
//	    opaque history<0..2^32-1>;    // n × 49-byte ordering keys (encodeKey)
//	    uint32 adder_leaf;            // the adder's leaf in the joined group
//	    opaque adder_signature<1..255>;
//	    ContinuityProof proofs<0..2^16-1>;   // at most maxContinuityProofs
//	} WelcomeEnvelope;
//
//	struct {
//	    uint64 epoch;                 // an epoch of a state the joiner held
//	    uint32 leaf;                  // the adder's leaf in that state
//	    opaque signature<1..255>;
//	} ContinuityProof;
//
// adder_signature is SignWithLabel("canopy welcome v1") over
// {group_id<V8>, SHA-256(welcome)<V8>, history<V32>} with the key of the
// adder's leaf in the joined group: it names the inviter whatever path the
// envelope took (a relay's sender field names nobody) and binds the
// history to it. Each proof is SignWithLabel("canopy continuity v1") over
// {group_id<V8>, epoch, leaf, SHA-256(welcome)<V8>, exporter<V8>} where
// exporter = MLS-Exporter("canopy welcome continuity v1", SHA-256(welcome),
// 32) of the adder's state at that epoch: only a member of that very state
// (same group, same chain up to it) knows it, and the signature says
// which member. An adder makes proofs from the states it retains in which
// the joiner is a member (continuityProofs).
//
// A joiner that is already in the group takes the Welcome as a fork heal
// only if a proof verifies against a state of its own canonical chain and
// its signer is in the joined group with the same key (welcomeContinues):
// the adder is then a member of the joiner's own group at that state, and
// the adder's history is evidence for the fork choice to weigh, never a
// verdict. Anything else is at most a separate invitation that the user
// must accept, shown as such. Older envelopes (tag 0xC1: welcome and
// history only) and a bare MLSMessage (first byte 0x00) are still read;
// they carry no signature and so never heal a fork and name no inviter.
const (
	welcomeTagV1 = 0xC1
	welcomeTag   = 0xC2

	welcomeLabel      = "canopy welcome v1"
	continuityLabel   = "canopy continuity v1"
	continuityExport  = "canopy welcome continuity v1"
	continuityExpSize = 32

	// maxContinuityProofs bounds the proofs an adder sends and a joiner
	// checks (each costs an exporter and a signature check).
	maxContinuityProofs = 4
)

type continuityProof struct {
	Epoch uint64
	Leaf  uint32
	Sig   []byte
}

// welcomeEnvelope is a decoded WelcomeEnvelope.
type welcomeEnvelope struct {
	Welcome   []byte
	History   []ordering.Entry
	AdderLeaf uint32
	AdderSig  []byte // nil: an unsigned (older) envelope
	Proofs    []continuityProof
}

func addHistory(b *cryptobyte.Builder, hist []ordering.Entry) {
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, k := range hist {
			b.AddBytes(encodeKey(k))
		}
	})
}

func (w *welcomeEnvelope) marshal() ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8(welcomeTag)
	b.AddUint32LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(w.Welcome) })
	addHistory(&b, w.History)
	b.AddUint32(w.AdderLeaf)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(w.AdderSig) })
	b.AddUint16LengthPrefixed(func(b *cryptobyte.Builder) {
		for _, p := range w.Proofs {
			b.AddUint64(p.Epoch)
			b.AddUint32(p.Leaf)
			b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(p.Sig) })
		}
	})
	return b.Bytes()
}

// decodeWelcome parses a Welcome envelope (any version) strictly.
func decodeWelcome(data []byte) (*welcomeEnvelope, error) {
	bad := func(what string) error {
		return fmt.Errorf("%w: malformed welcome envelope: %s", p2p.ErrBadRequest, what)
	}
	if len(data) > 0 && data[0] == 0 {
		return &welcomeEnvelope{Welcome: data}, nil
	}
	s := cryptobyte.String(data)
	var tag uint8
	var w, h cryptobyte.String
	if !s.ReadUint8(&tag) || (tag != welcomeTag && tag != welcomeTagV1) || !readUint32Prefixed(&s, &w) || !readUint32Prefixed(&s, &h) || len(h)%49 != 0 {
		return nil, bad("header")
	}
	env := &welcomeEnvelope{Welcome: append([]byte(nil), w...)}
	for i := 0; i < len(h); i += 49 {
		k, ok := decodeKey(h[i : i+49])
		if !ok || (len(env.History) > 0 && k.Epoch <= env.History[len(env.History)-1].Epoch) {
			return nil, bad("history")
		}
		env.History = append(env.History, k)
	}
	if tag == welcomeTagV1 {
		if !s.Empty() {
			return nil, bad("trailing bytes")
		}
		return env, nil
	}
	var sig, proofs cryptobyte.String
	if !s.ReadUint32(&env.AdderLeaf) || !s.ReadUint8LengthPrefixed(&sig) || len(sig) == 0 || !s.ReadUint16LengthPrefixed(&proofs) || !s.Empty() {
		return nil, bad("signature or proofs")
	}
	env.AdderSig = append([]byte(nil), sig...)
	for !proofs.Empty() {
		var p continuityProof
		var ps cryptobyte.String
		if !proofs.ReadUint64(&p.Epoch) || !proofs.ReadUint32(&p.Leaf) || !proofs.ReadUint8LengthPrefixed(&ps) || len(ps) == 0 {
			return nil, bad("proof")
		}
		if len(env.Proofs) == maxContinuityProofs {
			return nil, bad("too many proofs")
		}
		p.Sig = append([]byte(nil), ps...)
		env.Proofs = append(env.Proofs, p)
	}
	return env, nil
}

func welcomeTBS(groupID, welcomeHash []byte, hist []ordering.Entry) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(groupID) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(welcomeHash) })
	addHistory(&b, hist)
	return b.Bytes()
}

func continuityTBS(groupID []byte, epoch uint64, leaf uint32, welcomeHash, exporter []byte) ([]byte, error) {
	var b cryptobyte.Builder
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(groupID) })
	b.AddUint64(epoch)
	b.AddUint32(leaf)
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(welcomeHash) })
	b.AddUint8LengthPrefixed(func(b *cryptobyte.Builder) { b.AddBytes(exporter) })
	return b.Bytes()
}

// continuityTBSOf is the content a proof signs for state st.
func continuityTBSOf(st *mls.Group, leaf uint32, welcomeHash []byte) ([]byte, error) {
	exp, err := st.Export(continuityExport, welcomeHash, continuityExpSize)
	if err != nil {
		return nil, err
	}
	defer clear(exp)
	return continuityTBS(st.GroupID(), st.Epoch(), leaf, welcomeHash, exp)
}

// sealWelcome makes the envelope of a Welcome of ours for invitee to:
// signed with our key, with proofs from the states in held (the states
// the loop retains) in which to is a member, newest first, older than
// the joined state.
func (e *Engine) sealWelcome(welcome []byte, hist []ordering.Entry, joined *mls.Group, held []*mls.Group, to p2p.PeerID) ([]byte, error) {
	wh := sha256.Sum256(welcome)
	tbs, err := welcomeTBS(joined.GroupID(), wh[:], hist)
	if err != nil {
		return nil, err
	}
	env := &welcomeEnvelope{Welcome: welcome, History: hist, AdderLeaf: uint32(joined.LeafIndex())}
	if env.AdderSig, err = suite.SignWithLabel(e.id.sigPriv, welcomeLabel, tbs, nil); err != nil {
		return nil, err
	}
	var cands []*mls.Group
	for _, st := range held {
		if st == nil || st == joined || st.Closed() || st.Epoch() >= joined.Epoch() || !memberOf(st, to) {
			continue
		}
		cands = append(cands, st)
	}
	slices.SortFunc(cands, func(a, b *mls.Group) int { return -cmpUint64(a.Epoch(), b.Epoch()) })
	for _, st := range cands {
		if len(env.Proofs) == maxContinuityProofs {
			break
		}
		leaf := uint32(st.LeafIndex())
		ptbs, err := continuityTBSOf(st, leaf, wh[:])
		if err != nil {
			continue
		}
		sig, err := suite.SignWithLabel(e.id.sigPriv, continuityLabel, ptbs, nil)
		if err != nil {
			continue
		}
		env.Proofs = append(env.Proofs, continuityProof{Epoch: st.Epoch(), Leaf: leaf, Sig: sig})
	}
	return env.marshal()
}

func cmpUint64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// memberOf reports whether p has a leaf in st.
func memberOf(st *mls.Group, p p2p.PeerID) bool {
	for _, m := range st.Members() {
		if q, err := peerOfCredential(&m.Credential); err == nil && q == p {
			return true
		}
	}
	return false
}

// adderOf returns the adder of a joined Welcome when the envelope's
// signature verifies with the key of the leaf it names.
func adderOf(joined *mls.Group, env *welcomeEnvelope) (mls.Member, bool) {
	if env.AdderSig == nil {
		return mls.Member{}, false
	}
	m, ok := joined.Member(mls.LeafIndex(env.AdderLeaf))
	if !ok || m.Index == joined.LeafIndex() {
		return mls.Member{}, false
	}
	wh := sha256.Sum256(env.Welcome)
	tbs, err := welcomeTBS(joined.GroupID(), wh[:], env.History)
	if err != nil || suite.VerifyWithLabel(m.SignatureKey, welcomeLabel, tbs, env.AdderSig) != nil {
		return mls.Member{}, false
	}
	return m, true
}

// welcomeContinues reports whether a joined Welcome continues this
// member's group: a continuity proof verifies against a state of this
// member's canonical chain (canon), and its signer, a member of that state
// other than us, is in the joined group with the same key. It returns the
// signer's peer.
func welcomeContinues(joined *mls.Group, env *welcomeEnvelope, canon []*mls.Group, self p2p.PeerID) (p2p.PeerID, bool) {
	wh := sha256.Sum256(env.Welcome)
	for _, p := range env.Proofs {
		for _, st := range canon {
			if st == nil || st.Epoch() != p.Epoch || !bytes.Equal(st.GroupID(), joined.GroupID()) {
				continue
			}
			m, ok := st.Member(mls.LeafIndex(p.Leaf))
			if !ok {
				continue
			}
			signer, err := peerOfCredential(&m.Credential)
			if err != nil || signer == self {
				continue
			}
			tbs, err := continuityTBSOf(st, p.Leaf, wh[:])
			if err != nil || suite.VerifyWithLabel(m.SignatureKey, continuityLabel, tbs, p.Sig) != nil {
				continue
			}
			for _, jm := range joined.Members() {
				if q, err := peerOfCredential(&jm.Credential); err == nil && q == signer && bytes.Equal(jm.SignatureKey, m.SignatureKey) {
					return signer, true
				}
			}
		}
	}
	return "", false
}

// holdsState reports whether canon has the state st joined: same group,
// epoch and epoch authenticator (which commits to the whole chain).
func holdsState(canon []*mls.Group, st *mls.Group) bool {
	for _, c := range canon {
		if c != nil && c.Epoch() == st.Epoch() && bytes.Equal(c.GroupID(), st.GroupID()) &&
			subtle.ConstantTimeCompare(c.EpochAuthenticator(), st.EpochAuthenticator()) == 1 {
			return true
		}
	}
	return false
}

// canonicalStates returns the states of this member's canonical chain the
// machine retains: the tip and its ancestors, down to the window's root.
func (g *group) canonicalStates() []*mls.Group {
	var out []*mls.Group
	if g.st != nil {
		out = append(out, g.st)
	}
	h := g.tipHash
	for range 4096 { // the window is far shorter; a bound against a cycle
		rec := g.commits[h]
		if rec == nil {
			break
		}
		h = rec.parent
		if st, _, ok := g.m.StateAt(h); ok && !slices.Contains(out, st) {
			out = append(out, st)
		}
	}
	return out
}

// heldStates returns every state the loop retains (canonical and losing
// branches), for continuity proofs.
func (g *group) heldStates() []*mls.Group {
	var out []*mls.Group
	for st, h := range g.stateHash {
		if live, _, ok := g.m.StateAt(h); ok && live == st {
			out = append(out, st)
		}
	}
	if g.st != nil && !slices.Contains(out, g.st) {
		out = append(out, g.st)
	}
	return out
}
