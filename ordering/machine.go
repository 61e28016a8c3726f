package ordering

import (
	"errors"
	"slices"
	"time"
)

// Config is the local policy of one group's machine. Zero fields take the
// defaults below. WindowEpochs must be the same on every member of a group
// for forks inside the window to heal without rejoins (the chat engine
// uses the default); everything else is local.
type Config struct {
	// GroupID salts the lottery tickets (Ticket).
	GroupID []byte
	// Self is this member's credential identity.
	Self string

	// WindowEpochs (W) and WindowTime (T) bound the retention of
	// pre-commit states and losing-branch states: a state is released as
	// soon as it is more than W epochs behind the tip or was left more
	// than T ago. The tip's state is always kept.
	WindowEpochs int
	WindowTime   time.Duration
	// MaxLosingStates caps the retained states of losing branches (kept
	// to read their late application messages) whatever the window says:
	// a member can send any number of valid Commits for one epoch. The
	// canonical chain is bounded by the window alone.
	MaxLosingStates int

	// MaxBuffered and MaxBufferedBytes bound the buffer of messages that
	// no retained state accepts yet (future epochs, unknown branches).
	MaxBuffered      int
	MaxBufferedBytes int
	// MaxAhead is how far ahead of the tip a message may be buffered.
	MaxAhead uint64
	// MaxSeenIDs bounds the set of delivered message ids used to
	// de-duplicate re-sent messages (the store keeps the definitive set).
	MaxSeenIDs int

	// SettleTime is how long an own Commit must stay canonical (or
	// SettleEpochs Commits be built on it) before its Welcome is sent.
	SettleTime   time.Duration
	SettleEpochs int
	// RetryTime is how long a Repropose or Resend waits for the engine
	// before it is issued again.
	RetryTime time.Duration
	// OrphanTime is how long a buffered message may wait before it counts
	// as evidence of another branch (Announce) or of missing messages
	// (CatchUp).
	OrphanTime time.Duration
	// AnnounceInterval rate-limits Announce and CatchUp.
	AnnounceInterval time.Duration
	// RejoinGrace is how long a member that lost a fork inside its window
	// waits for the winning Commits before it rejoins instead; RejoinRetry
	// spaces rejoin attempts.
	RejoinGrace time.Duration
	RejoinRetry time.Duration
	// ClaimDense is how many recent entries a claim lists densely.
	ClaimDense int
}

// Defaults.
const (
	DefaultWindowEpochs     = 16
	DefaultWindowTime       = 15 * time.Minute
	DefaultMaxBuffered      = 1024
	DefaultMaxBufferedBytes = 4 << 20
	DefaultMaxAhead         = 256
	DefaultMaxSeenIDs       = 8192
	DefaultSettleTime       = 5 * time.Second
	DefaultSettleEpochs     = 2
	DefaultRetryTime        = 30 * time.Second
	DefaultOrphanTime       = 10 * time.Second
	DefaultAnnounceInterval = 10 * time.Second
	DefaultRejoinGrace      = 20 * time.Second
	DefaultRejoinRetry      = 30 * time.Second
	DefaultClaimDense       = 64
)

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.WindowEpochs, DefaultWindowEpochs)
	defd(&c.WindowTime, DefaultWindowTime)
	def(&c.MaxLosingStates, 2*c.WindowEpochs)
	def(&c.MaxBuffered, DefaultMaxBuffered)
	def(&c.MaxBufferedBytes, DefaultMaxBufferedBytes)
	if c.MaxAhead == 0 {
		c.MaxAhead = DefaultMaxAhead
	}
	def(&c.MaxSeenIDs, DefaultMaxSeenIDs)
	defd(&c.SettleTime, DefaultSettleTime)
	def(&c.SettleEpochs, DefaultSettleEpochs)
	defd(&c.RetryTime, DefaultRetryTime)
	defd(&c.OrphanTime, DefaultOrphanTime)
	defd(&c.AnnounceInterval, DefaultAnnounceInterval)
	defd(&c.RejoinGrace, DefaultRejoinGrace)
	defd(&c.RejoinRetry, DefaultRejoinRetry)
	def(&c.ClaimDense, DefaultClaimDense)
	return c
}

// node is a group state: the root, or the result of a Commit.
type node[S any] struct {
	id     Hash // hash of the Commit that created it (zero for a root without one)
	parent *node[S]
	kids   []*node[S]
	best   *node[S] // the child with the smallest key
	epoch  uint64
	key    Key // key of the Commit that created it (Epoch = epoch-1)
	hasKey bool
	info   CommitInfo

	state S
	live  bool // state retained
	canon bool // on the canonical chain
	gone  bool // removed from the tree

	left       time.Time // when it stopped being the canonical tip (zero: tip, or never left)
	canonSince time.Time
	own        bool
	welcome    welcomeState
	// barred: the Commit of a member the canonical chain had removed
	// since its parent when it came (barred): it never becomes canonical.
	barred bool
	// conceded: this member's own Commit, barred by itself (concede,
	// fork.go) because the group's branch removed it; a trusted claim may
	// still lift the bar, so the Welcomes of its branch are held.
	conceded bool
	// senderOut: when it came, this member's chain had removed its
	// sender after its parent (the bar's first reason): a lifted bar
	// restores the members it removed (restoreVictims, fork.go).
	senderOut bool
}

type welcomeState uint8

const (
	noWelcome welcomeState = iota
	welcomeHeld
	welcomeSent
	welcomeDropped
)

type pendingMsg struct {
	hash  Hash
	msg   []byte
	epoch uint64
	ct    ContentType
	at    time.Time
	tried []Hash // nodes that rejected it for good
	later bool   // a node answered ErrLater
	noted bool   // counted as evidence already
}

type sentMsg[S any] struct {
	id        MessageID
	node      Hash
	n         any // *node[S]
	resending bool
	askedAt   time.Time
	at        *node[S] // the state the pending re-send was asked for (nil: the tip)
	late      bool     // re-sent once because it was written far behind the group
}

// owedMsg is an own message a claim asked for (Claim.Stale): re-sent at
// the tip once this member is in the group, asked again after RetryTime
// until the engine reports it Sent (it may have been out when it tried),
// at most maxOwedTries times.
type owedMsg struct {
	id      MessageID
	tries   int
	askedAt time.Time
}

const maxOwedTries = 3

type intentState struct {
	Intent
	base      uint64 // tip epoch when intended
	carrier   Hash   // own Commit carrying it (zero: none)
	asked     bool   // waiting for the engine to commit it
	askedAt   time.Time
	satisfied uint64 // epoch at which the canonical branch satisfied it (0: not)
	isSat     bool
	landed    bool // its carrier became canonical, creating the state of epoch landedAt
	landedAt  uint64
	// restore: an add of a member that a removed member's Commit removed
	// (restoreVictims, fork.go): done once the target is a member again
	// or a canonical Commit after that one (from base on) added it.
	restore bool
}

type memberEvent struct {
	epoch  uint64
	target string
	add    bool
	author string
}

type lostFork struct {
	lag    bool
	epoch  uint64
	theirs Key
	claim  Claim
	since  time.Time
}

// Machine is the fork choice of one group for one member: the tree of
// retained states, the canonical chain through it, the compact history of
// older canonical Commits, the buffer, and this member's messages and
// changes awaiting settlement. Feed it events (its methods), execute the
// returned decisions in order.
//
// A Machine is not safe for concurrent use: one goroutine (the group's
// processing loop) owns it, like the group state it holds.
type Machine[S any] struct {
	cfg Config
	p   Processor[S]
	now time.Time
	out []Decision

	root, tip *node[S]
	nodes     map[Hash]*node[S]
	byEpoch   map[uint64][]*node[S]
	liveCount int
	gone      map[Hash]uint64 // commits dropped from the tree, by epoch

	tipRoster  map[string]bool
	rootRoster map[string]bool
	history    []Entry
	events     map[string][]memberEvent // finalized membership changes per identity
	eventLog   []memberEvent

	pending      []*pendingMsg
	pendingIdx   map[Hash]*pendingMsg
	pendingBytes int
	seen         map[Hash]uint64 // opened messages, by epoch
	ids          map[MessageID]struct{}
	idOrder      []MessageID
	work         []*node[S]

	sent        []*sentMsg[S]
	intents     []*intentState
	welcomes    []*node[S]
	deepExclude map[string]string // identity -> author of its removal on the lost branch
	since       *ResendSince

	evidence      bool
	lagging       bool
	lastAnnounce  time.Time
	announceCount int
	announced     bool
	lastCatchUp   time.Time
	// fetchFork: the next CatchUp starts at this fork epoch rather than at
	// the tip (concede: the winners' branch is needed to judge our own
	// Commit there).
	fetchFork opt[uint64]
	// standing: lost, detached, confirmed out (standing.go).
	standing standing
	// lost: the fork this member's branch lost (or the lag too deep to
	// catch up through the window), until it rolls back or rejoins.
	lost      *lostFork
	knownFrom uint64 // the epoch before the state this member joined or rejoined (TrustClaim)
	// lostAt: epoch of the last fork lost since the last rejoin, kept past
	// RejoinRefused (LostFork).
	lostAt opt[uint64]
	// deadCommit is this member's Commit at the last fork its branch lost
	// (a trusted claim showed a better sibling): a Welcome into a branch
	// through it is into a dead branch (WelcomeAcceptable).
	deadCommit   opt[Key]
	lastRejoin   time.Time
	lastProgress time.Time
	sweptAt      uint64             // root epoch at the last sweep of seen and gone
	stale        []Hash             // application messages received too late to read, to announce (Claim.Stale)
	ownHashes    map[Hash]MessageID // own recent messages by hash, for Claim.Stale
	ownOrder     []Hash
	owed         []*owedMsg // own messages a claim listed as stale, to re-send at the tip (Claim.Stale)
	// settled: intents dropped as final, with the epoch of the state whose
	// Commit decided them: a rejoin past a fork before that epoch undoes
	// the decision and brings them back (Rejoined). Bounded.
	settled []*intentState
	// reinstated: removed members whose Commit this member restored the
	// victims of (restoreVictims, fork.go), with that Commit's epoch: on
	// its branch the sender is a member again until the group's removal
	// of it lands again, and its removals there are restored too. Bounded
	// by the members the chain removed; an entry goes when the sender's
	// removal is canonical again.
	reinstated map[string]uint64
}

// New returns the machine of a group whose current state is root, in epoch
// epoch, with the given members (credential identities, self included).
// rootKey is the key of the Commit that created root when known (nil for a
// new group or when the Welcome did not say). now is the current time.
func New[S any](cfg Config, root S, epoch uint64, rootKey *Key, roster []string, now time.Time) *Machine[S] {
	m := &Machine[S]{cfg: cfg.withDefaults(), now: now}
	m.reset(root, epoch, rootKey, roster)
	return m
}

func (m *Machine[S]) reset(root S, epoch uint64, rootKey *Key, roster []string) {
	n := &node[S]{epoch: epoch, state: root, live: true, canon: true, canonSince: m.now}
	if rootKey != nil {
		n.key, n.hasKey, n.id = *rootKey, true, rootKey.Hash
		m.appendHistory(*rootKey)
	}
	m.root, m.tip = n, n
	m.nodes = map[Hash]*node[S]{n.id: n}
	m.byEpoch = map[uint64][]*node[S]{epoch: {n}}
	m.liveCount = 1
	m.gone = map[Hash]uint64{}
	m.tipRoster, m.rootRoster = map[string]bool{}, map[string]bool{}
	if m.events == nil {
		m.events = map[string][]memberEvent{}
	}
	m.knownFrom = 0
	if epoch > 0 {
		m.knownFrom = epoch - 1
	}
	for _, id := range roster {
		m.tipRoster[id], m.rootRoster[id] = true, true
		if !m.wasMemberFinal(id, epoch) {
			// A joiner knows the members of the state it joined; it takes
			// them (itself excepted) as members of the epoch before too,
			// where its branch forked if it lost (TrustClaim).
			at := epoch
			if id != m.cfg.Self && epoch > 0 && len(m.events[id]) == 0 {
				at = epoch - 1
			}
			m.recordEvent(memberEvent{epoch: at, target: id, add: true})
		}
	}
	// Identities the finalized history still holds as members but the new
	// root does not have left (a rejoin reconciles the history here).
	for id, evs := range m.events {
		if len(evs) > 0 && evs[len(evs)-1].add && !m.rootRoster[id] {
			m.recordEvent(memberEvent{epoch: epoch, target: id})
		}
	}
	m.pendingIdx = map[Hash]*pendingMsg{}
	m.pending, m.pendingBytes = nil, 0
	m.seen = map[Hash]uint64{}
	if m.ids == nil {
		m.ids = map[MessageID]struct{}{}
	}
	m.lastProgress = m.now
}

// ---------------------------------------------------------------------------
// Accessors.

// Current returns the state of the canonical tip, its epoch and the hash of
// the Commit that created it. Own messages and Commits are made from it.
func (m *Machine[S]) Current() (S, uint64, Hash) { return m.tip.state, m.tip.epoch, m.tip.id }

// Epoch returns the canonical tip's epoch.
func (m *Machine[S]) Epoch() uint64 { return m.tip.epoch }

// IsMember reports whether this member is in the group at the canonical
// tip.
func (m *Machine[S]) IsMember() bool {
	return m.standing != standingDetached && m.tipRoster[m.cfg.Self]
}

// Roster returns the members at the canonical tip, sorted.
func (m *Machine[S]) Roster() []string {
	out := make([]string, 0, len(m.tipRoster))
	for id := range m.tipRoster {
		out = append(out, id)
	}
	slices.Sort(out)
	return out
}

// History returns the keys of the canonical Commits this member knows, by
// epoch: the compact history (kept forever) followed by the window.
func (m *Machine[S]) History() []Entry {
	out := slices.Clone(m.history)
	return append(out, m.windowEntries()...)
}

func (m *Machine[S]) windowEntries() []Entry {
	var out []Entry
	for n := m.tip; n != m.root; n = n.parent {
		if n.hasKey {
			out = append(out, n.key)
		}
	}
	slices.Reverse(out)
	return out
}

// Stats describes what the machine retains.
type Stats struct {
	Epoch          uint64
	States         int // retained states (canonical and losing branches)
	CanonStates    int // of which on the canonical chain
	OldestEpoch    uint64
	Nodes          int // tree nodes (with or without state)
	Buffered       int
	BufferedBytes  int
	HistoryEntries int
	MemberEvents   int
	SeenIDs        int
	SentTracked    int
	Intents        int
	// Barred counts the Commits in the tree refused by the bar (a removed
	// member's replay: README.md "Removed members").
	Barred int
	// Bytes estimates the machine's own memory, states excluded.
	Bytes int
}

// Stats returns what the machine retains now.
func (m *Machine[S]) Stats() Stats {
	s := Stats{Epoch: m.tip.epoch, States: m.liveCount, OldestEpoch: m.root.epoch, Nodes: len(m.nodes),
		Buffered: len(m.pending), BufferedBytes: m.pendingBytes, HistoryEntries: len(m.history),
		MemberEvents: len(m.eventLog), SeenIDs: len(m.ids), SentTracked: len(m.sent), Intents: len(m.intents)}
	for n := m.tip; n != nil; n = n.parent {
		if n.live {
			s.CanonStates++
		}
		if n == m.root {
			break
		}
	}
	for _, n := range m.nodes {
		if n.barred {
			s.Barred++
		}
	}
	const nodeSize, entrySz, ptr = 256, 64, 16
	s.Bytes = s.Nodes*nodeSize + s.HistoryEntries*entrySz + s.BufferedBytes + s.Buffered*96 +
		s.MemberEvents*48 + s.SeenIDs*48 + len(m.seen)*48 + s.SentTracked*64 + s.Intents*96 +
		len(m.settled)*96 + len(m.owed)*48
	for id := range m.tipRoster {
		s.Bytes += 2 * (len(id) + ptr)
	}
	for _, evs := range m.events {
		for _, e := range evs {
			s.Bytes += len(e.target) + len(e.author)
		}
	}
	return s
}

// LiveStates returns the epochs of the retained states, for tests.
func (m *Machine[S]) LiveStates() []uint64 {
	var out []uint64
	for _, n := range m.nodes {
		if n.live {
			out = append(out, n.epoch)
		}
	}
	slices.Sort(out)
	return out
}

// WasMember reports whether id was a member at epoch on the canonical
// chain as this member knows it (finalized history or window).
func (m *Machine[S]) WasMember(id string, epoch uint64) bool {
	if epoch >= m.root.epoch {
		for n := m.tip; n != nil; n = n.parent {
			if n.epoch <= epoch {
				return m.memberAt(n, id)
			}
			if n == m.root {
				break
			}
		}
		return m.rootRoster[id]
	}
	return m.wasMemberFinal(id, epoch)
}

func (m *Machine[S]) wasMemberFinal(id string, epoch uint64) bool {
	evs := m.events[id]
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].epoch <= epoch {
			return evs[i].add
		}
	}
	return false
}

// memberAt reports whether id is a member in the state of n.
func (m *Machine[S]) memberAt(n *node[S], id string) bool {
	for x := n; x != nil && x != m.root; x = x.parent {
		if slices.Contains(x.info.Added, id) {
			return true
		}
		if slices.Contains(x.info.Removed, id) {
			return false
		}
	}
	return m.rootRoster[id]
}

// Admission is the verdict on an external commit's credential.
type Admission uint8

const (
	// Admitted: the credential is a member of the state the external
	// commit was sent in: a resync (it rejoins after losing a fork, or
	// after losing its state).
	Admitted Admission = iota + 1
	// RefusedRemoved: the credential was a member but the canonical
	// branch removed it: its removal stands.
	RefusedRemoved
	// RefusedStranger: the credential never was a member.
	RefusedStranger
)

// AdmitExternal is the pure admission rule for external commits (DESIGN.md
// §3, README.md "Rejoining"): only credentials that are members of the
// state the commit was sent in, that is members who were in the group at
// the fork and were not removed by the canonical branch since, may join
// by external commit; others must be added by a member (Welcome).
func AdmitExternal(memberAtBase func(id string) bool, wasEverMember func(id string) bool, id string) Admission {
	switch {
	case memberAtBase(id):
		return Admitted
	case wasEverMember(id):
		return RefusedRemoved
	}
	return RefusedStranger
}

func (m *Machine[S]) admit(base *node[S], id string) Admission {
	return AdmitExternal(func(id string) bool { return m.memberAt(base, id) },
		func(id string) bool { return len(m.events[id]) > 0 || m.everInWindow(id) }, id)
}

func (m *Machine[S]) everInWindow(id string) bool {
	for _, n := range m.nodes {
		if slices.Contains(n.info.Added, id) {
			return true
		}
	}
	return false
}

// TrustClaim reports whether a claim signed by signer about a fork at
// epoch may be acted on: the signer must have been a member at the fork
// (README.md "Deep forks").
//
// A member that joined (or rejoined) at epoch j knows nothing of the group
// before j but what its adder told it: a fork before j is judged by the
// members it joined with, so a signer that was a member at j is trusted
// about it (as much as the adder whose history it adopted).
//
// A signer that this member's canonical chain removed after the fork is
// not trusted about it either: it may hold a state from before its removal
// and forge a branch from there (README.md "Removed members"); a branch
// that honest members really went on is claimed by them too.
func (m *Machine[S]) TrustClaim(signer string, forkEpoch uint64) bool {
	if false && m.RemovedSince(signer, forkEpoch) {
		return false
	}
	if forkEpoch < m.knownFrom {
		return m.WasMember(signer, m.knownFrom)
	}
	return m.WasMember(signer, forkEpoch)
}

// RemovedSince reports that this member's canonical chain removed id by a
// Commit of epoch or later (finalized history or window), whatever
// happened to id afterwards: a member re-added since is still not trusted
// with what it claims about the branch before its removal.
func (m *Machine[S]) RemovedSince(id string, epoch uint64) bool {
	for _, e := range m.events[id] {
		// e.epoch is the epoch of the state the removal created.
		if !e.add && e.author != "" && e.epoch > epoch {
			return true
		}
	}
	for x := m.tip; x != nil && x != m.root; x = x.parent {
		if x.key.Epoch >= epoch && removes(x, id) {
			return true
		}
	}
	return false
}

// WelcomeAcceptable reports whether a Welcome into this group for epoch
// should replace the current state. history is the compact history the
// adder sent with the Welcome (nil if none). A Welcome is accepted only if
// it leads forward on the canonical chain as this member can judge it:
//
//   - with a history that forks from ours, only if its branch wins the
//     fork (a Welcome into a losing branch is never taken, however stale
//     our own state is);
//   - otherwise only if this member needs it (its branch lost, it is not a
//     member at its tip, or Commits that no state accepts show it is
//     stranded) and the Welcome is newer than what it holds: past the fork
//     it lost, past its tip when it was removed.
//
// A stale Welcome (an old re-add, kept in the inbox) would otherwise take a
// member back to a dead state of an old epoch.
func (m *Machine[S]) WelcomeAcceptable(epoch uint64, history []Entry) bool {
	if dead, ok := m.deadCommit.get(); ok {
		// A branch through a Commit known to have a better sibling is
		// dead, whoever adds us to it: its members have not heard yet,
		// or cannot rejoin (they joined through the dead Commit).
		for _, e := range history {
			if e.Epoch == dead.Epoch && e.Hash == dead.Hash {
				return false
			}
		}
	}
	if len(history) > 0 {
		ours := m.History()
		if m.root.hasKey || len(ours) > 0 {
			switch v := CompareHistories(ours, history); v.Kind {
			case Fork:
				return v.Theirs.Less(v.Ours) && epoch > v.Epoch
			case Agree:
				// Same branch as far as both know: only forward.
				if epoch <= m.tip.epoch {
					return false
				}
			}
		}
	}
	switch {
	case m.lost != nil:
		return epoch > m.lost.epoch
	case m.standing.mayWelcome() || !m.IsMember():
		return epoch > m.tip.epoch || (len(history) > 0 && epoch > m.root.epoch)
	case m.orphaned():
		return true
	}
	return false
}

func (m *Machine[S]) orphaned() bool {
	for _, pm := range m.pending {
		if pm.epoch <= m.tip.epoch && pm.ct == Commit && m.now.Sub(pm.at) >= m.cfg.OrphanTime {
			return true
		}
	}
	return false
}

// ---------------------------------------------------------------------------
// Events.

func (m *Machine[S]) begin(p Processor[S], now time.Time) {
	m.p = p
	if now.After(m.now) {
		m.now = now
	}
	m.out = nil
}

func (m *Machine[S]) finish() []Decision {
	m.drain()
	m.prune()
	m.evaluate()
	out := m.out
	m.out, m.p = nil, nil
	return out
}

func (m *Machine[S]) emit(d Decision) { m.out = append(m.out, d) }

// Receive handles a message from the network: msg is the full MLSMessage,
// epoch and ct come from its clear header.
func (m *Machine[S]) Receive(p Processor[S], msg []byte, epoch uint64, ct ContentType, now time.Time) []Decision {
	m.begin(p, now)
	h := HashOf(msg)
	if ct == Commit {
		m.receiveCommit(h, msg, epoch)
	} else {
		m.receiveMessage(h, msg, epoch, ct)
	}
	return m.finish()
}

// Tick lets time pass: retention, Welcomes, retries, fork healing.
func (m *Machine[S]) Tick(p Processor[S], now time.Time) []Decision {
	m.begin(p, now)
	m.timers()
	return m.finish()
}

// OwnCommit reports a Commit this member made from Current() (not yet
// sent): msg is the Commit, next the state it leads to, intents the ids of
// the changes it carries, welcome whether it has a Welcome (held until the
// Commit settles). The Commit is applied at once.
func (m *Machine[S]) OwnCommit(p Processor[S], msg []byte, next S, info CommitInfo, intents []string, welcome bool, now time.Time) []Decision {
	m.begin(p, now)
	h := HashOf(msg)
	n := m.addNode(m.tip, h, next, info)
	if n != nil {
		n.own = true
		if welcome {
			n.welcome = welcomeHeld
			m.welcomes = append(m.welcomes, n)
		}
		for _, is := range m.intents {
			if slices.Contains(intents, is.ID) {
				is.carrier, is.asked = h, false
			}
		}
	}
	return m.finish()
}

// Sent reports an own application message encrypted with Current() (a new
// one or a re-send of id). Its echo from the network is recognised.
func (m *Machine[S]) Sent(id MessageID, msg []byte, now time.Time) []Decision {
	m.begin(nil, now)
	if m.ownHashes == nil {
		m.ownHashes = map[Hash]MessageID{}
	}
	oh := HashOf(msg)
	m.ownHashes[oh] = id
	m.ownOrder = append(m.ownOrder, oh)
	for len(m.ownOrder) > m.cfg.MaxSeenIDs {
		delete(m.ownHashes, m.ownOrder[0])
		m.ownOrder = m.ownOrder[1:]
	}
	m.seen[HashOf(msg)] = m.tip.epoch
	m.markID(id)
	m.owed = slices.DeleteFunc(m.owed, func(o *owedMsg) bool { return o.id == id })
	found := false
	for _, s := range m.sent {
		if s.id == id {
			at := m.tip
			if s.at != nil && s.at.live && !s.at.gone {
				at = s.at
				m.seen[HashOf(msg)] = at.epoch
			}
			s.node, s.n, s.resending, s.at, found = at.id, at, false, nil, true
		}
	}
	if !found {
		m.sent = append(m.sent, &sentMsg[S]{id: id, node: m.tip.id, n: m.tip})
	}
	return m.finish()
}

// Intend records a membership change this member wants. The engine commits
// it (and reports the Commit with OwnCommit listing intent.ID); the machine
// answers Repropose whenever that Commit loses, until the canonical branch
// applied the change or made it moot.
func (m *Machine[S]) Intend(intent Intent, now time.Time) []Decision {
	m.begin(nil, now)
	m.intents = append(m.intents, &intentState{Intent: intent, base: m.tip.epoch, asked: true, askedAt: now})
	return m.finish()
}

// ---------------------------------------------------------------------------
// Commits and messages.

func (m *Machine[S]) receiveCommit(h Hash, msg []byte, epoch uint64) {
	if _, ok := m.nodes[h]; ok || m.pendingIdx[h] != nil {
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
		return
	}
	if e, ok := m.gone[h]; ok && e == epoch {
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
		return
	}
	if epoch < m.root.epoch {
		if m.historyHas(epoch, h) {
			m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
			return
		}
		// A Commit we can no longer judge: a replay of a Commit that lost,
		// or a branch older than the window. Evidence for a claim.
		m.evidence = true
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Stale})
		return
	}
	if epoch > m.tip.epoch+m.cfg.MaxAhead {
		m.lagging = true
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Overflow})
		return
	}
	pm := &pendingMsg{hash: h, msg: msg, epoch: epoch, ct: Commit, at: m.now}
	if !m.tryCommit(pm, m.byEpoch[epoch]) {
		m.buffer(pm)
	}
}

// tryCommit processes a Commit against candidate states (canonical first)
// and reports whether one accepted it.
func (m *Machine[S]) tryCommit(pm *pendingMsg, cands []*node[S]) bool {
	for _, n := range m.ordered(cands) {
		if !n.live || slices.Contains(pm.tried, n.id) {
			continue
		}
		next, info, err := m.p.ProcessCommit(n.state, pm.msg)
		if err != nil {
			if errors.Is(err, ErrLater) {
				pm.later = true
			} else {
				pm.tried = append(pm.tried, n.id)
			}
			continue
		}
		m.addNode(n, pm.hash, next, info)
		return true
	}
	return false
}

// ordered returns the candidates canonical first, then by key.
func (m *Machine[S]) ordered(cands []*node[S]) []*node[S] {
	if len(cands) <= 1 {
		return cands
	}
	out := slices.Clone(cands)
	slices.SortStableFunc(out, func(a, b *node[S]) int {
		if a.canon != b.canon {
			if a.canon {
				return -1
			}
			return 1
		}
		return a.key.Compare(b.key)
	})
	return out
}

func (m *Machine[S]) receiveMessage(h Hash, msg []byte, epoch uint64, ct ContentType) {
	if _, ok := m.seen[h]; ok || m.pendingIdx[h] != nil {
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Duplicate})
		return
	}
	if epoch < m.root.epoch {
		m.noteStale(h, ct)
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Stale})
		return
	}
	if epoch > m.tip.epoch+m.cfg.MaxAhead {
		m.lagging = true
		m.emit(Discarded{Hash: h, Epoch: epoch, Reason: Overflow})
		return
	}
	pm := &pendingMsg{hash: h, msg: msg, epoch: epoch, ct: ct, at: m.now}
	if !m.tryOpen(pm, m.byEpoch[epoch]) {
		m.buffer(pm)
	}
}

func (m *Machine[S]) tryOpen(pm *pendingMsg, cands []*node[S]) bool {
	for _, n := range m.ordered(cands) {
		if !n.live || slices.Contains(pm.tried, n.id) {
			continue
		}
		o, err := m.p.Open(n.state, pm.msg, pm.ct)
		if err != nil {
			pm.tried = append(pm.tried, n.id)
			continue
		}
		m.seen[pm.hash] = pm.epoch
		if pm.ct == Proposal {
			// A Commit waiting for this proposal may go through now.
			m.work = append(m.work, n)
			return true
		}
		if o.ID != "" {
			if _, dup := m.ids[o.ID]; dup {
				m.emit(Discarded{Hash: pm.hash, Epoch: pm.epoch, Reason: Duplicate})
				return true
			}
			m.markID(o.ID)
		}
		m.emit(Deliver{ID: o.ID, Sender: o.Sender, Epoch: n.epoch, Node: n.id, Payload: o.Payload, Canonical: n.canon})
		return true
	}
	return false
}

// noteStale records an application message that arrived (or waited) until
// its epoch had left the window: it cannot be read any more, and the next
// claim asks its sender to send it again (Claim.Stale). A replayed or
// losing-branch message is asked for too; its sender's re-send is a
// duplicate that receivers drop by id.
func (m *Machine[S]) noteStale(h Hash, ct ContentType) {
	if ct != Application || slices.Contains(m.stale, h) {
		return
	}
	if len(m.stale) >= MaxClaimStale {
		m.stale = m.stale[1:]
	}
	m.stale = append(m.stale, h)
	m.evidence = true
	if debugf != nil {
		debugf("%s: stale %s", m.cfg.Self, h)
	}
}

func (m *Machine[S]) markID(id MessageID) {
	if id == "" {
		return
	}
	if _, ok := m.ids[id]; ok {
		return
	}
	m.ids[id] = struct{}{}
	m.idOrder = append(m.idOrder, id)
	for len(m.idOrder) > m.cfg.MaxSeenIDs {
		delete(m.ids, m.idOrder[0])
		m.idOrder = m.idOrder[1:]
	}
}

// buffer keeps a message that no retained state accepts yet, evicting the
// furthest-ahead message when full.
func (m *Machine[S]) buffer(pm *pendingMsg) {
	size := len(pm.msg)
	for len(m.pending) >= m.cfg.MaxBuffered || m.pendingBytes+size > m.cfg.MaxBufferedBytes {
		worst := -1
		for i, q := range m.pending {
			if worst < 0 || q.epoch > m.pending[worst].epoch {
				worst = i
			}
		}
		if worst < 0 || m.pending[worst].epoch <= pm.epoch {
			m.lagging = true
			m.emit(Discarded{Hash: pm.hash, Epoch: pm.epoch, Reason: Overflow})
			return
		}
		q := m.pending[worst]
		m.dropPending(worst)
		m.lagging = true
		m.emit(Discarded{Hash: q.hash, Epoch: q.epoch, Reason: Overflow})
	}
	m.pending = append(m.pending, pm)
	m.pendingIdx[pm.hash] = pm
	m.pendingBytes += size
}

func (m *Machine[S]) dropPending(i int) {
	q := m.pending[i]
	delete(m.pendingIdx, q.hash)
	m.pendingBytes -= len(q.msg)
	m.pending = slices.Delete(m.pending, i, i+1)
}

// drain re-processes buffered messages against every new state (and
// against states that received a proposal), until nothing moves.
func (m *Machine[S]) drain() {
	for len(m.work) > 0 {
		n := m.work[0]
		m.work = m.work[1:]
		if !n.live {
			continue
		}
		for i := 0; i < len(m.pending); {
			pm := m.pending[i]
			if pm.epoch != n.epoch {
				i++
				continue
			}
			var ok bool
			if pm.ct == Commit {
				ok = m.tryCommit(pm, []*node[S]{n})
			} else {
				ok = m.tryOpen(pm, []*node[S]{n})
			}
			if ok {
				// The slice may have changed (tryCommit adds nodes, not
				// messages): find pm again.
				if j := slices.Index(m.pending, pm); j >= 0 {
					m.dropPending(j)
				}
				i = 0
				continue
			}
			i++
		}
	}
}

// addNode inserts the state a Commit created on parent and updates the
// canonical chain. It returns nil when the Commit is refused.
func (m *Machine[S]) addNode(parent *node[S], h Hash, next S, info CommitInfo) *node[S] {
	if info.External {
		if a := m.admit(parent, info.Sender); a != Admitted {
			m.release(next)
			m.gone[h] = parent.epoch
			m.emit(Discarded{Hash: h, Epoch: parent.epoch, Reason: NotAdmitted})
			return nil
		}
	}
	if old, ok := m.nodes[h]; ok {
		// The same Commit valid on two retained states is impossible (the
		// transcript binds it to one); keep the first.
		m.release(next)
		return old
	}
	if debugf != nil {
		debugf("%s: node %s on %s (epoch %d): %+v", m.cfg.Self, h, parent.id, parent.epoch+1, info)
	}
	n := &node[S]{
		id: h, parent: parent, epoch: parent.epoch + 1,
		key:    Key{Epoch: parent.epoch, Class: info.Class(), Ticket: Ticket(m.cfg.GroupID, parent.epoch, info.Sender), Hash: h},
		hasKey: true, info: info, state: next, live: true,
	}
	parent.kids = append(parent.kids, n)
	m.nodes[h] = n
	m.byEpoch[n.epoch] = append(m.byEpoch[n.epoch], n)
	m.liveCount++
	m.work = append(m.work, n)
	if parent.best == nil || n.key.Less(parent.best.key) {
		if bar, senderOut := m.barred(parent, info.Sender); bar {
			// A Commit by a member the canonical chain removed after
			// parent never displaces that chain (README.md "Removed
			// members"); the bar is kept, it never wins later either.
			n.barred, n.senderOut = true, senderOut
			if debugf != nil {
				debugf("%s: %s by %s barred at %d: removed since", m.cfg.Self, h, info.Sender, parent.epoch)
			}
		} else {
			parent.best = n
			if parent.canon {
				m.recanon(parent)
				return n
			}
		}
	}
	n.left = m.now
	return n
}

// barred reports that a Commit of sender on parent must not displace
// parent's canonical child: parent is on the canonical chain below its tip
// and a canonical Commit after parent (its canonical child included)
// removed sender. That Commit is a removed member's, made from a state it
// kept from before its removal (or a counter that arrived after the
// removal it raced): README.md "Removed members".
//
// A member that is out at its tip also bars every Commit on parent when
// its chain removed it after parent (its canonical child included): it
// stopped at its removal and never saw what the group did since (another
// member's removal among it), so it cannot judge such a Commit, and
// taking it would make it a member again on a branch that may be only a
// removed member's replay, which its claims would then vouch for. It
// goes there only when a trusted claim (a member at the fork that its
// chain has not removed since) shows that the group did (liftBar): an
// honest race its removal lost reaches it that way.
//
// senderOut reports the first reason: the chain removed sender.
func (m *Machine[S]) barred(parent *node[S], sender string) (bar, senderOut bool) {
	if !parent.canon || parent == m.tip || sender == "" {
		return false, false
	}
	out := !m.tipRoster[m.cfg.Self]
	for x := m.tip; x != nil && x != parent; x = x.parent {
		if removes(x, sender) {
			return true, true
		}
		if out && removes(x, m.cfg.Self) {
			bar = true
		}
	}
	return bar, false
}

// removes reports that n's Commit removed id (a resync removes and
// re-adds its own sender: nobody is removed).
func removes[S any](n *node[S], id string) bool {
	return slices.Contains(n.info.Removed, id) && !slices.Contains(n.info.Added, id)
}

// descend follows the best children to the deepest state.
func descend[S any](n *node[S]) *node[S] {
	for n.best != nil {
		n = n.best
	}
	return n
}

// recanon moves the canonical chain below from (a canonical node whose
// best child changed).
func (m *Machine[S]) recanon(from *node[S]) {
	newTip := descend(from)
	oldTip := m.tip
	if newTip == oldTip {
		return
	}
	rolled := 0
	for x := oldTip; x != from; x = x.parent {
		x.canon = false
		m.undoRoster(x)
		if x.left.IsZero() {
			x.left = m.now
		}
		rolled++
	}
	var path []*node[S]
	for x := newTip; x != from; x = x.parent {
		path = append(path, x)
	}
	slices.Reverse(path)
	for _, x := range path {
		x.canon = true
		x.canonSince = m.now
		m.applyRoster(x)
		x.left = m.now
		m.reinstatedCommit(x)
	}
	if from.left.IsZero() {
		from.left = m.now
	}
	newTip.left = time.Time{}
	m.tip = newTip
	m.lastProgress = m.now
	member := m.tipRoster[m.cfg.Self]
	if rolled == 0 {
		m.emit(Advanced{From: oldTip.id, To: newTip.id, Epoch: newTip.epoch, Member: member})
	} else {
		m.emit(Switched{From: oldTip.id, To: newTip.id, ForkEpoch: from.epoch, Epoch: newTip.epoch,
			RolledBack: rolled, Member: member})
	}
}

func (m *Machine[S]) applyRoster(n *node[S]) {
	for _, id := range n.info.Removed {
		delete(m.tipRoster, id)
	}
	for _, id := range n.info.Added {
		m.tipRoster[id] = true
	}
}

func (m *Machine[S]) undoRoster(n *node[S]) {
	for _, id := range n.info.Added {
		delete(m.tipRoster, id)
	}
	for _, id := range n.info.Removed {
		m.tipRoster[id] = true
	}
}

// ---------------------------------------------------------------------------
// Retention.

func (m *Machine[S]) release(st S) {
	if r, ok := m.p.(Releaser[S]); ok && m.p != nil {
		r.Release(st)
	}
}

func (m *Machine[S]) releaseNode(n *node[S]) {
	if !n.live {
		return
	}
	m.release(n.state)
	var zero S
	n.state, n.live = zero, false
	m.liveCount--
	m.emit(Released{Node: n.id, Epoch: n.epoch})
}

func (m *Machine[S]) expired(n *node[S]) bool {
	if n == m.tip {
		return false
	}
	if m.tip.epoch > n.epoch+uint64(m.cfg.WindowEpochs) {
		return true
	}
	return !n.left.IsZero() && m.now.Sub(n.left) > m.cfg.WindowTime
}

// prune releases states outside the window, finalizes the canonical chain
// above the oldest retained canonical state into the compact history, and
// drops what can no longer matter.
func (m *Machine[S]) prune() {
	// The deepest expired canonical state: everything above it goes.
	var cut *node[S]
	for x := m.tip.parent; x != nil; x = x.parent {
		if m.expired(x) {
			cut = x
			break
		}
		if x == m.root {
			break
		}
	}
	if cut != nil {
		m.finalize(cut.best)
	}
	// Losing branches: release expired states, drop dead subtrees. Only
	// the candidates are sorted (deterministic order of the decisions).
	var cands []*node[S]
	for _, n := range m.nodes {
		if !n.canon && (!n.live || m.expired(n)) {
			cands = append(cands, n)
		}
	}
	if len(cands) > 0 {
		sortNodes(cands)
		for _, n := range cands {
			if n.live {
				m.releaseNode(n)
			}
		}
		for _, n := range cands {
			if !n.gone && !m.hasLive(n) {
				m.dropSubtree(n)
			}
		}
	}
	// Hard cap on losing states: the oldest go first.
	if losing := m.liveCount - m.canonLive(); losing > m.cfg.MaxLosingStates {
		var sorted []*node[S]
		for _, n := range m.nodes {
			if n.live && !n.canon {
				sorted = append(sorted, n)
			}
		}
		sortNodes(sorted)
		// States that may still become canonical (a barred Commit that
		// wins by key, and the best path below it) go last: a trusted
		// claim can lift the bar (liftBar), and releasing them first
		// would lose the late messages of a race the bar only delayed.
		slices.SortStableFunc(sorted, func(a, b *node[S]) int {
			pa, pb := m.mayWin(a), m.mayWin(b)
			switch {
			case pa == pb:
				return 0
			case pb:
				return -1
			}
			return 1
		})
		for _, n := range sorted {
			if losing <= m.cfg.MaxLosingStates {
				break
			}
			m.releaseNode(n)
			losing--
		}
	}
	// Buffered messages and seen hashes older than the window.
	for i := 0; i < len(m.pending); {
		if pm := m.pending[i]; pm.epoch < m.root.epoch {
			if pm.ct == Commit && !m.historyHas(pm.epoch, pm.hash) {
				m.evidence = true
			}
			m.noteStale(pm.hash, pm.ct)
			m.dropPending(i)
			m.emit(Discarded{Hash: pm.hash, Epoch: pm.epoch, Reason: Stale})
			continue
		}
		i++
	}
	if m.root.epoch != m.sweptAt {
		m.sweptAt = m.root.epoch
		for h, e := range m.seen {
			if e < m.root.epoch {
				delete(m.seen, h)
			}
		}
		for h, e := range m.gone {
			if e < m.root.epoch {
				delete(m.gone, h)
			}
		}
	}
}

// mayWin reports that n is a barred Commit that would win its epoch by
// key, or on the best path below one: the branch a lifted bar switches to.
func (m *Machine[S]) mayWin(n *node[S]) bool {
	for x := n; x.parent != nil && !x.canon; x = x.parent {
		if x.barred {
			p := x.parent
			return p.best == nil || x.key.Less(p.best.key)
		}
		if x.parent.best != x {
			return false
		}
	}
	return false
}

func (m *Machine[S]) canonLive() int {
	k := 0
	for x := m.tip; x != nil; x = x.parent {
		if x.live {
			k++
		}
		if x == m.root {
			break
		}
	}
	return k
}

// sortedNodes returns the tree's nodes by epoch then key (deterministic).
func (m *Machine[S]) sortedNodes() []*node[S] {
	out := make([]*node[S], 0, len(m.nodes))
	for _, n := range m.nodes {
		out = append(out, n)
	}
	sortNodes(out)
	return out
}

// sortNodes sorts nodes by epoch then key.
func sortNodes[S any](out []*node[S]) {
	slices.SortFunc(out, func(a, b *node[S]) int {
		if a.epoch != b.epoch {
			if a.epoch < b.epoch {
				return -1
			}
			return 1
		}
		return a.key.Compare(b.key)
	})
}

func (m *Machine[S]) hasLive(n *node[S]) bool {
	if n.live {
		return true
	}
	for _, k := range n.kids {
		if m.hasLive(k) {
			return true
		}
	}
	return false
}

func (m *Machine[S]) dropSubtree(n *node[S]) {
	if n.gone {
		return
	}
	for _, k := range slices.Clone(n.kids) {
		m.dropSubtree(k)
	}
	m.releaseNode(n)
	n.gone = true
	delete(m.nodes, n.id)
	m.gone[n.id] = n.epoch - 1
	l := m.byEpoch[n.epoch]
	if i := slices.Index(l, n); i >= 0 {
		l = slices.Delete(l, i, i+1)
	}
	if len(l) == 0 {
		delete(m.byEpoch, n.epoch)
	} else {
		m.byEpoch[n.epoch] = l
	}
	if p := n.parent; p != nil && !p.gone {
		if i := slices.Index(p.kids, n); i >= 0 {
			p.kids = slices.Delete(p.kids, i, i+1)
		}
	}
}

// finalize makes newRoot (canonical) the root: the canonical Commits above
// it join the compact history, the states above it and every losing branch
// that forked above it are dropped.
func (m *Machine[S]) finalize(newRoot *node[S]) {
	var path []*node[S]
	for x := newRoot; x != m.root; x = x.parent {
		path = append(path, x)
	}
	slices.Reverse(path)
	prev := m.root
	for _, x := range path {
		for _, k := range slices.Clone(prev.kids) {
			if k != x {
				m.dropSubtree(k)
			}
		}
		m.releaseNode(prev)
		prev.gone = true
		delete(m.nodes, prev.id)
		l := m.byEpoch[prev.epoch]
		if i := slices.Index(l, prev); i >= 0 {
			l = slices.Delete(l, i, i+1)
		}
		if len(l) == 0 {
			delete(m.byEpoch, prev.epoch)
		} else {
			m.byEpoch[prev.epoch] = l
		}
		// x's Commit becomes history; its membership changes final.
		m.appendHistory(x.key)
		for _, id := range x.info.Removed {
			if !slices.Contains(x.info.Added, id) {
				delete(m.rootRoster, id)
				m.recordEvent(memberEvent{epoch: x.epoch, target: id, author: x.info.Sender})
			}
		}
		for _, id := range x.info.Added {
			if !m.rootRoster[id] {
				m.rootRoster[id] = true
				m.recordEvent(memberEvent{epoch: x.epoch, target: id, add: true, author: x.info.Sender})
			}
		}
		prev = x
	}
	newRoot.parent = nil
	m.root = newRoot
}

func (m *Machine[S]) appendHistory(k Key) {
	if n := len(m.history); n > 0 && m.history[n-1].Epoch >= k.Epoch {
		// Replace a tail that a rejoin made obsolete.
		i, _ := slices.BinarySearchFunc(m.history, k.Epoch, func(e Entry, t uint64) int {
			switch {
			case e.Epoch < t:
				return -1
			case e.Epoch > t:
				return 1
			}
			return 0
		})
		m.history = m.history[:i]
	}
	m.history = append(m.history, k)
}

func (m *Machine[S]) historyHas(epoch uint64, h Hash) bool {
	if e, ok := m.entryAt(epoch); ok {
		return e.Hash == h
	}
	return false
}

// entryAt returns the canonical Commit's key at epoch (history or window).
func (m *Machine[S]) entryAt(epoch uint64) (Entry, bool) {
	if epoch+1 > m.root.epoch {
		for n := m.tip; n != nil && n != m.root; n = n.parent {
			if n.epoch == epoch+1 {
				return n.key, n.hasKey
			}
		}
		if m.root.epoch == epoch+1 && m.root.hasKey {
			return m.root.key, true
		}
		return Entry{}, false
	}
	i, ok := slices.BinarySearchFunc(m.history, epoch, func(e Entry, t uint64) int {
		switch {
		case e.Epoch < t:
			return -1
		case e.Epoch > t:
			return 1
		}
		return 0
	})
	if !ok {
		return Entry{}, false
	}
	return m.history[i], true
}

func (m *Machine[S]) recordEvent(e memberEvent) {
	m.events[e.target] = append(m.events[e.target], e)
	m.eventLog = append(m.eventLog, e)
}

// ---------------------------------------------------------------------------
// Settlement: re-sends, re-proposals, Welcomes.

func (m *Machine[S]) evaluate() {
	m.settleSent()
	m.settleSince()
	m.settleIntents()
	m.settleWelcomes()
	m.settleLost()
}

// settleSent re-sends own messages whose epoch lost (gated: README.md
// "Re-sending safely"), written far behind the group, or asked for by a
// claim (Claim.Stale), and forgets those that are final.
func (m *Machine[S]) settleSent() {
	member := m.tipRoster[m.cfg.Self]
	// Own messages whose epoch lost.
	var resend []MessageID
	resendAt := map[*node[S]][]MessageID{}
	var ats []*node[S]
	kept := m.sent[:0]
	for _, s := range m.sent {
		n := s.n.(*node[S])
		switch {
		case n.canon && !n.gone && n.epoch >= m.root.epoch:
			kept = append(kept, s) // canonical, not final yet
			if !s.late && !s.resending && m.tip.epoch >= n.epoch+m.lateEpochs() && !n.left.IsZero() && m.now.Sub(n.left) <= m.cfg.OrphanTime {
				// Written while this member lagged far behind the group
				// (its tip went from that epoch to many epochs later in a
				// short time: it caught up, e.g. after a partition
				// healed): the others may have released that epoch's
				// state before the message reached them. Send it again at
				// the tip; receivers de-duplicate by id.
				s.late, s.resending, s.askedAt = true, true, m.now
				resend = append(resend, s.id)
			}
		case n.canon:
			// final
		case !member:
			// lost, and this member is not in the canonical group: the
			// message cannot be re-sent (the engine reports it failed).
		default:
			kept = append(kept, s)
			fork := n
			for fork != nil && !fork.canon {
				fork = fork.parent
			}
			ready, at := m.gate(m.excluded(n), fork)
			if !ready {
				continue
			}
			if !s.resending || m.now.Sub(s.askedAt) > m.cfg.RetryTime {
				s.resending, s.askedAt, s.at = true, m.now, at
				if at == nil {
					resend = append(resend, s.id)
				} else {
					if resendAt[at] == nil {
						ats = append(ats, at)
					}
					resendAt[at] = append(resendAt[at], s.id)
				}
			}
		}
	}
	m.sent = kept
	if len(m.owed) > 0 && member && m.standing != standingDetached {
		// Asked for by a claim (Claim.Stale): at the tip, once this member
		// is in the group (it may have been out when the claim came, or
		// may leave before the engine carries it out: asked again until
		// Sent reports it).
		keptO := m.owed[:0]
		for _, o := range m.owed {
			if o.tries > 0 && m.now.Sub(o.askedAt) <= m.cfg.RetryTime {
				keptO = append(keptO, o)
				continue
			}
			if o.tries >= maxOwedTries {
				continue
			}
			o.tries, o.askedAt = o.tries+1, m.now
			if !slices.Contains(resend, o.id) {
				resend = append(resend, o.id)
			}
			keptO = append(keptO, o)
		}
		m.owed = keptO
	}
	if len(resend) > 0 {
		m.emit(Resend{IDs: resend})
	}
	for _, at := range ats {
		m.emit(Resend{IDs: resendAt[at], At: at.id, Epoch: at.epoch})
	}
}

// settleSince emits the re-send of what this member wrote on a lost branch
// (ResendSince) once the members that branch had removed are out again.
func (m *Machine[S]) settleSince() {
	self, member := m.cfg.Self, m.tipRoster[m.cfg.Self]
	if m.since != nil && member {
		// Gated like Resend. After two retry periods a removal that did
		// not come is not coming (the canonical branch removed and
		// re-added the member before this one rejoined: its author's
		// intent is settled).
		expired := m.now.Sub(m.since.Until) > 2*m.cfg.RetryTime
		for id := range m.deepExclude {
			if !m.tipRoster[id] || expired {
				// Its removal landed: its presence from now on is a new
				// decision of the group (a re-add).
				delete(m.deepExclude, id)
			}
		}
		if ready, at := m.gate(m.deepExclude, nil); ready {
			d := *m.since
			if at != nil {
				d.At, d.AtEpoch = at.id, at.epoch
			}
			m.emit(d)
			m.since, m.deepExclude = nil, nil
		} else if debugf != nil {
			debugf("%s: since %+v blocked by %v", self, *m.since, m.deepExclude)
		}
	}

}

// settleIntents re-proposes this member's changes that no canonical Commit
// applied or made moot, and drops those settled for good.
func (m *Machine[S]) settleIntents() {
	self, member := m.cfg.Self, m.tipRoster[m.cfg.Self]
	// Own changes. An intent is settled (applied, or made moot) by a
	// canonical Commit; it is dropped only once that is final: until then a
	// switch, or a concurrent Commit landing later, may undo it, and it
	// must be re-proposed.
	var again []Intent
	keptI := m.intents[:0]
	for _, is := range m.intents {
		if !member {
			if !m.rootRoster[self] {
				continue // moot: this member's removal is final
			}
			keptI = append(keptI, is) // out for now; a switch may undo it
			continue
		}
		done, at := m.intentStatus(is)
		if done {
			is.isSat, is.satisfied = true, at
			// Final once the deciding Commit is in the compact history and
			// a whole window has passed since the intent: Commits made
			// concurrently with it (on branches that had not seen it) are
			// decided by then, and one of them may still undo the change
			// (then it is re-proposed).
			if at <= m.root.epoch && m.tip.epoch >= is.base+uint64(m.cfg.WindowEpochs) {
				if debugf != nil {
					debugf("%s: intent %v settled for good at %d", self, is.Intent, at)
				}
				m.settled = append(m.settled, is)
				if len(m.settled) > maxSettled {
					m.settled = m.settled[len(m.settled)-maxSettled:]
				}
				continue // final
			}
			keptI = append(keptI, is)
			continue
		}
		is.isSat = false
		if !is.carrier.IsZero() {
			if c, ok := m.nodes[is.carrier]; ok && c.canon {
				keptI = append(keptI, is)
				continue
			}
			is.carrier, is.asked, is.landed = Hash{}, false, false // its Commit lost
		}
		if !is.asked || m.now.Sub(is.askedAt) > m.cfg.RetryTime {
			again = append(again, is.Intent)
			is.asked, is.askedAt = true, m.now
		}
		keptI = append(keptI, is)
	}
	m.intents = keptI
	if len(again) > 0 {
		m.emit(Repropose{Intents: again})
	}

}

// settleWelcomes sends the Welcomes of own Commits that settled and drops
// those of Commits that lost.
func (m *Machine[S]) settleWelcomes() {
	// Welcomes of own Commits.
	keptW := m.welcomes[:0]
	for _, n := range m.welcomes {
		switch {
		case n.welcome != welcomeHeld:
		case !n.canon && !n.gone && m.underConceded(n):
			// Our conceded Commit's branch: if a trusted claim lifts the
			// bar (the group went there after all), the members it adds
			// still need their Welcomes.
			keptW = append(keptW, n)
		case !n.canon:
			n.welcome = welcomeDropped
			m.emit(DropWelcome{Commit: n.id})
		case m.lost != nil && n.key.Epoch >= m.lost.epoch:
			// Our branch lost a fork before this Commit (a claim showed
			// it): the member rejoins, and the Commit with it.
			keptW = append(keptW, n)
		case m.tip.epoch >= n.epoch+uint64(m.cfg.SettleEpochs) || m.now.Sub(n.canonSince) >= m.cfg.SettleTime:
			n.welcome = welcomeSent
			m.emit(SendWelcome{Commit: n.id})
		default:
			keptW = append(keptW, n)
		}
	}
	m.welcomes = keptW

}

// settleLost forgets a lost fork that healed through the window.
func (m *Machine[S]) settleLost() {
	if m.lost != nil {
		if e, ok := m.entryAt(m.lost.epoch); ok && e.Compare(m.lost.theirs) <= 0 {
			m.lost = nil
		}
	}
}

// underConceded reports that n's branch leaves the canonical chain at an
// own Commit this member conceded (concede, fork.go).
func (m *Machine[S]) underConceded(n *node[S]) bool {
	for x := n; x != nil && !x.canon; x = x.parent {
		if x.conceded && x.barred {
			return true
		}
	}
	return false
}

// maxSettled bounds the settled intents kept for a deep rejoin.
const maxSettled = 256

// lateEpochs is how far behind the tip an own message's epoch may fall
// right after it was sent before it is sent again (half the window).
func (m *Machine[S]) lateEpochs() uint64 { return uint64(max(1, m.cfg.WindowEpochs/2)) }

// safeState returns the newest retained canonical state in which none of
// the excluded identities is a member, not older than half the window (so
// that the other members still hold it when the re-send arrives), or nil.
func (m *Machine[S]) safeState(excl map[string]string) *node[S] {
	for x := m.tip.parent; x != nil; x = x.parent {
		if x.epoch+uint64(m.cfg.WindowEpochs)/2 < m.tip.epoch || !x.live {
			return nil
		}
		ok := true
		for id := range excl {
			if m.memberAt(x, id) {
				ok = false
				break
			}
		}
		if ok {
			return x
		}
		if x == m.root {
			break
		}
	}
	return nil
}

// StateAt returns the retained state of node h (a Commit's hash; the zero
// hash for a root without one), for a Resend that names it.
func (m *Machine[S]) StateAt(h Hash) (S, uint64, bool) {
	if n, ok := m.nodes[h]; ok && n.live {
		return n.state, n.epoch, true
	}
	var zero S
	return zero, 0, false
}

// gate decides whether own messages written on a losing branch that had
// removed the members excl (identity -> author of the removal) may be
// re-sent now (README.md "Re-sending safely"). A removed identity that is
// a member at the canonical tip blocks the re-send until the re-proposed
// removal lands, unless nobody will re-propose it: its author is not a
// member any more (the group removed the author, its removals go with it),
// or the canonical chain changed its membership after fork (its removal
// landed and it was re-added, or it was added: a later decision of the
// group, which makes the removal moot as in intentStatus). When the re-send
// may go, at is the newest retained canonical state where none of excl is
// a member, if that is not the tip (nil: the tip).
func (m *Machine[S]) gate(excl map[string]string, fork *node[S]) (ready bool, at *node[S]) {
	in := false
	for id, author := range excl {
		if !m.tipRoster[id] {
			continue
		}
		in = true
		if author != "" && author != m.cfg.Self && !m.tipRoster[author] {
			continue
		}
		if fork != nil && m.changedSince(fork, id) {
			continue
		}
		if debugf != nil {
			debugf("%s: re-send blocked by %s (removed by %s)", m.cfg.Self, id, author)
		}
		return false, nil
	}
	if in {
		at = m.safeState(excl)
	}
	return true, at
}

// changedSince reports whether a canonical Commit after fork removed or
// added id (a resync by id itself excepted): its membership at the tip is
// a decision the group took after the fork, which the lost branch's
// removal does not override (the removal's intent is settled or moot, the
// same rule as intentStatus).
func (m *Machine[S]) changedSince(fork *node[S], id string) bool {
	for x := m.tip; x != nil && x != fork; x = x.parent {
		if slices.Contains(x.info.Removed, id) && !slices.Contains(x.info.Added, id) {
			return true
		}
		if slices.Contains(x.info.Added, id) && !(x.info.External && x.info.Sender == id) {
			return true
		}
		if x == m.root {
			break
		}
	}
	return false
}

// excluded returns the identities that the (losing) branch of n had
// removed between its fork from the canonical chain and n, with the
// author of each removal: a message sent at n is hidden from them (gate).
func (m *Machine[S]) excluded(n *node[S]) map[string]string {
	decided := map[string]bool{}
	out := map[string]string{}
	for x := n; x != nil && !x.canon; x = x.parent {
		for _, id := range x.info.Added {
			if _, ok := decided[id]; !ok {
				decided[id] = true
			}
		}
		for _, id := range x.info.Removed {
			if _, ok := decided[id]; !ok {
				decided[id] = false
				out[id] = x.info.Sender
			}
		}
	}
	return out
}

// intentStatus says whether the canonical branch applied an intent, or
// made it moot with a later conflicting change, and the epoch of the state
// created by the Commit that did (the root's epoch or less: final).
func (m *Machine[S]) intentStatus(is *intentState) (done bool, at uint64) {
	added := func(n *node[S]) bool {
		return slices.Contains(n.info.Added, is.Target) && !(n.info.External && n.info.Sender == is.Target)
	}
	removed := func(n *node[S]) bool {
		return slices.Contains(n.info.Removed, is.Target) && !slices.Contains(n.info.Added, is.Target)
	}
	switch is.Kind {
	case Add:
		if m.tipRoster[is.Target] {
			return true, m.lastCanon(added)
		}
		if is.restore {
			// Restored once, it is the group's to decide again: a later
			// removal is not undone.
			if ok, at := m.canonSince(is.base, added); ok {
				return true, at
			}
			for _, e := range m.events[is.Target] {
				if e.add && e.epoch > is.base {
					return true, e.epoch // final already
				}
			}
			return false, 0
		}
		// Moot: this member's own add landed and someone removed the
		// target after it (a later decision, made on top of it).
		return m.mootAfterCarrier(is, removed)
	case Remove:
		if !m.tipRoster[is.Target] {
			return true, m.lastCanon(removed)
		}
		// Moot: this member's own removal landed and someone re-added
		// the target after it. A concurrent change (made before it saw
		// the intent's Commit, e.g. a removal or add by someone else)
		// does not make it moot: the intent is re-proposed.
		return m.mootAfterCarrier(is, added)
	case Update:
		return m.canonSince(is.base, func(n *node[S]) bool { return n.info.refreshes(m.cfg.Self) })
	}
	return true, 0
}

// mootAfterCarrier reports whether a canonical Commit built on top of the
// intent's own carrier Commit (canonical) satisfies f, and the epoch of the
// state of the oldest such.
func (m *Machine[S]) mootAfterCarrier(is *intentState, f func(*node[S]) bool) (bool, uint64) {
	if c, ok := m.nodes[is.carrier]; ok && !is.carrier.IsZero() {
		is.landed, is.landedAt = c.canon, c.epoch
	} else if is.landed && is.landedAt > m.root.epoch {
		is.landed = false // gone without being final: it lost
	}
	if !is.landed {
		return false, 0
	}
	ok, at := false, uint64(0)
	for n := m.tip; n != nil && n.epoch > is.landedAt; n = n.parent {
		if f(n) {
			ok, at = true, n.epoch
		}
		if n == m.root {
			break
		}
	}
	return ok, at
}

// lastCanon returns the epoch of the newest canonical state in the window
// whose Commit satisfies f, or the root's epoch (final) if none does.
func (m *Machine[S]) lastCanon(f func(*node[S]) bool) uint64 {
	for n := m.tip; n != nil && n != m.root; n = n.parent {
		if f(n) {
			return n.epoch
		}
	}
	return m.root.epoch
}

// canonSince reports whether a canonical Commit sent at or after epoch
// base satisfies f, and the epoch of the oldest such state.
func (m *Machine[S]) canonSince(base uint64, f func(*node[S]) bool) (bool, uint64) {
	ok, at := false, uint64(0)
	for n := m.tip; n != nil && n.hasKey && n.key.Epoch >= base; n = n.parent {
		if f(n) {
			ok, at = true, n.epoch
		}
		if n == m.root {
			break
		}
	}
	return ok, at
}
