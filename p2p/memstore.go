package p2p

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// In-memory implementations of TopicLog, Mailbox, KeyPackageCache and
// LeaseStore. They
// are safe for concurrent use and lose everything on restart; they serve tests
// and relays run without a database.

// MemoryTopicLog is an in-memory TopicLog.
type MemoryTopicLog struct {
	mu     sync.Mutex
	topics map[string]*memTopic
	// items and bytes count all topics together.
	items int
	bytes int64
}

type memTopic struct {
	entries []LogEntry // ascending Seq
	ids     map[MessageID]uint64
	bytes   int64
	next    uint64
}

// NewMemoryTopicLog returns an empty in-memory TopicLog.
func NewMemoryTopicLog() *MemoryTopicLog {
	return &MemoryTopicLog{topics: make(map[string]*memTopic)}
}

// Append implements TopicLog.
func (l *MemoryTopicLog) Append(ctx context.Context, topic string, e LogEntry, q LogQuota) (uint64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	if e.ID != IDOf(e.Data) {
		return 0, fmt.Errorf("%w: log entry id is not the SHA-256 of its data", ErrBadRequest)
	}
	size := int64(len(e.Data))
	if (q.PerTopic.Bytes > 0 && size > q.PerTopic.Bytes) || (q.Total.Bytes > 0 && size > q.Total.Bytes) {
		return 0, fmt.Errorf("%w: entry of %d bytes exceeds the log quota", ErrQuotaExceeded, size)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.topics[topic]
	if t == nil {
		t = &memTopic{ids: make(map[MessageID]uint64), next: 1}
		l.topics[topic] = t
	}
	if seq, ok := t.ids[e.ID]; ok {
		return seq, nil
	}
	for len(t.entries) > 0 && q.PerTopic.exceeds(len(t.entries)+1, t.bytes+size) {
		l.evictOldest(t)
	}
	for q.Total.exceeds(l.items+1, l.bytes+size) {
		var largest *memTopic
		for _, o := range l.topics {
			if len(o.entries) > 0 && (largest == nil || o.bytes > largest.bytes) {
				largest = o
			}
		}
		if largest == nil {
			break
		}
		l.evictOldest(largest)
	}
	e.Seq = t.next
	t.next++
	e.Data = append([]byte(nil), e.Data...)
	t.entries = append(t.entries, e)
	t.ids[e.ID] = e.Seq
	t.bytes += size
	l.items++
	l.bytes += size
	return e.Seq, nil
}

func (l *MemoryTopicLog) evictOldest(t *memTopic) {
	old := t.entries[0]
	t.entries[0] = LogEntry{}
	t.entries = t.entries[1:]
	t.bytes -= int64(len(old.Data))
	delete(t.ids, old.ID)
	l.items--
	l.bytes -= int64(len(old.Data))
}

// List implements TopicLog.
func (l *MemoryTopicLog) List(ctx context.Context, topic string, q LogQuery) ([]LogEntry, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if q.Limit <= 0 {
		return nil, fmt.Errorf("%w: limit must be positive", ErrBadRequest)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	t := l.topics[topic]
	if t == nil {
		return nil, nil
	}
	i := sort.Search(len(t.entries), func(i int) bool { return t.entries[i].Seq > q.After })
	var out []LogEntry
	for ; i < len(t.entries) && len(out) < q.Limit; i++ {
		if t.entries[i].Epoch >= q.MinEpoch {
			out = append(out, t.entries[i])
		}
	}
	return out, nil
}

// Prune implements TopicLog.
func (l *MemoryTopicLog) Prune(ctx context.Context, before time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, t := range l.topics {
		kept := t.entries[:0]
		for _, e := range t.entries {
			if e.Received.Before(before) {
				t.bytes -= int64(len(e.Data))
				delete(t.ids, e.ID)
				l.items--
				l.bytes -= int64(len(e.Data))
				continue
			}
			kept = append(kept, e)
		}
		clear(t.entries[len(kept):])
		t.entries = kept
		if len(t.entries) == 0 {
			delete(l.topics, name)
		}
	}
	return nil
}

// MemoryMailbox is an in-memory Mailbox.
type MemoryMailbox struct {
	mu    sync.Mutex
	boxes map[peer.ID][]MailItem // oldest first
	// items and bytes count all mailboxes together, senders per sender.
	items   int
	bytes   int64
	senders map[peer.ID]*mailUsage
}

type mailUsage struct {
	items int
	bytes int64
}

// NewMemoryMailbox returns an empty in-memory Mailbox.
func NewMemoryMailbox() *MemoryMailbox {
	return &MemoryMailbox{boxes: make(map[peer.ID][]MailItem), senders: make(map[peer.ID]*mailUsage)}
}

// Deposit implements Mailbox.
func (m *MemoryMailbox) Deposit(ctx context.Context, item MailItem, q MailQuota) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if item.ID != IDOf(item.Data) {
		return fmt.Errorf("%w: mail id is not the SHA-256 of its data", ErrBadRequest)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	box := m.boxes[item.Recipient]
	var n, ns int
	var bytes, bytesS int64
	for _, it := range box {
		if it.ID == item.ID {
			return nil
		}
		n++
		bytes += int64(len(it.Data))
		if it.From == item.From {
			ns++
			bytesS += int64(len(it.Data))
		}
	}
	size := int64(len(item.Data))
	if q.PerRecipient.exceeds(n+1, bytes+size) {
		return fmt.Errorf("%w: mailbox of recipient is full", ErrQuotaExceeded)
	}
	if q.PerSender.exceeds(ns+1, bytesS+size) {
		return fmt.Errorf("%w: sender's share of the mailbox is full", ErrQuotaExceeded)
	}
	su := m.senders[item.From]
	if su == nil {
		su = &mailUsage{}
	}
	if q.SenderTotal.exceeds(su.items+1, su.bytes+size) {
		return fmt.Errorf("%w: sender has too much mail waiting", ErrQuotaExceeded)
	}
	if q.Total.exceeds(m.items+1, m.bytes+size) {
		return fmt.Errorf("%w: the relay's mailboxes are full", ErrQuotaExceeded)
	}
	item.Data = append([]byte(nil), item.Data...)
	m.boxes[item.Recipient] = append(box, item)
	m.items++
	m.bytes += size
	su.items++
	su.bytes += size
	m.senders[item.From] = su
	return nil
}

// Fetch implements Mailbox.
func (m *MemoryMailbox) Fetch(ctx context.Context, recipient peer.ID, now time.Time, limit int) ([]MailItem, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []MailItem
	for _, it := range m.boxes[recipient] {
		if len(out) >= limit {
			break
		}
		if it.Expires.IsZero() || it.Expires.After(now) {
			out = append(out, it)
		}
	}
	return out, nil
}

// Delete implements Mailbox.
func (m *MemoryMailbox) Delete(ctx context.Context, recipient peer.ID, ids []MessageID) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	drop := make(map[MessageID]bool, len(ids))
	for _, id := range ids {
		drop[id] = true
	}
	m.filter(recipient, func(it MailItem) bool { return !drop[it.ID] })
	return nil
}

// Prune implements Mailbox.
func (m *MemoryMailbox) Prune(ctx context.Context, now time.Time) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for r := range m.boxes {
		m.filter(r, func(it MailItem) bool { return it.Expires.IsZero() || it.Expires.After(now) })
	}
	return nil
}

func (m *MemoryMailbox) filter(r peer.ID, keep func(MailItem) bool) {
	box := m.boxes[r]
	kept := box[:0]
	for _, it := range box {
		if keep(it) {
			kept = append(kept, it)
		} else {
			m.items--
			m.bytes -= int64(len(it.Data))
			if su := m.senders[it.From]; su != nil {
				if su.items--; su.items <= 0 {
					delete(m.senders, it.From)
				} else {
					su.bytes -= int64(len(it.Data))
				}
			}
		}
	}
	clear(box[len(kept):])
	if len(kept) == 0 {
		delete(m.boxes, r)
	} else {
		m.boxes[r] = kept
	}
}

// MemoryKeyPackageCache is an in-memory KeyPackageCache.
type MemoryKeyPackageCache struct {
	mu     sync.Mutex
	owners map[peer.ID]*memOwner
}

type memKP struct {
	id      MessageID
	data    []byte
	suite   uint16
	expires time.Time
}

type memOwner struct {
	oneTime    []memKP
	lastResort map[uint16]memKP // by cipher suite
	// consumed remembers handed-out one-time packages until they expire so
	// that a re-upload cannot make the relay hand one out twice.
	consumed map[MessageID]time.Time
}

// NewMemoryKeyPackageCache returns an empty in-memory KeyPackageCache.
func NewMemoryKeyPackageCache() *MemoryKeyPackageCache {
	return &MemoryKeyPackageCache{owners: make(map[peer.ID]*memOwner)}
}

// Put implements KeyPackageCache.
func (c *MemoryKeyPackageCache) Put(ctx context.Context, owner peer.ID, kps []KeyPackage, expires time.Time, q Quota) (int, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.owners[owner]
	if o == nil {
		o = &memOwner{consumed: make(map[MessageID]time.Time), lastResort: make(map[uint16]memKP)}
	}
	// Build the new state on copies so a quota failure changes nothing.
	oneTime := append([]memKP(nil), o.oneTime...)
	lastResort := maps.Clone(o.lastResort)
	have := make(map[MessageID]bool, len(oneTime))
	for _, k := range oneTime {
		have[k.id] = true
	}
	// added: whether anything new is stored. Only then does the quota
	// apply, so re-uploads under a lowered quota are harmless no-ops.
	added := false
	for _, kp := range kps {
		id := IDOf(kp.Data)
		k := memKP{id: id, data: append([]byte(nil), kp.Data...), suite: kp.CipherSuite, expires: expires}
		if kp.LastResort {
			if old, ok := lastResort[kp.CipherSuite]; !ok || old.id != id {
				added = true
			}
			lastResort[kp.CipherSuite] = k
			continue
		}
		if have[id] {
			continue
		}
		if _, gone := o.consumed[id]; gone {
			continue
		}
		have[id] = true
		oneTime = append(oneTime, k)
		added = true
	}
	count, bytes := len(oneTime)+len(lastResort), int64(0)
	for _, k := range oneTime {
		bytes += int64(len(k.data))
	}
	for _, k := range lastResort {
		bytes += int64(len(k.data))
	}
	if added && q.exceeds(count, bytes) {
		return 0, fmt.Errorf("%w: %d key packages (%d bytes) for one owner", ErrQuotaExceeded, count, bytes)
	}
	o.oneTime, o.lastResort = oneTime, lastResort
	c.owners[owner] = o
	return count, nil
}

// Take implements KeyPackageCache.
func (c *MemoryKeyPackageCache) Take(ctx context.Context, owner peer.ID, suite uint16, now time.Time) (KeyPackage, error) {
	if err := ctx.Err(); err != nil {
		return KeyPackage{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	o := c.owners[owner]
	if o == nil {
		return KeyPackage{}, ErrNotFound
	}
	live := func(t time.Time) bool { return t.IsZero() || t.After(now) }
	for i, k := range o.oneTime {
		if !live(k.expires) || (suite != 0 && k.suite != suite) {
			continue
		}
		o.oneTime = slices.Delete(o.oneTime, i, i+1)
		o.consumed[k.id] = k.expires
		return KeyPackage{Data: k.data, CipherSuite: k.suite}, nil
	}
	if kp, ok := o.lastResortFor(suite, now); ok {
		return kp, nil
	}
	return KeyPackage{}, ErrNotFound
}

// LastResort implements KeyPackageCache.
func (c *MemoryKeyPackageCache) LastResort(ctx context.Context, owner peer.ID, suite uint16, now time.Time) (KeyPackage, error) {
	if err := ctx.Err(); err != nil {
		return KeyPackage{}, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if o := c.owners[owner]; o != nil {
		if kp, ok := o.lastResortFor(suite, now); ok {
			return kp, nil
		}
	}
	return KeyPackage{}, ErrNotFound
}

// lastResortFor returns the unexpired last-resort package of suite (0:
// the lowest suite there is).
func (o *memOwner) lastResortFor(suite uint16, now time.Time) (KeyPackage, bool) {
	var lr *memKP
	for s, k := range o.lastResort {
		if (k.expires.IsZero() || k.expires.After(now)) && (suite == 0 || s == suite) && (lr == nil || s < lr.suite) {
			lr = &k
		}
	}
	if lr == nil {
		return KeyPackage{}, false
	}
	return KeyPackage{Data: append([]byte(nil), lr.data...), CipherSuite: lr.suite, LastResort: true}, true
}

// Prune implements KeyPackageCache.
func (c *MemoryKeyPackageCache) Prune(ctx context.Context, now time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	live := func(t time.Time) bool { return t.IsZero() || t.After(now) }
	for owner, o := range c.owners {
		kept := o.oneTime[:0]
		for _, k := range o.oneTime {
			if live(k.expires) {
				kept = append(kept, k)
			}
		}
		clear(o.oneTime[len(kept):])
		o.oneTime = kept
		maps.DeleteFunc(o.lastResort, func(_ uint16, k memKP) bool { return !live(k.expires) })
		for id, exp := range o.consumed {
			if !live(exp) {
				delete(o.consumed, id)
			}
		}
		if len(o.oneTime) == 0 && len(o.lastResort) == 0 && len(o.consumed) == 0 {
			delete(c.owners, owner)
		}
	}
	return nil
}

// MemoryLeaseStore is an in-memory LeaseStore. A relay's leases outlive a
// restart only if the same MemoryLeaseStore is passed to the new relay
// (tests do that); "canopy relay" keeps them in its database.
type MemoryLeaseStore struct {
	mu     sync.Mutex
	leases map[leaseKey]time.Time
}

type leaseKey struct {
	topic string
	peer  peer.ID
}

// NewMemoryLeaseStore returns an empty in-memory LeaseStore.
func NewMemoryLeaseStore() *MemoryLeaseStore {
	return &MemoryLeaseStore{leases: make(map[leaseKey]time.Time)}
}

// PutLease implements LeaseStore.
func (s *MemoryLeaseStore) PutLease(ctx context.Context, l Lease) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leases[leaseKey{l.Topic, l.Peer}] = l.Until
	return nil
}

// DeleteLease implements LeaseStore.
func (s *MemoryLeaseStore) DeleteLease(ctx context.Context, topic string, p peer.ID) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.leases, leaseKey{topic, p})
	return nil
}

// Leases implements LeaseStore.
func (s *MemoryLeaseStore) Leases(ctx context.Context, now time.Time) ([]Lease, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Lease
	for k, until := range s.leases {
		if until.After(now) {
			out = append(out, Lease{Topic: k.topic, Peer: k.peer, Until: until})
		}
	}
	slices.SortFunc(out, func(a, b Lease) int {
		if a.Topic != b.Topic {
			return strings.Compare(a.Topic, b.Topic)
		}
		return strings.Compare(a.Peer.String(), b.Peer.String())
	})
	return out, nil
}

// Prune implements LeaseStore.
func (s *MemoryLeaseStore) Prune(ctx context.Context, now time.Time) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	maps.DeleteFunc(s.leases, func(_ leaseKey, until time.Time) bool { return !until.After(now) })
	return nil
}

var (
	_ TopicLog        = (*MemoryTopicLog)(nil)
	_ Mailbox         = (*MemoryMailbox)(nil)
	_ KeyPackageCache = (*MemoryKeyPackageCache)(nil)
	_ LeaseStore      = (*MemoryLeaseStore)(nil)
)
