package ordering

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// A small deterministic model of an MLS group, used to prove the machine's
// logic quickly before (and beside) the real mls members: a state is bound
// to its whole history by a transcript hash, a Commit is valid only on the
// state whose transcript it names, an application message opens only with
// the state of the epoch and branch it was sent in, and a removed member
// can no longer process Commits or read later epochs.

type mstate struct {
	self    string
	epoch   uint64
	id      [32]byte
	members []string // sorted
	removed bool
}

func (s *mstate) has(id string) bool {
	_, ok := slices.BinarySearch(s.members, id)
	return ok
}

type mcommit struct {
	T        string   `json:"t"`
	Parent   [32]byte `json:"p"`
	Epoch    uint64   `json:"e"`
	Sender   string   `json:"s"`
	Adds     []string `json:"a,omitempty"`
	Removes  []string `json:"r,omitempty"`
	Update   bool     `json:"u,omitempty"`
	External bool     `json:"x,omitempty"`
	Nonce    uint64   `json:"n"`
}

type mapp struct {
	T       string    `json:"t"`
	Key     [32]byte  `json:"k"`
	Epoch   uint64    `json:"e"`
	Sender  string    `json:"s"`
	ID      MessageID `json:"i"`
	Payload []byte    `json:"b"`
	Nonce   uint64    `json:"n"`
}

type mwelcome struct {
	Epoch   uint64   `json:"e"`
	ID      [32]byte `json:"i"`
	Members []string `json:"m"`
	Key     Key      `json:"k"`
	To      []string `json:"to"`
}

type mgroupinfo struct {
	Epoch   uint64   `json:"e"`
	ID      [32]byte `json:"i"`
	Members []string `json:"m"`
}

// modelBackend implements Processor[*mstate] and the simulator's backend.
type modelBackend struct {
	nonce    uint64
	released int
	groupID  []byte
	commits  map[Hash]*mcommit // parse caches (messages are immutable)
	apps     map[Hash]*mapp
}

func (b *modelBackend) parseCommit(msg []byte) (*mcommit, bool) {
	h := HashOf(msg)
	if c, ok := b.commits[h]; ok {
		return c, c != nil
	}
	if b.commits == nil {
		b.commits = map[Hash]*mcommit{}
	}
	var c mcommit
	if err := json.Unmarshal(msg, &c); err != nil || c.T != "C" {
		b.commits[h] = nil
		return nil, false
	}
	b.commits[h] = &c
	return &c, true
}

func (b *modelBackend) parseApp(msg []byte) (*mapp, bool) {
	h := HashOf(msg)
	if a, ok := b.apps[h]; ok {
		return a, a != nil
	}
	if b.apps == nil {
		b.apps = map[Hash]*mapp{}
	}
	var a mapp
	if err := json.Unmarshal(msg, &a); err != nil || a.T != "A" {
		b.apps[h] = nil
		return nil, false
	}
	b.apps[h] = &a
	return &a, true
}

var (
	errModel     = errors.New("model: invalid")
	errNotMember = errors.New("model: not a member of the group info")
)

func (b *modelBackend) next() uint64 { b.nonce++; return b.nonce }

func (b *modelBackend) ProcessCommit(base *mstate, msg []byte) (*mstate, CommitInfo, error) {
	c, ok := b.parseCommit(msg)
	if !ok {
		return nil, CommitInfo{}, errModel
	}
	if base.removed || c.Parent != base.id || c.Epoch != base.epoch {
		return nil, CommitInfo{}, errModel
	}
	return b.apply(base, c, msg)
}

func (b *modelBackend) apply(base *mstate, c *mcommit, msg []byte) (*mstate, CommitInfo, error) {
	resync := c.External && base.has(c.Sender)
	if !c.External && !base.has(c.Sender) {
		return nil, CommitInfo{}, fmt.Errorf("%w: sender", errModel)
	}
	members := slices.Clone(base.members)
	for _, r := range c.Removes {
		i, ok := slices.BinarySearch(members, r)
		if !ok || (r == c.Sender && !resync) {
			return nil, CommitInfo{}, fmt.Errorf("%w: remove", errModel)
		}
		members = slices.Delete(members, i, i+1)
	}
	for _, a := range c.Adds {
		i, ok := slices.BinarySearch(members, a)
		if ok {
			return nil, CommitInfo{}, fmt.Errorf("%w: add", errModel)
		}
		members = slices.Insert(members, i, a)
	}
	h := sha256.New()
	h.Write(base.id[:])
	h.Write(msg)
	n := &mstate{self: base.self, epoch: base.epoch + 1, members: members}
	h.Sum(n.id[:0])
	n.removed = !n.has(base.self)
	info := CommitInfo{Sender: c.Sender, External: c.External, Added: slices.Clone(c.Adds),
		Removed: slices.Clone(c.Removes), Path: c.Update || c.External || len(c.Removes) > 0}
	return n, info, nil
}

func (b *modelBackend) Open(st *mstate, msg []byte, ct ContentType) (Opened, error) {
	a, ok := b.parseApp(msg)
	if !ok {
		return Opened{}, errModel
	}
	if st.removed || a.Key != st.id || a.Epoch != st.epoch || !st.has(a.Sender) || a.Sender == st.self {
		return Opened{}, errModel
	}
	return Opened{ID: a.ID, Sender: a.Sender, Payload: a.Payload}, nil
}

func (b *modelBackend) Release(*mstate) { b.released++ }

// simulator backend

func (b *modelBackend) create(members []string) []*mstate {
	ms := slices.Clone(members)
	slices.Sort(ms)
	var id [32]byte
	copy(id[:], "model genesis")
	out := make([]*mstate, len(members))
	for i, m := range members {
		out[i] = &mstate{self: m, epoch: 0, id: id, members: ms}
	}
	return out
}

func (b *modelBackend) commit(self string, st *mstate, adds, removes []string, update bool) ([]byte, *mstate, CommitInfo, []byte, error) {
	c := &mcommit{T: "C", Parent: st.id, Epoch: st.epoch, Sender: self, Adds: adds, Removes: removes, Update: update, Nonce: b.next()}
	msg, _ := json.Marshal(c)
	next, info, err := b.apply(st, c, msg)
	if err != nil {
		return nil, nil, CommitInfo{}, nil, err
	}
	var welcome []byte
	if len(adds) > 0 {
		k := Key{Epoch: st.epoch, Class: info.Class(), Ticket: Ticket(b.groupID, st.epoch, self), Hash: HashOf(msg)}
		welcome, _ = json.Marshal(mwelcome{Epoch: next.epoch, ID: next.id, Members: next.members, Key: k, To: adds})
	}
	return msg, next, info, welcome, nil
}

func (b *modelBackend) protect(self string, st *mstate, id MessageID, payload []byte) ([]byte, error) {
	if st.removed {
		return nil, errModel
	}
	return json.Marshal(mapp{T: "A", Key: st.id, Epoch: st.epoch, Sender: self, ID: id, Payload: payload, Nonce: b.next()})
}

func (b *modelBackend) header(msg []byte) (uint64, ContentType) {
	if c, ok := b.parseCommit(msg); ok {
		return c.Epoch, Commit
	}
	if a, ok := b.parseApp(msg); ok {
		return a.Epoch, Application
	}
	return 0, Application
}

func (b *modelBackend) groupInfo(st *mstate) []byte {
	gi, _ := json.Marshal(mgroupinfo{Epoch: st.epoch, ID: st.id, Members: st.members})
	return gi
}

func (b *modelBackend) joinExternal(self string, gi []byte) (*mstate, []byte, CommitInfo, error) {
	var g mgroupinfo
	if err := json.Unmarshal(gi, &g); err != nil {
		return nil, nil, CommitInfo{}, err
	}
	base := &mstate{self: self, epoch: g.Epoch, id: g.ID, members: g.Members}
	if !base.has(self) {
		// Like mls.JoinExternal with RemovePrior: canopy only resyncs.
		return nil, nil, CommitInfo{}, errNotMember
	}
	c := &mcommit{T: "C", Parent: g.ID, Epoch: g.Epoch, Sender: self, External: true, Adds: []string{self},
		Removes: []string{self}, Nonce: b.next()}
	msg, _ := json.Marshal(c)
	n, info, err := b.apply(base, c, msg)
	return n, msg, info, err
}

func (b *modelBackend) joinWelcome(self string, welcome []byte) (*mstate, *Key, error) {
	var w mwelcome
	if err := json.Unmarshal(welcome, &w); err != nil {
		return nil, nil, err
	}
	if !slices.Contains(w.To, self) {
		return nil, nil, errModel
	}
	k := w.Key
	return &mstate{self: self, epoch: w.Epoch, id: w.ID, members: w.Members}, &k, nil
}

func (b *modelBackend) epochOf(st *mstate) uint64 { return st.epoch }
func (b *modelBackend) auth(st *mstate) []byte    { return st.id[:] }
func (b *modelBackend) roster(st *mstate) []string {
	return slices.Clone(st.members)
}
func (b *modelBackend) usable(st *mstate) bool { return st != nil && !st.removed }
func (b *modelBackend) size(st *mstate) int {
	n := 64 + 8
	for _, m := range st.members {
		n += len(m) + 16
	}
	return n
}

func u64(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

func (b *modelBackend) notMember(err error) bool { return errors.Is(err, errNotMember) }
