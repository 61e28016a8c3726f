package chat

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// Direct messages (p2p.InboxDirect) are signed control messages
// (control.go): dmSigned followed by a SignedControl of one of these kinds:
//
//	dmHello:   the sender's contact card (binary); sent directly to every
//	           peer on connecting, so that nearby peers can be invited by
//	           nick.
//	dmDecline: the invitee declined the invitation to the InboxMessage's
//	           topic (directly or through relay mailboxes).
//	dmClaim:   an ordering claim (ordering.MarshalClaim) about the
//	           InboxMessage's topic, sent directly by a member (rejoin.go).
//
// Unsigned messages with these type bytes (older versions, or a relay
// writing in someone's name) are refused.
const (
	dmHello   byte = 1
	dmDecline byte = 2
	dmClaim   byte = 3
)

const helloEvery = 5 * time.Minute

func (e *Engine) startNode(ctx context.Context) error {
	boot, err := p2p.ParseAddrInfos(e.cfg.Bootstrap)
	if err != nil {
		return fmt.Errorf("chat: --bootstrap: %w", err)
	}
	e.relays = boot
	opts := []p2p.Option{
		p2p.WithMDNS(e.cfg.MDNS),
		p2p.WithLogger(e.log.With("component", "p2p")),
		p2p.WithHandlers(p2p.Handlers{
			KeyPackageForSuite: e.serveKeyPackage,
			Inbox:              e.serveInbox,
			Sync:               e.serveSync,
			Tree:               e.serveTree,
			Blob:               e.serveBlob,
		}),
	}
	plan := e.planListen()
	opts = append(opts, p2p.WithListenAddrs(plan.addrs...))
	if len(boot) > 0 {
		opts = append(opts, p2p.WithBootstrapPeers(boot...), p2p.WithRelays(boot...), p2p.WithDHT(p2p.DHTClient))
	} else {
		opts = append(opts, p2p.WithDHT(p2p.DHTOff))
	}
	if e.cfg.NoNAT {
		opts = append(opts, p2p.WithAutoNAT(false), p2p.WithHolePunching(false))
	}
	opts = append(opts, e.cfg.P2POptions...)
	node, err := p2p.New(ctx, e.id.key, opts...)
	if err != nil {
		if plan.kept && errors.Is(err, p2p.ErrAddrInUse) {
			return e.keptPortsTaken(err)
		}
		return err
	}
	e.node = node
	if plan.store {
		e.keepListenPorts(plan)
	}
	// Subscribed before anything else runs, so that no connection is
	// missed; the node closes both when it closes.
	e.peerEvents = node.Subscribe(p2p.WithEventKinds(p2p.PeerUp, p2p.PeerDown))
	e.localEvents = node.Subscribe(p2p.WithEventKinds(p2p.ReachabilityChanged, p2p.AddrsChanged))
	return nil
}

func peerView(c *Card) Peer {
	return Peer{Nick: c.Nick, PeerID: c.PeerID.String(), Card: c.String()}
}

func (e *Engine) isConnected(p p2p.PeerID) bool {
	return e.node != nil && e.node.IsConnected(p)
}

// connectAsync dials p in the background unless connected.
func (e *Engine) connectAsync(p p2p.PeerID, addrs []p2p.Multiaddr) {
	if p == e.id.id || e.isConnected(p) {
		return
	}
	e.goBackground(func(ctx context.Context) {
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		_ = e.node.Connect(ctx, p2p.AddrInfo{ID: p, Addrs: addrs})
	})
}

// startBackground starts the engine-wide loops.
func (e *Engine) startBackground() {
	e.goBackground(e.connLoop)
	e.goBackground(e.reachabilityLoop)
	e.goBackground(e.housekeeping)
	if len(e.relays) > 0 {
		e.goBackground(e.relayLoop)
	}
	e.dialContacts()
}

// connLoop follows peers: on a new connection introduce ourselves and
// retry Welcomes; when a peer's last connection closes, it is no longer
// nearby.
func (e *Engine) connLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-e.peerEvents.C:
			if !ok {
				return
			}
			if ev.Kind == p2p.PeerDown {
				e.peerGone(ev.Peer)
				continue
			}
			p := ev.Peer
			e.statusChanged()
			e.retryWelcomes(p)
			// A peer that comes back may hold what we missed while apart
			// (a healed partition): catch up from it again.
			e.mu.Lock()
			for _, g := range e.groups {
				g.post(func() { delete(g.sync.peers, p) })
			}
			e.mu.Unlock()
			e.mu.Lock()
			last := e.helloAt[p]
			due := time.Since(last) > helloEvery
			if due {
				e.helloAt[p] = time.Now()
			}
			e.mu.Unlock()
			if due {
				e.goBackground(func(ctx context.Context) { e.sendHello(ctx, p) })
			}
		}
	}
}

// peerGone forgets a peer whose last connection closed.
func (e *Engine) peerGone(p p2p.PeerID) {
	e.mu.Lock()
	card := e.nearby[p]
	delete(e.nearby, p)
	e.mu.Unlock()
	if card != nil {
		e.emit(PeerEvent{Peer: peerView(card), Online: false})
	}
	e.statusChanged()
}

func (e *Engine) sendHello(ctx context.Context, p p2p.PeerID) {
	for _, r := range e.relays {
		if r.ID == p {
			return
		}
	}
	b, err := e.card().Marshal()
	if err != nil {
		return
	}
	data, err := e.signControl(dmHello, "", b)
	if err != nil {
		e.log.Warn("signing a hello", "err", err)
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	err = e.node.SendInbox(ctx, p, p2p.InboxMessage{Kind: p2p.InboxDirect, Data: data})
	if err != nil {
		e.log.Debug("hello not delivered", "peer", p, "err", err)
		if !errors.Is(err, p2p.ErrUnavailable) {
			e.mu.Lock()
			delete(e.helloAt, p)
			e.mu.Unlock()
		}
	}
}

// reachabilityLoop follows what AutoNAT learns (which the node keeps, see
// Status) and the host's addresses: a status event and a fresh card file
// when either changes (a relay reservation adds circuit addresses, which a
// card should carry at once).
func (e *Engine) reachabilityLoop(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-e.localEvents.C:
			if !ok {
				return
			}
			e.statusChanged()
			e.writeCardFile()
		}
	}
}

// housekeeping: disappearing messages, expired KeyPackages, the card file.
func (e *Engine) housekeeping(ctx context.Context) {
	t := time.NewTicker(time.Minute)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if n, err := e.db.ApplyRetention(ctx, e.now()); err == nil && n > 0 {
			e.log.Info("disappearing messages deleted", "count", n)
			for _, gv := range e.Groups() {
				e.emit(GroupEvent{Group: gv})
			}
		}
		if e.xfers != nil {
			e.xfers.collect(ctx)
		}
		_, _ = e.db.PruneFrames(ctx, e.now().Add(-14*24*time.Hour))
		_ = e.fillKeyPackages(ctx)
		e.writeCardFile()
	}
}

// relayLoop uploads KeyPackages to relays and polls their mailboxes.
func (e *Engine) relayLoop(ctx context.Context) {
	uploaded := map[p2p.PeerID]bool{}
	t := time.NewTicker(e.cfg.MailboxInterval)
	defer t.Stop()
	first := time.NewTimer(500 * time.Millisecond)
	defer first.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-first.C:
		case <-t.C:
		}
		for _, r := range e.relays {
			if !e.isConnected(r.ID) {
				cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
				err := e.node.Connect(cctx, r)
				cancel()
				if err != nil {
					continue
				}
			}
			if !uploaded[r.ID] {
				kps, err := e.relayKeyPackages(ctx, 4)
				if err == nil {
					uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
					_, err = e.node.PutKeyPackages(uctx, r.ID, kps)
					cancel()
				}
				if err == nil {
					uploaded[r.ID] = true
					e.notice("", NoticeInfo, "your KeyPackages are on relay %s: you can be invited while offline", shortPeer(r.ID))
				} else {
					e.log.Debug("uploading KeyPackages", "relay", r.ID, "err", err)
				}
			}
			e.pollMailbox(ctx, r.ID)
		}
	}
}

// PollMailboxes fetches mail from every relay now (tests and front ends
// that want an immediate check).
func (e *Engine) PollMailboxes(ctx context.Context) {
	for _, r := range e.relays {
		e.pollMailbox(ctx, r.ID)
	}
}

func (e *Engine) pollMailbox(ctx context.Context, relay p2p.PeerID) {
	for range 10 {
		fctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		mail, err := e.node.FetchMailbox(fctx, relay)
		cancel()
		if err != nil {
			e.log.Debug("mailbox", "relay", relay, "err", err)
			return
		}
		if len(mail) == 0 {
			return
		}
		for _, m := range mail {
			// m.From is what the relay wrote: handleInbox never takes it
			// as authentication (viaMailbox).
			if err := e.handleInbox(ctx, viaMailbox, relay, m.From, m.Message); err != nil {
				e.log.Debug("mail item", "err", err)
			}
		}
	}
}

// ---- stream protocol handlers ----

func (e *Engine) serveKeyPackage(ctx context.Context, from p2p.PeerID, cs uint16) (p2p.KeyPackage, error) {
	return e.handOutKeyPackage(ctx, from, cs)
}

func (e *Engine) serveInbox(ctx context.Context, from p2p.PeerID, msg p2p.InboxMessage) error {
	return e.handleInbox(ctx, viaStream, "", from, msg)
}

// handleInbox dispatches an inbox item. from is authenticated only when
// src is viaStream; relay names the relay of a mailbox item.
func (e *Engine) handleInbox(ctx context.Context, src inboxSource, relay, from p2p.PeerID, msg p2p.InboxMessage) error {
	switch msg.Kind {
	case p2p.InboxWelcome:
		return e.onWelcome(ctx, src, from, msg.Topic, msg.Data)
	case p2p.InboxDirect:
		if len(msg.Data) == 0 {
			return p2p.ErrBadRequest
		}
		switch msg.Data[0] {
		case dmSigned:
			return e.onControl(src, relay, from, msg.Topic, msg.Data[1:])
		case dmHello, dmDecline, dmClaim:
			if src == viaMailbox {
				e.distrust(relay, from, controlName(msg.Data[0]), "it is not signed by them")
			}
			return fmt.Errorf("%w: unsigned control message", p2p.ErrBadRequest)
		}
	}
	return nil
}

func controlName(kind byte) string {
	switch kind {
	case dmHello:
		return "a hello"
	case dmDecline:
		return "a decline"
	case dmClaim:
		return "a fork claim"
	}
	return "a message"
}

// distrust tells the user that relay delivered a control message in the
// name of claimed that was not theirs, and that it was ignored.
func (e *Engine) distrust(relay, claimed p2p.PeerID, what, why string) {
	e.log.Warn("ignored a mailbox item not authenticated by its claimed sender", "relay", relay, "claimed", claimed, "what", what, "why", why)
	e.notice("", NoticeWarning, "ignored %s that relay %s delivered in the name of %s: %s (a relay cannot speak for anyone)",
		what, shortPeer(relay), e.displayName(claimed, ""), why)
}

// onControl checks a signed control message and hands it on. The
// signature must verify with the key it carries; each handler then checks
// that key against what it knows of the sender. Hellos and claims are only
// ever sent directly: from a mailbox they are replays or forgeries.
func (e *Engine) onControl(src inboxSource, relay, from p2p.PeerID, topic string, data []byte) error {
	c, err := parseSignedControl(data)
	if err != nil {
		return fmt.Errorf("%w: %v", p2p.ErrBadRequest, err)
	}
	claimed := c.Sender
	if src == viaMailbox {
		claimed = from
	}
	if err := c.verify(); err != nil {
		if src == viaMailbox {
			e.distrust(relay, claimed, controlName(c.Kind), "its signature does not verify")
		}
		return fmt.Errorf("%w: %v", p2p.ErrBadRequest, err)
	}
	if c.Topic != topic || (src == viaStream && c.Sender != from) {
		return fmt.Errorf("%w: control message for another topic or sender", p2p.ErrBadRequest)
	}
	switch c.Kind {
	case dmHello:
		if src != viaStream {
			e.distrust(relay, claimed, "a hello", "hellos are only accepted from the peer itself")
			return nil
		}
		return e.onHello(c)
	case dmDecline:
		e.onDecline(src, relay, c)
		return nil
	case dmClaim:
		if src != viaStream {
			e.distrust(relay, claimed, "a fork claim", "claims are only accepted from the member itself")
			return nil
		}
		return e.onClaim(c)
	}
	return nil
}

// onHello: a peer's card, signed with the key its fingerprint names.
func (e *Engine) onHello(c *signedControl) error {
	card, err := UnmarshalCard(c.Body)
	if err != nil || card.PeerID != c.Sender || !bytes.Equal(card.Fingerprint, Fingerprint(uint16(suite), c.SigKey)) {
		return p2p.ErrBadRequest
	}
	from := c.Sender
	e.mu.Lock()
	old := e.nearby[from]
	e.nearby[from] = card
	_, contact := e.contacts[from]
	e.mu.Unlock()
	if contact {
		// A known contact: keep its card fresh (addresses, nick) and watch
		// its key.
		e.learnKey(e.ctx, from, card.Fingerprint, card, "")
	}
	if old == nil || old.String() != card.String() {
		e.emit(PeerEvent{Peer: peerView(card), Online: true})
		e.statusChanged()
	}
	return nil
}

// serveSync serves the frames of a group's topic to a current member.
func (e *Engine) serveSync(ctx context.Context, from p2p.PeerID, req p2p.SyncRequest) (p2p.SyncPage, error) {
	e.mu.Lock()
	g := e.byTopic[req.Topic]
	e.mu.Unlock()
	if g == nil {
		return p2p.SyncPage{}, p2p.ErrNotFound
	}
	if !g.view.hasMember(from) {
		return p2p.SyncPage{}, p2p.ErrDenied
	}
	limit := req.Limit
	if limit <= 0 || limit > p2p.MaxSyncLimit {
		limit = p2p.MaxSyncLimit
	}
	since := req.SinceEpoch
	frames, err := e.db.Frames(ctx, req.Topic, store.FrameQuery{AfterSeq: int64(req.After), MinEpoch: &since, Limit: limit + 1})
	if err != nil {
		return p2p.SyncPage{}, err
	}
	page := p2p.SyncPage{Next: req.After}
	for i, f := range frames {
		if i == limit {
			page.More = true
			break
		}
		en := p2p.SyncEntry{Seq: uint64(f.Seq), Data: f.Data}
		if f.Epoch != nil {
			en.Epoch = *f.Epoch
		}
		page.Entries = append(page.Entries, en)
		page.Next = uint64(f.Seq)
	}
	return page, nil
}

// serveTree serves the ratchet tree of a group to a member of the tree
// (a joiner whose Welcome left it out).
func (e *Engine) serveTree(ctx context.Context, from p2p.PeerID, req p2p.TreeRequest) ([]byte, error) {
	e.mu.Lock()
	g := e.byTopic[req.Topic]
	e.mu.Unlock()
	if g == nil {
		return nil, p2p.ErrNotFound
	}
	var tree []byte
	var err error
	derr := g.do(ctx, func() {
		if t, ok := g.intents.trees[req.Epoch]; ok {
			tree = t
			return
		}
		if g.st != nil && !g.closed && (req.Epoch == 0 || req.Epoch == g.st.Epoch()) {
			tree, err = g.st.RatchetTree()
			return
		}
		err = p2p.ErrNotFound
	})
	if derr != nil {
		return nil, derr
	}
	if err != nil {
		return nil, err
	}
	// Only the members of that tree may have it.
	if !treeHasMember(tree, from) {
		return nil, p2p.ErrDenied
	}
	return tree, nil
}

// treeHasMember reports whether the encoded ratchet tree has a leaf whose
// credential names p.
func treeHasMember(tree []byte, p p2p.PeerID) bool {
	var t mls.RatchetTree
	if t.Unmarshal(tree) != nil {
		return false
	}
	for _, n := range t {
		if n == nil || n.Leaf == nil {
			continue
		}
		if id, err := peerOfCredential(&n.Leaf.Credential); err == nil && id == p {
			return true
		}
	}
	return false
}

// ---- status ----

// Status implements Client.
func (e *Engine) Status() NetStatus {
	st := NetStatus{}
	if e.node == nil {
		return st
	}
	st.Peers = len(e.node.Peers())
	st.RelaysConfigured = len(e.relays)
	for _, r := range e.relays {
		if e.isConnected(r.ID) {
			st.Relays++
		}
	}
	for _, a := range e.node.Addrs() {
		st.Addrs = append(st.Addrs, a.String())
	}
	switch e.node.Reachability() {
	case p2p.ReachabilityPublic:
		st.Reachability = "public"
	case p2p.ReachabilityPrivate:
		st.Reachability = "private"
	default:
		st.Reachability = "unknown"
	}
	e.mu.Lock()
	for _, c := range e.nearby {
		st.Nearby = append(st.Nearby, peerView(c))
	}
	e.mu.Unlock()
	sort.Slice(st.Nearby, func(i, j int) bool { return st.Nearby[i].Nick < st.Nearby[j].Nick })
	for _, g := range e.groupList() {
		st.Sending += g.sending()
		st.CatchingUp += g.catchingUp()
	}
	return st
}

func (e *Engine) statusChanged() {
	e.emit(StatusEvent{Status: e.Status()})
}
