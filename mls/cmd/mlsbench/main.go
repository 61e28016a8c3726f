// Command mlsbench measures canopy's MLS implementation at scale and prints
// the performance table of the mls package: for groups of 10 to 10,000
// members (100,000 with -huge), the median time to create a Commit with an
// UpdatePath, to process it, to add a member (Commit and Welcome), to join
// from a Welcome, to protect and unprotect a 100-byte message, the size of
// Commits and Welcomes, and the memory one member's group state takes,
// next to the targets (cipher suite 1, one machine).
//
//	go run ./mls/cmd/mlsbench                  # 10 … 10,000 members
//	go run ./mls/cmd/mlsbench -huge            # and 100,000
//	go run ./mls/cmd/mlsbench -sizes 1000 -samples 3
//	go run ./mls/cmd/mlsbench -suite xwing     # the X-Wing suite 0x004D
//
// -suite takes a code point (77, 0x4d) or a suite name; the targets are
// those of suite 1 and are only checked for it.
//
// The groups are mls.ScaleFixture groups: full ratchet trees as they are
// after every member has committed once, built deterministically from a
// seed (a benchmark fixture whose keys are public; see its documentation).
// Times are wall-clock medians; the CPU table gives the process CPU time
// per operation (all goroutines, from /proc/self/stat on Linux), which does
// not depend on how loaded the machine is, except through caches.
package main

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/canopy-chat/canopy/mls"
)

// targetSuite is the suite the targets are written for (and the default).
const targetSuite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

// suite is the suite measured (-suite).
var suite = targetSuite

var (
	sizesFlag   = flag.String("sizes", "10,100,1000,10000", "comma-separated group sizes")
	hugeFlag    = flag.Bool("huge", false, "also measure 100,000 members (about a minute and 1.5 GB more)")
	samplesFlag = flag.Float64("samples", 1, "scale the number of samples per measurement")
	seedFlag    = flag.Uint64("seed", 1, "fixture seed")
	suiteFlag   = flag.String("suite", "1", "cipher suite: code point (1, 0x4d) or name; \"xwing\" is 0x004D")
)

// parseSuite reads -suite.
func parseSuite(s string) (mls.CipherSuite, error) {
	s = strings.TrimSpace(s)
	if strings.EqualFold(s, "xwing") {
		return mls.MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519, nil
	}
	if v, err := strconv.ParseUint(s, 0, 16); err == nil {
		if cs := mls.CipherSuite(v); cs.Supported() {
			return cs, nil
		}
		return 0, fmt.Errorf("cipher suite %s is not supported (supported: %v)", s, mls.CipherSuites)
	}
	for _, cs := range mls.CipherSuites {
		if strings.EqualFold(cs.String(), s) {
			return cs, nil
		}
	}
	return 0, fmt.Errorf("unknown cipher suite %q", s)
}

// Rows of the table.
const (
	rowCommit = iota
	rowProcess
	rowAdd
	rowJoin
	rowJoinExt
	rowProtect
	rowUnprotect
	numTimed
)

var rowNames = [numTimed]string{
	"create commit with path (full tree)",
	"process that commit (typical receiver)",
	"add one member (commit + welcome)",
	"join from welcome (tree included)",
	"join from welcome (tree fetched apart)",
	"protect 100 B",
	"unprotect 100 B",
}

// targets[row][size] in seconds (absent: no target).
var targets = map[int]map[int]float64{
	rowCommit:    {10: 1e-3, 100: 1.5e-3, 1000: 2e-3, 10000: 3e-3},
	rowProcess:   {10: 0.5e-3, 100: 0.5e-3, 1000: 0.6e-3, 10000: 1e-3},
	rowAdd:       {10: 2e-3, 100: 3e-3, 1000: 10e-3, 10000: 60e-3},
	rowJoin:      {10: 2e-3, 100: 10e-3, 1000: 80e-3, 10000: 600e-3},
	rowProtect:   {10: 40e-6, 100: 40e-6, 1000: 40e-6, 10000: 40e-6, 100000: 40e-6},
	rowUnprotect: {10: 80e-6, 100: 80e-6, 1000: 80e-6, 10000: 80e-6, 100000: 80e-6},
}

var commitBytesTarget = map[int]int{10: 1000, 100: 1400, 1000: 1800, 10000: 2300}

const memoryTarget10k = 16e6 // bytes (16 MB, decimal: the stricter reading)

// result holds the measurements at one size.
type result struct {
	n            int
	build        time.Duration
	median       [numTimed]time.Duration
	cpu          [numTimed]time.Duration // mean process CPU per op; 0: unknown
	samples      [numTimed]int
	commitBytes  int
	commitPadme  int // with PadPadme padding (no block rounding)
	commitNoPad  int // without padding
	welcomeTree  int
	welcomeNoTr  int
	treeBytes    int
	stateMemory  uint64
	processedAll bool
}

func main() {
	flag.Parse()
	cs, err := parseSuite(*suiteFlag)
	if err != nil {
		fmt.Fprintf(os.Stderr, "mlsbench: %v\n", err)
		os.Exit(2)
	}
	suite = cs
	var sizes []int
	for _, s := range strings.Split(*sizesFlag, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 2 {
			fmt.Fprintf(os.Stderr, "mlsbench: bad size %q (at least 2 members)\n", s)
			os.Exit(2)
		}
		sizes = append(sizes, n)
	}
	if *hugeFlag && !slices.Contains(sizes, 100000) {
		sizes = append(sizes, 100000)
	}
	_, cpuOK := processCPU()
	loadStart := loadAvg()
	start := time.Now()
	var results []*result
	for _, n := range sizes {
		fmt.Fprintf(os.Stderr, "mlsbench: %d members…\n", n)
		r, err := measureSize(n)
		if err != nil {
			fmt.Fprintf(os.Stderr, "mlsbench: %d members: %v\n", n, err)
			os.Exit(1)
		}
		results = append(results, r)
	}
	printReport(results, cpuOK, loadStart, loadAvg(), time.Since(start))
}

// samplesFor returns how many times an operation is measured.
func samplesFor(base, n int) int {
	k := base
	switch {
	case n >= 100000:
		k = max(base/8, 3)
	case n >= 10000:
		k = max(base/3, 5)
	case n >= 1000:
		k = max(base*2/3, 7)
	}
	return max(int(float64(k)**samplesFlag), 1)
}

// timer measures the wall time of each operation and the process CPU time
// of the whole series.
type timer struct {
	walls  []time.Duration
	cpu0   time.Duration
	cpuOK  bool
	active time.Time
}

func newTimer() *timer {
	runtime.GC()
	t := &timer{}
	t.cpu0, t.cpuOK = processCPU()
	return t
}

func (t *timer) start() { t.active = time.Now() }
func (t *timer) stop()  { t.walls = append(t.walls, time.Since(t.active)) }

// pause excludes work from the CPU total: it is measured and subtracted.
func (t *timer) pause(f func() error) error {
	c0, _ := processCPU()
	err := f()
	c1, _ := processCPU()
	t.cpu0 += c1 - c0
	return err
}

func (t *timer) finish(r *result, row int) {
	c1, ok := processCPU()
	s := slices.Clone(t.walls)
	slices.Sort(s)
	r.median[row] = s[len(s)/2]
	r.samples[row] = len(s)
	if ok && t.cpuOK {
		r.cpu[row] = (c1 - t.cpu0) / time.Duration(len(s))
	}
}

func measureSize(n int) (*result, error) {
	r := &result{n: n}
	t0 := time.Now()
	f, err := mls.NewScaleFixture(suite, n, *seedFlag)
	if err != nil {
		return nil, err
	}
	r.build = time.Since(t0)
	rnd := func(i uint64) mls.Option {
		var s [32]byte
		copy(s[:], fmt.Sprintf("mlsbench-%d-%d", n, i))
		return mls.WithRandom(rand.NewChaCha8(s))
	}
	committer, err := f.Member(0, rnd(1))
	if err != nil {
		return nil, err
	}
	// The receiver is in the other half of the tree from the committer, as
	// half of all members are: it decrypts the root's path secret and
	// derives one key pair.
	recv, err := f.Member(mls.LeafIndex(n-1), rnd(2))
	if err != nil {
		return nil, err
	}
	for range 2 { // warm-up
		pc, err := committer.Commit(mls.CommitOptions{})
		if err != nil {
			return nil, err
		}
		if _, err := committer.MergePendingCommit(pc); err != nil {
			return nil, err
		}
		if _, err := recv.Process(pc.Message); err != nil {
			return nil, err
		}
	}

	if err := measureCommits(r, f, committer, recv, rnd); err != nil {
		return nil, err
	}
	kp, add, err := measureJoins(r, f, committer)
	if err != nil {
		return nil, err
	}
	if err := measureMessages(r, committer, recv); err != nil {
		return nil, err
	}

	// Memory of one member's state: a client that joined from a Welcome
	// (nothing shared with the fixture) and processed a Commit.
	pc, err := committer.Commit(mls.CommitOptions{Proposals: add})
	if err != nil {
		return nil, err
	}
	if _, err := committer.MergePendingCommit(pc); err != nil {
		return nil, err
	}
	next, err := committer.Commit(mls.CommitOptions{})
	if err != nil {
		return nil, err
	}
	if r.stateMemory, err = stateMemory(pc.Welcome, kp, next.Message); err != nil {
		return nil, err
	}
	return r, nil
}

// measureCommits measures Commits with a path and their processing by the
// receiver, and the Commit's size under each padding policy.
func measureCommits(r *result, f *mls.ScaleFixture, committer, recv *mls.Group, rnd func(uint64) mls.Option) error {
	k := samplesFor(61, r.n)
	msgs := make([][]byte, 0, k)
	tm := newTimer()
	for range k {
		tm.start()
		pc, err := committer.Commit(mls.CommitOptions{})
		if err == nil {
			_, err = committer.MergePendingCommit(pc)
		}
		tm.stop()
		if err != nil {
			return err
		}
		msgs = append(msgs, pc.Message)
	}
	tm.finish(r, rowCommit)
	sizes := make([]int, len(msgs))
	for i, m := range msgs {
		sizes[i] = len(m)
	}
	slices.Sort(sizes)
	r.commitBytes = sizes[len(sizes)/2]
	// The same Commit under other padding policies (the default pads the
	// PrivateMessage content to 256-byte blocks).
	for _, p := range []struct {
		policy mls.PaddingPolicy
		out    *int
	}{{mls.PaddingPolicy{Mode: mls.PadPadme, BlockSize: 1}, &r.commitPadme}, {mls.PaddingPolicy{Mode: mls.PadNone}, &r.commitNoPad}} {
		g, err := f.Member(0, rnd(3), mls.WithPadding(p.policy))
		if err != nil {
			return err
		}
		pc, err := g.Commit(mls.CommitOptions{})
		if err != nil {
			return err
		}
		*p.out = len(pc.Message)
	}
	tm = newTimer()
	for _, m := range msgs {
		tm.start()
		_, err := recv.Process(m)
		tm.stop()
		if err != nil {
			return err
		}
	}
	tm.finish(r, rowProcess)

	return nil
}

// measureJoins measures Commits that add a member and joins from their
// Welcome, with the ratchet tree inside and fetched apart; it returns the
// joiner's KeyPackage and the Add.
func measureJoins(r *result, f *mls.ScaleFixture, committer *mls.Group) (*mls.KeyPackageBundle, []*mls.Proposal, error) {
	// Commit and Welcome (discarded each time).
	kp, err := f.NewKeyPackage(1)
	if err != nil {
		return nil, nil, err
	}
	add := []*mls.Proposal{{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: kp.KeyPackage}}}
	var welcome []byte
	tm := newTimer()
	for range samplesFor(31, r.n) {
		tm.start()
		pc, err := committer.Commit(mls.CommitOptions{Proposals: add})
		tm.stop()
		if err != nil {
			return nil, nil, err
		}
		welcome = pc.Welcome
		_ = tm.pause(func() error { committer.DiscardPendingCommit(pc); return nil })
	}
	tm.finish(r, rowAdd)
	r.welcomeTree = len(welcome)
	pcExt, err := committer.Commit(mls.CommitOptions{Proposals: add, ExternalTree: true})
	if err != nil {
		return nil, nil, err
	}
	committer.DiscardPendingCommit(pcExt)
	r.welcomeNoTr, r.treeBytes = len(pcExt.Welcome), len(pcExt.RatchetTree)

	// Joining, with the tree in the Welcome and fetched apart.
	tm = newTimer()
	for range samplesFor(21, r.n) {
		tm.start()
		g, err := mls.JoinFromWelcome(welcome, kp, nil)
		tm.stop()
		if err != nil {
			return nil, nil, err
		}
		_ = g
		_ = tm.pause(func() error { runtime.GC(); return nil })
	}
	tm.finish(r, rowJoin)
	tm = newTimer()
	for range max(samplesFor(21, r.n)/2, 3) {
		tm.start()
		s, err := mls.OpenWelcome(pcExt.Welcome, []*mls.KeyPackageBundle{kp})
		if err == nil {
			_, err = s.Join(pcExt.RatchetTree)
		}
		tm.stop()
		if err != nil {
			return nil, nil, err
		}
		_ = tm.pause(func() error { runtime.GC(); return nil })
	}
	tm.finish(r, rowJoinExt)

	return kp, add, nil
}

// measureMessages measures protecting and processing application messages.
func measureMessages(r *result, committer, recv *mls.Group) error {
	data := make([]byte, 100)
	cts := make([][]byte, 0, 2000)
	tm := newTimer()
	for range samplesFor(2001, min(r.n, 1000)) {
		tm.start()
		ct, err := committer.Protect(data, nil)
		tm.stop()
		if err != nil {
			return err
		}
		cts = append(cts, ct)
	}
	tm.finish(r, rowProtect)
	tm = newTimer()
	for _, ct := range cts {
		tm.start()
		_, err := recv.Process(ct)
		tm.stop()
		if err != nil {
			return err
		}
	}
	tm.finish(r, rowUnprotect)

	return nil
}

var keep *mls.Group

// stateMemory returns the heap retained by the state of a member that
// joined from welcome and processed msg.
func stateMemory(welcome []byte, kp *mls.KeyPackageBundle, msg []byte) (uint64, error) {
	heap := func() uint64 {
		var m runtime.MemStats
		runtime.GC()
		runtime.GC()
		runtime.ReadMemStats(&m)
		return m.HeapAlloc
	}
	g, err := mls.JoinFromWelcome(welcome, kp, nil)
	if err != nil {
		return 0, err
	}
	if _, err := g.Process(msg); err != nil {
		return 0, err
	}
	keep = g
	with := heap()
	keep = nil
	without := heap()
	if with < without {
		return 0, nil
	}
	return with - without, nil
}

// processCPU returns the CPU time the process has used: the sum over its
// threads of /proc/self/task/*/schedstat (nanoseconds; Linux with
// schedstats), else user+system time from /proc/self/stat (10 ms ticks);
// false where neither is available.
func processCPU() (time.Duration, bool) {
	if tasks, err := os.ReadDir("/proc/self/task"); err == nil {
		var sum int64
		ok := true
		for _, t := range tasks {
			b, err := os.ReadFile("/proc/self/task/" + t.Name() + "/schedstat")
			if err != nil {
				ok = false
				break
			}
			f := strings.Fields(string(b))
			if len(f) == 0 {
				ok = false
				break
			}
			v, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				ok = false
				break
			}
			sum += v
		}
		if ok {
			return time.Duration(sum), true
		}
	}
	b, err := os.ReadFile("/proc/self/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	fields := strings.Fields(s[i+1:])
	if len(fields) < 13 {
		return 0, false
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, false
	}
	const tick = 10 * time.Millisecond // USER_HZ = 100 on Linux
	return time.Duration(utime+stime) * tick, true
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "n/a"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "n/a"
	}
	return strings.Join(f[:3], " ")
}

func fmtDur(d time.Duration) string {
	s := d.Seconds()
	switch {
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 1e-3:
		return fmt.Sprintf("%.3g ms", s*1e3)
	default:
		return fmt.Sprintf("%.3g µs", s*1e6)
	}
}

func fmtTarget(s float64) string {
	switch {
	case s >= 1e-3:
		return fmt.Sprintf("≤ %g ms", s*1e3)
	default:
		return fmt.Sprintf("≤ %g µs", s*1e6)
	}
}

// fmtBytes formats a size in decimal units (1 KB = 1,000 bytes, as the
// targets are written).
func fmtBytes(b int) string {
	switch {
	case b >= 1e6:
		return fmt.Sprintf("%.2f MB", float64(b)/1e6)
	case b >= 10e3:
		return fmt.Sprintf("%.0f KB", float64(b)/1e3)
	case b >= 1e3:
		return fmt.Sprintf("%.2f KB", float64(b)/1e3)
	}
	return fmt.Sprintf("%d B", b)
}

func fmtSize(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}

func mark(ok bool) string {
	if ok {
		return "✓"
	}
	return "✗"
}

func printReport(rs []*result, cpuOK bool, loadStart, loadEnd string, elapsed time.Duration) {
	misses := 0
	fmt.Printf("canopy MLS at scale — cipher suite %v (0x%04x)\n", suite, uint16(suite))
	checkTargets := suite == targetSuite
	if !checkTargets {
		fmt.Printf("(the targets are for %v and are not checked)\n", targetSuite)
	}
	fmt.Printf("%s %s/%s, %d CPUs, GOMAXPROCS %d; load average %s at start, %s at end; %s in all\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0),
		loadStart, loadEnd, elapsed.Round(time.Second))
	fmt.Printf("groups: mls.ScaleFixture (full trees: every member has committed once), seed %d\n\n", *seedFlag)

	header := "| operation |"
	sep := "|---|"
	for _, r := range rs {
		header += " " + fmtSize(r.n) + " |"
		sep += "---|"
	}
	if checkTargets {
		fmt.Println("Medians (wall clock), target in parentheses:")
	} else {
		fmt.Println("Medians (wall clock):")
	}
	fmt.Println()
	fmt.Println(header)
	fmt.Println(sep)
	for row := range numTimed {
		line := "| " + rowNames[row] + " |"
		for _, r := range rs {
			cell := fmtDur(r.median[row])
			if t, ok := targets[row][r.n]; ok && checkTargets {
				ok := r.median[row].Seconds() <= t
				if !ok {
					misses++
				}
				cell += " (" + fmtTarget(t) + ") " + mark(ok)
			}
			line += " " + cell + " |"
		}
		fmt.Println(line)
	}
	line := "| commit-with-path bytes |"
	for _, r := range rs {
		cell := fmtBytes(r.commitBytes)
		if t, ok := commitBytesTarget[r.n]; ok && checkTargets {
			ok := r.commitBytes <= t
			if !ok {
				misses++
			}
			cell += fmt.Sprintf(" (≤ %.1f KB) %s", float64(t)/1e3, mark(ok))
		}
		line += " " + cell + " |"
	}
	fmt.Println(line)
	line = "| commit-with-path bytes, Padmé / no padding |"
	for _, r := range rs {
		line += fmt.Sprintf(" %s / %s |", fmtBytes(r.commitPadme), fmtBytes(r.commitNoPad))
	}
	fmt.Println(line)
	line = "| Welcome bytes, tree included |"
	for _, r := range rs {
		line += " " + fmtBytes(r.welcomeTree) + " |"
	}
	fmt.Println(line)
	line = "| Welcome bytes without the tree (+ tree) |"
	for _, r := range rs {
		line += " " + fmtBytes(r.welcomeNoTr) + " (+ " + fmtBytes(r.treeBytes) + ") |"
	}
	fmt.Println(line)
	line = "| memory of one member's group state |"
	for _, r := range rs {
		cell := fmtBytes(int(r.stateMemory))
		if r.n == 10000 && checkTargets {
			ok := r.stateMemory <= memoryTarget10k
			if !ok {
				misses++
			}
			cell += fmt.Sprintf(" (≤ %s) %s", fmtBytes(memoryTarget10k), mark(ok))
		}
		line += " " + cell + " |"
	}
	fmt.Println(line)
	line = "| building the fixture (not a target) |"
	for _, r := range rs {
		line += " " + fmtDur(r.build) + " |"
	}
	fmt.Println(line)
	fmt.Println()

	if cpuOK {
		fmt.Println("CPU time per operation (process, all threads, GC included; mean of the series):")
		fmt.Println()
		fmt.Println(header)
		fmt.Println(sep)
		for row := range numTimed {
			line := "| " + rowNames[row] + " |"
			for _, r := range rs {
				line += " " + fmtDur(r.cpu[row]) + " |"
			}
			fmt.Println(line)
		}
		fmt.Println()
	}
	line = "samples per cell:"
	for _, r := range rs {
		line += fmt.Sprintf(" %s: %v;", fmtSize(r.n), r.samples)
	}
	fmt.Println(line)
	if !checkTargets {
		return
	}
	if misses == 0 {
		fmt.Println("all targets met")
	} else {
		fmt.Printf("%d targets missed (on a loaded machine, compare the CPU table)\n", misses)
	}
}
