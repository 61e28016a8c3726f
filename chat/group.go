package chat

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/ordering"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
	"github.com/libp2p/go-libp2p/core/peer"
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

// Outbox entry kinds.
const (
	outApp     uint16 = 1 // an own application message awaiting its receipt
	outWelcome uint16 = 2 // a Welcome not yet delivered (Payload: peer id)
	outEdit    uint16 = 3 // an own edit awaiting its receipt (no timeline row; see compose.go)
)

var (
	errNotMember   = errors.New("you are no longer a member of this group")
	errGroupClosed = errors.New("chat: group stopped")
)

type inFrame struct {
	data   []byte
	from   peer.ID
	synced bool
}

type changeKind int

const (
	changeAdd changeKind = iota + 1
	changeRemove
	changeUpdate
	changeSettings
)

type change struct {
	kind     changeKind
	kp       *mls.KeyPackage
	peer     peer.ID
	settings groupSettings
	done     chan error
}

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

type memberInfo struct {
	leaf mls.LeafIndex
	peer peer.ID
	fp   []byte
	hint string
}

type pubItem struct {
	data []byte
	done func(p2p.PublishResult, error)
}

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
	m          *ordering.Machine[*mls.Group] // fork choice; holds the states
	proc       *groupProc
	st         *mls.Group // the canonical tip's state (m.Current())
	tipHash    ordering.Hash
	commitRef  []byte // stored id of the tip's Commit (encoded key)
	commits    map[ordering.Hash]*commitRec
	stateHash  map[*mls.Group]ordering.Hash // retained states by the hash of their node
	row        store.Group
	meta       groupMeta
	settings   groupSettings
	topic      *p2p.Topic
	closed     bool // not a member at the canonical tip (removed, left)
	offline    bool // the topic was left for good
	queue      []change
	flushArmed bool
	intents    map[string]*intentRec
	welcomes   map[ordering.Hash][]heldWelcome
	reinit     *pendingReInit // own ReInit Commit until it settles (reinit.go)
	proposals  int            // proposals cached in the tip's epoch
	proposers  map[uint32]bool
	leavers    map[string]bool // identities that proposed their own removal
	commitTmr  *time.Timer
	held       []heldMsg
	receipts   [][]byte
	rcptArmed  bool
	ownState   map[string]Delivery
	ownEdits   map[string]bool // own edits awaiting a receipt (outEdit entries)
	own        *ownLog
	trees      map[uint64][]byte
	synced     map[peer.ID]bool
	syncing    bool
	resync     bool
	syncFrom   uint64
	dirty      bool            // a retained state changed (opened message, proposal)
	rows       []store.Message // rows to write with the next persisted state
	rowIDs     map[string]bool
	outbox     []store.OutboxEntry
	// parking holds live frames back until the first catch-up after a
	// start or join has run, so that what was missed is processed (and
	// shown) before what gossip delivers meanwhile.
	parking bool
	parked  []inFrame
	// sessionSeq is the frame log's cursor at the first frame logged since
	// the group started: frames logged before it were handled by an
	// earlier run.
	sessionSeq int64

	refused []refusedWelcome

	// The frame gate (framegate.go): authenticators of the retained
	// states (loop-owned), shared with the gossip validator.
	gate         *frameGate
	auths        map[*mls.Group]*epochAuth
	rejudging    bool
	rejudgeAgain bool
	heldCatchUp  time.Time
	pre          *preChecked // the Commit being received, opened by precheckCommit

	mu       sync.RWMutex
	live     bool // running the fork choice on the network (see liveMember)
	view     GroupView
	infos    []memberInfo
	members  []Member
	leftView bool
}

type heldMsg struct {
	id      []byte
	payload []byte
	kind    uint16 // outbox kind: outApp or outEdit
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
		intents:   make(map[string]*intentRec),
		welcomes:  make(map[ordering.Hash][]heldWelcome),
		proposers: make(map[uint32]bool),
		leavers:   make(map[string]bool),
		ownState:  make(map[string]Delivery),
		ownEdits:  make(map[string]bool),
		own:       newOwnLog(),
		trees:     make(map[uint64][]byte),
		synced:    make(map[peer.ID]bool),
		rowIDs:    make(map[string]bool),
		gate:      newFrameGate(&e.heldFrameBytes),
		auths:     make(map[*mls.Group]*epochAuth),
	}
	g.proc = &groupProc{g: g}
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
			g.live = true
		}
	}
	if g.settings.Name == "" {
		g.settings.Name = row.Name
	}
	g.view = GroupView{ID: g.gid, Name: g.settings.Name, LastAt: row.UpdatedAt}
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
		t, err := e.node.JoinGroup(g.id, p2p.WithTopicValidator(g.validate))
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

// stop ends the group's goroutines (the engine is closing).
func (g *group) stop() {
	select {
	case <-g.quit:
	default:
		close(g.quit)
	}
	g.cancel()
	<-g.done
}

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
		case fr := <-g.frames:
			g.handleFrame(fr)
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
		select {
		case g.frames <- inFrame{data: m.Data, from: m.From}:
		case <-g.quit:
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
	if g.topic == nil {
		return
	}
	it := pubItem{data: data}
	if done != nil {
		it.done = func(r p2p.PublishResult, err error) { g.post(func() { done(r, err) }) }
	}
	select {
	case g.pubs <- it:
	default:
		g.e.log.Warn("publish queue full; frame left to sync", "group", g.gid)
	}
}

func (g *group) logFrame(data []byte, epoch uint64, from peer.ID) (seq int64, inserted bool) {
	ep := epoch
	seq, inserted, err := g.e.db.AppendFrame(g.ctx, store.Frame{Topic: g.topicName, Epoch: &ep, Peer: from.String(), Data: data})
	if err != nil {
		if g.ctx.Err() == nil {
			g.e.log.Debug("frame log", "err", err)
		}
		return 0, true
	}
	if inserted && g.sessionSeq == 0 {
		g.sessionSeq = seq
	}
	return seq, inserted
}

// ---- views ----

func (g *group) snapshot() GroupView {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return g.view
}

func (g *group) memberList() []Member {
	g.mu.RLock()
	defer g.mu.RUnlock()
	return slices.Clone(g.members)
}

func (g *group) memberPeers() []peer.ID {
	g.mu.RLock()
	defer g.mu.RUnlock()
	out := make([]peer.ID, 0, len(g.infos))
	for _, in := range g.infos {
		out = append(out, in.peer)
	}
	return out
}

func (g *group) hasMember(p peer.ID) bool {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, in := range g.infos {
		if in.peer == p {
			return true
		}
	}
	return false
}

func (g *group) markRead() {
	g.mu.Lock()
	changed := g.view.Unread != 0 || g.view.Mentions != 0
	g.view.Unread, g.view.Mentions = 0, 0
	v := g.view
	g.mu.Unlock()
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
	g.mu.Lock()
	g.infos = infos
	g.view.Name = g.settings.Name
	if g.st != nil {
		g.view.Epoch = g.st.Epoch()
		g.view.CipherSuite = uint16(g.st.CipherSuite())
	}
	g.view.Members = len(infos)
	g.view.Left = g.closed
	g.view.RemovedBy = g.removedBy()
	g.view.Direct = g.settings.Direct
	g.mu.Unlock()
	g.refreshMembers(false)
}

// refreshMembers recomputes the Member views (any goroutine).
func (g *group) refreshMembers(emit bool) {
	e := g.e
	g.mu.RLock()
	infos := slices.Clone(g.infos)
	g.mu.RUnlock()
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
	g.mu.Lock()
	g.members = out
	renamed := applyDirectView(&g.view, out)
	g.mu.Unlock()
	if emit {
		e.emit(MembersEvent{Group: g.gid, Members: slices.Clone(out)})
		if renamed {
			g.emitGroup()
		}
	}
}

func (g *group) emitGroup() {
	g.e.emit(GroupEvent{Group: g.snapshot()})
}

// infoByLeaf returns the member at leaf l (loop only).
func (g *group) infoByLeaf(l mls.LeafIndex) (memberInfo, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, in := range g.infos {
		if in.leaf == l {
			return in, true
		}
	}
	return memberInfo{}, false
}

func (g *group) infoByPeer(p peer.ID) (memberInfo, bool) {
	g.mu.RLock()
	defer g.mu.RUnlock()
	for _, in := range g.infos {
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
	g.mu.RLock()
	infos := slices.Clone(g.infos)
	members := slices.Clone(g.members)
	g.mu.RUnlock()
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

// ---- persistence ----

func (g *group) saveMetaInto(row *store.Group) {
	if b, err := json.Marshal(g.meta); err == nil {
		row.Meta = b
	}
}

// stageRow adds a message to the next persisted transition; it reports
// false for a message the group already has (a re-send, a duplicate).
func (g *group) stageRow(r store.Message) bool {
	if r.GroupID == nil {
		r.GroupID = g.id
	}
	k := string(r.ID)
	if g.rowIDs[k] {
		return false
	}
	if appKind(r.Kind) != appSystem {
		if _, err := g.e.db.Message(g.ctx, g.id, r.ID); err == nil {
			return false
		}
	}
	g.rowIDs[k] = true
	g.rows = append(g.rows, r)
	return true
}

// persistTip writes the canonical tip's state with the staged messages and
// outbox entries in one transaction (store.CommitEpoch), then tells the
// front ends about the messages. Persisting comes before acting on a new
// state: callers publish only after it.
func (g *group) persistTip() error {
	if g.m == nil {
		return nil
	}
	st, epoch, _ := g.m.Current()
	rows, outbox := g.rows, g.outbox
	g.rows, g.outbox, g.dirty = nil, nil, false
	clear(g.rowIDs)
	state, err := st.MarshalState()
	if err != nil {
		g.e.log.Error("marshal state", "group", g.gid, "err", err)
		return err
	}
	row := g.row
	row.Name = g.settings.Name
	row.Retention = g.settings.Retention
	row.Left = g.closed
	g.saveMetaInto(&row)
	var prune uint64
	if epoch > ordering.DefaultWindowEpochs {
		prune = epoch - ordering.DefaultWindowEpochs
	}
	_, err = g.e.db.CommitEpoch(g.ctx, store.EpochTransition{
		GroupID: g.id, Epoch: epoch, CommitHash: g.commitRef, State: state, CommitInfo: g.tipCommitInfo(), Group: &row,
		Messages: rows, OutboxAdd: outbox, PruneBelow: prune,
	})
	if err != nil {
		if g.ctx.Err() == nil {
			g.e.log.Error("persisting group state", "group", g.gid, "epoch", epoch, "err", err)
		}
		return err
	}
	g.row = row
	g.emitRows(rows)
	return nil
}

func (g *group) systemLine(format string, args ...any) store.Message {
	return store.Message{
		GroupID: g.id, ID: newID(), Kind: uint16(appSystem), Text: fmt.Sprintf(format, args...),
		SentAt: g.e.now(), State: store.Received, Epoch: g.epoch(),
	}
}

func (g *group) epoch() uint64 {
	if g.st == nil {
		return 0
	}
	return g.st.Epoch()
}

// emitRows emits MessageEvents for stored rows and updates the view.
func (g *group) emitRows(rows []store.Message) {
	if len(rows) == 0 {
		return
	}
	for _, r := range rows {
		m := g.e.messageFromRow(g, r)
		g.mu.Lock()
		if !m.Own && m.Kind != KindSystem {
			g.view.Unread++
			if m.Mentions {
				g.view.Mentions++
			}
		}
		if r.SentAt.After(g.view.LastAt) || m.Own {
			g.view.LastAt = g.e.now()
		}
		g.mu.Unlock()
		g.e.emit(MessageEvent{Message: m})
	}
	g.emitGroup()
}

// messageFromRow converts a stored message to the API's Message.
func (e *Engine) messageFromRow(g *group, r store.Message) Message {
	m := Message{
		ID: MessageID(hex.EncodeToString(r.ID)), Group: g.gid, Body: r.Text,
		SentAt: r.SentAt, Epoch: r.Epoch, ReplyTo: MessageID(hex.EncodeToString(r.ReplyTo)),
	}
	k := appKind(r.Kind)
	if k == appSystem {
		m.Kind = KindSystem
		return m
	}
	m.Kind = k.apiKind()
	sender := peer.ID(r.Sender)
	m.Own = sender == e.id.id
	hint := ""
	if in, ok := g.infoByPeer(sender); ok {
		hint = in.hint
		m.SenderFP = FormatFingerprint(in.fp)
	} else {
		e.mu.Lock()
		if ci := e.contacts[sender]; ci != nil {
			m.SenderFP = FormatFingerprint(ci.fp)
		}
		e.mu.Unlock()
	}
	if m.Own {
		m.SenderFP = FormatFingerprint(e.id.fp)
	}
	m.Sender = e.displayName(sender, hint)
	switch r.State {
	case store.Pending:
		m.Delivery = Pending
	case store.Sent:
		m.Delivery = Sent
	case store.Delivered, store.Read:
		m.Delivery = Delivered
	case store.Failed:
		m.Delivery = Failed
	}
	if !m.Own {
		m.Mentions = mentions(r.Text, e.nick())
	}
	return m
}

// mentions reports whether text contains @nick as a word.
func mentions(text, nick string) bool {
	if nick == "" {
		return false
	}
	lt, ln := strings.ToLower(text), "@"+strings.ToLower(nick)
	for i := 0; ; {
		j := strings.Index(lt[i:], ln)
		if j < 0 {
			return false
		}
		end := i + j + len(ln)
		if end == len(lt) || !isWordByte(lt[end]) {
			return true
		}
		i = end
	}
}

func isWordByte(c byte) bool {
	return c == '_' || c == '-' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 0x80
}

// ---- sending ----

func (g *group) canSendNow() bool { return g.proposals == 0 }

// send encrypts and publishes an application message (loop only). Visible
// kinds are stored and tracked until a receipt arrives.
func (g *group) send(kind appKind, body, replyTo []byte) (Message, error) {
	if g.closed || g.m == nil {
		return Message{}, errNotMember
	}
	if g.meta.Leaving {
		return Message{}, errors.New("you are leaving this group")
	}
	am := appMessage{Kind: kind, ID: newID(), SentAt: g.e.now().Truncate(time.Millisecond), ReplyTo: replyTo, Body: body}
	payload, err := am.Marshal()
	if err != nil {
		return Message{}, err
	}
	visible := kind == appText || kind == appReaction
	var okind uint16 // outbox kind; 0: not kept in the outbox
	switch {
	case visible:
		okind = outApp
	case kind == appEdit:
		okind = outEdit
	}
	row := store.Message{
		GroupID: g.id, ID: am.ID, Sender: []byte(g.e.id.id), Epoch: g.st.Epoch(), Kind: uint16(kind),
		Text: string(body), ReplyTo: replyTo, SentAt: am.SentAt, State: store.Pending,
	}
	if !g.canSendNow() {
		return g.hold(okind, row, payload)
	}
	if visible {
		g.stageRow(row)
		g.ownState[string(am.ID)] = Pending
	}
	wire, err := g.protectOwn(am.ID, payload, okind)
	if errors.Is(err, mls.ErrInvalidProposal) {
		// Proposals arrived that the loop had not counted yet.
		g.proposals = max(g.proposals, 1)
		g.scheduleCommit()
		return g.hold(okind, row, payload)
	}
	if err != nil {
		return Message{}, err
	}
	id := am.ID
	g.publish(wire, row.Epoch, func(res p2p.PublishResult, err error) {
		if !visible {
			return
		}
		if err != nil {
			g.e.log.Warn("publish failed", "group", g.gid, "err", err)
			return
		}
		g.setDelivery(id, Sent)
	})
	if kind == appText {
		g.countForRotation()
	}
	return g.e.messageFromRow(g, row), nil
}

// hold keeps an own message (okind: its outbox kind) until the pending
// proposals are committed (RFC 9420 §12.4: a member that saw proposals
// commits before sending).
func (g *group) hold(okind uint16, row store.Message, payload []byte) (Message, error) {
	if okind == 0 {
		return Message{}, errors.New("group has pending proposals")
	}
	g.outbox = append(g.outbox, store.OutboxEntry{GroupID: g.id, ID: row.ID, Kind: okind, Epoch: g.st.Epoch(), Payload: payload})
	g.held = append(g.held, heldMsg{id: row.ID, payload: payload, kind: okind})
	if okind == outEdit {
		g.ownEdits[string(row.ID)] = true // no timeline row of its own
	} else {
		g.stageRow(row)
		g.ownState[string(row.ID)] = Pending
	}
	if err := g.persistTip(); err != nil {
		return Message{}, err
	}
	return g.e.messageFromRow(g, row), nil
}

// protectOwn encrypts an own message with the canonical tip, tells the
// fork choice (so that it is re-sent if its epoch loses) and persists the
// state with the staged rows. Messages with an outbox kind (okind != 0)
// get an outbox entry.
func (g *group) protectOwn(id, payload []byte, okind uint16) ([]byte, error) {
	wire, err := g.st.Protect(payload, nil)
	if err != nil {
		return nil, err
	}
	g.dirty = true
	g.own.add(string(id), payload, g.st.Epoch(), g.e.now())
	if okind != 0 {
		g.outbox = append(g.outbox, store.OutboxEntry{GroupID: g.id, ID: id, Kind: okind, Epoch: g.st.Epoch(), Payload: payload, Wire: wire, Attempts: 1, LastAttemptAt: g.e.now()})
		if okind == outEdit {
			g.ownEdits[string(id)] = true
		}
	}
	g.exec(g.m.Sent(ordering.MessageID(id), wire, g.e.now()))
	return wire, nil
}

// flushHeld sends messages held while proposals were pending.
func (g *group) flushHeld() {
	if !g.canSendNow() || len(g.held) == 0 || g.closed || g.m == nil {
		return
	}
	held := g.held
	g.held = nil
	for _, h := range held {
		wire, err := g.protectOwn(h.id, h.payload, h.kind)
		if err != nil {
			g.e.log.Warn("sending held message", "err", err)
			continue
		}
		id := h.id
		g.publish(wire, g.st.Epoch(), func(_ p2p.PublishResult, err error) {
			if err == nil {
				g.setDelivery(id, Sent)
			}
		})
	}
}

// setDelivery moves an own message forward (never back) and tells the
// front ends.
func (g *group) setDelivery(id []byte, d Delivery) {
	cur, tracked := g.ownState[string(id)]
	if !tracked || cur >= d && cur != Failed {
		return
	}
	var st store.DeliveryState
	switch d {
	case Sent:
		st = store.Sent
	case Delivered:
		st = store.Delivered
		delete(g.ownState, string(id))
		_ = g.e.db.Settle(g.ctx, g.id, id)
	case Failed:
		st = store.Failed
	}
	if d != Delivered {
		g.ownState[string(id)] = d
	}
	if err := g.e.db.SetDeliveryState(g.ctx, g.id, id, st); err != nil {
		g.e.log.Debug("delivery state", "err", err)
	}
	g.e.emit(DeliveryEvent{Group: g.gid, ID: MessageID(hex.EncodeToString(id)), Delivery: d})
}

func (g *group) onReceipt(ids [][]byte) {
	for _, id := range ids {
		if _, ok := g.ownState[string(id)]; ok {
			g.setDelivery(id, Delivered)
		}
		if g.ownEdits[string(id)] {
			// An edit has no timeline row or delivery state: settle it.
			delete(g.ownEdits, string(id))
			_ = g.e.db.Settle(g.ctx, g.id, id)
		}
	}
}

func (g *group) queueReceipt(id []byte) {
	g.receipts = append(g.receipts, slices.Clone(id))
	if !g.rcptArmed {
		g.rcptArmed = true
		g.after(g.e.cfg.ReceiptDelay, func() {
			g.rcptArmed = false
			g.flushReceipts()
		})
	}
}

func (g *group) flushReceipts() {
	if len(g.receipts) == 0 || g.closed || !g.canSendNow() || g.rcptArmed {
		return
	}
	for len(g.receipts) > 0 {
		n := min(len(g.receipts), 200)
		if _, err := g.send(appReceipt, encodeIDList(g.receipts[:n]), nil); err != nil {
			return
		}
		g.receipts = g.receipts[n:]
	}
	g.receipts = nil
}

// loadOutbox restores own messages still awaiting a receipt or a send.
func (g *group) loadOutbox() {
	entries, err := g.e.db.Outbox(g.ctx, g.id)
	if err != nil {
		return
	}
	for _, en := range entries {
		switch en.Kind {
		case outApp:
			if len(en.Wire) == 0 {
				g.held = append(g.held, heldMsg{id: en.ID, payload: en.Payload, kind: outApp})
				g.ownState[string(en.ID)] = Pending
			} else {
				g.ownState[string(en.ID)] = Sent
			}
		case outEdit:
			if len(en.Wire) == 0 {
				g.held = append(g.held, heldMsg{id: en.ID, payload: en.Payload, kind: outEdit})
			}
			g.ownEdits[string(en.ID)] = true
		case outWelcome:
			g.e.queueWelcome(peer.ID(en.Payload), g, en.ID, en.Wire, false)
		}
	}
}

// ---- membership changes ----

// enqueue adds a change to the next Commit and arms the batch timer.
// submitChanges queues changes on the group's loop, to be committed together
// at the next batched flush, and waits until each has settled (committed on
// the canonical branch, or failed) or ctx ends.
func (g *group) submitChanges(ctx context.Context, changes []change) error {
	dones := make([]chan error, len(changes))
	err := g.do(ctx, func() {
		for i := range changes {
			dones[i] = make(chan error, 1)
			changes[i].done = dones[i]
			g.enqueue(changes[i])
		}
	})
	if err != nil {
		return err
	}
	for _, d := range dones {
		select {
		case err := <-d:
			if err != nil {
				return err
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}

func (g *group) enqueue(c change) {
	g.queue = append(g.queue, c)
	g.armFlush()
}

func (g *group) armFlush() {
	if g.flushArmed {
		return
	}
	g.flushArmed = true
	g.after(g.e.cfg.BatchDelay, func() {
		g.flushArmed = false
		g.flush()
	})
}

// countForRotation counts an own message and rotates the leaf key when the
// policy says so.
func (g *group) countForRotation() {
	g.meta.SentSince++
	if g.meta.SentSince >= g.e.cfg.RotateMessages {
		g.meta.SentSince = 0
		g.enqueue(change{kind: changeUpdate})
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
	g.pruneIntents()
	if len(g.refused) > 0 {
		g.retryRefused()
	}
	if g.closed {
		return
	}
	if g.meta.LastPath > 0 && g.e.now().Sub(time.Unix(g.meta.LastPath, 0)) > g.e.cfg.RotateAfter && len(g.queue) == 0 {
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
	if g.offline {
		return
	}
	g.parking = true
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

// ---- catch-up ----

// catchUp fetches stored frames of the group from peers that may have
// what we missed: every peer of the topic we have not synced from yet,
// relays, or (all) everyone when a gap was detected.
func (g *group) catchUp(all bool) {
	if g.offline || g.e.node == nil || g.m == nil {
		return
	}
	if g.syncing {
		g.resync = g.resync || all
		return
	}
	var targets []peer.ID
	cands := map[peer.ID]bool{}
	if g.topic != nil {
		for _, p := range g.topic.Peers() {
			cands[p] = true
		}
	}
	for _, r := range g.e.relays {
		if g.e.isConnected(r.ID) {
			cands[r.ID] = true
		}
	}
	for p := range cands {
		if all || !g.synced[p] {
			targets = append(targets, p)
		}
	}
	if len(targets) == 0 {
		return
	}
	sort.Slice(targets, func(i, j int) bool { return targets[i] < targets[j] })
	g.syncing = true
	// From the oldest retained state: a competing Commit of an epoch we
	// passed may be there (a healed partition).
	since := min(g.st.Epoch(), g.m.Stats().OldestEpoch)
	if g.syncFrom > 0 && g.syncFrom < since {
		since = g.syncFrom
	}
	g.syncFrom = 0
	topic := g.topicName
	node := g.e.node
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		ok := map[peer.ID]bool{}
		for _, p := range targets {
			ctx, cancel := context.WithTimeout(g.ctx, 20*time.Second)
			n := 0
			err := node.SyncAll(ctx, p, topic, since, func(en p2p.SyncEntry) error {
				n++
				select {
				case g.frames <- inFrame{data: en.Data, from: p, synced: true}:
					return nil
				case <-g.quit:
					return errGroupClosed
				}
			})
			cancel()
			if err == nil || errors.Is(err, p2p.ErrNotFound) || errors.Is(err, p2p.ErrDenied) || errors.Is(err, p2p.ErrUnavailable) {
				ok[p] = true
			}
			if err != nil {
				g.e.log.Debug("sync", "group", g.gid, "peer", p, "err", err)
			} else if n > 0 {
				g.e.log.Debug("synced", "group", g.gid, "peer", p, "frames", n, "since", since)
			}
		}
		g.post(func() {
			g.syncing = false
			for p := range ok {
				g.synced[p] = true
			}
			if len(ok) > 0 {
				g.unpark()
			}
			if g.resync {
				g.resync = false
				g.catchUp(true)
			}
		})
	}()
}

// unpark ends the start-up catch-up: parked live frames are processed.
func (g *group) unpark() {
	if !g.parking {
		return
	}
	g.parking = false
	parked := g.parked
	g.parked = nil
	for _, fr := range parked {
		g.handleFrame(fr)
	}
}

func fmtDuration(d time.Duration) string {
	switch {
	case d%(24*time.Hour) == 0:
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	case d%time.Hour == 0:
		return fmt.Sprintf("%dh", d/time.Hour)
	case d%time.Minute == 0:
		return fmt.Sprintf("%dm", d/time.Minute)
	}
	return d.String()
}
