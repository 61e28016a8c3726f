package main

// The TUI end to end: the real binary in a pseudo-terminal, its screen
// read through a terminal emulator.

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/testwait"
	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"
)

// tuiProc is the real binary's TUI in a pseudo-terminal, read back through
// a virtual terminal emulator: what a user would see.
type tuiProc struct {
	t    *testing.T
	cmd  *exec.Cmd
	ptmx *os.File
	mu   sync.Mutex
	emu  *vt.Emulator
	done chan struct{}
}

func startTUI(t *testing.T, bin string, args ...string) *tuiProc {
	t.Helper()
	return startTUIEnv(t, bin, nil, args...)
}

// startTUIEnv is startTUI with extra environment variables (which win).
func startTUIEnv(t *testing.T, bin string, env []string, args ...string) *tuiProc {
	t.Helper()
	const cols, rows = 120, 36
	cmd := exec.Command(bin, args...)
	cmd.Env = append(append(os.Environ(), "TERM=xterm-256color", "CANOPY_LOG=debug"), env...)
	ptmx, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: cols, Rows: rows})
	if err != nil {
		t.Fatalf("no pseudo-terminal (the TUI end-to-end test needs one): %v", err)
	}
	p := &tuiProc{t: t, cmd: cmd, ptmx: ptmx, emu: vt.NewEmulator(cols, rows), done: make(chan struct{})}
	go func() {
		buf := make([]byte, 64<<10)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 {
				p.mu.Lock()
				_, _ = p.emu.Write(buf[:n])
				p.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	// Answers of the emulator to terminal queries go back to the program.
	// (The goroutine stays blocked on the emulator at the end: closing the
	// emulator while it is used is a data race inside vt.)
	go func() { _, _ = io.Copy(ptmx, p.emu) }()
	go func() { _ = cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = cmd.Process.Kill()
			<-p.done
		}
		ptmx.Close()
		if t.Failed() {
			t.Logf("TUI screen at the end:\n%s", p.screen())
		}
	})
	return p
}

func (p *tuiProc) screen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.emu.String()
}

func (p *tuiProc) waitScreen(what string, parts ...string) {
	p.t.Helper()
	var s string
	if !testwait.Poll(e2eWait, func() bool {
		s = p.screen()
		for _, part := range parts {
			if !strings.Contains(s, part) {
				return false
			}
		}
		return true
	}) {
		p.t.Fatalf("timed out waiting for %s on the TUI; screen:\n%s", what, s)
	}
}

func (p *tuiProc) typeLine(s string) {
	p.t.Helper()
	if _, err := p.ptmx.Write([]byte(s + "\r")); err != nil {
		p.t.Fatal(err)
	}
}

// TestE2ETUI runs the TUI of the real binary in a pseudo-terminal: first
// run (nickname, no passphrase), an invitation accepted with /accept,
// messages both ways with a headless peer, /verify, and Ctrl-C.
func TestE2ETUI(t *testing.T) {
	t.Parallel() // journeys share nothing but the binary
	bin := canopyBinary(t)
	data := t.TempDir()
	alice := startPeer(t, bin, data, "alice")
	tim := startTUI(t, bin, "chat", "--data", data, "--profile", "tim", "--nick", "tim",
		"--listen", e2eListen, "--no-mdns")

	// First run: the nickname is offered; Enter accepts it, Enter on an
	// empty passphrase finishes.
	tim.waitScreen("the first-run screen", "first run", "nickname")
	tim.typeLine("")
	tim.typeLine("")

	// The running engine keeps its card in the profile directory.
	var card string
	if !testwait.Poll(e2eWait, func() bool {
		if c := readCardFile(filepath.Join(data, "canopy", "tim")); c != nil && len(c.Addrs) > 0 {
			card = c.String()
		}
		return card != ""
	}) {
		t.Fatalf("no card file; screen:\n%s", tim.screen())
	}
	g := alice.must("/create mixed " + card).group()
	tim.waitScreen("the invitation", "mixed")
	tim.typeLine("/accept")
	alice.wait("tim joins", membersAre(g, 2))

	alice.must("hello tim, from headless")
	tim.waitScreen("alice's message", "hello tim, from headless", "alice")
	tim.typeLine("hi alice, from the TUI")
	ev := alice.wait("tim's message", isMsg(g, "hi alice, from the TUI"))
	if ev.Message.Sender != "tim" {
		t.Fatalf("sender %q", ev.Message.Sender)
	}
	// Verification: the TUI shows the same safety number as alice's.
	num := safetyLine(alice.must("/verify tim").Text)
	tim.typeLine("/verify alice")
	tim.waitScreen("the safety number", strings.Fields(num)[0], strings.Fields(num)[11])

	// /search opens its own view (the engine's Search, through the real
	// binary); Enter goes back to the message in the timeline
	tim.typeLine("/search from head")
	tim.waitScreen("the search view", "search from head · #mixed · 1 result", "alice: hello tim, from headless")
	tim.typeLine("")
	tim.waitScreen("the timeline again", "# mixed", "hi alice, from the TUI")

	// removed by a member: the title says who, the status bar shows no
	// epoch any more
	alice.must("/kick tim")
	tim.waitScreen("the removal", "# mixed · removed by alice")
	if s := tim.screen(); strings.Contains(s, "epoch ") {
		t.Errorf("a removed member still sees an epoch; screen:\n%s", s)
	}

	if _, err := tim.ptmx.Write([]byte{3}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	select {
	case <-tim.done:
	case <-time.After(e2eWait):
		t.Fatalf("the TUI did not quit on Ctrl-C; screen:\n%s", tim.screen())
	}
	if code := tim.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the TUI exited with %d", code)
	}
	alice.quit()
}

// TestE2ETUIWordsAreText runs the real binary in a pseudo-terminal and
// writes whole words in one write each, as a slow SSH link or a paste
// without bracketed paste delivers them: words that name keys ("enter",
// "up", "ctrl+c", "esc", "tab") are text, on the first-run screen and in
// the composer. The first-run screen offers the profile's name as the
// nickname when $USER is empty.
func TestE2ETUIWordsAreText(t *testing.T) {
	bin := canopyBinary(t)
	data := t.TempDir()
	bob := startTUIEnv(t, bin, []string{"USER=", "LOGNAME="},
		"chat", "--data", data, "--profile", "bob", "--listen", e2eListen, "--no-mdns")
	write := func(s string) {
		t.Helper()
		if _, err := bob.ptmx.Write([]byte(s)); err != nil {
			t.Fatal(err)
		}
	}
	bob.waitScreen("the first-run screen offering bob", "first run", "nickname    bob")
	write("\x15") // ctrl+u: empty the field
	bob.waitScreen("the field emptied", "how others see you")
	for _, w := range []string{"esc", "enter", "up", "tab"} {
		write(w)
	}
	bob.waitScreen("the typed nickname", "nickname    escenteruptab")
	write("\r")
	bob.waitScreen("the passphrase field", "passphrase")
	write("\r")
	bob.waitScreen("the messenger", "home · escenteruptab")

	var typed string
	for _, w := range []string{"please", " enter", " the room", " up", " press ctrl+c to quit", " esc", " tab", " ?"} {
		write(w)
		typed += w
		bob.waitScreen("the composer holding "+typed, "› "+typed)
	}
	select {
	case <-bob.done:
		t.Fatalf("the TUI quit on typed text; screen:\n%s", bob.screen())
	default:
	}
	if s := bob.screen(); strings.Contains(s, "no group selected") || strings.Contains(s, "canopy help") {
		t.Fatalf("typed text acted as a key; screen:\n%s", s)
	}
	write("\x03") // the real Ctrl-C
	select {
	case <-bob.done:
	case <-time.After(e2eWait):
		t.Fatalf("the TUI did not quit on Ctrl-C; screen:\n%s", bob.screen())
	}
	if code := bob.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("the TUI exited with %d", code)
	}
}
