package chat

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// What the commands do (the registry, registry.go, parses their arguments):
// sending, creating groups, inviting, kicking, leaving, verifying, setting
// the nick, searching and retention.

// loadGroups restores every stored group and starts its loop.
func (e *Engine) loadGroups(ctx context.Context) error {
	rows, err := e.db.ListGroups(ctx)
	if err != nil {
		return err
	}
	for _, row := range rows {
		var st *mls.Group
		var hash []byte
		cs, err := e.db.CurrentState(ctx, row.ID)
		if err == nil {
			hash = cs.CommitHash
			st, err = mls.UnmarshalState(cs.State, e.mlsOptions()...)
		}
		if err != nil {
			e.log.Error("group state unreadable; the group is shown read-only", "group", hex.EncodeToString(row.ID), "err", err)
			st = nil
		}
		e.newGroup(row, st, hash).start()
	}
	return nil
}

// sendText sends a text message to a group.
func (e *Engine) sendText(ctx context.Context, g *group, text string) (Message, error) {
	if len(text) > maxTextLen {
		return Message{}, fmt.Errorf("message too long (%d bytes, at most %d)", len(text), maxTextLen)
	}
	var m Message
	var err error
	if derr := g.do(ctx, func() { m, err = g.send(appText, []byte(text), nil) }); derr != nil {
		return Message{}, derr
	}
	return m, err
}

// Send sends a text message to a group and returns it as stored (pending).
func (e *Engine) Send(ctx context.Context, gid GroupID, text string) (Message, error) {
	g, err := e.needGroup(gid)
	if err != nil {
		return Message{}, err
	}
	return e.sendText(ctx, g, text)
}

// change queues a membership change and waits until its Commit is out.
func (e *Engine) change(ctx context.Context, g *group, c change) error {
	c.done = make(chan error, 1)
	if err := g.do(ctx, func() { g.enqueue(c) }); err != nil {
		return err
	}
	select {
	case err := <-c.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	case <-g.done:
		return errGroupClosed
	}
}

type invitee struct {
	peer p2p.PeerID
	card *Card
	kp   *mls.KeyPackage
	fp   []byte
	err  error
}

// prepareInvitees resolves names and fetches KeyPackages concurrently.
func (e *Engine) prepareInvitees(ctx context.Context, names []string) ([]*invitee, error) {
	return e.prepareInviteesFor(ctx, names, suite)
}

// prepareInviteesFor is prepareInvitees for a group of cipher suite cs.
func (e *Engine) prepareInviteesFor(ctx context.Context, names []string, cs mls.CipherSuite) ([]*invitee, error) {
	out := make([]*invitee, len(names))
	for i, n := range names {
		p, card, err := e.resolvePeerInput(n)
		if err != nil {
			return nil, err
		}
		if p == e.id.id {
			return nil, errors.New("you cannot invite yourself")
		}
		out[i] = &invitee{peer: p, card: card}
	}
	var wg sync.WaitGroup
	for _, in := range out {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in.kp, in.fp, in.err = e.fetchKeyPackageFor(ctx, in.peer, in.card, cs)
		}()
	}
	wg.Wait()
	var errs []error
	for _, in := range out {
		if in.err != nil {
			errs = append(errs, in.err)
			continue
		}
		e.learnKey(ctx, in.peer, in.fp, in.card, leafNick(&in.kp.LeafNode))
		if in.card != nil {
			e.setPetname(ctx, in.peer, in.card.Nick)
		}
	}
	return out, errors.Join(errs...)
}

func (e *Engine) create(ctx context.Context, args []string) (Result, error) {
	args, pq := parsePQFlag(args)
	if len(args) == 0 {
		return Result{}, errors.New("usage: /create NAME [CONTACT…] [--pq]")
	}
	name, members := args[0], args[1:]
	if name == "" || len(name) > 64 {
		return Result{}, errors.New("group name must be 1 to 64 bytes")
	}
	cs := suite
	if pq {
		cs = pqSuite
	}
	if !slices.Contains(e.suites(), cs) {
		return Result{}, fmt.Errorf("this client does not offer %s", suiteName(cs))
	}
	invitees, err := e.prepareInviteesFor(ctx, members, cs)
	if err != nil {
		return Result{}, err
	}
	gid := make([]byte, 16)
	if _, err := rand.Read(gid); err != nil {
		return Result{}, err
	}
	exts, err := groupExtensions(nil, groupSettings{Name: name})
	if err != nil {
		return Result{}, err
	}
	leafExt, err := profileExtension(e.nick())
	if err != nil {
		return Result{}, err
	}
	opts := append([]mls.Option{mls.WithGroupExtensions(exts), mls.WithCapabilities(e.capabilities()), mls.WithLeafExtensions(leafExt)}, e.mlsOptions()...)
	st, err := mls.CreateGroup(cs, gid, e.id.sigPriv, e.id.cred, opts...)
	if err != nil {
		return Result{}, err
	}
	meta, _ := json.Marshal(groupMeta{LastPath: e.now().Unix()})
	row := store.Group{ID: gid, Name: name, Meta: meta, CreatedAt: e.now(), UpdatedAt: e.now()}
	state, err := st.MarshalState()
	if err != nil {
		return Result{}, err
	}
	g := e.newGroup(row, st, nil)
	line := g.systemLine("you created %s", name)
	if _, err := e.db.CommitEpoch(ctx, store.EpochTransition{GroupID: gid, Epoch: st.Epoch(), State: state, Group: &row, Messages: []store.Message{line}}); err != nil {
		return Result{}, err
	}
	g.start()
	g.post(func() {
		g.unpark() // a new group has nothing to catch up on
		g.emitRows([]store.Message{line}, nil)
		g.refreshMembers(true)
	})
	res := Result{Text: "created " + name, Group: g.gid}
	if pq {
		res.Text += " (" + suiteName(cs) + ")"
	}
	if len(invitees) == 0 {
		return res, nil
	}
	// All initial members in one Commit with one Welcome.
	dones := make([]chan error, len(invitees))
	err = g.do(ctx, func() {
		for i, in := range invitees {
			dones[i] = make(chan error, 1)
			g.intents.queue = append(g.intents.queue, change{kind: changeAdd, kp: in.kp, peer: in.peer, done: dones[i]})
		}
		g.flush()
	})
	if err != nil {
		return res, err
	}
	var names []string
	for i, d := range dones {
		if err := <-d; err != nil {
			return res, err
		}
		names = append(names, e.displayName(invitees[i].peer, ""))
	}
	res.Text += " with " + strings.Join(names, ", ")
	return res, nil
}

func (e *Engine) invite(ctx context.Context, g *group, names []string) (Result, error) {
	if g.view.snapshot().Direct {
		return Result{}, ErrDirectInvite
	}
	invitees, err := e.prepareInviteesFor(ctx, names, g.groupSuite())
	if err != nil {
		return Result{}, err
	}
	changes := make([]change, len(invitees))
	for i, in := range invitees {
		changes[i] = change{kind: changeAdd, kp: in.kp, peer: in.peer}
	}
	if err := g.submitChanges(ctx, changes); err != nil {
		return Result{}, err
	}
	var invited []string
	for _, in := range invitees {
		invited = append(invited, e.displayName(in.peer, ""))
	}
	return Result{Text: "invited " + strings.Join(invited, ", ") + " to " + g.view.snapshot().Name}, nil
}

func (e *Engine) kick(ctx context.Context, g *group, names []string) (Result, error) {
	if g.view.snapshot().Direct {
		return Result{}, ErrDirectKick
	}
	var targets []memberInfo
	for _, n := range names {
		in, err := g.findMember(n)
		if err != nil {
			return Result{}, err
		}
		if in.peer == e.id.id {
			return Result{}, errors.New("use /leave to leave the group")
		}
		targets = append(targets, in)
	}
	changes := make([]change, len(targets))
	for i, in := range targets {
		changes[i] = change{kind: changeRemove, peer: in.peer}
	}
	if err := g.submitChanges(ctx, changes); err != nil {
		return Result{}, err
	}
	var kicked []string
	for _, in := range targets {
		kicked = append(kicked, e.displayName(in.peer, in.hint))
	}
	return Result{Text: "removed " + strings.Join(kicked, ", ") + " from " + g.view.snapshot().Name}, nil
}

func (e *Engine) leave(ctx context.Context, g *group) (Result, error) {
	var res Result
	var ferr error
	err := g.do(ctx, func() {
		if g.closed {
			ferr = errNotMember
			return
		}
		if g.st.MemberCount() == 1 {
			// Alone: nobody to commit a removal; the group just ends here.
			g.closed, g.offline = true, true
			g.meta.Leaving = false
			row := g.row
			row.Left = true
			g.saveMetaInto(&row)
			if err := e.db.UpdateGroup(g.ctx, row); err == nil {
				g.row = row
			}
			if g.topic != nil {
				_ = g.topic.Close()
			}
			g.refreshInfos()
			g.emitGroup()
			res.Text = "you left " + g.settings.Name
			return
		}
		g.meta.Leaving = true
		row := g.row
		g.saveMetaInto(&row)
		if err := e.db.UpdateGroup(g.ctx, row); err == nil {
			g.row = row
		}
		g.proposeLeave()
		res.Text = "leaving " + g.settings.Name + ": a member will commit your removal"
	})
	if err != nil {
		return Result{}, err
	}
	return res, ferr
}

func membersText(ms []Member) string {
	var sb strings.Builder
	for _, m := range ms {
		mark := " "
		switch {
		case m.KeyChanged:
			mark = "!"
		case m.Verified:
			mark = "✓"
		}
		note := ""
		switch {
		case m.Self:
			note = " (you)"
		case m.KeyChanged:
			note = "  KEY CHANGED: verify again"
		case m.Verified:
			note = "  verified"
		}
		fmt.Fprintf(&sb, "%s %-16s %s%s\n", mark, m.Nick, m.Fingerprint, note)
	}
	return strings.TrimRight(sb.String(), "\n")
}

func (e *Engine) verify(ctx context.Context, g *group, name string, confirm bool) (Result, error) {
	in, err := g.findMember(name)
	if err != nil {
		return Result{}, err
	}
	if in.peer == e.id.id {
		return Result{}, errors.New("that is you")
	}
	who := e.displayName(in.peer, in.hint)
	e.mu.Lock()
	ci := e.contacts[in.peer]
	e.mu.Unlock()
	if ci == nil {
		e.learnKey(ctx, in.peer, in.fp, nil, in.hint)
		e.mu.Lock()
		ci = e.contacts[in.peer]
		e.mu.Unlock()
	}
	// The number is made of the contact's current key (what their own
	// canopy shows them) and ours.
	fp := in.fp
	if ci != nil && len(ci.fp) > 0 {
		fp = ci.fp
	}
	number := SafetyNumber(e.id.fp, fp)
	if !confirm {
		var sb strings.Builder
		if ci != nil && ci.verif == store.KeyChanged {
			fmt.Fprintf(&sb, "WARNING: %s's key changed since you last saw it.\n", who)
		}
		fmt.Fprintf(&sb, "Safety number with %s:\n  %s\n", who, number)
		if !bytes.Equal(fp, in.fp) {
			fmt.Fprintf(&sb, "WARNING: the key of %s in this group (%s) is not the key you know for them: this member may not be who the name says.\n", who, FormatFingerprint(in.fp))
		}
		fmt.Fprintf(&sb, "Compare it with %s in person or on a call. If it matches, type /verify %s confirm", who, name)
		return Result{Text: sb.String()}, nil
	}
	if err := e.db.SetVerification(ctx, in.peer.String(), fp, store.Verified, e.now()); err != nil {
		return Result{}, err
	}
	if c, err := e.db.Contact(ctx, in.peer.String()); err == nil {
		e.mu.Lock()
		e.contacts[in.peer] = contactFromRow(c)
		e.mu.Unlock()
	}
	e.refreshMembersOf(in.peer)
	return Result{Text: fmt.Sprintf("%s is verified (safety number %s)", who, number)}, nil
}

func (e *Engine) setNick(ctx context.Context, nick string) (Result, error) {
	if err := validNick(nick); err != nil {
		return Result{}, err
	}
	e.mu.Lock()
	e.selfNick = nick
	gs := make([]*group, 0, len(e.groups))
	for _, g := range e.groups {
		gs = append(gs, g)
	}
	e.mu.Unlock()
	if err := e.saveSelf(ctx); err != nil {
		return Result{}, err
	}
	e.writeCardFile()
	for _, g := range gs {
		g.post(func() {
			g.maybePublishCard()
			g.refreshMembers(true)
		})
	}
	e.goBackground(func(ctx context.Context) {
		// New KeyPackages carry the new nick.
		_ = e.fillKeyPackages(ctx)
	})
	return Result{Text: "you are now " + nick}, nil
}

func (e *Engine) search(ctx context.Context, gid GroupID, text string) (Result, error) {
	q := store.SearchQuery{Text: text, Limit: 20}
	var g *group
	if gid != "" {
		if g = e.group(gid); g != nil {
			q.GroupID = g.id
		}
	}
	hits, err := e.db.Search(ctx, q)
	if err != nil {
		return Result{}, err
	}
	if len(hits) == 0 {
		return Result{Text: "no messages match " + strconv.Quote(text)}, nil
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, "%d message(s) match %q:", len(hits), text)
	for _, h := range hits {
		hg := e.groupByRaw(h.GroupID)
		gname := ""
		sender := ""
		if hg != nil {
			gname = hg.view.snapshot().Name
			m := e.messageFromRow(hg, h.Message)
			sender = m.Sender
			if m.Kind == KindSystem {
				sender = "*"
			}
		}
		fmt.Fprintf(&sb, "\n%s  #%s  %s: %s", h.SentAt.Local().Format("2006-01-02 15:04"), gname, sender, h.Text)
	}
	return Result{Text: sb.String()}, nil
}

func (e *Engine) groupByRaw(id []byte) *group {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.groups[string(id)]
}

func (e *Engine) retention(ctx context.Context, g *group, arg string) (Result, error) {
	d, err := parseRetention(arg)
	if err != nil {
		return Result{}, err
	}
	var s groupSettings
	if err := g.do(ctx, func() { s = g.settings }); err != nil {
		return Result{}, err
	}
	s.Retention = d
	if s.Direct {
		s.Name = "" // each side names it after the other (direct.go)
	}
	if err := e.change(ctx, g, change{kind: changeSettings, settings: s}); err != nil {
		return Result{}, err
	}
	if d == 0 {
		return Result{Text: "disappearing messages are off in " + s.Name}, nil
	}
	return Result{Text: fmt.Sprintf("messages in %s now disappear after %s", s.Name, fmtDuration(d))}, nil
}

func parseRetention(s string) (time.Duration, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	if s == "off" || s == "0" {
		return 0, nil
	}
	var d time.Duration
	var err error
	if n, ok := strings.CutSuffix(s, "d"); ok {
		var days int
		days, err = strconv.Atoi(n)
		d = time.Duration(days) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < time.Minute || d > 10*365*24*time.Hour {
		return 0, errors.New("usage: /retention DURATION|off (e.g. 7d, 12h, 30m)")
	}
	return d.Truncate(time.Second), nil
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
