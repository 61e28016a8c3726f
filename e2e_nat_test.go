package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The NAT test: real binaries in Linux network namespaces that the test
// creates, wired as a tiny internet with two home networks:
//
//	peer A 10.0.1.2 ─ NAT A (11.0.1.2) ─┐
//	                                     ├─ "internet" (relay 11.0.0.1)
//	peer B 10.0.2.2 ─ NAT B (11.0.2.2) ─┘
//
// The NATs masquerade with nftables and forward inbound packets only for
// connections their LAN side opened (address- and port-dependent
// filtering, like home routers). libp2p treats 10/8, 192.0.2/24 and every
// other reserved range as non-public and will not run AutoNAT or hole
// punching for them, so the "internet" uses 11.0.0.0/8 addresses. That is
// safe only because no namespace has a link to the host's network: every
// veth is created with both ends inside the test's namespaces (checked
// before anything starts), there is no default route out, and every
// process runs under ip netns exec.

// natPrereqs skips the test without root, ip or nft, and fails it
// instead under CI (CI=true), where the NAT proof must run.
func natPrereqs(t *testing.T) {
	t.Helper()
	var missing []string
	if runtime.GOOS != "linux" {
		missing = append(missing, "Linux")
	}
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) == 0 {
		if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
			missing = append(missing, "ip netns ("+strings.TrimSpace(string(out))+")")
		}
	}
	if len(missing) == 0 {
		return
	}
	msg := "NAT end-to-end test needs " + strings.Join(missing, ", ") + " (nftables: apt-get install nftables)"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// natPrefix names this run's namespaces: leftovers of earlier runs are
// recognised by the prefix and the dead process id in the name.
const natPrefix = "cnat"

var natNameRE = regexp.MustCompile(`^` + natPrefix + `(\d+)-`)

func natRun(t *testing.T, args ...string) string {
	t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// removeStaleNamespaces deletes namespaces of earlier runs whose process
// is gone (a killed test cannot run its cleanup).
func removeStaleNamespaces(t *testing.T) {
	out := natRun(t, "ip", "netns", "list")
	for _, line := range strings.Split(out, "\n") {
		name, _, _ := strings.Cut(strings.TrimSpace(line), " ")
		m := natNameRE.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		if pid, _ := strconv.Atoi(m[1]); pid == os.Getpid() {
			continue
		} else if _, err := os.Stat("/proc/" + m[1]); err == nil {
			continue // another run still uses it
		}
		_ = exec.Command("ip", "netns", "del", name).Run()
	}
}

// natNet is the namespaces of one run.
type natNet struct {
	t                      *testing.T
	pub, natA, natB        string
	peerA, peerB           string
	links                  map[string][]string // namespace → its interfaces other than lo
	pubA, pubB             string              // interface names
	wanA, wanB, lanA, lanB string
	ethA, ethB             string
}

func (n *natNet) exec(ns string) []string { return []string{"ip", "netns", "exec", ns} }

func (n *natNet) in(ns string, args ...string) string {
	n.t.Helper()
	return natRun(n.t, append(n.exec(ns), args...)...)
}

func (n *natNet) nft(ns, rules string) {
	n.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		n.t.Fatalf("nft in %s: %v\n%s\n%s", ns, err, out, rules)
	}
}

func newNatNet(t *testing.T) *natNet {
	removeStaleNamespaces(t)
	p := fmt.Sprintf("%s%d-", natPrefix, os.Getpid())
	// Interface names are unique per run too (15 bytes at most), so the
	// isolation check can look for them in the host's namespace.
	ifp := fmt.Sprintf("cn%x", os.Getpid()&0xfffff)
	n := &natNet{
		t: t, pub: p + "pub", natA: p + "nata", natB: p + "natb", peerA: p + "peera", peerB: p + "peerb",
		pubA: ifp + "pa", pubB: ifp + "pb", wanA: ifp + "wa", wanB: ifp + "wb",
		lanA: ifp + "la", lanB: ifp + "lb", ethA: ifp + "ea", ethB: ifp + "eb",
	}
	n.links = map[string][]string{
		n.pub: {n.pubA, n.pubB}, n.natA: {n.wanA, n.lanA}, n.natB: {n.wanB, n.lanB},
		n.peerA: {n.ethA}, n.peerB: {n.ethB},
	}
	// Cleanup first, so a failure half-way still removes everything.
	t.Cleanup(func() {
		for ns := range n.links {
			_ = exec.Command("ip", "netns", "del", ns).Run()
		}
	})
	for ns := range n.links {
		natRun(t, "ip", "netns", "add", ns)
		n.in(ns, "ip", "link", "set", "lo", "up")
	}
	// Both ends of every veth are created inside the test's namespaces.
	veth := func(nsA, ifA, nsB, ifB string) {
		natRun(t, "ip", "-n", nsA, "link", "add", ifA, "type", "veth", "peer", "name", ifB, "netns", nsB)
	}
	veth(n.pub, n.pubA, n.natA, n.wanA)
	veth(n.pub, n.pubB, n.natB, n.wanB)
	veth(n.natA, n.lanA, n.peerA, n.ethA)
	veth(n.natB, n.lanB, n.peerB, n.ethB)
	n.checkIsolated()

	addr := func(ns, dev, cidr string) {
		n.in(ns, "ip", "addr", "add", cidr, "dev", dev)
		n.in(ns, "ip", "link", "set", dev, "up")
	}
	n.in(n.pub, "ip", "addr", "add", "11.0.0.1/32", "dev", "lo")
	addr(n.pub, n.pubA, "11.0.1.1/24")
	addr(n.pub, n.pubB, "11.0.2.1/24")
	addr(n.natA, n.wanA, "11.0.1.2/24")
	addr(n.natA, n.lanA, "10.0.1.1/24")
	addr(n.natB, n.wanB, "11.0.2.2/24")
	addr(n.natB, n.lanB, "10.0.2.1/24")
	addr(n.peerA, n.ethA, "10.0.1.2/24")
	addr(n.peerB, n.ethB, "10.0.2.2/24")
	// Routes stay inside the namespaces: the NATs send 11/8 to the
	// "internet", the peers everything to their NAT (which only knows 11/8).
	n.in(n.natA, "ip", "route", "add", "11.0.0.0/8", "via", "11.0.1.1")
	n.in(n.natB, "ip", "route", "add", "11.0.0.0/8", "via", "11.0.2.1")
	n.in(n.peerA, "ip", "route", "add", "default", "via", "10.0.1.1")
	n.in(n.peerB, "ip", "route", "add", "default", "via", "10.0.2.1")
	for _, ns := range []string{n.pub, n.natA, n.natB} {
		n.in(ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	}
	for _, r := range []struct{ ns, wan, lan, other string }{
		{n.natA, n.wanA, n.lanA, "11.0.2.2"}, {n.natB, n.wanB, n.lanB, "11.0.1.2"},
	} {
		// "punched" counts packets from the other NAT let in to the LAN:
		// only possible once both sides have sent to each other (a hole).
		n.nft(r.ns, fmt.Sprintf(`table ip canopynat {
	counter punched {}
	chain masq { type nat hook postrouting priority srcnat; oifname %q masquerade; }
	# Like home routers: unsolicited packets from outside are dropped
	# silently, not refused (a refusal would end a punch attempt early).
	chain wanin {
		type filter hook input priority filter; policy accept;
		iifname %q ct state != established,related drop
	}
	chain languard {
		type filter hook forward priority filter; policy drop;
		iifname %q ip saddr %s ct state established counter name "punched" accept
		ct state established,related accept
		iifname %q oifname %q accept
	}
}
`, r.wan, r.wan, r.wan, r.other, r.lan, r.wan))
	}
	return n
}

// checkIsolated asserts that the namespaces hold only lo and the test's
// own veths, and that none of those is in the host's namespace: no packet
// with an 11/8 address can leave.
func (n *natNet) checkIsolated() {
	n.t.Helper()
	var all []string
	for ns, want := range n.links {
		var links []struct {
			Name string `json:"ifname"`
		}
		if err := json.Unmarshal([]byte(n.in(ns, "ip", "-j", "link", "show")), &links); err != nil {
			n.t.Fatal(err)
		}
		var got []string
		for _, l := range links {
			got = append(got, l.Name)
		}
		wantAll := append([]string{"lo"}, want...)
		slices.Sort(got)
		slices.Sort(wantAll)
		if !slices.Equal(got, wantAll) {
			n.t.Fatalf("namespace %s has interfaces %v, want only %v", ns, got, wantAll)
		}
		all = append(all, want...)
	}
	host := natRun(n.t, "ip", "-o", "link", "show")
	for _, name := range all {
		if strings.Contains(host, " "+name+"@") || strings.Contains(host, " "+name+":") {
			n.t.Fatalf("interface %s is in the host's namespace", name)
		}
	}
}

// punched returns how many packets from the other NAT each NAT let in.
func (n *natNet) punched() (a, b int) {
	n.t.Helper()
	return n.counter(n.natA), n.counter(n.natB)
}

var packetsRE = regexp.MustCompile(`packets (\d+)`)

func (n *natNet) counter(ns string) int {
	n.t.Helper()
	m := packetsRE.FindStringSubmatch(n.in(ns, "nft", "list", "counter", "ip", "canopynat", "punched"))
	if m == nil {
		n.t.Fatalf("no counter in %s", ns)
	}
	c, _ := strconv.Atoi(m[1])
	return c
}

// isStatus matches a status event whose status satisfies f.
func isStatus(f func(reach string, addrs []string) bool) func(*jev) bool {
	return func(e *jev) bool {
		if e.Type != "status" {
			return false
		}
		var s struct {
			Status struct {
				Reachability string   `json:"reachability"`
				Addrs        []string `json:"addrs"`
			} `json:"status"`
		}
		if json.Unmarshal([]byte(e.raw), &s) != nil {
			return false
		}
		return f(s.Status.Reachability, s.Status.Addrs)
	}
}

// TestE2ENAT: two peers, each behind its own NAT, learn from AutoNAT that
// they are private, reserve a slot on the public relay, reach each other
// through it (alice invites bob at the circuit address on his card), punch
// holes through both NATs (DCUtR) and chat. Both retire their relayed
// connection, and with the relay cut off they chat over the punched path
// alone.
func TestE2ENAT(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	natPrereqs(t)
	bin := canopyBinary(t)
	n := newNatNet(t)

	relay := startRelayWrapped(t, n.exec(n.pub), bin, t.TempDir(),
		"--listen", "/ip4/11.0.0.1/tcp/4001,/ip4/11.0.0.1/udp/4001/quic-v1",
		"--announce", "/ip4/11.0.0.1/tcp/4001,/ip4/11.0.0.1/udp/4001/quic-v1")
	if !strings.HasPrefix(relay, "/ip4/11.0.0.1/") {
		t.Fatalf("relay address %s", relay)
	}
	// The relay's QUIC address only: hole punching uses the transports of
	// the peers' observed addresses, which they learn on their connection
	// to the relay. Given both, a loaded machine sometimes connected one
	// peer over QUIC and the other over TCP, and the punch had no common
	// transport. UDP is also what NATs let through most reliably.
	boot := strings.Replace(relay, "/tcp/4001/", "/udp/4001/quic-v1/", 1)
	// The peers listen on 0.0.0.0 as by default: dials then leave from
	// the listening socket, so the relay observes the NAT mapping of the
	// listen port (with a listener on 10.0.x.2 the QUIC dial to the relay
	// sometimes used another socket and hole punching had no address).
	var logs []string // the peers' log files
	peer := func(ns, nick string) *peerProc {
		data := t.TempDir()
		logs = append(logs, filepath.Join(data, "canopy", nick, "canopy.log"))
		return startPeerWrapped(t, n.exec(ns), bin, data, nick,
			"--listen", "/ip4/0.0.0.0/tcp/0,/ip4/0.0.0.0/udp/0/quic-v1", "--bootstrap", boot)
	}
	start := time.Now()
	alice := peer(n.peerA, "alice")
	bob := peer(n.peerB, "bob")
	// After the peers' cleanups are registered, so it runs before them.
	t.Cleanup(func() { keepLogsIfFailed(t, logs) })

	// 1. AutoNAT: the relay's dial-backs to the NATs' public addresses fail.
	const natWait = 90 * time.Second
	for _, p := range []*peerProc{alice, bob} {
		p.waitWithin(0, natWait, "reachability private", isStatus(func(r string, _ []string) bool { return r == "private" }))
	}
	tPrivate := time.Since(start)

	// 2. autorelay: a reservation gives each a circuit address.
	reserved := isStatus(func(_ string, addrs []string) bool {
		return slices.ContainsFunc(addrs, func(a string) bool { return strings.Contains(a, "/p2p-circuit") })
	})
	for _, p := range []*peerProc{alice, bob} {
		p.waitWithin(0, natWait, "a relay reservation", reserved)
	}
	tReserved := time.Since(start)
	if a, b := n.punched(); a != 0 || b != 0 {
		t.Fatalf("packets crossed the NATs before any peer could reach the other (%d, %d)", a, b)
	}

	// 3. Through the relay: alice invites bob by his card, which names his
	// circuit address through the relay; they chat.
	card := bob.must("/card").Text
	if !strings.Contains(card, "/p2p-circuit") {
		t.Fatalf("bob's card has no circuit address:\n%s", card)
	}
	g := alice.must("/create natgroup " + lastLine(card)).group()
	bob.waitWithin(0, natWait, "invitation", func(e *jev) bool { return e.Type == "invitation" })
	if got := bob.must("/accept").group(); got != g {
		t.Fatalf("bob joined %q, want %q", got, g)
	}
	alice.waitWithin(0, natWait, "bob joined", membersAre(g, 2))
	alice.must("hello from behind NAT A")
	bob.waitWithin(0, natWait, "alice's message", isMsg(g, "hello from behind NAT A"))
	bob.must("hello from behind NAT B")
	alice.waitWithin(0, natWait, "bob's message", isMsg(g, "hello from behind NAT B"))
	tChat := time.Since(start)

	// 4. DCUtR: the relayed connection makes them punch holes; each NAT
	// then lets in packets from the other NAT, which it drops unless its
	// own peer has just sent there.
	deadline := time.Now().Add(natWait)
	for {
		a, b := n.punched()
		if a > 0 && b > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no hole punched within %v (packets let in: A %d, B %d)", natWait, a, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	tPunched := time.Since(start)

	// 5. The switch: hole punching opened a direct connection next to the
	// relayed one; each peer closes its relayed connection to the other
	// once it carries only gossip (p2p/relayedconn.go), and gossipsub
	// re-opens its streams on the direct one. Both logs must say so. (It
	// mostly happens during the first relayed contact, alice fetching
	// bob's KeyPackage, which DCUtR upgrades at once: the chat of step 3
	// then already takes the direct connection.)
	var retired time.Time // the last peer's relayed connection closed
	for _, log := range logs {
		if at := waitLogLine(t, log, natWait, "relayed connection closed, a direct one remains"); at.After(retired) {
			retired = at
		}
	}
	tDirect := retired.Sub(start)

	// 6. The relay is cut off: the "internet" drops every packet to or from
	// 11.0.0.1. The punched path is all that is left.
	n.nft(n.pub, `table ip cutrelay {
	chain in { type filter hook input priority filter - 10; policy accept; ip daddr 11.0.0.1 drop; }
	chain out { type filter hook output priority filter - 10; policy accept; ip saddr 11.0.0.1 drop; }
}
`)
	a0, b0 := n.punched()
	cut := time.Now()
	alice.must("hello over the punched path")
	bob.waitWithin(0, natWait, "alice's direct message", isMsg(g, "hello over the punched path"))
	tFirstDirect := time.Since(cut)
	bob.must("and back over it")
	alice.waitWithin(0, natWait, "bob's direct message", isMsg(g, "and back over it"))
	tReply := time.Since(cut)
	a, b := n.punched()
	if a <= a0 || b <= b0 {
		t.Fatalf("chat with the relay cut off did not cross the punched holes (packets let in: A %d→%d, B %d→%d)", a0, a, b0, b)
	}
	t.Logf("NAT timings from the peers' start: private %v, reserved %v, invited through the relay and chatted %v, holes seen punched %v, only direct connections %v; after the relay was cut: first message %v, reply %v (packets let in: A %d, B %d)",
		tPrivate.Round(time.Millisecond), tReserved.Round(time.Millisecond), tChat.Round(time.Millisecond),
		tPunched.Round(time.Millisecond), tDirect.Round(time.Millisecond),
		tFirstDirect.Round(time.Millisecond), tReply.Round(time.Millisecond), a, b)
}

// keepLogsIfFailed copies the peers' full debug logs out of the test's
// temporary directories when the test failed (the failure message shows
// only their tails).
func keepLogsIfFailed(t *testing.T, logs []string) {
	if !t.Failed() || len(logs) == 0 {
		return
	}
	dir, err := os.MkdirTemp("", "canopy-nat-logs-")
	if err != nil {
		return
	}
	for _, l := range logs {
		if b, err := os.ReadFile(l); err == nil {
			_ = os.WriteFile(filepath.Join(dir, filepath.Base(filepath.Dir(l))+".log"), b, 0o600)
		}
	}
	t.Logf("peers' logs kept in %s", dir)
}

// waitLogLine polls a peer's log file until it holds line, for at most
// within, and returns the time the line was logged.
func waitLogLine(t *testing.T, path string, within time.Duration, line string) time.Time {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		b, _ := os.ReadFile(path)
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.Contains(l, line) {
				continue
			}
			// slog's text handler starts each line with time=RFC 3339.
			ts, _, _ := strings.Cut(strings.TrimPrefix(l, "time="), " ")
			at, err := time.Parse(time.RFC3339Nano, ts)
			if err != nil {
				t.Fatalf("%s: no time in %q", path, l)
			}
			return at
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: no %q within %v", path, line, within)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// lastLine returns the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
}
