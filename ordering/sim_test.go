package ordering

import (
	"bytes"
	"container/heap"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
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

type delivery struct {
	at   int
	seq  int
	to   string
	from string
	kind int // 0 group message, 1 welcome, 2 claim
	data []byte
	cl   *Claim
	hist []Entry
}

// logged is a published group message and its publisher: the sync
// protocol (catch-up) serves it from the publisher's side of a partition,
// so it crosses a partition only when it heals.
type logged struct {
	from string
	msg  []byte
}

type dq []*delivery

func (q dq) Len() int { return len(q) }
func (q dq) Less(i, j int) bool {
	if q[i].at != q[j].at {
		return q[i].at < q[j].at
	}
	return q[i].seq < q[j].seq
}
func (q dq) Swap(i, j int) { q[i], q[j] = q[j], q[i] }
func (q *dq) Push(x any)   { *q = append(*q, x.(*delivery)) }
func (q *dq) Pop() any {
	old := *q
	x := old[len(old)-1]
	*q = old[:len(old)-1]
	return x
}

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

func (s *sim[S]) connected(a, b string) bool { return s.side[a] == s.side[b] }

func (s *sim[S]) send(d *delivery) {
	s.seq++
	d.seq = s.seq
	if !s.connected(d.from, d.to) {
		s.held = append(s.held, d)
		return
	}
	d.at = s.round + 1 + s.rng.IntN(s.p.maxDelay)
	if s.rng.Float64() < s.p.pDrop {
		d.at += s.p.maxDelay + 1 + s.rng.IntN(2*s.p.maxDelay) // retransmitted later
	}
	heap.Push(&s.q, d)
	if s.rng.Float64() < s.p.pDup {
		c := *d
		s.seq++
		c.seq = s.seq
		c.at = s.round + 1 + s.rng.IntN(2*s.p.maxDelay)
		heap.Push(&s.q, &c)
	}
}

// sync delivers the logged group messages of epoch from on to a peer as
// the sync protocol does: one response, in the order they were published
// (a lost response is retried by the next CatchUp). Messages from the
// other side of a partition wait until it heals.
func (s *sim[S]) sync(to string, from uint64) {
	at := s.round + 1 + s.rng.IntN(s.p.maxDelay)
	for _, l := range s.log {
		if e, _ := s.be.header(l.msg); e >= from {
			s.seq++
			d := &delivery{to: to, from: l.from, kind: 0, data: l.msg, seq: s.seq, at: at}
			if !s.connected(d.from, d.to) {
				s.held = append(s.held, d)
				continue
			}
			heap.Push(&s.q, d)
		}
	}
}

// publish sends a group message to every other peer (gossip) and logs it
// for catch-up.
func (s *sim[S]) publish(from string, msg []byte) {
	s.log = append(s.log, logged{from, msg})
	s.published++
	for _, p := range s.sorted() {
		if p.id != from {
			s.send(&delivery{to: p.id, from: from, kind: 0, data: msg})
		}
	}
}

func (s *sim[S]) heal() {
	s.side = map[string]int{}
	held := s.held
	s.held = nil
	for _, d := range held {
		s.send(d)
	}
}

func (s *sim[S]) partition() {
	ids := s.sorted()
	s.side = map[string]int{}
	k := 2 + s.rng.IntN(2)
	for _, p := range ids {
		s.side[p.id] = s.rng.IntN(k)
	}
	for _, id := range s.ids {
		if _, ok := s.side[id]; !ok {
			s.side[id] = s.rng.IntN(k)
		}
	}
}

// ---------------------------------------------------------------------------
// The engine of one peer: executes decisions.

func (s *sim[S]) exec(p *peer[S], ds []Decision) {
	for len(ds) > 0 {
		d := ds[0]
		ds = ds[1:]
		s.decisions++
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
							ds = append(ds, s.sendMsg(p, o)...)
						} else {
							ds = append(ds, s.sendMsgAt(p, o, d.At)...)
						}
					}
				}
			}
		case ResendSince:
			for _, o := range p.own {
				if o.epoch > d.Epoch && !o.at.After(d.Until) {
					if d.At.IsZero() && d.AtEpoch == 0 {
						ds = append(ds, s.sendMsg(p, o)...)
					} else {
						ds = append(ds, s.sendMsgAt(p, o, d.At)...)
					}
				}
			}
		case Repropose:
			ds = append(ds, s.commitIntents(p, d.Intents)...)
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
		case Rejoin:
			st, msg, info, err := s.be.joinExternal(p.id, d.GroupInfo)
			if err != nil {
				s.failedJoins++
				if s.be.notMember(err) {
					ds = append(ds, p.m.RejoinRefused(now(s.round))...)
				}
				continue
			}
			s.rejoins++
			p.rejoins++
			// The epoch is the joined state's own (the GroupInfo's epoch
			// plus one), which is the claim's tip for an honest claimant.
			epoch := s.be.epochOf(st)
			s.recordCommit(msg, info, epoch-1)
			s.publish(p.id, msg)
			p.start, p.startCommit = epoch, HashOf(msg)
			ds = append(ds, p.m.Rejoined(s.be, RejoinResult[S]{State: st, Epoch: epoch, Commit: msg, Info: info,
				Roster: s.be.roster(st), ForkEpoch: d.ForkEpoch}, now(s.round))...)
		case CatchUp:
			s.sync(p.id, d.From)
		}
	}
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

// replayStep keeps each member's recent states and, during the
// operations, has removed peers replay from them: a Commit removing
// another member of the kept state, for an epoch still inside the
// group's window, published to everyone.
func (s *sim[S]) replayStep(ops bool) {
	var tip uint64
	for _, p := range s.sorted() {
		if p.m.IsMember() {
			tip = max(tip, p.m.Epoch())
		}
	}
	for _, p := range s.sorted() {
		if p.kept == nil {
			p.kept = map[uint64]S{}
		}
		if st, e, _ := p.m.Current(); p.m.IsMember() && s.be.usable(st) {
			p.kept[e] = st
		}
		for e := range p.kept {
			if e+uint64(s.p.window)/2 < tip {
				delete(p.kept, e)
			}
		}
		if !ops || p.m.IsMember() || len(p.kept) == 0 || s.rng.Float64() >= s.p.pReplay {
			continue
		}
		if !s.p.replayAny && slices.ContainsFunc(s.sorted(), func(q *peer[S]) bool { return q.m.IsMember() && q.m.tipRoster[p.id] }) {
			continue
		}
		var es []uint64
		for e := range p.kept {
			es = append(es, e)
		}
		slices.Sort(es)
		e := es[s.rng.IntN(len(es))]
		st := p.kept[e]
		var victims []string
		for _, id := range s.be.roster(st) {
			if id != p.id {
				victims = append(victims, id)
			}
		}
		if len(victims) < 2 {
			continue
		}
		victim := victims[s.rng.IntN(len(victims))]
		msg, _, info, _, err := s.be.commit(p.id, st, nil, []string{victim}, false)
		if err != nil {
			continue
		}
		if s.trace {
			s.t.Logf("r%d %s (removed) replays a removal of %s at epoch %d (tip %d)", s.round, p.id, victim, e, tip)
		}
		s.recordCommit(msg, info, e)
		s.replays = append(s.replays, HashOf(msg))
		s.publish(p.id, msg)
	}
}

// reloader is implemented by backends whose states are mutable: a
// restart reads each state back from its serialized form.
type reloader[S any] interface {
	reload(self string, st S) S
}

// restart rebuilds p's machine as the chat engine does after a restart:
// New with the oldest retained canonical state, the stored history, then
// Restore for each later canonical state (the backend's states are the
// stored ones). The engine keeps in its store what the machine forgets:
// own messages not yet final go out again from its outbox (same id), and
// it catches up from the oldest restored epoch. Only a member with no
// obligation the engine would have to rebuild restarts (no intents, held
// Welcomes, owed or gated re-sends, lost fork, buffered messages): the
// chat engine loses those today too. The rebuilt machine must have the
// window, history and roster of the live one.
func (s *sim[S]) restart(p *peer[S]) {
	old := p.m
	if !old.IsMember() || old.lost != nil || old.standing.mayWelcome() || old.since != nil ||
		len(old.intents) > 0 || len(old.owed) > 0 || len(old.pending) > 0 {
		return
	}
	for _, n := range old.welcomes {
		if n.welcome == welcomeHeld {
			return
		}
	}
	for _, sm := range old.sent {
		if sm.resending || !sm.n.(*node[S]).canon {
			return
		}
	}
	var chain []*node[S]
	for n := old.tip; n != nil && n.live; n = n.parent {
		chain = append(chain, n)
		if n == old.root {
			break
		}
	}
	slices.Reverse(chain)
	c0 := chain[0]
	var key *Key
	if c0.hasKey {
		k := c0.key
		key = &k
	}
	if r, ok := s.be.(reloader[S]); ok {
		// Through the store's bytes, as the engine reads them.
		for _, n := range chain {
			n.state = r.reload(p.id, n.state)
		}
	}
	at := now(s.round)
	m := New(s.cfg(p.id), c0.state, c0.epoch, key, s.be.roster(c0.state), at)
	m.AdoptHistory(old.History())
	var epochs []uint64
	epochs = append(epochs, c0.epoch)
	for _, n := range chain[1:] {
		if err := m.Restore(n.state, n.key, n.info, at); err != nil {
			s.t.Fatalf("seed %d round %d: %s restore: %v", s.p.seed, s.round, p.id, err)
		}
		epochs = append(epochs, n.epoch)
	}
	_, e1, h1 := old.Current()
	_, e2, h2 := m.Current()
	switch {
	case e1 != e2 || h1 != h2:
		s.violate("%s restarted at %d %s, was at %d %s", p.id, e2, h2, e1, h1)
	case !slices.Equal(m.History(), old.History()):
		s.violate("%s restarted with history %v, had %v", p.id, m.History(), old.History())
	case !slices.Equal(m.Roster(), old.Roster()) || m.IsMember() != old.IsMember():
		s.violate("%s restarted with roster %v, had %v", p.id, m.Roster(), old.Roster())
	case !slices.Equal(m.LiveStates(), epochs):
		s.violate("%s restarted with states %v, had the canonical %v", p.id, m.LiveStates(), epochs)
	}
	if s.trace {
		s.t.Logf("r%d %s restarts with states %v", s.round, p.id, epochs)
	}
	s.restarts++
	p.m, p.restartTip = m, e2
	for _, sm := range old.sent {
		for _, o := range p.own {
			if o.id == sm.id {
				s.exec(p, s.sendMsg(p, o))
			}
		}
	}
	s.sync(p.id, c0.epoch)
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

func (s *sim[S]) check() {
	if len(s.violations) > 0 {
		s.t.Errorf("seed %d: %s", s.p.seed, strings.Join(s.violations, "\n"))
		return
	}
	// 1. Every member of the group is at the same epoch and state.
	var ref *peer[S]
	var members []*peer[S]
	for _, p := range s.sorted() {
		if p.m.IsMember() {
			members = append(members, p)
			if ref == nil || len(p.m.History()) > len(ref.m.History()) {
				ref = p
			}
		}
	}
	if ref == nil {
		s.t.Fatalf("seed %d: no member left", s.p.seed)
	}
	refSt, refEpoch, _ := ref.m.Current()
	roster := ref.m.Roster()
	for _, p := range members {
		st, epoch, _ := p.m.Current()
		if epoch != refEpoch || !bytes.Equal(s.be.auth(st), s.be.auth(refSt)) {
			s.t.Errorf("seed %d: %s at epoch %d, %s at epoch %d with a different authenticator (rejoins %d, switches %d)",
				s.p.seed, ref.id, refEpoch, p.id, epoch, s.rejoins, s.switches)
			s.dump()
			return
		}
		if !slices.Equal(p.m.Roster(), roster) {
			s.t.Errorf("seed %d: rosters differ", s.p.seed)
		}
	}
	if got := len(members); got != len(roster) {
		s.t.Errorf("seed %d: roster %v but %d peers consider themselves members", s.p.seed, roster, got)
		for _, id := range roster {
			if p := s.peers[id]; p == nil || !p.m.IsMember() {
				s.t.Errorf("  %s is in the roster but has no state", id)
			}
		}
		return
	}
	if st := s.be.roster(refSt); !slices.Equal(st, roster) {
		s.t.Errorf("seed %d: machine roster %v, state roster %v", s.p.seed, roster, st)
	}

	// The canonical chain: epoch -> commit hash.
	canon := map[Hash]uint64{}
	for _, p := range members {
		for _, e := range p.m.History() {
			canon[e.Hash] = e.Epoch + 1
		}
	}
	// A Commit a removed member made from a state it kept leaves nobody
	// out: it is not canonical, or every member it removed was added
	// back by a canonical Commit after it (README.md "Removed members").
	for _, h := range s.replays {
		e, ok := canon[h]
		if !ok {
			continue
		}
		rc := s.cmts[h]
		for _, v := range rc.info.Removed {
			if v == rc.info.Sender || slices.Contains(rc.info.Added, v) || slices.Contains(roster, v) {
				continue
			}
			restored := false
			for h2, e2 := range canon {
				if c, ok := s.cmts[h2]; ok && e2 > e && slices.Contains(c.info.Added, v) {
					restored = true
				}
			}
			if !restored {
				s.t.Errorf("seed %d: a removed member's replay %s is canonical at epoch %d and %s, whom it removed, was never restored", s.p.seed, h, e-1, v)
			}
		}
	}
	canonNode := func(h Hash, epoch uint64) bool {
		if h.IsZero() {
			return true // the group's initial state
		}
		e, ok := canon[h]
		return ok && e == epoch
	}

	// The ground truth of membership: the initial roster and the changes
	// of the canonical Commits (as their senders recorded them), epoch by
	// epoch.
	canonAt := map[uint64]Hash{}
	for h, e := range canon {
		canonAt[e-1] = h
	}
	memberAt := func(id string, epoch uint64) bool {
		in := slices.Contains(s.initRoster, id)
		for e := s.initEpoch; e < epoch; e++ {
			h, ok := canonAt[e]
			if !ok {
				s.t.Errorf("seed %d: no canonical Commit known at epoch %d", s.p.seed, e)
				return false
			}
			c := s.cmts[h]
			if slices.Contains(c.info.Removed, id) {
				in = false
			}
			if slices.Contains(c.info.Added, id) {
				in = true
			}
		}
		return in
	}

	// leftAt returns the round id left the group for good: the creation
	// round of the canonical Commit that removed it, or the round since
	// which it held no member state of its own if earlier (a member out
	// on a branch that lost, refused a rejoin, until its removal came);
	// -1: a member at the end.
	final := refEpoch
	leftAt := func(id string) int {
		if slices.Contains(roster, id) {
			return -1
		}
		at := -1
		for e := s.initEpoch; e < final; e++ {
			if c, ok := s.cmts[canonAt[e]]; ok && slices.Contains(c.info.Removed, id) && !slices.Contains(c.info.Added, id) {
				at = c.round
			}
		}
		if p := s.peers[id]; p != nil && p.outSince >= 0 && (at < 0 || p.outSince < at) {
			at = p.outSince
		}
		return at
	}
	// excused: the copy reached q only after q had released the state it
	// was written in, and the reader or the sender left the group before a
	// re-send could help (README.md "Tests").
	excused := func(q *peer[S], sender string, c *copyRec) bool {
		if s.inTime[q.id][c.hash] {
			return false
		}
		arr, ok := s.arrived[q.id][c.hash]
		if !ok {
			return false
		}
		for _, id := range []string{q.id, sender} {
			if l := leftAt(id); l >= 0 && l <= arr+lateGrace {
				return true
			}
		}
		return false
	}

	// 2. Every message landed, and every member at its landing epoch that
	// held that epoch's state read it.
	for _, id := range s.msgIDs {
		r := s.msgs[id]
		var landed *copyRec
		for i := range r.copies {
			if canonNode(r.copies[i].node, r.copies[i].epoch) {
				landed = &r.copies[i]
			}
		}
		if landed == nil {
			if slices.Contains(roster, r.sender) && s.stayed(r.sender) {
				s.t.Errorf("seed %d: message %s of %s (copies %v) never landed on the canonical branch", s.p.seed, id, r.sender, r.copies)
			}
			continue
		}
		for _, q := range s.sorted() {
			if q.id == r.sender || q.start > landed.epoch || !memberAt(q.id, landed.epoch) || !s.heldAt(q, landed.epoch, canonAt) {
				continue
			}
			if !q.delivered[id] && !excused(q, r.sender, landed) {
				s.t.Errorf("seed %d: %s, member at epoch %d, never read message %s (reader member at end %v, in time %v, arrived %v; sender member %v stayed %v left %d; copies %d)",
					s.p.seed, q.id, landed.epoch, id, q.m.IsMember(), s.inTime[q.id][landed.hash], s.arrived[q.id][landed.hash],
					s.peers[r.sender].m.IsMember(), s.stayed(r.sender), leftAt(r.sender), len(r.copies))
			}
		}
	}

	// 3. Every intended change by a member is applied or moot.
	inRoster := func(id string) bool { return slices.Contains(roster, id) }
	canonAfter := func(round int, f func(commitRec) bool) bool {
		for h := range canon {
			if c, ok := s.cmts[h]; ok && c.round >= round && f(c) {
				return true
			}
		}
		return false
	}
	for _, si := range s.intent {
		if !inRoster(si.by) || !s.stayed(si.by) {
			continue
		}
		in := si.intent
		ok := false
		switch in.Kind {
		case Add:
			ok = inRoster(in.Target) || canonAfter(si.round, func(c commitRec) bool { return slices.Contains(c.info.Removed, in.Target) })
		case Remove:
			ok = !inRoster(in.Target) || canonAfter(si.round, func(c commitRec) bool {
				return slices.Contains(c.info.Added, in.Target) && !(c.info.External && c.info.Sender == in.Target)
			})
		case Update:
			// A re-add (Welcome, or resync) gives the member a fresh leaf:
			// it refreshes it as an Update would.
			ok = canonAfter(si.round, func(c commitRec) bool {
				return c.info.refreshes(si.by) || slices.Contains(c.info.Added, si.by)
			}) || s.peers[si.by].rejoins > 0
		}
		if !ok {
			s.t.Errorf("seed %d: %s's intent %v (round %d) neither applied nor moot; roster %v", s.p.seed, si.by, in, si.round, roster)
		}
	}
}

// lateGrace is how many rounds a message that reached a member too late to
// be read may take to be recovered: the member's next claim lists it in
// Claim.Stale (AnnounceInterval, 10 rounds, plus delivery), the sender
// re-sends it at its tip, and a sender that rejoined after a lost fork may
// hold its re-sends up to two RetryTimes (80 rounds) while the removals of
// its lost branch are re-proposed (README.md "Re-sending safely"). A
// member, reader or sender, that leaves the group for good within that
// time is excused (check).
const lateGrace = 100

// stayed reports whether id kept its membership through the run without
// being removed and re-added (a member removed before it could re-send
// loses its unsent messages with its membership).
func (s *sim[S]) stayed(id string) bool {
	p := s.peers[id]
	return p != nil && !p.removedOnce
}

// heldAt reports whether q held the canonical state of epoch: it did not
// rejoin past it, and its last rejoin's resync commit is canonical (a resync
// that lost left it without any canonical state from then on; it was
// removed, or rejoined again later, which resets start).
// rejoin past it by external commit).
func (s *sim[S]) heldAt(q *peer[S], epoch uint64, canonAt map[uint64]Hash) bool {
	if !q.startCommit.IsZero() && q.start > 0 && canonAt[q.start-1] != q.startCommit {
		return false
	}
	return q.start <= epoch
}

func (s *sim[S]) dump() {
	for _, p := range s.sorted() {
		_, e, h := p.m.Current()
		st := p.m.Stats()
		s.t.Logf("  %s member=%v epoch=%d tip=%s states=%d buffered=%d rejoins=%d lost=%v hist=%d",
			p.id, p.m.IsMember(), e, h, st.States, st.Buffered, p.rejoins, p.m.lost != nil, st.HistoryEntries)
	}
}

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
