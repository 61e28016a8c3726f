package chat

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image"
	_ "image/gif" // image.DecodeConfig learns the formats terminals show
	_ "image/jpeg"
	_ "image/png"
	"io"
	"mime"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/canopy-chat/canopy/blob"
	"github.com/canopy-chat/canopy/internal/atomicfile"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
)

// File transfers.
//
// /send PATH seals the file into the profile's blob store (package blob:
// chunked AEAD under a fresh key) and sends a file message whose body is the
// blob announcement (name, size, media type, SHA-256, key). The message
// travels in MLS like any message; the ciphertext is fetched over
// /canopy/blob/1 from the sender, from members who already have it and from
// relays, tried in that order, with every chunk authenticated on arrival.
//
// Choices where the issue is silent:
//   - Received files go to Config.DownloadDir, default <profile>/downloads
//     (not the desktop's XDG download folder: that one is shared by every
//     profile and program, and a profile's files should stay with it).
//   - A group fetches files up to its auto-fetch limit by itself (default
//     DefaultAutoFetch, `/transfers limit SIZE|off` per group, kept in the
//     blob store's limits.json); larger files wait for `/transfers get N`.
//   - The key lives only in the message row. When retention (or deletion)
//     removes the message, the periodic retention pass removes the
//     ciphertext and partial download of every file whose message is gone;
//     files already saved to the downloads folder are the user's and stay.
//   - Anyone who knows a file's id may fetch its ciphertext: the id is
//     derived one-way from the key, so only holders of the announcement (or
//     of the ciphertext) know it, and the ciphertext is useless without the
//     key. The sender uploads the ciphertext to its relays, which serve it
//     until it expires there (relayupload.go): a file is available while a
//     member who has it is online or a relay keeps it.

// appFile is the wire kind of a file message: body = blob announcement.
const appFile appKind = 8

// KindFile is a file message; Message.File describes the file.
const KindFile Kind = "file"

// DefaultAutoFetch is the size up to which files are fetched without being
// asked, unless a group sets its own limit.
const DefaultAutoFetch = 25 << 20

// maxConcurrentFetches bounds downloads running at once (each holds one
// chunk buffer and one stream).
const maxConcurrentFetches = 3

// FileInfo describes a file of a file message.
type FileInfo struct {
	ID        string // content id (hex)
	Name      string // as announced; saved under blob.SafeName of it
	Size      int64
	MediaType string
	Width     int // image dimensions, 0 when unknown
	Height    int
}

// TransferStatus is where a transfer stands.
type TransferStatus int

const (
	// TransferOffered: larger than the group's auto-fetch limit; waits
	// for /transfers get.
	TransferOffered TransferStatus = iota
	TransferQueued
	TransferFetching
	TransferPaused
	TransferDone
	TransferFailed
	TransferCanceled
	// TransferSharing: one's own file, served to members who ask.
	TransferSharing
)

func (s TransferStatus) String() string {
	switch s {
	case TransferOffered:
		return "offered"
	case TransferQueued:
		return "queued"
	case TransferFetching:
		return "fetching"
	case TransferPaused:
		return "paused"
	case TransferDone:
		return "done"
	case TransferFailed:
		return "failed"
	case TransferCanceled:
		return "canceled"
	case TransferSharing:
		return "sharing"
	}
	return "unknown"
}

func parseTransferStatus(s string) (TransferStatus, bool) {
	for st := TransferOffered; st <= TransferSharing; st++ {
		if st.String() == s {
			return st, true
		}
	}
	return 0, false
}

// Transfer is one file's transfer as front ends show it.
type Transfer struct {
	Group   GroupID
	Message MessageID
	File    FileInfo
	Own     bool
	Status  TransferStatus
	// Done and Total count verified ciphertext bytes.
	Done, Total int64
	// Path is where a received file was saved (TransferDone).
	Path string
	// Err says why a transfer failed.
	Err string
}

// TransferEvent: a transfer started, progressed, or changed status.
// Progress is reported at most every transferEventEvery per transfer.
type TransferEvent struct{ Transfer Transfer }

func (TransferEvent) event() {}

const transferEventEvery = 250 * time.Millisecond

// transferNote is what the blob store keeps beside a file (blob.SetNote)
// so that transfers survive a restart. It holds no key.
type transferNote struct {
	Group  string `json:"group"` // hex group id
	Msg    string `json:"msg"`   // hex message id
	Status string `json:"status"`
	Path   string `json:"path,omitempty"`
	Upload bool   `json:"upload,omitempty"` // own file: relay uploads not done
}

// transfers runs an engine's file transfers.
type transfers struct {
	e     *Engine
	store *blob.Store
	dir   string // downloads folder
	slots chan struct{}

	mu     sync.Mutex
	list   []*xfer // in order of arrival
	byID   map[blob.ID]*xfer
	limits map[GroupID]int64 // per-group auto-fetch limits; -1: off
	auto   map[GroupID]*autoBudget
}

// autoBudget counts what a group made this profile fetch unasked in the
// current window: a member who announces many files under the limit fills
// the disk only up to autoBudgetFactor × the limit a day; beyond that files
// wait for /transfers get like large ones.
type autoBudget struct {
	since time.Time
	bytes int64
}

const (
	autoBudgetFactor = 8
	autoBudgetWindow = 24 * time.Hour
)

// takeAuto reports whether a file of size may be fetched unasked in g,
// and counts it if so.
func (x *transfers) takeAuto(g GroupID, size int64) bool {
	lim := x.autoLimit(g)
	if lim < 0 || size > lim {
		return false
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	b := x.auto[g]
	now := time.Now()
	if b == nil || now.Sub(b.since) > autoBudgetWindow {
		b = &autoBudget{since: now}
		x.auto[g] = b
	}
	if b.bytes+size > autoBudgetFactor*max(lim, 1<<20) {
		return false
	}
	b.bytes += size
	return true
}

type xfer struct {
	id       blob.ID
	ann      *blob.Announcement
	sender   p2p.PeerID
	t        Transfer
	cancel   context.CancelFunc
	lastEmit time.Time
	// liars served bytes of this file that did not authenticate: they are
	// not asked for it again (until a restart).
	liars map[p2p.PeerID]bool
	// upload: an own file whose uploads to the relays have not run to
	// the end (relayupload.go); saved in the note, resumed at start.
	upload bool
}

func newTransfers(e *Engine, blobDir, downloadDir string) (*transfers, error) {
	s, err := blob.OpenStore(blobDir)
	if err != nil {
		return nil, err
	}
	x := &transfers{e: e, store: s, dir: downloadDir, slots: make(chan struct{}, maxConcurrentFetches),
		byID: map[blob.ID]*xfer{}, limits: map[GroupID]int64{}, auto: map[GroupID]*autoBudget{}}
	if b, err := os.ReadFile(x.limitsPath()); err == nil {
		_ = json.Unmarshal(b, &x.limits)
	}
	return x, nil
}

func (x *transfers) limitsPath() string { return filepath.Join(x.store.Dir(), "limits.json") }

// autoLimit is the size up to which a group's files are fetched unasked.
func (x *transfers) autoLimit(g GroupID) int64 {
	x.mu.Lock()
	defer x.mu.Unlock()
	if l, ok := x.limits[g]; ok {
		return l
	}
	if x.e.cfg.AutoFetchLimit != 0 {
		return x.e.cfg.AutoFetchLimit
	}
	return DefaultAutoFetch
}

func (x *transfers) setLimit(g GroupID, l int64) error {
	x.mu.Lock()
	x.limits[g] = l
	b, _ := json.Marshal(x.limits)
	x.mu.Unlock()
	return atomicfile.Write(x.limitsPath(), b, 0o600)
}

// fileInfo describes an announcement.
func fileInfo(a *blob.Announcement) FileInfo {
	return FileInfo{ID: a.ID().String(), Name: a.Name, Size: int64(a.Size), MediaType: a.MediaType, Width: int(a.Width), Height: int(a.Height)}
}

// fileText is a file message's searchable text.
func fileText(a *blob.Announcement) string {
	s := fmt.Sprintf("[file] %s (%s", a.Name, FormatBytes(int64(a.Size)))
	if a.Width > 0 && a.Height > 0 {
		s += fmt.Sprintf(", %d×%d", a.Width, a.Height)
	}
	return s + ")"
}

// fileOfRow returns the file a stored file message announces.
func fileOfRow(r store.Message) *FileInfo {
	if appKind(r.Kind) != appFile {
		return nil
	}
	a, err := blob.ParseAnnouncement(r.Payload)
	if err != nil {
		return nil
	}
	fi := fileInfo(a)
	return &fi
}

// emit reports a transfer; progress at most every transferEventEvery.
func (x *transfers) emit(t *xfer, progress bool) {
	x.mu.Lock()
	now := time.Now()
	if progress && now.Sub(t.lastEmit) < transferEventEvery {
		x.mu.Unlock()
		return
	}
	t.lastEmit = now
	tr := t.t
	x.mu.Unlock()
	x.e.emit(TransferEvent{Transfer: tr})
}

func (x *transfers) saveNote(t *xfer) {
	x.mu.Lock()
	n := transferNote{Group: string(t.t.Group), Msg: string(t.t.Message), Status: t.t.Status.String(), Path: t.t.Path, Upload: t.upload}
	x.mu.Unlock()
	b, _ := json.Marshal(n)
	if err := x.store.SetNote(t.id, b); err != nil {
		x.e.log.Warn("saving transfer state", "err", err)
	}
}

// setStatus changes a transfer's status, persists and reports it.
func (x *transfers) setStatus(t *xfer, s TransferStatus, errText string) {
	x.mu.Lock()
	t.t.Status, t.t.Err = s, errText
	x.mu.Unlock()
	x.saveNote(t)
	x.emit(t, false)
}

// List returns the transfers, oldest first.
func (x *transfers) List() []Transfer {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := make([]Transfer, len(x.list))
	for i, t := range x.list {
		out[i] = t.t
	}
	return out
}

// add registers a transfer (once per file).
func (x *transfers) add(t *xfer) (*xfer, bool) {
	x.mu.Lock()
	defer x.mu.Unlock()
	if old := x.byID[t.id]; old != nil {
		return old, false
	}
	x.byID[t.id] = t
	x.list = append(x.list, t)
	return t, true
}

// ---- sending ----

// CleanPath undoes what terminals do to a dropped or pasted path: quotes,
// file:// URLs, backslash-escaped spaces, a leading ~.
func CleanPath(p string) string {
	p = strings.TrimSpace(p)
	if len(p) >= 2 && (p[0] == '\'' || p[0] == '"') && p[len(p)-1] == p[0] {
		p = p[1 : len(p)-1]
	}
	if rest, ok := strings.CutPrefix(p, "file://"); ok {
		p = rest
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
	} else if !strings.Contains(p, `\\`) {
		p = strings.NewReplacer(`\ `, " ", `\(`, "(", `\)`, ")", `\'`, "'").Replace(p)
	}
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			p = filepath.Join(home, p[1:])
		}
	}
	return p
}

// seal builds the announcement of the file at path, sealing the file into
// the store on the way.
func (x *transfers) seal(path string) (*blob.Announcement, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	if st.Size() > blob.MaxSize {
		return nil, fmt.Errorf("%s is %s; files of at most %s can be sent", path, FormatBytes(st.Size()), FormatBytes(blob.MaxSize))
	}
	name := filepath.Base(path)
	if len(name) > blob.MaxNameLen || !utf8.ValidString(name) {
		name = blob.SafeName(name) // at most 200 bytes of UTF-8
	}
	a := &blob.Announcement{Name: name, Size: uint64(st.Size())}
	head := make([]byte, 512)
	n, _ := io.ReadFull(f, head)
	a.MediaType = mime.TypeByExtension(strings.ToLower(filepath.Ext(name)))
	if a.MediaType == "" || len(a.MediaType) > blob.MaxMediaTypeLen {
		a.MediaType = http.DetectContentType(head[:n])
	}
	if strings.HasPrefix(a.MediaType, "image/") {
		if _, err := f.Seek(0, io.SeekStart); err == nil {
			if cfg, _, err := image.DecodeConfig(io.LimitReader(f, 1<<20)); err == nil && cfg.Width > 0 && cfg.Height > 0 {
				a.Width, a.Height = uint32(cfg.Width), uint32(cfg.Height)
			}
		}
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, err
	}
	if a.Key, err = blob.NewKey(); err != nil {
		return nil, err
	}
	if a.SHA256, err = x.store.Put(f, a.Key, a.Size); err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return a, nil
}

// sendFile is /send PATH.
func (e *Engine) sendFile(ctx context.Context, g *group, arg string) (Result, error) {
	x := e.transfers()
	if x == nil {
		return Result{}, errors.New("file transfer needs a profile directory")
	}
	path := CleanPath(arg)
	if path == "" {
		return Result{}, errors.New("usage: /send PATH")
	}
	a, err := x.seal(path)
	if err != nil {
		return Result{}, err
	}
	body, err := a.Marshal()
	if err != nil {
		_ = x.store.Remove(a.ID())
		return Result{}, err
	}
	var m Message
	if derr := g.do(ctx, func() { m, err = g.send(appFile, body, nil) }); derr != nil {
		err = derr
	}
	if err != nil {
		_ = x.store.Remove(a.ID())
		return Result{}, err
	}
	t, _ := x.add(&xfer{id: a.ID(), ann: a, sender: e.id.id, upload: len(e.relays) > 0, t: Transfer{
		Group: g.gid, Message: m.ID, File: fileInfo(a), Own: true, Status: TransferSharing,
		Done: a.CiphertextSize(), Total: a.CiphertextSize(),
	}})
	x.saveNote(t)
	x.emit(t, false)
	x.uploadToRelays(t)
	return Result{Text: fmt.Sprintf("sent %s (%s)", a.Name, FormatBytes(int64(a.Size)))}, nil
}

// ---- receiving ----

// announced is called (group loop) for a file message that arrived.
func (x *transfers) announced(g *group, row store.Message, sender p2p.PeerID) {
	a, err := blob.ParseAnnouncement(row.Payload)
	if err != nil {
		return
	}
	t, isNew := x.add(&xfer{id: a.ID(), ann: a, sender: sender, t: Transfer{
		Group: g.gid, Message: MessageID(hex.EncodeToString(row.ID)), File: fileInfo(a),
		Own: sender == x.e.id.id, Total: a.CiphertextSize(),
	}})
	if !isNew {
		return
	}
	if t.t.Own {
		x.mu.Lock()
		t.t.Done = t.t.Total
		x.mu.Unlock()
		x.setStatus(t, TransferSharing, "")
		return
	}
	if x.takeAuto(g.gid, int64(a.Size)) {
		x.start(t)
		return
	}
	x.setStatus(t, TransferOffered, "")
}

// start runs a download in the background (queued behind the running ones).
func (x *transfers) start(t *xfer) {
	x.mu.Lock()
	if t.cancel != nil {
		x.mu.Unlock()
		return
	}
	ctx, cancel := context.WithCancel(x.e.ctx)
	t.cancel = cancel
	x.mu.Unlock()
	x.setStatus(t, TransferQueued, "")
	x.e.goBackground(func(context.Context) {
		defer cancel()
		x.run(ctx, t)
		x.mu.Lock()
		t.cancel = nil
		x.mu.Unlock()
	})
}

// peersFor lists whom to ask for a file: the sender, the group's other
// members, then the relays.
func (x *transfers) peersFor(t *xfer) []string {
	var out []string
	seen := map[p2p.PeerID]bool{x.e.id.id: true}
	x.mu.Lock()
	for p := range t.liars {
		seen[p] = true
	}
	x.mu.Unlock()
	addp := func(p p2p.PeerID) {
		if p != "" && !seen[p] {
			seen[p] = true
			out = append(out, string(p))
		}
	}
	addp(t.sender)
	if g := x.e.group(t.t.Group); g != nil {
		for _, p := range g.view.memberPeers() {
			addp(p)
		}
	}
	for _, r := range x.e.relays {
		addp(r.ID)
	}
	return out
}

// fetchRange asks one peer over /canopy/blob/1.
func (x *transfers) fetchRange(ctx context.Context, p string, id blob.ID, off, n int64, read func(io.Reader, int64) error) error {
	node := x.e.node
	if node == nil {
		return p2p.ErrClosed
	}
	return node.FetchBlob(ctx, p2p.PeerID(p), id, off, n, read)
}

// maxFetchRetries bounds the automatic retries of a download no peer
// could finish (the holders offline); the waits double from 1 s up to a
// minute, about four minutes in all. /transfers resume starts over.
const maxFetchRetries = 8

func (x *transfers) run(ctx context.Context, t *xfer) {
	for attempt := 0; ; attempt++ {
		err := x.fetch(ctx, t)
		if ctx.Err() != nil {
			return // paused, canceled or shutting down: the caller set the status
		}
		var fe *blob.FetchError
		if errors.As(err, &fe) {
			x.mu.Lock()
			for p, why := range fe.Reasons {
				if errors.Is(why, blob.ErrLyingPeer) {
					if t.liars == nil {
						t.liars = map[p2p.PeerID]bool{}
					}
					t.liars[p2p.PeerID(p)] = true
					x.e.log.Warn("a peer served bad data for a file and is not asked for it again", "peer", p2p.PeerID(p), "file", t.id.String()[:12])
				}
			}
			x.mu.Unlock()
		}
		if fe != nil && attempt < maxFetchRetries {
			wait := min(time.Second<<attempt, time.Minute)
			x.setStatus(t, TransferFailed, fmt.Sprintf("%s; trying again in %s", transferReason(err), wait))
			select {
			case <-time.After(wait):
				continue
			case <-ctx.Done():
				return
			}
		}
		if err != nil {
			x.e.log.Warn("file transfer failed", "file", t.id.String()[:12], "err", err)
			x.setStatus(t, TransferFailed, transferReason(err))
			x.e.notice(t.t.Group, NoticeWarning, "could not fetch %s: %s", t.ann.Name, transferReason(err))
			return
		}
		break
	}
	path, err := x.store.Export(t.ann, x.dir)
	if err != nil {
		x.setStatus(t, TransferFailed, transferReason(err))
		x.e.notice(t.t.Group, NoticeWarning, "could not save %s: %s", t.ann.Name, transferReason(err))
		return
	}
	x.mu.Lock()
	t.t.Path, t.t.Done = path, t.t.Total
	if t.t.File.Width == 0 && strings.HasPrefix(t.t.File.MediaType, "image/") {
		t.t.File.Width, t.t.File.Height = imageSize(path)
	}
	x.mu.Unlock()
	x.setStatus(t, TransferDone, "")
}

// fetch runs one download attempt in one of the transfer slots.
func (x *transfers) fetch(ctx context.Context, t *xfer) error {
	select {
	case x.slots <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-x.slots }()
	x.setStatus(t, TransferFetching, "")
	first := true
	return x.store.Download(ctx, blob.Fetch{
		Ann: t.ann, Peers: x.peersFor(t), Range: x.fetchRange,
		Progress: func(done, total int64) {
			x.mu.Lock()
			t.t.Done, t.t.Total = done, total
			x.mu.Unlock()
			// The first call reports what a resumed download kept: always
			// shown.
			x.emit(t, !first)
			first = false
		},
		Refetched: func(n int64) {
			x.e.log.Info("partial download resumed; unverified tail dropped", "file", t.id.String()[:12], "bytes", n)
		},
	})
}

// transferReason says in plain words why a transfer failed.
func transferReason(err error) string {
	var fe *blob.FetchError
	switch {
	case errors.As(err, &fe):
		kept := ""
		if fe.Done > 0 {
			kept = fmt.Sprintf(" (%s kept; /transfers resume tries again)", FormatBytes(fe.Done))
		}
		liars := 0
		for _, r := range fe.Reasons {
			if errors.Is(r, blob.ErrLyingPeer) {
				liars++
			}
		}
		if liars > 0 {
			return fmt.Sprintf("no peer could serve the rest; %d peer(s) served bad data and were dropped%s", liars, kept)
		}
		if len(fe.Reasons) == 0 {
			return "no peer that has the file is known" + kept
		}
		return "no peer that has the file is reachable" + kept
	case errors.Is(err, blob.ErrHash):
		return "the content does not match the announced hash (a member sent other content); nothing was saved"
	}
	return err.Error()
}

func imageSize(path string) (int, int) {
	f, err := os.Open(path)
	if err != nil {
		return 0, 0
	}
	defer f.Close()
	cfg, _, err := image.DecodeConfig(io.LimitReader(f, 1<<20))
	if err != nil {
		return 0, 0
	}
	return cfg.Width, cfg.Height
}

// ---- serving ----

// serveBlob is the /canopy/blob/1 handler: stored ciphertext, complete or
// the verified part of a running download.
func (e *Engine) serveBlob(_ context.Context, _ p2p.PeerID, id [p2p.BlobIDLen]byte) (p2p.BlobReader, error) {
	x := e.transfers()
	if x == nil {
		return nil, p2p.ErrNotFound
	}
	r, err := x.store.Open(blob.ID(id))
	if errors.Is(err, blob.ErrNotFound) {
		return nil, p2p.ErrNotFound
	}
	return r, err
}

// ---- restart and retention ----

// resume restores transfers from the notes in the blob store: finished
// ones are listed, unfinished downloads continue, and files whose message
// is gone (retention) are removed.
func (x *transfers) resume(ctx context.Context) {
	// What a crash left: temporary files, and ciphertext sealed for a
	// message that was never sent (no note).
	x.store.RemoveTemporary()
	blob.RemoveTemporary(x.dir)
	notes, err := x.store.Notes()
	if err != nil {
		x.e.log.Warn("reading transfer state", "err", err)
		return
	}
	if ids, err := x.store.IDs(); err == nil {
		for _, id := range ids {
			if _, ok := notes[id]; !ok {
				_ = x.store.Remove(id)
			}
		}
	}
	type item struct {
		t   *xfer
		seq int64
	}
	var items []item
	for id, b := range notes {
		var n transferNote
		if json.Unmarshal(b, &n) != nil {
			continue
		}
		gid, err1 := hex.DecodeString(n.Group)
		mid, err2 := hex.DecodeString(n.Msg)
		if err1 != nil || err2 != nil {
			continue
		}
		row, err := x.e.db.Message(ctx, gid, mid)
		if errors.Is(err, store.ErrNotFound) {
			_ = x.store.Remove(id)
			continue
		}
		if err != nil {
			continue
		}
		a, err := blob.ParseAnnouncement(row.Payload)
		if err != nil || a.ID() != id {
			_ = x.store.Remove(id)
			continue
		}
		st, _ := parseTransferStatus(n.Status)
		sender := p2p.PeerID(row.Sender)
		t := &xfer{id: id, ann: a, sender: sender, upload: n.Upload && sender == x.e.id.id, t: Transfer{
			Group: GroupID(n.Group), Message: MessageID(n.Msg), File: fileInfo(a), Own: sender == x.e.id.id,
			Status: st, Total: a.CiphertextSize(), Done: x.store.Progress(id, a.Size), Path: n.Path,
		}}
		items = append(items, item{t, row.Seq})
	}
	slices.SortFunc(items, func(a, b item) int { return int(a.seq - b.seq) })
	for _, it := range items {
		t, _ := x.add(it.t)
		if t.upload {
			x.uploadToRelays(t)
		}
		switch t.t.Status {
		case TransferQueued, TransferFetching, TransferFailed:
			x.start(t)
		default:
			x.emit(t, false)
		}
	}
}

// collect removes stored files whose announcing message is gone (run after
// retention deleted messages): with the key gone, the ciphertext is of no
// use to anyone with a right to it.
func (x *transfers) collect(ctx context.Context) {
	x.mu.Lock()
	list := slices.Clone(x.list)
	x.mu.Unlock()
	for _, t := range list {
		gid, _ := hex.DecodeString(string(t.t.Group))
		mid, _ := hex.DecodeString(string(t.t.Message))
		if _, err := x.e.db.Message(ctx, gid, mid); !errors.Is(err, store.ErrNotFound) {
			continue
		}
		x.mu.Lock()
		if t.cancel != nil {
			t.cancel()
		}
		delete(x.byID, t.id)
		x.list = slices.DeleteFunc(x.list, func(o *xfer) bool { return o == t })
		x.mu.Unlock()
		if err := x.store.Remove(t.id); err != nil {
			x.e.log.Warn("removing an expired file", "err", err)
		}
		x.e.log.Info("file of a deleted message removed", "file", t.id.String()[:12])
	}
}

// setFileRow fills a file message's row from its announcement: the
// announcement (with the key) as payload, a searchable description as
// text. It reports false for a body that is no valid announcement.
func setFileRow(row *store.Message, body []byte) bool {
	a, err := blob.ParseAnnouncement(body)
	if err != nil {
		return false
	}
	row.Text, row.Payload = fileText(a), body
	return true
}
