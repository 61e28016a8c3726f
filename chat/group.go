package chat

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// A group's mutable state (its MLS state, queued changes, buffered frames,
// outbox bookkeeping) is owned by one goroutine, the group's loop, in the
// style of pubsub's processLoop. Everything else talks to it by posting
// closures (do, post) or frames. What front ends read (the GroupView and
// the member list) is a snapshot the loop publishes under g.mu.

// Wire values of store kinds the engine writes itself.
const (
	// appSystem marks timeline lines the engine writes (never sent).
	appSystem appKind = 0xffff
)

var (
	errNotMember   = errors.New("you are no longer a member of this group")
	errGroupClosed = errors.New("chat: group stopped")
)

type inFrame struct {
	data   []byte
	from   p2p.PeerID
	synced bool
	// verdict is the gossip validator's judgement of the frame (nil for
	// frames from sync): the loop does not authenticate it again.
	verdict *gateVerdict
}

const (
	changeAdd changeKind = iota + 1
	changeRemove
	changeUpdate
	changeSettings
)

// groupMeta is the engine's per-group bookkeeping, kept in store.Group.Meta.
type groupMeta struct {
	Leaving   bool   `json:"leaving,omitempty"`
	LastPath  int64  `json:"last_path,omitempty"` // Unix time of our last fresh path
	SentSince int    `json:"sent_since,omitempty"`
	CardSent  string `json:"card_sent,omitempty"`  // hash of the last card published
	RemovedBy string `json:"removed_by,omitempty"` // who committed our removal (not after /leave)
	// ReInitPending: this member committed a ReInit and has not made the
	// successor yet (reinit.go).
	ReInitPending bool `json:"reinit_pending,omitempty"`
}

type pubItem struct {
	data []byte
	done func(p2p.PublishResult, error)
}

// group is the actor of one group. Its state is grouped by what owns it:
// the loop's chain state (the machine, the tip, the store row) sits here;
// what the next Commit carries is in intents (intents.go), own messages in
// flight in out (outbox.go), writes staged for the next persisted state in
// stage (persist.go), catch-up in sync (catchup.go), the frame gate's
// loop-side state in the gate fields (framegate.go), and what front ends
// read in view (view.go, the only part guarded by a lock).
type group struct {
	e         *Engine
	id        []byte
	gid       GroupID
	topicName string

	reqs   chan func()
	frames chan inFrame
	pubs   chan pubItem
	quit   chan struct{}
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	// Owned by the loop.
	m     *ordering.Machine[*mls.Group] // fork choice; holds the states
	proc  *groupProc
	order deliveryOrder // per-sender order of delivered messages (deliveryorder.go)
	// Queue accounting and what the loop has not done yet (backpressure.go).
	inQueue, outQueue *byteQueue
	backlog           backlog
	st                *mls.Group // the canonical tip's state (m.Current())
	tipHash           ordering.Hash
	commitRef         []byte // stored id of the tip's Commit (encoded key)
	commits           map[ordering.Hash]*commitRec
	peerNames         map[p2p.PeerID]string        // peerName's cache
	stateHash         map[*mls.Group]ordering.Hash // retained states by the hash of their node
	row               store.Group
	meta              groupMeta
	settings          groupSettings
	topic             *p2p.Topic
	closed            bool // not a member at the canonical tip (removed, left)
	offline           bool // the topic was left for good

	intents intentState
	out     outboxState
	stage   stagedWrites
	sync    syncState
	refused []refusedWelcome
	askedAt time.Time // last claim request for a held Welcome (rejoin.go)

	// The frame gate (framegate.go): authenticators of the retained
	// states (loop-owned), shared with the gossip validator.
	gate         *frameGate
	auths        map[*mls.Group]*epochAuth
	rejudging    bool
	rejudgeAgain bool
	heldCatchUp  time.Time
	pre          *preChecked // the Commit being received, opened by precheckCommit

	view viewState
}

// newGroup makes the actor of a group; start runs it. st is the stored
// current state (nil if unreadable) and commitRef the stored id of the
// Commit that created it.
func (e *Engine) newGroup(row store.Group, st *mls.Group, commitRef []byte) *group {
	g := &group{
		e:         e,
		id:        row.ID,
		gid:       GroupID(hex.EncodeToString(row.ID)),
		topicName: p2p.TopicName(row.ID),
		reqs:      make(chan func(), 64),
		frames:    make(chan inFrame, 256),
		pubs:      make(chan pubItem, 1024),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		st:        st,
		commitRef: commitRef,
		row:       row,
		commits:   make(map[ordering.Hash]*commitRec),
		stateHash: make(map[*mls.Group]ordering.Hash),
		gate:      newFrameGate(&e.heldFrameBytes),
		auths:     make(map[*mls.Group]*epochAuth),
		intents:   newIntentState(),
		out:       newOutboxState(),
		stage:     stagedWrites{rowIDs: make(map[string]bool), linger: batchLinger},
		sync:      syncState{peers: make(map[p2p.PeerID]bool), rejoined: make(map[p2p.PeerID]bool), cursors: make(map[p2p.PeerID]syncCursor)},
	}
	g.proc = &groupProc{g: g}
	g.order = newDeliveryOrder()
	g.inQueue, g.outQueue = newByteQueue(queueBytes), newByteQueue(queueBytes)
	g.ctx, g.cancel = context.WithCancel(e.ctx)
	if len(row.Meta) > 0 {
		_ = json.Unmarshal(row.Meta, &g.meta)
	}
	if st == nil || row.Left || st.Closed() {
		g.closed, g.offline = true, true
	}
	if st != nil {
		g.settings = settingsOf(st.Extensions())
		if !g.closed {
			g.m = e.newMachine(g, st, commitRef)
			_, _, g.tipHash = g.m.Current()
			g.stateHash[st] = g.tipHash
			g.view.live = true
		}
	}
	if g.settings.Name == "" {
		g.settings.Name = row.Name
	}
	g.view.snap = GroupView{ID: g.gid, Name: g.settings.Name, LastAt: row.UpdatedAt}
	g.refreshInfos()
	g.refreshGate() // before the topic's validator can run
	return g
}

// start registers the group and runs its goroutines. join joins the topic.
func (g *group) start() {
	e := g.e
	e.mu.Lock()
	e.groups[string(g.id)] = g
	e.byTopic[g.topicName] = g
	e.mu.Unlock()
	g.loadOutbox()
	if !g.offline && e.node != nil {
		t, err := e.node.JoinGroup(g.id, p2p.WithTopicVerdictValidator(g.validateVerdict), p2p.WithPeerJoined(g.peerJoined))
		if err != nil {
			e.log.Error("joining group topic", "group", g.gid, "err", err)
		} else {
			g.topic = t
			g.wg.Add(2)
			go g.readTopic(t)
			go g.publisher(t)
		}
	}
	go g.loop()
}

// stop ends the group's goroutines (the engine is closing). Messages
// held for their sender's order are shown and stored first, so that this
// run's front ends see them (a crash leaves them to restoreHeld).
func (g *group) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), stopFlushWait)
	_ = g.do(ctx, g.releaseHeldOrder)
	cancel()
	select {
	case <-g.quit:
	default:
		close(g.quit)
	}
	g.cancel()
	<-g.done
}

// stopFlushWait bounds how long stop waits for a busy loop to store the
// held messages.
const stopFlushWait = 5 * time.Second

func (g *group) loop() {
	defer close(g.done)
	defer func() {
		if g.topic != nil {
			_ = g.topic.Close()
		}
		g.wg.Wait()
		g.gate.clear()
	}()
	tick := time.NewTicker(g.e.cfg.SyncInterval)
	defer tick.Stop()
	g.afterStart()
	for {
		select {
		case f := <-g.reqs:
			f()
			g.noteBacklog()
		case fr := <-g.frames:
			g.handleFrames(fr)
		case <-tick.C:
			g.tick()
		case <-g.quit:
			return
		}
	}
}

// do runs f on the group's loop and waits for it.
func (g *group) do(ctx context.Context, f func()) error {
	done := make(chan struct{})
	select {
	case g.reqs <- func() { f(); close(done) }:
	case <-g.quit:
		return errGroupClosed
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-done:
		return nil
	case <-g.done:
		return errGroupClosed
	case <-ctx.Done():
		return ctx.Err()
	}
}

// post queues f for the loop without waiting.
func (g *group) post(f func()) {
	select {
	case g.reqs <- f:
	case <-g.quit:
	}
}

// after runs f on the loop after d.
func (g *group) after(d time.Duration, f func()) *time.Timer {
	return time.AfterFunc(d, func() { g.post(f) })
}

func (g *group) readTopic(t *p2p.Topic) {
	defer g.wg.Done()
	for {
		m, err := t.Next(g.ctx)
		if err != nil {
			return
		}
		if !g.queueFrame(inFrame{data: m.Data, from: m.From, verdict: verdictOf(m)}) {
			return
		}
	}
}

// publisher publishes the group's frames in order without blocking the
// loop (Publish may wait for the topic's first peer).
func (g *group) publisher(t *p2p.Topic) {
	defer g.wg.Done()
	for {
		select {
		case it := <-g.pubs:
			g.outQueue.release(len(it.data))
			ctx, cancel := context.WithTimeout(g.ctx, 30*time.Second)
			res, err := t.Publish(ctx, it.data)
			cancel()
			if it.done != nil {
				it.done(res, err)
			}
		case <-g.quit:
			return
		}
	}
}

// publish logs data in the group's frame log (to serve sync) and queues it
// for publication; done runs on the loop.
func (g *group) publish(data []byte, epoch uint64, done func(p2p.PublishResult, error)) {
	g.logFrame(data, epoch, g.e.id.id)
	g.publishLogged(data, done)
}

// publishLogged queues for publication a frame the frame log holds
// already: an own message, logged with the state that protected it
// (protectOwn, persistTip).
func (g *group) publishLogged(data []byte, done func(p2p.PublishResult, error)) {
	if g.topic == nil {
		return
	}
	it := pubItem{data: data}
	if done != nil {
		it.done = func(r p2p.PublishResult, err error) { g.post(func() { done(r, err) }) }
	}
	if !g.outQueue.tryAcquire(len(data)) {
		g.e.log.Warn("publish queue full; frame left to sync", "group", g.gid)
		return
	}
	select {
	case g.pubs <- it:
	default:
		g.outQueue.release(len(data))
		g.e.log.Warn("publish queue full; frame left to sync", "group", g.gid)
	}
}

// frameLogQuota bounds the log of a group's frames that members keep to
// serve catch-up (sync) to other members: only frames the frame gate
// authenticated (framegate.go), within these bounds.
var frameLogQuota = store.FrameQuota{MaxFrameBytes: 9 << 20, PerTopic: store.Limit{Bytes: 256 << 20}}

// peerName is p's text form (base58) as the frame log stores it, encoded
// once per peer rather than once per frame. Loop only.
func (g *group) peerName(p p2p.PeerID) string {
	if s, ok := g.peerNames[p]; ok {
		return s
	}
	if g.peerNames == nil || len(g.peerNames) >= maxPeerNames {
		g.peerNames = make(map[p2p.PeerID]string)
	}
	s := p.String()
	g.peerNames[p] = s
	return s
}

// maxPeerNames bounds peerName's cache (it starts over when full).
const maxPeerNames = 1024

// logFrame logs a frame in its own transaction (own Commits and
// proposals, which persistTip does not write).
func (g *group) logFrame(data []byte, epoch uint64, from p2p.PeerID) {
	seq, inserted, err := g.e.db.AppendFrame(g.ctx, g.logEntry(data, epoch, from), frameLogQuota)
	g.noteLogged(store.AppendResult{Seq: seq, Inserted: inserted, Err: err})
}

// stageFrame adds a frame to be logged with the next persisted state.
func (g *group) stageFrame(data []byte, epoch uint64, from p2p.PeerID) {
	g.stage.frames = append(g.stage.frames, g.logEntry(data, epoch, from))
}

// logEntry is a frame of the group as the frame log keeps it.
func (g *group) logEntry(data []byte, epoch uint64, from p2p.PeerID) store.Frame {
	return store.Frame{Topic: g.topicName, Epoch: &epoch, Peer: g.peerName(from), Data: data}
}

// noteLogged notes the outcome of logging a frame: the first frame this
// run inserted sets sessionSeq.
func (g *group) noteLogged(r store.AppendResult) {
	if r.Err != nil {
		if g.ctx.Err() == nil {
			g.e.log.Debug("frame log", "err", r.Err)
		}
		return
	}
	if r.Inserted && g.sync.sessionSeq == 0 {
		g.sync.sessionSeq = r.Seq
	}
}

// tick runs every SyncInterval: catch up from new peers, let the fork
// choice's time pass, rotate keys by age, retry sends.
func (g *group) tick() {
	if g.offline || g.m == nil {
		return
	}
	g.catchUp(false)
	g.exec(g.m.Tick(g.proc, g.e.now()))
	g.rejudgeHeld()
	g.catchUpIfHeld()
	g.intents.prune(g.e.now(), g.m.Intended)
	if len(g.refused) > 0 {
		g.retryRefused()
	}
	if g.closed {
		return
	}
	if g.meta.LastPath > 0 && g.e.now().Sub(time.Unix(g.meta.LastPath, 0)) > g.e.cfg.RotateAfter && len(g.intents.queue) == 0 {
		g.meta.LastPath = g.e.now().Unix()
		g.enqueue(change{kind: changeUpdate})
	}
	g.flushHeld()
	g.flushReceipts()
	g.maybePublishCard()
}

// maxParking bounds how long live frames wait for the first catch-up.
const maxParking = 5 * time.Second

// afterStart runs on the loop when the group starts.
func (g *group) afterStart() {
	g.restoreHeld()
	if g.offline {
		return
	}
	g.sync.parking = true
	g.after(maxParking, g.unpark)
	if g.topic != nil {
		t := g.topic
		g.wg.Add(1)
		go func() {
			defer g.wg.Done()
			ctx, cancel := context.WithTimeout(g.ctx, maxParking)
			defer cancel()
			if t.WaitPeers(ctx, 1) == nil {
				g.post(func() { g.catchUp(false) })
			}
		}()
	}
	if g.meta.LastPath == 0 {
		g.meta.LastPath = g.e.now().Unix()
	}
	if g.meta.Leaving {
		g.proposeLeave()
	}
	g.maybePublishCard()
}

// maybePublishCard sends our contact card to the group when it changed
// since we last did (nick, addresses): members learn names and how to
// reach each other.
func (g *group) maybePublishCard() {
	if g.closed || !g.canSendNow() || g.topic == nil || len(g.topic.Peers()) == 0 {
		return
	}
	card := g.e.card()
	b, err := card.Marshal()
	if err != nil {
		return
	}
	sum := sha256.Sum256(b)
	h := hex.EncodeToString(sum[:8])
	if h == g.meta.CardSent {
		return
	}
	if _, err := g.send(appProfile, b, nil); err != nil {
		return
	}
	g.meta.CardSent = h
	row := g.row
	g.saveMetaInto(&row)
	if err := g.e.db.UpdateGroup(g.ctx, row); err == nil {
		g.row = row
	}
}
