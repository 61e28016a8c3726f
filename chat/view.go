package chat

import (
	"bytes"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// What front ends read: the GroupView and member list the loop publishes
// under g.mu, and lookups of members by leaf, peer and name.

type memberInfo struct {
	leaf mls.LeafIndex
	peer p2p.PeerID
	fp   []byte
	hint string
}

// viewState is what front ends read, published by the loop under mu.
type viewState struct {
	mu      sync.RWMutex
	live    bool // running the fork choice on the network (see liveMember)
	snap    GroupView
	infos   []memberInfo
	members []Member
}

func (v *viewState) snapshot() GroupView {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.snap
}

func (v *viewState) memberList() []Member {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return slices.Clone(v.members)
}

func (v *viewState) memberPeers() []p2p.PeerID {
	v.mu.RLock()
	defer v.mu.RUnlock()
	out := make([]p2p.PeerID, 0, len(v.infos))
	for _, in := range v.infos {
		out = append(out, in.peer)
	}
	return out
}

func (v *viewState) hasMember(p p2p.PeerID) bool {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, in := range v.infos {
		if in.peer == p {
			return true
		}
	}
	return false
}

func (g *group) markRead() {
	g.view.mu.Lock()
	changed := g.view.snap.Unread != 0 || g.view.snap.Mentions != 0
	g.view.snap.Unread, g.view.snap.Mentions = 0, 0
	v := g.view.snap
	g.view.mu.Unlock()
	if changed {
		g.e.emit(GroupEvent{Group: v})
	}
}

// refreshInfos recomputes the member list from the MLS state (loop only).
func (g *group) refreshInfos() {
	var infos []memberInfo
	if g.st != nil && !g.closed {
		for _, m := range g.st.Members() {
			p, err := peerOfCredential(&m.Credential)
			if err != nil {
				continue
			}
			infos = append(infos, memberInfo{leaf: m.Index, peer: p, fp: Fingerprint(uint16(suite), m.SignatureKey), hint: leafNick(m.LeafNode)})
		}
	}
	g.view.mu.Lock()
	g.view.infos = infos
	g.view.snap.Name = g.settings.Name
	if g.st != nil {
		g.view.snap.Epoch = g.st.Epoch()
		g.view.snap.CipherSuite = uint16(g.st.CipherSuite())
	}
	g.view.snap.Members = len(infos)
	g.view.snap.Left = g.closed
	g.view.snap.RemovedBy = g.removedBy()
	g.view.snap.Direct = g.settings.Direct
	g.view.mu.Unlock()
	g.refreshMembers(false)
}

// refreshMembers recomputes the Member views (any goroutine).
func (g *group) refreshMembers(emit bool) {
	e := g.e
	g.view.mu.RLock()
	infos := slices.Clone(g.view.infos)
	g.view.mu.RUnlock()
	out := make([]Member, 0, len(infos))
	count := map[string]int{}
	for _, in := range infos {
		m := Member{Nick: e.displayName(in.peer, in.hint), Fingerprint: FormatFingerprint(in.fp), Self: in.peer == e.id.id}
		if !m.Self {
			e.mu.Lock()
			ci := e.contacts[in.peer]
			e.mu.Unlock()
			if ci != nil {
				// Identity is the key, not the nick or the peer id a
				// credential names: a leaf whose key is not the one known
				// for that contact is a key change here, verified or not
				// (say, a group of a stranger whose leaf reuses the
				// contact's peer id and nick with its own key).
				sameKey := len(ci.fp) == 0 || bytes.Equal(ci.fp, in.fp)
				m.Verified = ci.verif == store.Verified && sameKey
				m.KeyChanged = ci.verif == store.KeyChanged || !sameKey
			}
		}
		count[strings.ToLower(m.Nick)]++
		out = append(out, m)
	}
	for i := range out {
		if count[strings.ToLower(out[i].Nick)] > 1 && !out[i].Self {
			out[i].Nick += "~" + strings.ReplaceAll(out[i].Fingerprint, " ", "")[:4]
		}
	}
	g.view.mu.Lock()
	g.view.members = out
	renamed := applyDirectView(&g.view.snap, out)
	g.view.mu.Unlock()
	if emit {
		e.emit(MembersEvent{Group: g.gid, Members: slices.Clone(out)})
		if renamed {
			g.emitGroup()
		}
	}
}

func (g *group) emitGroup() {
	g.e.emit(GroupEvent{Group: g.view.snapshot()})
}

// infoByLeaf returns the member at leaf l (loop only).
func (g *group) infoByLeaf(l mls.LeafIndex) (memberInfo, bool) {
	g.view.mu.RLock()
	defer g.view.mu.RUnlock()
	for _, in := range g.view.infos {
		if in.leaf == l {
			return in, true
		}
	}
	return memberInfo{}, false
}

func (g *group) infoByPeer(p p2p.PeerID) (memberInfo, bool) {
	g.view.mu.RLock()
	defer g.view.mu.RUnlock()
	for _, in := range g.view.infos {
		if in.peer == p {
			return in, true
		}
	}
	return memberInfo{}, false
}

// findMember resolves what a user typed (a nick as listed, a petname, a
// peer id or its end) to a member.
func (g *group) findMember(name string) (memberInfo, error) {
	name = strings.TrimPrefix(strings.TrimSpace(name), "@")
	g.view.mu.RLock()
	infos := slices.Clone(g.view.infos)
	members := slices.Clone(g.view.members)
	g.view.mu.RUnlock()
	var hits []int
	for i, m := range members {
		if i < len(infos) && strings.EqualFold(m.Nick, name) {
			hits = append(hits, i)
		}
	}
	if len(hits) == 0 {
		for i, in := range infos {
			base, _, _ := strings.Cut(members[i].Nick, "~")
			if strings.EqualFold(base, name) || in.peer.String() == name || (len(name) >= 6 && strings.HasSuffix(in.peer.String(), name)) {
				hits = append(hits, i)
			}
		}
	}
	switch len(hits) {
	case 0:
		return memberInfo{}, fmt.Errorf("no member called %q (see /members)", name)
	case 1:
		return infos[hits[0]], nil
	}
	return memberInfo{}, fmt.Errorf("%q is ambiguous: use the name with its ~suffix from /members", name)
}
