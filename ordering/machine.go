package ordering

import (
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
	// vouchers: the signers of the trusted claims that showed the loss;
	// firm: one of them (or a change of the fork) cannot be withdrawn;
	// undo: what the loss changed (withdrawLoss, fork.go).
	vouchers []string
	firm     bool
	undo     lossUndo
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

// Intended reports whether the machine still tracks the intent id (not
// yet settled for good, nor dropped as moot). The engine keeps what it needs
// to carry out an intent (a KeyPackage, a peer) only as long as this holds.
func (m *Machine[S]) Intended(id string) bool {
	return slices.ContainsFunc(m.intents, func(is *intentState) bool { return is.ID == id })
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
