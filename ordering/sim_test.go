package ordering

import (
	"bytes"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// The deterministic simulator: N members, each with a Machine and a small
// engine that executes its decisions, over a simulated network with random
// delays, duplicates, reordering, drops with retransmission, partitions
// that heal, and random operations. After the operations stop and the
// partitions heal, check the invariants of the issue.

type backend[S any] interface {
	Processor[S]
	create(members []string) []S
	commit(self string, st S, adds, removes []string, update bool) (msg []byte, next S, info CommitInfo, welcome []byte, err error)
	protect(self string, st S, id MessageID, payload []byte) ([]byte, error)
	header(msg []byte) (uint64, ContentType)
	groupInfo(st S) []byte
	joinExternal(self string, gi []byte) (S, []byte, CommitInfo, error)
	joinWelcome(self string, welcome []byte) (S, *Key, error)
	epochOf(st S) uint64
	auth(st S) []byte
	roster(st S) []string
	usable(st S) bool
	size(st S) int
	notMember(err error) bool
}

type simParams struct {
	seed       uint64
	members    int     // initial members
	pool       int     // extra identities that can be added
	opRounds   int     // rounds with random operations
	pMsg       float64 // per member per round
	pCommit    float64 // per member per round
	maxDelay   int
	pDup       float64
	pDrop      float64
	partitions int // number of partition episodes during the operations
	partLen    int // max rounds of a partition
	window     int
	windowTime time.Duration
	maxRounds  int
	grinder    string // identity of a hash-grinding member (adversarial)
	// pRestart: per member per round, the member restarts: its machine is
	// rebuilt from its canonical states (New + Restore), as the chat
	// engine does from its store (restart).
	pRestart float64
	// pReplay: per removed peer per round, the peer plays the removed
	// member of issue 12: from a state it kept of an epoch inside the
	// group's window, in which it was a member, it publishes a Commit
	// removing another member (README.md "Removed members").
	pReplay float64
	// replayAny: replay also while some member has not processed the
	// replayer's removal yet (a lagging member adopts the replay and its
	// claims carry the others: README.md "Removed members", limits).
	// Without it, a removed peer replays only once every member's
	// canonical chain removed it: the attack of issue 12.
	replayAny bool
	noChecks  bool
}

func (p simParams) withDefaults() simParams {
	if p.maxDelay == 0 {
		p.maxDelay = 3
	}
	if p.window == 0 {
		p.window = 16
	}
	if p.windowTime == 0 {
		p.windowTime = 10 * time.Minute
	}
	if p.maxRounds == 0 {
		p.maxRounds = 3000
	}
	return p
}

const roundDur = time.Second

var simStart = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)

type ownMsg struct {
	id      MessageID
	payload []byte
	epoch   uint64
	at      time.Time
}

type simIntent struct {
	by     string
	intent Intent
	round  int
}

type peer[S any] struct {
	id    string
	m     *Machine[S]
	start uint64 // epoch from which it holds canonical states continuously
	// startCommit is the resync commit that created its state of epoch
	// start (zero: a Welcome or the group's creation).
	startCommit Hash
	delivered   map[MessageID]bool
	own         []*ownMsg
	welcomes    map[Hash][]byte
	rejoins     int
	nextMsg     int
	// removedOnce: the peer was out of the group at some point
	removedOnce bool
	// outSince: the round since which it is not a member at its own tip
	// (-1: a member now).
	outSince int
	refused  []refusedWelcome
	// restartTip: the tip's epoch at its last restart (0: none).
	restartTip uint64
	// kept: states of recent epochs in which it was a member, kept past
	// its removal to replay from (pReplay).
	kept map[uint64]S
}

type refusedWelcome struct {
	w     []byte
	hist  []Entry
	epoch uint64
}

type copyRec struct {
	node  Hash
	epoch uint64
	hash  Hash
}

type msgRec struct {
	sender string
	copies []copyRec
}

type commitRec struct {
	info  CommitInfo
	round int
	epoch uint64
}

type sim[S any] struct {
	t      testing.TB
	p      simParams
	rng    *rand.Rand
	be     backend[S]
	peers  map[string]*peer[S]
	ids    []string // universe, sorted
	round  int
	q      dq
	seq    int
	side   map[string]int
	held   []*delivery
	log    []logged // every group message published
	msgs   map[MessageID]*msgRec
	msgIDs []MessageID
	intent []simIntent
	cmts   map[Hash]commitRec
	copyOf map[Hash]MessageID // application message copies by hash
	// inTime: peer -> copies that reached it while it still held the
	// state they were written in (README.md "Tests").
	inTime map[string]map[Hash]bool
	// arrived: peer -> copy -> round it first reached the peer.
	arrived map[string]map[Hash]int

	initEpoch   uint64
	initRoster  []string
	lastChange  int
	opsEnd      int
	switches    int
	rejoins     int
	maxStates   int
	maxBytes    int
	maxStateB   int
	decisions   int
	published   int
	claims      int
	failedJoins int
	restarts    int
	// restoredRollbacks: switches that rolled a restarted member back to
	// a state older than its tip at the restart (one Restore gave it).
	restoredRollbacks int
	violations        []string
	trace             bool
	traceWho          string
	hook              func(round int)
	// replays: Commits published by removed members from kept states.
	replays []Hash
}

func now(r int) time.Time { return simStart.Add(time.Duration(r) * roundDur) }

func newSim[S any](t testing.TB, be backend[S], p simParams) *sim[S] {
	p = p.withDefaults()
	s := &sim[S]{t: t, p: p, rng: rand.New(rand.NewPCG(p.seed, p.seed^0x9e3779b97f4a7c15)), be: be,
		peers: map[string]*peer[S]{}, side: map[string]int{}, msgs: map[MessageID]*msgRec{}, cmts: map[Hash]commitRec{},
		copyOf: map[Hash]MessageID{}, inTime: map[string]map[Hash]bool{}, arrived: map[string]map[Hash]int{}}
	var initial []string
	for i := 0; i < p.members+p.pool; i++ {
		id := fmt.Sprintf("m%03d", i)
		s.ids = append(s.ids, id)
		if i < p.members {
			initial = append(initial, id)
		}
	}
	states := be.create(initial)
	s.initEpoch, s.initRoster = be.epochOf(states[0]), initial
	for i, id := range initial {
		s.peers[id] = s.newPeer(id, states[i], be.epochOf(states[i]), nil, initial)
		s.peers[id].start = 0
	}
	return s
}

func (s *sim[S]) cfg(self string) Config {
	return Config{GroupID: []byte("sim-group"), Self: self, WindowEpochs: s.p.window, WindowTime: s.p.windowTime,
		SettleTime: 8 * roundDur, SettleEpochs: 3, RetryTime: 40 * roundDur, OrphanTime: 12 * roundDur,
		AnnounceInterval: 10 * roundDur, RejoinGrace: 25 * roundDur, RejoinRetry: 30 * roundDur}
}

func (s *sim[S]) newPeer(id string, st S, epoch uint64, key *Key, roster []string) *peer[S] {
	return &peer[S]{id: id, m: New(s.cfg(id), st, epoch, key, roster, now(s.round)), start: epoch, outSince: -1,
		delivered: map[MessageID]bool{}, welcomes: map[Hash][]byte{}}
}

func (s *sim[S]) sorted() []*peer[S] {
	out := make([]*peer[S], 0, len(s.peers))
	for _, id := range s.ids {
		if p := s.peers[id]; p != nil {
			out = append(out, p)
		}
	}
	return out
}

// ---------------------------------------------------------------------------
// The engine of one peer: executes decisions.

func (s *sim[S]) exec(p *peer[S], ds []Decision) {
	for len(ds) > 0 {
		d := ds[0]
		ds = ds[1:]
		s.decisions++
		s.traceDecision(p, d)
		ds = append(ds, s.execOne(p, d)...)
	}
}

// traceDecision logs d with TRACE (Discarded only for overflow, refused
// admission or the watched identity; never Released or Deliver).
func (s *sim[S]) traceDecision(p *peer[S], d Decision) {
	if s.trace {
		switch d := d.(type) {
		case Discarded:
			if d.Reason == NotAdmitted || d.Reason == Overflow || (s.traceWho != "" && p.id == s.traceWho) {
				s.t.Logf("r%d %s %T %+v", s.round, p.id, d, d)
			}
		case Released, Deliver:
		default:
			s.t.Logf("r%d %s %T %+v", s.round, p.id, d, d)
		}
	}
}

// execOne carries out one decision of p's machine as the engine would and
// returns the decisions that doing so produced.
func (s *sim[S]) execOne(p *peer[S], d Decision) (more []Decision) {
	switch d := d.(type) {
	case Advanced:
		s.lastChange = s.round
		if !d.Member {
			p.removedOnce = true
		}
	case Switched:
		s.lastChange = s.round
		s.switches++
		if p.restartTip > 0 && d.ForkEpoch < p.restartTip && d.RolledBack > 0 && p.m.root.epoch <= d.ForkEpoch {
			// A rollback past the tip of a restart, to a restored state.
			s.restoredRollbacks++
		}
		if !d.Member {
			p.removedOnce = true
		}
	case Deliver:
		p.delivered[d.ID] = true
	case Resend:
		for _, id := range d.IDs {
			for _, o := range p.own {
				if o.id == id {
					if d.At.IsZero() && d.Epoch == 0 {
						more = append(more, s.sendMsg(p, o)...)
					} else {
						more = append(more, s.sendMsgAt(p, o, d.At)...)
					}
				}
			}
		}
	case ResendSince:
		for _, o := range p.own {
			if o.epoch > d.Epoch && !o.at.After(d.Until) {
				if d.At.IsZero() && d.AtEpoch == 0 {
					more = append(more, s.sendMsg(p, o)...)
				} else {
					more = append(more, s.sendMsgAt(p, o, d.At)...)
				}
			}
		}
	case Repropose:
		more = append(more, s.commitIntents(p, d.Intents)...)
	case SendWelcome:
		if w := p.welcomes[d.Commit]; w != nil {
			delete(p.welcomes, d.Commit)
			h := p.m.History()
			for _, id := range s.ids {
				s.send(&delivery{to: id, from: p.id, kind: 1, data: w, hist: h})
			}
		}
	case DropWelcome:
		delete(p.welcomes, d.Commit)
	case Announce:
		s.announce(p, d)
	case Rejoin:
		more = append(more, s.rejoin(p, d)...)
	case CatchUp:
		s.sync(p.id, d.From)
	}
	return more
}

// announce sends p's claim to every other peer, with a GroupInfo if p is a
// member at its tip.
func (s *sim[S]) announce(p *peer[S], d Announce) {
	st, _, _ := p.m.Current()
	c := d.Claim
	if p.m.IsMember() && s.be.usable(st) {
		// A removed member's state cannot be joined (a real mls
		// member that processed its own removal holds the closed
		// state of the epoch before): no GroupInfo.
		c.GroupInfo = s.be.groupInfo(st)
	}
	s.claims++
	for _, q := range s.sorted() {
		if q != p {
			s.send(&delivery{to: q.id, from: p.id, kind: 2, cl: &c})
		}
	}
}

// rejoin carries out a Rejoin decision: an external commit from the
// claimant's GroupInfo, reported with Rejoined (or RejoinRefused).
func (s *sim[S]) rejoin(p *peer[S], d Rejoin) []Decision {
	st, msg, info, err := s.be.joinExternal(p.id, d.GroupInfo)
	if err != nil {
		s.failedJoins++
		if s.be.notMember(err) {
			return p.m.RejoinRefused(now(s.round))
		}
		return nil
	}
	s.rejoins++
	p.rejoins++
	// The epoch is the joined state's own (the GroupInfo's epoch
	// plus one), which is the claim's tip for an honest claimant.
	epoch := s.be.epochOf(st)
	s.recordCommit(msg, info, epoch-1)
	s.publish(p.id, msg)
	p.start, p.startCommit = epoch, HashOf(msg)
	return p.m.Rejoined(s.be, RejoinResult[S]{State: st, Epoch: epoch, Commit: msg, Info: info,
		Roster: s.be.roster(st), ForkEpoch: d.ForkEpoch}, now(s.round))
}

// noteArrival records whether an application message reached p while p
// still held the state it was written in.
func (s *sim[S]) noteArrival(p *peer[S], msg []byte) {
	h := HashOf(msg)
	id, ok := s.copyOf[h]
	if !ok {
		return
	}
	if s.arrived[p.id] == nil {
		s.arrived[p.id] = map[Hash]int{}
	}
	if _, ok := s.arrived[p.id][h]; !ok {
		s.arrived[p.id][h] = s.round
	}
	for _, c := range s.msgs[id].copies {
		if c.hash == h {
			if _, _, live := p.m.StateAt(c.node); live {
				if s.inTime[p.id] == nil {
					s.inTime[p.id] = map[Hash]bool{}
				}
				s.inTime[p.id][h] = true
			}
		}
	}
}

func (s *sim[S]) recordCommit(msg []byte, info CommitInfo, epoch uint64) {
	s.cmts[HashOf(msg)] = commitRec{info: info, round: s.round, epoch: epoch}
}

func (s *sim[S]) sendMsg(p *peer[S], o *ownMsg) []Decision {
	st, epoch, node := p.m.Current()
	return s.protectAndSend(p, o, st, epoch, node)
}

// sendMsgAt re-sends o with the retained state of node at (Resend.At).
func (s *sim[S]) sendMsgAt(p *peer[S], o *ownMsg, at Hash) []Decision {
	st, epoch, ok := p.m.StateAt(at)
	if !ok {
		return nil
	}
	return s.protectAndSend(p, o, st, epoch, at)
}

func (s *sim[S]) protectAndSend(p *peer[S], o *ownMsg, st S, epoch uint64, node Hash) []Decision {
	if !p.m.IsMember() {
		return nil
	}
	if !s.be.usable(st) {
		return nil
	}
	msg, err := s.be.protect(p.id, st, o.id, o.payload)
	if err != nil {
		s.t.Fatalf("%s protect: %v", p.id, err)
	}
	o.epoch, o.at = epoch, now(s.round)
	r := s.msgs[o.id]
	r.copies = append(r.copies, copyRec{node: node, epoch: epoch, hash: HashOf(msg)})
	s.copyOf[HashOf(msg)] = o.id
	if s.trace {
		s.t.Logf("r%d %s sends %s at epoch %d node %s", s.round, p.id, o.id, epoch, node)
	}
	s.publish(p.id, msg)
	return p.m.Sent(o.id, msg, now(s.round))
}

func (s *sim[S]) newMessage(p *peer[S]) []Decision {
	p.nextMsg++
	id := MessageID(fmt.Sprintf("%s/%d", p.id, p.nextMsg))
	o := &ownMsg{id: id, payload: []byte(fmt.Sprintf("hello from %s #%d", p.id, p.nextMsg))}
	p.own = append(p.own, o)
	s.msgs[id] = &msgRec{sender: p.id}
	s.msgIDs = append(s.msgIDs, id)
	return s.sendMsg(p, o)
}

// commitIntents commits the still-needed intents in one Commit.
func (s *sim[S]) commitIntents(p *peer[S], intents []Intent) []Decision {
	if !p.m.IsMember() {
		return nil
	}
	st, _, _ := p.m.Current()
	if !s.be.usable(st) {
		return nil
	}
	roster := p.m.tipRoster
	var adds, removes, ids []string
	update := false
	for _, in := range intents {
		switch in.Kind {
		case Add:
			if !roster[in.Target] && !slices.Contains(adds, in.Target) && !slices.Contains(removes, in.Target) {
				adds = append(adds, in.Target)
				ids = append(ids, in.ID)
			}
		case Remove:
			if roster[in.Target] && in.Target != p.id && !slices.Contains(removes, in.Target) && !slices.Contains(adds, in.Target) {
				removes = append(removes, in.Target)
				ids = append(ids, in.ID)
			}
		case Update:
			update = true
			ids = append(ids, in.ID)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	return s.doCommit(p, adds, removes, update, ids)
}

func (s *sim[S]) doCommit(p *peer[S], adds, removes []string, update bool, ids []string) []Decision {
	st, epoch, _ := p.m.Current()
	msg, next, info, welcome, err := s.be.commit(p.id, st, adds, removes, update)
	if err != nil {
		s.t.Fatalf("%s commit at %d (+%v -%v): %v", p.id, epoch, adds, removes, err)
	}
	if p.id == s.p.grinder {
		// The grinder tries many Commits and keeps the one with the
		// smallest hash.
		best := HashOf(msg)
		for i := 0; i < 64; i++ {
			m2, n2, i2, w2, err := s.be.commit(p.id, st, adds, removes, update)
			if err != nil {
				break
			}
			if h := HashOf(m2); bytes.Compare(h[:], best[:]) < 0 {
				msg, next, info, welcome, best = m2, n2, i2, w2, h
			}
		}
	}
	s.recordCommit(msg, info, epoch)
	s.publish(p.id, msg)
	if welcome != nil {
		p.welcomes[HashOf(msg)] = welcome
	}
	return p.m.OwnCommit(s.be, msg, next, info, ids, welcome != nil, now(s.round))
}

func (s *sim[S]) intend(p *peer[S], kind ChangeKind, target string) Intent {
	in := Intent{ID: fmt.Sprintf("%s/i%d", p.id, len(s.intent)), Kind: kind, Target: target}
	s.intent = append(s.intent, simIntent{by: p.id, intent: in, round: s.round})
	s.exec(p, p.m.Intend(in, now(s.round)))
	return in
}

// randomOp performs one random change by p.
func (s *sim[S]) randomOp(p *peer[S]) {
	roster := p.m.Roster()
	var outside []string
	for _, id := range s.ids {
		if !slices.Contains(roster, id) {
			outside = append(outside, id)
		}
	}
	var in Intent
	r := s.rng.Float64()
	switch {
	case r < 0.35 && len(outside) > 0:
		in = s.intend(p, Add, outside[s.rng.IntN(len(outside))])
	case r < 0.6 && len(roster) > 3:
		t := roster[s.rng.IntN(len(roster))]
		if t == p.id {
			return
		}
		in = s.intend(p, Remove, t)
	default:
		in = s.intend(p, Update, "")
	}
	s.exec(p, s.commitIntents(p, []Intent{in}))
}

func (s *sim[S]) deliver(d *delivery) {
	p := s.peers[d.to]
	switch d.kind {
	case 0:
		if p == nil {
			return
		}
		epoch, ct := s.be.header(d.data)
		if ct == Application {
			s.noteArrival(p, d.data)
		}
		s.exec(p, p.m.Receive(s.be, d.data, epoch, ct, now(s.round)))
	case 1:
		s.welcome(d.to, d.data, d.hist)
	case 2:
		if p != nil {
			s.exec(p, p.m.ClaimReceived(s.be, *d.cl, now(s.round)))
		}
	}
}

func (s *sim[S]) welcome(to string, w []byte, hist []Entry) {
	st, key, err := s.be.joinWelcome(to, w)
	if err != nil {
		return // not for us
	}
	epoch := s.be.epochOf(st)
	if key == nil {
		// Real mls Welcomes do not carry the key of the Commit that
		// created the joiner's state: take it from the adder's history,
		// as the chat engine does (chat.rootKeyOf).
		key = rootKeyOf(hist, epoch)
	}
	if s.trace {
		var es []uint64
		for _, e := range hist {
			es = append(es, e.Epoch)
		}
		s.t.Logf("r%d %s welcome epoch %d key %v hist %v", s.round, to, epoch, key != nil, es)
	}
	p := s.peers[to]
	if p == nil {
		p = s.newPeer(to, st, epoch, key, s.be.roster(st))
		p.m.AdoptHistory(hist)
		s.peers[to] = p
		s.lastChange = s.round
	} else {
		if !p.m.WelcomeAcceptable(epoch, hist) {
			// Keep it: if our branch turns out to have lost, it is the
			// way back in (the engine's inbox keeps refused Welcomes).
			p.refused = append(p.refused, refusedWelcome{w, hist, epoch})
			return
		}
		p.refused = nil
		p.start, p.startCommit = epoch, Hash{}
		s.exec(p, p.m.Rejoined(s.be, RejoinResult[S]{State: st, Epoch: epoch, Key: key, Roster: s.be.roster(st),
			ForkEpoch: p.m.LostFork(), History: hist}, now(s.round)))
	}
	// Catch up on the group's messages since the Welcome's epoch.
	s.sync(to, epoch)
}

// step runs one round.
func (s *sim[S]) step(ops bool) {
	s.round++
	if s.hook != nil {
		s.hook(s.round)
	}
	for s.q.Len() > 0 && s.q[0].at <= s.round {
		s.deliver(heap.Pop(&s.q).(*delivery))
	}
	for _, p := range s.sorted() {
		s.exec(p, p.m.Tick(s.be, now(s.round)))
		// The engine keeps refused Welcomes and asks again: the newest
		// acceptable one is taken.
		for i := len(p.refused) - 1; i >= 0; i-- {
			if r := p.refused[i]; p.m.WelcomeAcceptable(r.epoch, r.hist) {
				p.refused = slices.Delete(p.refused, i, i+1)
				s.welcome(p.id, r.w, r.hist)
				break
			}
		}
	}
	if ops {
		for _, p := range s.sorted() {
			if !p.m.IsMember() {
				continue
			}
			if st, _, _ := p.m.Current(); !s.be.usable(st) {
				continue
			}
			if s.rng.Float64() < s.p.pMsg {
				s.exec(p, s.newMessage(p))
			}
			if s.rng.Float64() < s.p.pCommit {
				s.randomOp(p)
			}
			if s.p.pRestart > 0 && s.rng.Float64() < s.p.pRestart {
				s.restart(p)
			}
		}
	}
	if s.p.pReplay > 0 {
		s.replayStep(ops)
	}
	for _, p := range s.sorted() {
		if !p.m.IsMember() {
			if p.outSince < 0 {
				p.outSince = s.round
			}
		} else {
			p.outSince = -1
		}
		st := p.m.Stats()
		s.maxStates = max(s.maxStates, st.States)
		if st.States-st.CanonStates > p.m.cfg.MaxLosingStates || st.CanonStates > s.p.window+1 {
			s.violate("%s retains %d states (%d canonical)", p.id, st.States, st.CanonStates)
		}
		if live := p.m.LiveStates(); len(live) > 0 && live[0]+uint64(s.p.window) < st.Epoch {
			s.violate("%s retains a state of epoch %d at tip %d (window %d)", p.id, live[0], st.Epoch, s.p.window)
		}
	}
}

func (s *sim[S]) violate(f string, a ...any) {
	if len(s.violations) < 20 {
		s.violations = append(s.violations, fmt.Sprintf("round %d: ", s.round)+fmt.Sprintf(f, a...))
	}
}

// run executes the scenario and returns the rounds it took to converge
// after the operations ended and every partition healed.
func (s *sim[S]) run() int {
	var starts []int
	for i := 0; i < s.p.partitions; i++ {
		starts = append(starts, 1+s.rng.IntN(max(1, s.p.opRounds)))
	}
	slices.Sort(starts)
	healAt := -1
	for r := 0; r < s.p.opRounds; r++ {
		if len(starts) > 0 && s.round+1 >= starts[0] && healAt < 0 {
			starts = starts[1:]
			s.partition()
			healAt = s.round + 1 + s.rng.IntN(max(1, s.p.partLen))
		}
		if healAt >= 0 && s.round+1 >= healAt {
			s.heal()
			healAt = -1
		}
		s.step(true)
	}
	s.heal()
	s.opsEnd = s.round
	s.lastChange = s.round
	for s.round < s.opsEnd+s.p.maxRounds {
		s.step(false)
		if s.round-s.lastChange > 150 {
			break
		}
	}
	return s.lastChange - s.opsEnd
}

// ---------------------------------------------------------------------------
// Invariants.

// retained returns the per-group memory retained by the members: machine
// bytes plus state sizes, max and mean over members.
func (s *sim[S]) retained() (maxB, meanB int, maxStates int) {
	n := 0
	for _, p := range s.sorted() {
		st := p.m.Stats()
		b := st.Bytes
		for _, node := range p.m.nodes {
			if node.live {
				b += s.be.size(node.state)
			}
		}
		maxB = max(maxB, b)
		meanB += b
		maxStates = max(maxStates, st.States)
		n++
	}
	return maxB, meanB / max(n, 1), maxStates
}

// rootKeyOf finds, in the adder's history, the key of the Commit that
// created the state of epoch (chat/invite.go's rootKeyOf).
func rootKeyOf(hist []Entry, epoch uint64) *Key {
	for i := range hist {
		if epoch > 0 && hist[i].Epoch == epoch-1 {
			k := hist[i]
			return &k
		}
	}
	return nil
}
