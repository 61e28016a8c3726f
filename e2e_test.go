package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/chat"
	"github.com/canopy-chat/canopy/internal/testwait"
)

// End-to-end tests: the real canopy binary, built into t.TempDir(), run as
// separate processes on 127.0.0.1 (mDNS off), driven through `canopy
// headless` (commands on stdin, JSON events on stdout). Every wait is a
// readiness wait with a deadline.

const e2eWait = 30 * time.Second

var (
	buildOnce sync.Once
	buildPath string
	buildErr  error
)

// canopyBinary builds the binary once per test process.
func canopyBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test: skipped with -short")
	}
	return buildCanopy(t)
}

// buildCanopy builds the binary once per test process (also under -short,
// for tests that run shortened rather than not at all).
func buildCanopy(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "canopy-e2e-bin")
		if err != nil {
			buildErr = err
			return
		}
		buildPath = filepath.Join(dir, "canopy")
		if runtime.GOOS == "windows" {
			buildPath += ".exe"
		}
		out, err := exec.Command("go", "build", "-o", buildPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildPath
}

func TestMain(m *testing.M) {
	code := m.Run()
	if buildPath != "" {
		os.RemoveAll(filepath.Dir(buildPath))
	}
	os.Exit(code)
}

// jev is one line of the headless stream.
type jev struct {
	Type string `json:"type"`
	// result
	Line  int    `json:"line"`
	OK    bool   `json:"ok"`
	Text  string `json:"text"`
	Error string `json:"error"`
	// several
	RawGroup json.RawMessage `json:"group"`
	Self     struct {
		Nick   string `json:"nick"`
		PeerID string `json:"peer_id"`
		Card   string `json:"card"`
	} `json:"self"`
	Addrs   []string `json:"addrs"`
	Message struct {
		ID       string `json:"id"`
		Group    string `json:"group"`
		Kind     string `json:"kind"`
		Sender   string `json:"sender"`
		Own      bool   `json:"own"`
		Body     string `json:"body"`
		Epoch    uint64 `json:"epoch"`
		Delivery string `json:"delivery"`
		// Placement: "after-gap" or "late" when shown out of its
		// sender's order, and so marked.
		Placement string `json:"placement"`
	} `json:"message"`
	ID         string `json:"id"`
	Delivery   string `json:"delivery"`
	Invitation struct {
		ID        string `json:"id"`
		GroupName string `json:"group_name"`
		From      string `json:"from"`
	} `json:"invitation"`
	Members []struct {
		Nick       string `json:"nick"`
		Self       bool   `json:"self"`
		Verified   bool   `json:"verified"`
		KeyChanged bool   `json:"key_changed"`
	} `json:"members"`
	Level string `json:"level"`
	raw   string
	at    time.Time // when the line was read
}

// group returns the group id of the event ("group" is an id, or an object
// in group events).
func (e *jev) group() string {
	var s string
	if json.Unmarshal(e.RawGroup, &s) == nil {
		return s
	}
	var g struct {
		ID string `json:"id"`
	}
	_ = json.Unmarshal(e.RawGroup, &g)
	return g.ID
}

func (e *jev) groupView() (id string, epoch uint64, members int, left bool) {
	var g struct {
		ID      string `json:"id"`
		Epoch   uint64 `json:"epoch"`
		Members int    `json:"members"`
		Left    bool   `json:"left"`
	}
	_ = json.Unmarshal(e.RawGroup, &g)
	return g.ID, g.Epoch, g.Members, g.Left
}

// peerProc is one `canopy headless` process.
type peerProc struct {
	t      *testing.T
	name   string
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr bytes.Buffer
	exited chan struct{}

	events testwait.Log[*jev] // closed at the end of stdout

	mu    sync.Mutex
	lines int
	ready *jev
}

// e2eListen is what peers listen on: TCP and QUIC, like the default, so
// that peers talk over QUIC (libp2p prefers it) as they do in real use.
const e2eListen = "/ip4/127.0.0.1/tcp/0,/ip4/127.0.0.1/udp/0/quic-v1"

func startPeer(t *testing.T, bin, data, nick string, extra ...string) *peerProc {
	t.Helper()
	return startPeerWrapped(t, nil, bin, data, nick, extra...)
}

// startPeerWrapped is startPeer with the command run through wrap (e.g.
// ip netns exec NS); later --listen flags in extra override e2eListen.
func startPeerWrapped(t *testing.T, wrap []string, bin, data, nick string, extra ...string) *peerProc {
	t.Helper()
	return startPeerEnv(t, wrap, []string{"CANOPY_LOG=debug"}, bin, data, nick, extra...)
}

// startPeerEnv is startPeerWrapped with env added to the process's
// environment (the load test's peers log at info, as users' do).
func startPeerEnv(t *testing.T, wrap, env []string, bin, data, nick string, extra ...string) *peerProc {
	t.Helper()
	args := append([]string{"headless", "--data", data, "--profile", nick, "--nick", nick,
		"--listen", e2eListen, "--no-mdns"}, extra...)
	cmd := wrapCommand(wrap, bin, args...)
	cmd.Env = append(os.Environ(), env...)
	p := &peerProc{t: t, name: nick, cmd: cmd, exited: make(chan struct{})}
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 4<<20)
		for sc.Scan() {
			ev := &jev{raw: sc.Text(), at: time.Now()}
			if err := json.Unmarshal(sc.Bytes(), ev); err != nil {
				ev.Type = "unparsable"
			}
			p.events.Add(ev)
		}
		p.events.Close()
		_ = cmd.Wait()
		close(p.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-p.exited:
		default:
			_ = p.cmd.Process.Kill()
			<-p.exited
		}
		if t.Failed() {
			t.Logf("%s stderr:\n%s", p.name, p.stderr.String())
			if b, err := os.ReadFile(filepath.Join(data, "canopy", nick, "canopy.log")); err == nil {
				lines := strings.Split(string(b), "\n")
				if len(lines) > 80 {
					lines = lines[len(lines)-80:]
				}
				t.Logf("%s log (tail):\n%s", p.name, strings.Join(lines, "\n"))
			}
		}
	})
	p.ready = p.wait("ready", func(e *jev) bool { return e.Type == "ready" })
	return p
}

func (p *peerProc) card() string { return p.ready.Self.Card }

// wait returns the first event (from the start of the stream) matching f.
func (p *peerProc) wait(what string, f func(*jev) bool) *jev {
	p.t.Helper()
	return p.waitFrom(0, what, f)
}

func (p *peerProc) waitFrom(from int, what string, f func(*jev) bool) *jev {
	p.t.Helper()
	return p.waitWithin(from, e2eWait, what, f)
}

// waitWithin is waitFrom with its own deadline.
func (p *peerProc) waitWithin(from int, within time.Duration, what string, f func(*jev) bool) *jev {
	p.t.Helper()
	ev, ok := p.events.Wait(from, within, f)
	if !ok {
		events, eof := p.events.Events()
		var sb strings.Builder
		for _, ev := range events[max(0, len(events)-40):] {
			sb.WriteString("\n  " + ev.raw)
		}
		p.t.Fatalf("%s: timed out waiting for %s (eof=%v); last events:%s", p.name, what, eof, sb.String())
	}
	return ev
}

func (p *peerProc) has(f func(*jev) bool) bool { return p.events.Has(f) }

func (p *peerProc) indexOf(ev *jev) int { return p.events.Index(func(e *jev) bool { return e == ev }) }

func (p *peerProc) count(f func(*jev) bool) int { return p.events.Count(f) }

func (p *peerProc) mark() int { return p.events.Len() }

// do sends one input line and returns its result.
func (p *peerProc) do(line string) *jev {
	p.t.Helper()
	return p.result(p.send(line))
}

// send writes one input line and returns its number.
func (p *peerProc) send(line string) int {
	p.t.Helper()
	p.mu.Lock()
	p.lines++
	n := p.lines
	p.mu.Unlock()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("%s: writing %q: %v", p.name, line, err)
	}
	return n
}

// result waits for the result of input line n.
func (p *peerProc) result(n int) *jev {
	p.t.Helper()
	return p.wait(fmt.Sprintf("result of line %d", n), func(e *jev) bool { return e.Type == "result" && e.Line == n })
}

// must sends a line that must succeed.
func (p *peerProc) must(line string) *jev {
	p.t.Helper()
	r := p.do(line)
	if !r.OK {
		p.t.Fatalf("%s: %q failed: %s", p.name, line, r.Error)
	}
	return r
}

// quit ends the process cleanly.
func (p *peerProc) quit() {
	p.t.Helper()
	p.do("/quit")
	_ = p.stdin.Close()
	select {
	case <-p.exited:
	case <-time.After(e2eWait):
		p.t.Fatalf("%s did not exit", p.name)
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		p.t.Fatalf("%s exited with %d: %s", p.name, code, p.stderr.String())
	}
}

func isMsg(group, body string) func(*jev) bool {
	return func(e *jev) bool {
		return e.Type == "message" && e.Message.Group == group && e.Message.Body == body
	}
}

func isSys(group, substr string) func(*jev) bool {
	return func(e *jev) bool {
		return e.Type == "message" && e.Message.Group == group && e.Message.Kind == "system" && strings.Contains(e.Message.Body, substr)
	}
}

func membersAre(group string, n int) func(*jev) bool {
	return func(e *jev) bool { return e.Type == "members" && e.group() == group && len(e.Members) == n }
}

// TestE2EHeadless drives three headless peers through journeys 1 (create,
// invite by card, accept), 2 (chat, delivery states), 7 (safety numbers,
// verification marks, a changed key flagged), 4 (concurrent invites),
// 8 (/update, /search),
// 5 (a member restarts and catches up from its peers) and 3 (kick, leave).
func TestE2EHeadless(t *testing.T) {
	t.Parallel() // journeys share nothing but the binary
	bin := canopyBinary(t)
	data := t.TempDir()
	alice := startPeer(t, bin, data, "alice")
	bob := startPeer(t, bin, data, "bob")
	carol := startPeer(t, bin, data, "carol")

	// Journey 1: one Commit adds bob and carol; both see the invitation.
	res := alice.must("/create team " + bob.card() + " " + carol.card())
	g := res.group()
	if g == "" || !strings.Contains(res.Text, "bob") || !strings.Contains(res.Text, "carol") {
		t.Fatalf("create: %s", res.raw)
	}
	for _, p := range []*peerProc{bob, carol} {
		inv := p.wait("invitation", func(e *jev) bool { return e.Type == "invitation" })
		if inv.Invitation.GroupName != "team" || inv.Invitation.From != "alice" {
			t.Fatalf("%s: invitation %s", p.name, inv.raw)
		}
		if got := p.must("/accept").group(); got != g {
			t.Fatalf("%s joined %q, want %q", p.name, got, g)
		}
	}
	for _, p := range []*peerProc{alice, bob, carol} {
		p.wait("three members", membersAre(g, 3))
	}

	// Journey 2: messages reach every member; own messages go pending →
	// sent → delivered.
	start := time.Now()
	alice.must("hello from alice")
	for _, p := range []*peerProc{bob, carol} {
		ev := p.wait("alice's message", isMsg(g, "hello from alice"))
		if ev.Message.Sender != "alice" || ev.Message.Own {
			t.Fatalf("%s got %s", p.name, ev.raw)
		}
	}
	t.Logf("message on every member after %v", time.Since(start))
	own := alice.wait("own message", isMsg(g, "hello from alice"))
	if !own.Message.Own || own.Message.Delivery != "pending" {
		t.Fatalf("own message: %s", own.raw)
	}
	for _, state := range []string{"sent", "delivered"} {
		alice.wait(state, func(e *jev) bool { return e.Type == "delivery" && e.ID == own.Message.ID && e.Delivery == state })
	}
	bob.must("hi alice, bob here")
	alice.wait("bob's reply", isMsg(g, "hi alice, bob here"))
	carol.wait("bob's reply", isMsg(g, "hi alice, bob here"))

	// Journey 4: alice and bob invite at the same moment. However the
	// two Commits race, everyone converges: both invitees join and see
	// the same five members.
	dave := startPeer(t, bin, data, "dave")
	erin := startPeer(t, bin, data, "erin")
	na := alice.send("/invite " + dave.card())
	nb := bob.send("/invite " + erin.card())
	for _, r := range []*jev{alice.result(na), bob.result(nb)} {
		if !r.OK {
			t.Fatalf("concurrent invite failed: %s", r.raw)
		}
	}
	for _, p := range []*peerProc{dave, erin} {
		p.wait("invitation", func(e *jev) bool { return e.Type == "invitation" })
		p.must("/accept")
	}
	for _, p := range []*peerProc{alice, bob, carol, dave, erin} {
		p.wait("five members", membersAre(g, 5))
	}
	erin.must("erin joined the race")
	for _, p := range []*peerProc{alice, bob, carol, dave} {
		p.wait("erin's message", isMsg(g, "erin joined the race"))
	}
	if alice.has(isSys(g, "concurrent changes resolved")) || bob.has(isSys(g, "concurrent changes resolved")) {
		t.Log("the invites raced; the fork healed")
	}

	// Journey 7: both sides show the same safety number; verification
	// marks the member.
	an := alice.must("/verify bob").Text
	bn := bob.must("/verify alice").Text
	num := safetyLine(an)
	if num == "" || safetyLine(bn) != num {
		t.Fatalf("safety numbers differ:\n%s\n%s", an, bn)
	}
	m := alice.mark()
	alice.must("/verify bob confirm")
	alice.waitFrom(m, "bob verified", func(e *jev) bool {
		if e.Type != "members" || e.group() != g {
			return false
		}
		for _, mb := range e.Members {
			if mb.Nick == "bob" && mb.Verified {
				return true
			}
		}
		return false
	})

	// Journey 7, key change: bob replaces his signature key (canopy id
	// --new-key) and restarts; alice is warned loudly and bob is no longer
	// marked verified.
	bob.quit()
	out, err := exec.Command(bin, "id", "--data", data, "--profile", "bob", "--new-key").CombinedOutput()
	if err != nil {
		t.Fatalf("canopy id --new-key: %v\n%s", err, out)
	}
	m = alice.mark()
	bob = startPeer(t, bin, data, "bob")
	alice.waitFrom(m, "key change warning", func(e *jev) bool {
		return e.Type == "notice" && e.Level == "warning" && strings.Contains(e.Text, "key of bob changed")
	})
	alice.waitFrom(m, "bob flagged", func(e *jev) bool {
		if e.Type != "members" || e.group() != g {
			return false
		}
		for _, mb := range e.Members {
			if mb.Nick == "bob" && mb.KeyChanged && !mb.Verified {
				return true
			}
		}
		return false
	})
	if txt := alice.must("/verify bob").Text; !strings.Contains(txt, "WARNING") {
		t.Fatalf("/verify after a key change: %q", txt)
	}

	// Journey 8: /update starts a new epoch everyone follows; /search
	// finds history.
	m = alice.mark()
	mc := carol.mark()
	bob.must("/switch team")
	bob.must("/update")
	alice.waitFrom(m, "bob's update", isSys(g, "bob rotated their keys"))
	carol.waitFrom(mc, "bob's update", isSys(g, "bob rotated their keys"))
	alice.must("after the update")
	bob.wait("message after update", isMsg(g, "after the update"))
	carol.wait("message after update", isMsg(g, "after the update"))
	if out := carol.must("/search hello").Text; !strings.Contains(out, "hello from alice") {
		t.Fatalf("search: %q", out)
	}

	// Journey 5: carol quits, the others chat, carol restarts and gets
	// what she missed, in order, once.
	carol.quit()
	missed := []string{"while carol was away 1", "while carol was away 2", "while carol was away 3"}
	for i, body := range missed {
		from, other := alice, bob
		if i%2 == 1 {
			from, other = bob, alice
		}
		from.must(body)
		other.wait(body, isMsg(g, body))
	}
	carol = startPeer(t, bin, data, "carol")
	prev := -1
	for _, body := range missed {
		ev := carol.wait("missed "+body, isMsg(g, body))
		idx := carol.indexOf(ev)
		if idx < prev {
			t.Fatalf("carol got %q out of order", body)
		}
		prev = idx
	}
	for _, body := range missed {
		if n := carol.count(isMsg(g, body)); n != 1 {
			t.Fatalf("carol got %q %d times", body, n)
		}
	}
	carol.must("/switch team")
	carol.must("carol is back")
	alice.wait("carol back", isMsg(g, "carol is back"))

	// Journey 3: alice kicks carol, who can no longer read; bob leaves
	// (a Remove proposal alice commits).
	m = alice.mark()
	alice.must("/kick carol")
	carol.wait("carol removed", isSys(g, "removed you"))
	bob.wait("bob sees the kick", isSys(g, "alice removed carol"))
	alice.must("secret after the kick")
	bob.wait("message after kick", isMsg(g, "secret after the kick"))
	if r := carol.do("can I still talk?"); r.OK {
		t.Fatal("removed member could still send")
	}
	bob.must("/leave")
	alice.wait("bob left", isSys(g, "bob left"))
	bob.wait("bob's own view", isSys(g, "you left"))
	alice.waitFrom(m, "three members left", membersAre(g, 3))
	if carol.has(isMsg(g, "secret after the kick")) {
		t.Fatal("removed member read a message sent after its removal")
	}
	for _, p := range []*peerProc{alice, bob, carol, dave, erin} {
		p.quit()
	}
}

// safetyLine extracts the 60-digit safety number from /verify's text.
func safetyLine(text string) string {
	for _, l := range strings.Split(text, "\n") {
		l = strings.TrimSpace(l)
		if len(l) == 71 && strings.Count(l, " ") == 11 {
			return l
		}
	}
	return ""
}

// startRelay runs `canopy relay` on 127.0.0.1 and returns its full
// multiaddr.
func startRelay(t *testing.T, bin, dir string, extra ...string) string {
	t.Helper()
	return startRelayWrapped(t, nil, bin, dir, extra...)
}

// startRelayWrapped is startRelay with the command run through wrap.
func startRelayWrapped(t *testing.T, wrap []string, bin, dir string, extra ...string) string {
	t.Helper()
	cmd := wrapCommand(wrap, bin, append([]string{"relay", "--listen", e2eListen, "--data", dir, "--metrics", "", "--log-level", "debug"}, extra...)...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	addrc := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if l := strings.TrimSpace(sc.Text()); strings.HasPrefix(l, "/ip4/") && strings.Contains(l, "/p2p/") {
				select {
				case addrc <- l:
				default:
				}
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		if t.Failed() {
			t.Logf("relay stderr (tail):\n%s", tail(stderr.String(), 40))
		}
	})
	select {
	case a := <-addrc:
		return a
	case <-exited:
		t.Fatalf("relay exited: %s", stderr.String())
	case <-time.After(e2eWait):
		t.Fatalf("relay printed no address: %s", stderr.String())
	}
	return ""
}

// wrapCommand runs bin with args, through the wrap command if given.
func wrapCommand(wrap []string, bin string, args ...string) *exec.Cmd {
	if len(wrap) == 0 {
		return exec.Command(bin, args...)
	}
	all := append(append(slices.Clone(wrap[1:]), bin), args...)
	return exec.Command(wrap[0], all...)
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestE2ERelay covers journeys 6 and 5 with a relay: bob publishes his
// KeyPackages on a `canopy relay` and goes offline; alice, who knows no
// address of bob's (his card is pasted without addresses) and meets him
// only through the relay given with --bootstrap, invites him; bob joins on
// his next start from the relay's mailbox, gets what was written while he
// was away, and they chat.
func TestE2ERelay(t *testing.T) {
	t.Parallel() // journeys share nothing but the binary
	bin := canopyBinary(t)
	data := t.TempDir()
	relay := startRelay(t, bin, filepath.Join(data, "relay"))
	boot := []string{"--bootstrap", relay}

	bob := startPeer(t, bin, data, "bob", boot...)
	bob.wait("KeyPackages on the relay", func(e *jev) bool {
		return e.Type == "notice" && strings.Contains(e.Text, "KeyPackages are on relay")
	})
	c, err := chat.ParseCard(bob.card())
	if err != nil {
		t.Fatal(err)
	}
	c.Addrs = nil
	bobCard := c.String()
	bob.quit()

	alice := startPeer(t, bin, data, "alice", boot...)
	g := alice.must("/create viarelay " + bobCard).group()
	alice.must("written while bob was offline")
	alice.wait("the invitation left on the relay", func(e *jev) bool {
		return e.Type == "notice" && strings.Contains(e.Text, "invitation waits on 1 relay")
	})

	bob = startPeer(t, bin, data, "bob", boot...)
	inv := bob.wait("invitation from the relay mailbox", func(e *jev) bool { return e.Type == "invitation" })
	if inv.Invitation.GroupName != "viarelay" {
		t.Fatalf("invitation %s", inv.raw)
	}
	if got := bob.must("/accept").group(); got != g {
		t.Fatalf("joined %q, want %q", got, g)
	}
	bob.wait("message written before joining", isMsg(g, "written while bob was offline"))
	bob.must("hello through the relay")
	alice.wait("bob's message", isMsg(g, "hello through the relay"))
	alice.must("and back")
	bob.wait("alice's reply", isMsg(g, "and back"))
	alice.quit()
	bob.quit()
}
