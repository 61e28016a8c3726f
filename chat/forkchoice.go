package chat

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Ordering integration.
//
// Every frame of a group goes through the group's ordering.Machine, which
// holds the MLS states of the retained epochs (the canonical chain and
// losing branches), decides which Commit of an epoch is canonical, buffers
// what cannot be read yet and returns decisions the loop executes in
// order (exec): persist the new tip, deliver messages, re-send own
// messages whose epoch lost, re-commit own changes whose Commit lost, send
// or drop held Welcomes, announce claims, rejoin, catch up.
//
// The store keeps the canonical tip's state. Its commit id (the store's
// CommitHash) is the Commit's ordering key, encoded (commitRef), so that
// the compact history survives a restart (store.EpochHistory); with it the
// store keeps the Commit's ordering info (storedCommit, with the hash of
// the parent state's Commit). The store retains the last window of
// canonical states (PruneBelow), and a restart rebuilds the machine from
// that chain (newMachine: ordering.New with the oldest, Restore for the
// others), so that a better Commit for an epoch before the restart is
// still judged by rolling back. Losing-branch states are not kept across
// restarts, and where the chain is missing (rows from before the info was
// stored, a switch that skipped epochs) the machine starts from the tip
// alone: a fork found later heals by the deep path (claims, rejoin).
//
// Identities in the machine are credential identities: the binary peer id
// as a string (ident).

func ident(p p2p.PeerID) string { return string(p) }

// encodeKey and decodeKey convert an ordering key to the store's commit id:
// hash (32) || class (1) || ticket (8) || epoch (8).
func encodeKey(k ordering.Key) []byte {
	b := make([]byte, 0, 49)
	b = append(b, k.Hash[:]...)
	b = append(b, byte(k.Class))
	b = binary.BigEndian.AppendUint64(b, k.Ticket)
	return binary.BigEndian.AppendUint64(b, k.Epoch)
}

func decodeKey(b []byte) (ordering.Key, bool) {
	if len(b) != 49 || b[32] > 1 {
		return ordering.Key{}, false
	}
	var k ordering.Key
	copy(k.Hash[:], b[:32])
	k.Class = ordering.Class(b[32])
	k.Ticket = binary.BigEndian.Uint64(b[33:41])
	k.Epoch = binary.BigEndian.Uint64(b[41:49])
	return k, true
}

// orderingConfig is the machine policy of a group.
func (e *Engine) orderingConfig(groupID []byte) ordering.Config {
	c := e.cfg.Ordering
	c.GroupID, c.Self = groupID, ident(e.id.id)
	c.WindowEpochs = 0 // the default: the same on every member
	c.SettleTime = e.cfg.SettleTime
	return c
}

func roster(st *mls.Group) []string {
	var out []string
	for _, m := range st.Members() {
		out = append(out, string(m.Credential.Identity))
	}
	return out
}

// newMachine builds the fork choice of a group from its stored tip st
// (commitRef: the stored id of its Commit) and, when the store has them,
// the retained canonical states before it (restoreMachine).
func (e *Engine) newMachine(g *group, st *mls.Group, commitRef []byte) *ordering.Machine[*mls.Group] {
	var hist []ordering.Entry
	if recs, err := e.db.EpochHistory(e.ctx, g.id, 0); err == nil {
		for _, r := range recs {
			if k, ok := decodeKey(r.CommitHash); ok {
				hist = append(hist, k)
			}
		}
	}
	if m := e.restoreMachine(g, st, commitRef, hist); m != nil {
		return m
	}
	var rootKey *ordering.Key
	if k, ok := decodeKey(commitRef); ok {
		rootKey = &k
	}
	m := ordering.New(e.orderingConfig(g.id), st, st.Epoch(), rootKey, roster(st), e.now())
	m.AdoptHistory(hist)
	return m
}

// restoreMachine rebuilds the machine from the canonical chain the store
// retained (store.CanonicalChain) ending at st: the longest run of states
// each created by a Commit with a stored info naming the previous state's
// Commit as its parent. The loop's records of those Commits (g.commits,
// g.stateHash) are rebuilt as the live path made them. hist is the stored
// compact history, adopted before the oldest state (the entries of the
// restored states are the machine's own). It returns nil when there is no
// such run beyond st (the caller starts from st alone).
func (e *Engine) restoreMachine(g *group, st *mls.Group, commitRef []byte, hist []ordering.Entry) *ordering.Machine[*mls.Group] {
	chain, err := e.db.CanonicalChain(e.ctx, g.id)
	if err != nil || len(chain) < 2 {
		return nil
	}
	last := len(chain) - 1
	if chain[last].Epoch != st.Epoch() || !bytes.Equal(chain[last].CommitHash, commitRef) {
		return nil
	}
	// nodeHash is the machine's id of a stored state: its Commit's hash,
	// zero for a state without a Commit (creation, a Welcome without key).
	nodeHash := func(c store.EpochState) (ordering.Hash, bool) {
		if len(c.CommitHash) == 0 {
			return ordering.Hash{}, true
		}
		k, ok := decodeKey(c.CommitHash)
		return k.Hash, ok
	}
	type link struct {
		key    ordering.Key
		info   ordering.CommitInfo
		parent ordering.Hash
		st     *mls.Group
	}
	links := make([]link, len(chain))
	start := last
	for i := last; i > 0; i-- {
		k, ok := decodeKey(chain[i].CommitHash)
		if !ok || k.Epoch+1 != chain[i].Epoch {
			break
		}
		info, parent, ok := decodeStoredCommit(chain[i].Info)
		if !ok {
			break
		}
		if ph, ok := nodeHash(chain[i-1]); !ok || ph != parent {
			break
		}
		links[i] = link{key: k, info: info, parent: parent}
		start = i - 1
	}
	if start == last {
		return nil
	}
	links[last].st = st
	for i := last - 1; i >= start; i-- {
		s, err := mls.UnmarshalState(chain[i].State, e.mlsOptions()...)
		if err != nil {
			start = i + 1
			break
		}
		links[i].st = s
	}
	if start == last {
		return nil
	}
	now := e.now()
	var rootKey *ordering.Key
	if k, ok := decodeKey(chain[start].CommitHash); ok {
		rootKey = &k
	}
	root := links[start].st
	m := ordering.New(e.orderingConfig(g.id), root, root.Epoch(), rootKey, roster(root), now)
	m.AdoptHistory(hist)
	for i := start + 1; i <= last; i++ {
		l := links[i]
		if err := m.Restore(l.st, l.key, l.info, now); err != nil {
			e.log.Warn("restoring the window failed; starting from the current state", "group", hex.EncodeToString(g.id), "epoch", chain[i].Epoch, "err", err)
			return nil
		}
	}
	rootHash, _ := nodeHash(chain[start])
	g.stateHash[root] = rootHash
	for i := start + 1; i <= last; i++ {
		l := links[i]
		g.commits[l.key.Hash] = &commitRec{info: l.info, parent: l.parent, epoch: chain[i].Epoch, settings: settingsOf(l.st.Extensions())}
		g.stateHash[l.st] = l.key.Hash
	}
	return m
}

// storedCommit is the ordering info of a canonical state's Commit as the
// store keeps it with the state (store.EpochTransition.CommitInfo), JSON
// with identities as bytes (they are binary peer ids), with the hash of
// the Commit that created the parent state (zero: a state without one) so
// that a restart can tell a chain from states of two branches.
type storedCommit struct {
	V        int      `json:"v"`
	Parent   []byte   `json:"p"`
	Sender   []byte   `json:"s"`
	External bool     `json:"x,omitempty"`
	Added    [][]byte `json:"a,omitempty"`
	Removed  [][]byte `json:"r,omitempty"`
	Updated  [][]byte `json:"u,omitempty"`
	Path     bool     `json:"w,omitempty"`
}

const storedCommitVersion = 1

func encodeStoredCommit(rec *commitRec) []byte {
	ids := func(l []string) [][]byte {
		var out [][]byte
		for _, id := range l {
			out = append(out, []byte(id))
		}
		return out
	}
	ci := rec.info
	b, err := json.Marshal(storedCommit{V: storedCommitVersion, Parent: rec.parent[:], Sender: []byte(ci.Sender), External: ci.External,
		Added: ids(ci.Added), Removed: ids(ci.Removed), Updated: ids(ci.Updated), Path: ci.Path})
	if err != nil {
		return nil
	}
	return b
}

func decodeStoredCommit(b []byte) (ordering.CommitInfo, ordering.Hash, bool) {
	var sc storedCommit
	var parent ordering.Hash
	if len(b) == 0 || json.Unmarshal(b, &sc) != nil || sc.V != storedCommitVersion || len(sc.Parent) != len(parent) {
		return ordering.CommitInfo{}, parent, false
	}
	copy(parent[:], sc.Parent)
	ids := func(l [][]byte) []string {
		var out []string
		for _, id := range l {
			out = append(out, string(id))
		}
		return out
	}
	return ordering.CommitInfo{Sender: string(sc.Sender), External: sc.External, Added: ids(sc.Added),
		Removed: ids(sc.Removed), Updated: ids(sc.Updated), Path: sc.Path}, parent, true
}

// tipCommitInfo is the stored info of the canonical tip's Commit, nil when
// the loop does not know it (the store then keeps what it has).
func (g *group) tipCommitInfo() []byte {
	if len(g.commitRef) == 0 || g.m == nil {
		return nil
	}
	_, _, h := g.m.Current()
	if rec := g.commits[h]; rec != nil {
		return encodeStoredCommit(rec)
	}
	return nil
}

// commitRec is what the loop remembers of a Commit in the window.
type commitRec struct {
	info   ordering.CommitInfo
	parent ordering.Hash
	epoch  uint64 // the epoch it created
	// settings of the state it created, to describe changes
	settings groupSettings
}

// groupProc runs MLS for the machine (ordering.Processor).
type groupProc struct{ g *group }

func (p *groupProc) ProcessCommit(base *mls.Group, msg []byte) (*mls.Group, ordering.CommitInfo, error) {
	var (
		next *mls.Group
		r    *mls.Received
		err  error
	)
	if pre := p.g.pre; pre != nil && pre.base == base && pre.hash == ordering.HashOf(msg) {
		next, r = pre.next, pre.r // opened by precheckCommit
		p.g.pre = nil
	} else {
		next = base.Clone()
		r, err = next.Process(msg)
	}
	if err != nil {
		if errors.Is(err, mls.ErrUnknownProposal) {
			return nil, ordering.CommitInfo{}, fmt.Errorf("%w: %v", ordering.ErrLater, err)
		}
		return nil, ordering.CommitInfo{}, err
	}
	if r.Commit == nil {
		return nil, ordering.CommitInfo{}, errors.New("chat: not a commit")
	}
	if err := directCommitRule(base, next); err != nil {
		return nil, ordering.CommitInfo{}, err
	}
	info := commitInfoOf(base, next, r.Commit)
	h := ordering.HashOf(msg)
	// (A removed member's next state does not advance: count from base.)
	p.g.commits[h] = &commitRec{info: info, parent: p.g.stateHash[base], epoch: base.Epoch() + 1, settings: settingsOf(next.Extensions())}
	p.g.stateHash[next] = h
	return next, info, nil
}

func (p *groupProc) Open(st *mls.Group, msg []byte, ct ordering.ContentType) (ordering.Opened, error) {
	r, err := st.Process(msg)
	if err != nil {
		return ordering.Opened{}, err
	}
	g := p.g
	// The machine may have moved its tip during this very call (a drained
	// buffer): compare with its tip, not with the loop's copy.
	tip, _, _ := g.m.Current()
	if st == tip {
		g.stage.dirty = true
	}
	sender := ""
	if m, ok := st.Member(mls.LeafIndex(r.Sender.LeafIndex)); ok {
		sender = string(m.Credential.Identity)
	}
	switch r.ContentType {
	case mls.ContentTypeProposal:
		if st == tip {
			g.onProposalOpened(r, sender)
		}
		return ordering.Opened{Sender: sender}, nil
	case mls.ContentTypeApplication:
		am, err := parseAppMessage(r.ApplicationData)
		if err != nil {
			// Unknown versions and malformed payloads are ignored, never
			// fatal: the key was used, the message shows nothing.
			return ordering.Opened{Sender: sender}, nil
		}
		g.order.opened(am.ID, r.Generation)
		return ordering.Opened{ID: ordering.MessageID(am.ID), Sender: sender, Payload: r.ApplicationData}, nil
	}
	return ordering.Opened{}, errors.New("chat: unexpected content")
}

func identityAt(g *mls.Group, l mls.LeafIndex) string {
	m, ok := g.Member(l)
	if !ok {
		return ""
	}
	return string(m.Credential.Identity)
}

// commitInfoOf describes a Commit as the machine needs it: a deterministic
// function of the state it was sent in and its bytes.
func commitInfoOf(base, next *mls.Group, u *mls.StateUpdate) ordering.CommitInfo {
	ci := ordering.CommitInfo{External: u.External}
	if u.External {
		ci.Sender = identityAt(next, u.Committer)
	} else {
		ci.Sender = identityAt(base, u.Committer)
		if ob, ok := base.Member(u.Committer); ok {
			if nb, ok := next.Member(u.Committer); ok {
				ci.Path = !bytes.Equal(ob.LeafNode.EncryptionKey, nb.LeafNode.EncryptionKey)
			}
		}
	}
	for _, l := range u.Added {
		ci.Added = append(ci.Added, identityAt(next, l))
	}
	for _, r := range u.Removed {
		if r.LeafNode != nil {
			ci.Removed = append(ci.Removed, string(r.LeafNode.Credential.Identity))
		}
	}
	for _, l := range u.Updated {
		ci.Updated = append(ci.Updated, identityAt(next, l))
	}
	return ci
}
