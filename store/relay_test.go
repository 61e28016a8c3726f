package store

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"
	"time"
)

// Relay concerns beyond the contract cases of contract_test.go: topic
// release, handed-out KeyPackages, per-owner KeyPackage byte quotas and
// last-resort refresh. Each runs against every implementation.

var relayCases = []struct {
	name string
	fn   func(t *testing.T, open func(t testing.TB, opts ...Option) full)
}{
	{"TopicRelease", testTopicRelease},
	{"KeyPackageTaken", testKeyPackageTaken},
	{"KeyPackageQuotas", testKeyPackageQuotas},
	{"LastResortRefresh", testLastResortRefresh},
	{"TopicLogTotal", testTopicLogTotal},
	{"CountLimits", testCountLimits},
	{"MailShares", testMailShares},
}

func TestRelayContract(t *testing.T) {
	for _, impl := range implementations() {
		t.Run(impl.name, func(t *testing.T) {
			for _, c := range relayCases {
				t.Run(c.name, func(t *testing.T) { c.fn(t, impl.open) })
			}
		})
	}
}

func testTopicRelease(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	ok(t, s.KeepTopic(ctx, TopicKeep{Topic: "t1", Peer: "a", Until: t0.Add(time.Hour)}))
	ok(t, s.KeepTopic(ctx, TopicKeep{Topic: "t1", Peer: "b", Until: t0.Add(time.Hour)}))
	ok(t, s.KeepTopic(ctx, TopicKeep{Topic: "t2", Peer: "a", Until: t0.Add(time.Hour)}))
	ok(t, s.ReleaseTopic(ctx, "t1", "a"))
	ok(t, s.ReleaseTopic(ctx, "t1", "nobody"))
	var got []string
	for _, k := range must[[]TopicKeep](t)(s.KeptTopics(ctx, t0)) {
		got = append(got, k.Topic+"/"+k.Peer)
	}
	if strings.Join(got, " ") != "t1/b t2/a" {
		t.Fatalf("kept after release: %v", got)
	}
}

// cachedKP is a package of owner-independent content "kp-"+ref.
func cachedKP(ref string, suite uint16, lr bool, expires time.Time) CachedKeyPackage {
	return CachedKeyPackage{Ref: []byte(ref), CipherSuite: suite, Data: []byte("kp-" + ref), LastResort: lr, PublishedAt: t0, ExpiresAt: expires}
}

func takeRef(t *testing.T, s full, owner string, now time.Time) string {
	t.Helper()
	kp, err := s.TakeKeyPackage(ctx, owner, 0, now)
	if err != nil {
		return err.Error()
	}
	return fmt.Sprintf("%s/%v", kp.Ref, kp.LastResort)
}

func testKeyPackageTaken(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	exp := t0.Add(time.Hour)
	ok(t, s.PublishKeyPackages(ctx, "alice", KeyPackageQuota{}, cachedKP("a1", 1, false, exp), cachedKP("a2", 1, false, exp), cachedKP("forever", 1, false, time.Time{})))
	ok(t, s.PublishKeyPackages(ctx, "bob", KeyPackageQuota{}, cachedKP("a1", 1, false, exp)))
	for _, want := range []string{"a1/false", "a2/false", "forever/false"} {
		if got := takeRef(t, s, "alice", t0); got != want {
			t.Fatalf("take: %s, want %s", got, want)
		}
	}
	// Handed out: publishing them again stores nothing.
	ok(t, s.PublishKeyPackages(ctx, "alice", KeyPackageQuota{}, cachedKP("a1", 1, false, exp.Add(time.Hour)), cachedKP("forever", 1, false, time.Time{})))
	if u := must[Usage](t)(s.KeyPackageUsage(ctx, "alice")); u != (Usage{}) {
		t.Fatalf("re-published handed-out packages stored: %+v", u)
	}
	_, err := s.TakeKeyPackage(ctx, "alice", 0, t0)
	wantErr(t, err, ErrNotFound)
	// Per owner: bob's copy of the same bytes is his own.
	if got := takeRef(t, s, "bob", t0); got != "a1/false" {
		t.Fatalf("bob: %s", got)
	}
	// Pruning forgets hand-outs once the packages would have expired, and
	// never forgets those of packages that never expire.
	if n := must[int64](t)(s.PruneKeyPackages(ctx, exp)); n != 0 {
		t.Fatalf("pruned %d packages", n)
	}
	ok(t, s.PublishKeyPackages(ctx, "alice", KeyPackageQuota{}, cachedKP("a1", 1, false, exp.Add(time.Hour)), cachedKP("forever", 1, false, time.Time{})))
	if o, l := must2(t)(s.CountKeyPackages(ctx, "alice", exp)); o != 1 || l != 0 {
		t.Fatalf("after prune: %d one-time, %d last-resort; want a1 only", o, l)
	}
	// The owner may declare the bytes of a handed-out package last-resort.
	ok(t, s.PublishKeyPackages(ctx, "bob", KeyPackageQuota{}, cachedKP("a1", 1, true, exp.Add(time.Hour))))
	for range 2 {
		if got := takeRef(t, s, "bob", exp); got != "a1/true" {
			t.Fatalf("bob's last resort: %s", got)
		}
	}
}

func must2(t testing.TB) func(a, b int, err error) (int, int) {
	return func(a, b int, err error) (int, int) {
		t.Helper()
		ok(t, err)
		return a, b
	}
}

func testKeyPackageQuotas(t *testing.T, open func(testing.TB, ...Option) full) {
	// Each package is 6 bytes ("kp-" + 3-byte ref).
	s := open(t)
	q := KeyPackageQuota{PerOwner: Limit{Items: 4, Bytes: 20}}
	usage := func(owner string) Usage { return must[Usage](t)(s.KeyPackageUsage(ctx, owner)) }
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("o01", 1, false, time.Time{}), cachedKP("o02", 1, false, time.Time{}), cachedKP("lr1", 1, true, time.Time{})))
	if u := usage("alice"); u != (Usage{Bytes: 18, Items: 3}) {
		t.Fatalf("usage %+v", u)
	}
	// 24 bytes: refused whole.
	wantErr(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("o03", 1, false, time.Time{})), ErrQuotaExceeded)
	if u := usage("alice"); u != (Usage{Bytes: 18, Items: 3}) {
		t.Fatalf("usage after a refused upload %+v", u)
	}
	// The quota applies to the outcome: a replaced last-resort package
	// makes room for a one-time package published before it.
	small := CachedKeyPackage{Ref: []byte("lr2"), CipherSuite: 1, Data: []byte("l"), LastResort: true}
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("o03", 1, false, time.Time{}), small))
	if u := usage("alice"); u != (Usage{Bytes: 19, Items: 4}) {
		t.Fatalf("usage after replacing the last-resort package %+v", u)
	}
	// The count quota as well.
	wantErr(t, s.PublishKeyPackages(ctx, "alice", q, CachedKeyPackage{Ref: []byte("x"), Data: []byte("x")}), ErrQuotaExceeded)
	// Others have their own quota.
	ok(t, s.PublishKeyPackages(ctx, "bob", q, cachedKP("b01", 1, false, time.Time{}), cachedKP("b02", 1, false, time.Time{})))
	if u := usage("bob"); u != (Usage{Bytes: 12, Items: 2}) {
		t.Fatalf("bob's usage %+v", u)
	}
	// Handing out and pruning free room.
	if got := takeRef(t, s, "alice", t0); got != "o01/false" {
		t.Fatalf("take: %s", got)
	}
	if u := usage("alice"); u != (Usage{Bytes: 13, Items: 3}) {
		t.Fatalf("usage after a hand-out %+v", u)
	}
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("o04", 1, false, t0.Add(time.Hour))))
	must[int64](t)(s.PruneKeyPackages(ctx, t0.Add(time.Hour)))
	if u := usage("alice"); u != (Usage{Bytes: 13, Items: 3}) {
		t.Fatalf("usage after pruning %+v", u)
	}
	must[CachedKeyPackage](t)(s.TakeKeyPackage(ctx, "bob", 0, t0))
	must[CachedKeyPackage](t)(s.TakeKeyPackage(ctx, "bob", 0, t0))
	if u := usage("bob"); u != (Usage{}) {
		t.Fatalf("bob's usage after taking everything %+v", u)
	}
}

func testLastResortRefresh(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	q := KeyPackageQuota{PerOwner: Limit{Items: 2}}
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("lr", 1, true, t0.Add(time.Hour)), cachedKP("one", 1, false, t0.Add(time.Hour))))
	// Re-publishing the last-resort package extends its expiry, without
	// storing it twice.
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("lr", 1, true, t0.Add(3*time.Hour))))
	if u := must[Usage](t)(s.KeyPackageUsage(ctx, "alice")); u != (Usage{Bytes: 11, Items: 2}) {
		t.Fatalf("usage %+v", u)
	}
	must[int64](t)(s.PruneKeyPackages(ctx, t0.Add(2*time.Hour)))
	for range 2 {
		if got := takeRef(t, s, "alice", t0.Add(2*time.Hour)); got != "lr/true" {
			t.Fatalf("take after the refresh: %s", got)
		}
	}
	// A package stored as one-time and re-published as last-resort
	// becomes the last-resort package of its suite.
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("one", 2, false, t0.Add(5*time.Hour))))
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("one", 1, true, t0.Add(5*time.Hour))))
	if o, l := must2(t)(s.CountKeyPackages(ctx, "alice", t0.Add(2*time.Hour))); o != 0 || l != 1 {
		t.Fatalf("after converting: %d one-time, %d last-resort", o, l)
	}
	kp := must[CachedKeyPackage](t)(s.TakeKeyPackage(ctx, "alice", 1, t0.Add(4*time.Hour)))
	if string(kp.Ref) != "one" || !kp.LastResort || !kp.ExpiresAt.Equal(t0.Add(5*time.Hour)) {
		t.Fatalf("converted package: %+v", kp)
	}
	// A refresh adds nothing: at the count quota, refreshing passes while
	// a new package is refused.
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("lr2", 2, true, time.Time{})))
	wantErr(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("new", 1, false, time.Time{})), ErrQuotaExceeded)
	ok(t, s.PublishKeyPackages(ctx, "alice", q, cachedKP("one", 1, true, t0.Add(6*time.Hour)), cachedKP("lr2", 2, true, time.Time{})))
}

// TestKeyPackageTakenSurvivesReopen: the record of handed-out packages is
// in the database, not in memory.
func TestKeyPackageTakenSurvivesReopen(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	ok(t, db.PublishKeyPackages(ctx, "alice", KeyPackageQuota{}, cachedKP("a1", 1, false, t0.Add(time.Hour))))
	must[CachedKeyPackage](t)(db.TakeKeyPackage(ctx, "alice", 0, t0))
	ok(t, db.Close())
	db = openTest(t, dir)
	ok(t, db.PublishKeyPackages(ctx, "alice", KeyPackageQuota{}, cachedKP("a1", 1, false, t0.Add(time.Hour))))
	_, err := db.TakeKeyPackage(ctx, "alice", 0, t0)
	wantErr(t, err, ErrNotFound)
}

// TestMigrationKeyPackageUsage: migration 2 counts the packages a relay
// stored under schema 1, and its triggers follow every change of a row.
func TestMigrationKeyPackageUsage(t *testing.T) {
	orig := migrationSource
	t.Cleanup(func() { migrationSource = orig })
	base, err := fs.ReadFile(orig, "0001_init.sql")
	ok(t, err)
	dir := t.TempDir()
	migrationSource = fstest.MapFS{"0001_init.sql": {Data: base}}
	db := openTest(t, dir)
	for i, d := range []string{"12345", "123", "1234567"} {
		owner := "alice"
		if i == 2 {
			owner = "bob"
		}
		_, err := db.w.Exec(`INSERT INTO relay_keypackages (`+cachedKPColumns+`) VALUES (?, ?, 1, ?, 0, 1, 0)`, owner, []byte{byte(i)}, []byte(d))
		ok(t, err)
	}
	ok(t, db.Close())

	migrationSource = orig
	db = openTest(t, dir)
	if u := must[Usage](t)(db.KeyPackageUsage(ctx, "alice")); u != (Usage{Bytes: 8, Items: 2}) {
		t.Fatalf("alice after migration: %+v", u)
	}
	if u := must[Usage](t)(db.KeyPackageUsage(ctx, "bob")); u != (Usage{Bytes: 7, Items: 1}) {
		t.Fatalf("bob after migration: %+v", u)
	}
	// Rows moved or rewritten (the store itself never does) keep the
	// counters right.
	_, err = db.w.Exec(`UPDATE relay_keypackages SET owner = 'bob', data = ? WHERE owner = 'alice' AND ref = ?`, bytes.Repeat([]byte("x"), 10), []byte{0})
	ok(t, err)
	if u := must[Usage](t)(db.KeyPackageUsage(ctx, "alice")); u != (Usage{Bytes: 3, Items: 1}) {
		t.Fatalf("alice after update: %+v", u)
	}
	if u := must[Usage](t)(db.KeyPackageUsage(ctx, "bob")); u != (Usage{Bytes: 17, Items: 2}) {
		t.Fatalf("bob after update: %+v", u)
	}
	var n int
	ok(t, db.w.QueryRow(`SELECT count(*) FROM relay_usage WHERE scope = 'keypackages' AND items <= 0`).Scan(&n))
	if n != 0 {
		t.Fatalf("%d empty usage rows", n)
	}
}

// TestKeyPackageQuotaLowered: an owner over a quota that was lowered while
// the packages were stored may refresh them but not add more.
func TestKeyPackageQuotaLowered(t *testing.T) {
	dir := t.TempDir()
	db := openTest(t, dir)
	ok(t, db.PublishKeyPackages(ctx, "alice", KeyPackageQuota{PerOwner: Limit{Items: 3}}, cachedKP("o1", 1, false, time.Time{}), cachedKP("o2", 1, false, time.Time{}), cachedKP("lr", 1, true, t0)))
	ok(t, db.Close())
	db = openTest(t, dir)
	ok(t, db.PublishKeyPackages(ctx, "alice", KeyPackageQuota{PerOwner: Limit{Items: 2}}, cachedKP("lr", 1, true, t0.Add(time.Hour)), cachedKP("o1", 1, false, time.Time{})))
	wantErr(t, db.PublishKeyPackages(ctx, "alice", KeyPackageQuota{PerOwner: Limit{Items: 2}}, cachedKP("o3", 1, false, time.Time{})), ErrQuotaExceeded)
	if o, l := must2(t)(db.CountKeyPackages(ctx, "alice", t0)); o != 2 || l != 1 {
		t.Fatalf("count %d %d", o, l)
	}
}

// testTopicLogTotal: beyond TopicLogBytes the largest topic's oldest
// frames are evicted, so a flooded topic loses its own history and a quiet
// one keeps all of it.
func testTopicLogTotal(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	q := FrameQuota{Total: Limit{Bytes: 100}}
	frame := func(topic string, i int) Frame {
		return Frame{Topic: topic, Data: []byte(fmt.Sprintf("%s %05d", topic, i)), ReceivedAt: t0} // 9 bytes
	}
	for i := 0; i < 53; i++ {
		f := frame("big", i)
		if i < 3 {
			f = frame("qui", i)
		}
		if _, _, err := s.AppendFrame(ctx, f, q); err != nil {
			t.Fatal(err)
		}
	}
	quiet := must[[]Frame](t)(s.Frames(ctx, "qui", FrameQuery{Limit: 100}))
	big := must[[]Frame](t)(s.Frames(ctx, "big", FrameQuery{Limit: 100}))
	if len(quiet) != 3 || (len(quiet)+len(big))*9 > 100 || len(big) < 8 {
		t.Fatalf("quiet %d, big %d frames", len(quiet), len(big))
	}
	if got := string(big[len(big)-1].Data); got != "big 00052" {
		t.Fatalf("newest frame of the flooded topic: %q", got)
	}
	if _, _, err := s.AppendFrame(ctx, Frame{Topic: "qui", Data: make([]byte, 101)}, q); !errors.Is(err, ErrQuotaExceeded) {
		t.Fatalf("frame over the total: %v", err)
	}
}

// TestMailTotals: usage of all mailboxes together and per sender.
func TestMailTotals(t *testing.T) {
	db := openTest(t, t.TempDir())
	for _, m := range []MailItem{
		{Recipient: "r1", Sender: "a", Data: []byte("1234"), DepositedAt: t0},
		{Recipient: "r2", Sender: "a", Data: []byte("56"), DepositedAt: t0},
		{Recipient: "r2", Sender: "b", Data: []byte("7"), DepositedAt: t0},
	} {
		must[int64](t)(db.Deposit(ctx, m, MailQuota{}))
	}
	if u := must[Usage](t)(db.MailTotals(ctx)); u.Items != 3 || u.Bytes != 7 {
		t.Fatalf("totals: %+v", u)
	}
	if u := must[Usage](t)(db.SenderMailUsage(ctx, "a")); u.Items != 2 || u.Bytes != 6 {
		t.Fatalf("sender a: %+v", u)
	}
}

// testCountLimits: item limits evict frames like byte limits (per topic,
// and from the largest topic for the total) and bound a peer's frames.
func testCountLimits(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	q := FrameQuota{PerTopic: Limit{Items: 3}, Total: Limit{Items: 5}, PerPeer: Limit{Items: 6}}
	appendN := func(topic, peer string, from, to int) {
		t.Helper()
		for i := from; i < to; i++ {
			if _, _, err := s.AppendFrame(ctx, Frame{Topic: topic, Peer: peer, Data: []byte(fmt.Sprintf("%s %02d", topic, i)), ReceivedAt: t0}, q); err != nil {
				t.Fatal(err)
			}
		}
	}
	appendN("a", "p", 0, 5)
	fs := must[[]Frame](t)(s.Frames(ctx, "a", FrameQuery{}))
	if len(fs) != 3 || string(fs[0].Data) != "a 02" {
		t.Fatalf("a topic of at most 3 frames holds %d", len(fs))
	}
	appendN("b", "p", 0, 3)
	a, b := must[[]Frame](t)(s.Frames(ctx, "a", FrameQuery{})), must[[]Frame](t)(s.Frames(ctx, "b", FrameQuery{}))
	if len(a)+len(b) != 5 || len(b) != 3 {
		t.Fatalf("total of 5 frames: a %d, b %d", len(a), len(b))
	}
	// p delivered 8 frames, 5 of which are still stored: one more fits,
	// then p is refused.
	appendN("c", "p", 0, 1)
	_, _, err := s.AppendFrame(ctx, Frame{Topic: "c", Peer: "p", Data: []byte("c 01")}, FrameQuota{PerPeer: Limit{Items: 5}})
	wantErr(t, err, ErrQuotaExceeded)
}

// testMailShares: a sender's share of one mailbox and all mailboxes
// together are bounded in items and bytes; a refused deposit stores
// nothing.
func testMailShares(t *testing.T, open func(testing.TB, ...Option) full) {
	s := open(t)
	q := MailQuota{PerSender: Limit{Items: 2}, Total: Limit{Items: 4, Bytes: 40}}
	dep := func(r, from, data string) error {
		_, err := s.Deposit(ctx, MailItem{Recipient: r, Sender: from, Data: []byte(data), DepositedAt: t0}, q)
		return err
	}
	ok(t, dep("r", "a", "a1"))
	ok(t, dep("r", "a", "a2"))
	wantErr(t, dep("r", "a", "a3"), ErrQuotaExceeded) // a's share of r
	ok(t, dep("r2", "a", "a3"))                       // another mailbox
	ok(t, dep("r", "b", "b1"))
	wantErr(t, dep("r3", "c", "c1"), ErrQuotaExceeded) // 4 items in all
	if u := must[Usage](t)(s.MailTotals(ctx)); u.Items != 4 {
		t.Fatalf("totals after refusals: %+v", u)
	}
	wantErr(t, dep("r3", "c", string(make([]byte, 40))), ErrQuotaExceeded)
	if got := must[[]MailItem](t)(s.PeekMail(ctx, "r3", t0, 10)); len(got) != 0 {
		t.Fatalf("refused mail stored: %+v", got)
	}
}
