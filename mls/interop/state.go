package main

import (
	"cmp"
	"slices"
	"sync"

	"github.com/canopy-chat/canopy/mls"
	"google.golang.org/grpc/codes"
)

// The server keeps four kinds of state, all in one id space (the protocol
// passes "state_or_transaction_id" to StorePSK and a bare id to Free):
//
//   - groupState: a client's membership in a group (state_id);
//   - txState: a KeyPackage waiting for a Welcome (transaction_id);
//   - reinitState: a member of a group closed by a ReInit, with the
//     KeyPackage for the new group (reinit_id);
//   - signerState: an external sender's key (signer_id).
//
// Each item has its own mutex; the store's mutex guards only the map.
// Handlers that use two items lock them in id order (lockItems), so gRPC
// calls on distinct states run concurrently and never deadlock.

// item is implemented by every kind of state.
type item interface {
	sync.Locker
	kind() string
}

// groupState is one client's state in one group.
type groupState struct {
	sync.Mutex
	g        *mls.Group
	encrypt  bool // handshake messages as PrivateMessage
	identity []byte
	// pending is the Commit this client created and has not merged yet
	// (Commit / ReInitCommit followed by HandlePending*Commit).
	pending *mls.PendingCommit
	// ownProposals holds the encodings of the proposals this client sent
	// in epoch ownEpoch: the test runner passes them back by reference,
	// and they are already in the group's proposal cache.
	ownEpoch     uint64
	ownProposals map[string]bool
}

func (*groupState) kind() string { return "group state" }

// noteOwnProposal records a proposal this client sent in the current epoch.
func (s *groupState) noteOwnProposal(msg []byte) {
	if s.ownProposals == nil || s.ownEpoch != s.g.Epoch() {
		s.ownProposals = map[string]bool{}
		s.ownEpoch = s.g.Epoch()
	}
	s.ownProposals[string(msg)] = true
}

// isOwnProposal reports whether msg is a proposal this client sent in the
// current epoch.
func (s *groupState) isOwnProposal(msg []byte) bool {
	return s.ownEpoch == s.g.Epoch() && s.ownProposals[string(msg)]
}

// txState is a KeyPackage (with its private keys) waiting for a Welcome,
// plus the external PSKs stored for it before it joined.
type txState struct {
	sync.Mutex
	bundle   *mls.KeyPackageBundle
	identity []byte
	psks     map[string][]byte
}

func (*txState) kind() string { return "transaction" }

// reinitState is a member of a group that a ReInit Commit closed
// (§11.2): the old group (a private clone, for the resumption PSK and the
// membership checks) and the KeyPackage for the new group.
type reinitState struct {
	sync.Mutex
	old      *mls.Group
	bundle   *mls.KeyPackageBundle
	encrypt  bool
	identity []byte
	psks     map[string][]byte
}

func (*reinitState) kind() string { return "reinit state" }

// signerState is an external sender (§12.1.8.1) created by
// CreateExternalSigner.
type signerState struct {
	sync.Mutex
	cs      mls.CipherSuite
	sigPriv []byte
	sigPub  []byte
	cred    mls.Credential
}

func (*signerState) kind() string { return "external signer" }

// store maps ids to states.
type store struct {
	mu    sync.Mutex
	next  uint32
	items map[uint32]item
}

// add stores it under a fresh id (ids start at 1: 0 is the protobuf
// default and never names a state).
func (st *store) add(it item) uint32 {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.items == nil {
		st.items = map[uint32]item{}
	}
	for {
		st.next++
		if st.next == 0 {
			continue
		}
		if _, used := st.items[st.next]; !used {
			break
		}
	}
	st.items[st.next] = it
	return st.next
}

// get returns the item with the given id, unlocked.
func (st *store) get(id uint32) (item, bool) {
	st.mu.Lock()
	defer st.mu.Unlock()
	it, ok := st.items[id]
	return it, ok
}

// remove deletes an id; it reports whether it existed.
func (st *store) remove(id uint32) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	_, ok := st.items[id]
	delete(st.items, id)
	return ok
}

// len returns the number of live states.
func (st *store) len() int {
	st.mu.Lock()
	defer st.mu.Unlock()
	return len(st.items)
}

// lookup returns the item of type T with the given id, unlocked.
func lookup[T item](st *store, id uint32, what string) (T, error) {
	var zero T
	it, ok := st.get(id)
	if !ok {
		return zero, errorf(codes.NotFound, "%s: no state with id %d", what, id)
	}
	t, ok := it.(T)
	if !ok {
		return zero, errorf(codes.InvalidArgument, "%s: id %d is a %s, not a %s", what, id, it.kind(), zero.kind())
	}
	return t, nil
}

// lockItems locks the given items in id order and returns the unlock
// function. Duplicate ids are locked once.
func lockItems(ids []uint32, items []item) func() {
	type pair struct {
		id uint32
		it item
	}
	ps := make([]pair, len(ids))
	for i := range ids {
		ps[i] = pair{ids[i], items[i]}
	}
	slices.SortFunc(ps, func(a, b pair) int { return cmp.Compare(a.id, b.id) })
	ps = slices.CompactFunc(ps, func(a, b pair) bool { return a.id == b.id })
	for _, p := range ps {
		p.it.Lock()
	}
	return func() {
		for i := len(ps) - 1; i >= 0; i-- {
			ps[i].it.Unlock()
		}
	}
}

// clonePSKs copies a PSK map.
func clonePSKs(m map[string][]byte) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = slices.Clone(v)
	}
	return out
}

// pskOptions turns stored external PSKs into mls options.
func pskOptions(m map[string][]byte) []mls.Option {
	ids := make([]string, 0, len(m))
	for id := range m {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	opts := make([]mls.Option, 0, len(ids))
	for _, id := range ids {
		opts = append(opts, mls.WithExternalPSK([]byte(id), m[id]))
	}
	return opts
}
