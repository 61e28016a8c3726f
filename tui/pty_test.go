//go:build !windows

package tui

import (
	"context"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"

	"github.com/canopy-chat/canopy/chat"
	"github.com/canopy-chat/canopy/internal/testwait"
)

// ptyTerm is the real tea.Program run through Run in a pseudo-terminal,
// its output read back by a virtual terminal emulator: what a user sees,
// byte for byte through the renderer.
type ptyTerm struct {
	t     *testing.T
	ptmx  io.Writer
	mu    sync.Mutex
	emu   *vt.Emulator
	raw   strings.Builder // every byte the program wrote
	title atomic.Value    // the window title (string)
	bells atomic.Int32
	done  chan error // Run's result
}

// startPTY runs Run(ctx, f, opts…) in a cols×rows pseudo-terminal.
func startPTY(t *testing.T, ctx context.Context, f *fakeClient, cols, rows int, opts ...Option) *ptyTerm {
	t.Helper()
	return startPTYAnswering(t, ctx, f, cols, rows, nil, opts...)
}

// openPTY opens a pseudo-terminal pair. A machine without one (a container
// with no /dev/pts) skips these tests, except under CI=true, where the
// skip would hide that they never ran.
func openPTY(t *testing.T) (ptmx, tty *os.File) {
	t.Helper()
	ptmx, tty, err := pty.Open()
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("no pseudo-terminal: %v", err)
		}
		t.Skipf("no pseudo-terminal: %v", err)
	}
	return ptmx, tty
}

// startPTYAnswering is startPTY with a terminal that answers more than the
// emulator does: answer sees each chunk of output before the emulator and
// returns what the terminal replies to it ("" for nothing), ahead of the
// emulator's own replies.
func startPTYAnswering(t *testing.T, ctx context.Context, f *fakeClient, cols, rows int, answer func(out []byte) string, opts ...Option) *ptyTerm {
	t.Helper()
	ptmx, tty := openPTY(t)
	t.Cleanup(func() { ptmx.Close(); tty.Close() })
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)}); err != nil {
		t.Fatal(err)
	}
	p := &ptyTerm{t: t, ptmx: ptmx, emu: vt.NewEmulator(cols, rows), done: make(chan error, 1)}
	p.emu.SetCallbacks(vt.Callbacks{
		Bell:  func() { p.bells.Add(1) },
		Title: func(s string) { p.title.Store(s) }, // called with p.mu held
	})
	go func() { // program output → emulator
		buf := make([]byte, 64<<10)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 && answer != nil {
				if reply := answer(buf[:n]); reply != "" {
					_, _ = ptmx.Write([]byte(reply))
				}
			}
			if n > 0 {
				p.mu.Lock()
				p.raw.Write(buf[:n])
				_, _ = p.emu.Write(buf[:n])
				p.mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	// Emulator replies (to terminal queries) → program. The goroutine stays
	// blocked on the emulator when the test ends: closing the emulator
	// while it is read or written is a data race inside vt.
	go func() { _, _ = io.Copy(ptmx, p.emu) }()
	opts = append([]Option{WithInput(tty), WithOutput(tty), WithLocation(time.UTC)}, opts...)
	go func() { p.done <- Run(ctx, f, opts...) }()
	return p
}

// output is everything the program wrote so far.
func (p *ptyTerm) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.raw.String()
}

func (p *ptyTerm) screen() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.emu.String()
}

// write sends bytes as the terminal would, in one write (so in one read of
// the program, as when a user types faster than the program reads).
func (p *ptyTerm) write(s string) {
	p.t.Helper()
	if _, err := p.ptmx.Write([]byte(s)); err != nil {
		p.t.Fatal(err)
	}
}

func (p *ptyTerm) waitFor(what string, cond func(string) bool) {
	p.t.Helper()
	var s string
	if !testwait.Poll(10*time.Second, func() bool { s = p.screen(); return cond(s) }) {
		p.t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
	}
}

// waitExec waits for the next Execute call.
func (p *ptyTerm) waitExec(f *fakeClient) execCall {
	p.t.Helper()
	select {
	case c := <-f.execCh:
		return c
	case err := <-p.done:
		p.t.Fatalf("Run returned (%v) instead of executing; screen:\n%s", err, p.screen())
	case <-time.After(10 * time.Second):
		p.t.Fatalf("Execute not called; screen:\n%s", p.screen())
	}
	return execCall{}
}

// waitQuit waits for Run to return.
func (p *ptyTerm) waitQuit() error {
	p.t.Helper()
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		p.t.Fatalf("Run did not return; screen:\n%s", p.screen())
	}
	return nil
}

// waitUntil polls cond until it holds, for at most 10 s.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	testwait.Until(t, 10*time.Second, what, cond)
}

func contains(parts ...string) func(string) bool {
	return func(s string) bool {
		for _, p := range parts {
			if !strings.Contains(s, p) {
				return false
			}
		}
		return true
	}
}

// TestPTYEndToEnd runs the real program against the fake engine: the first
// screen, typing, engine events, the bell, a bracketed paste, the help and
// Ctrl-C.
func TestPTYEndToEnd(t *testing.T) {
	const cols, rows = 100, 30
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startPTY(t, ctx, f, cols, rows)

	// the group list, a message with wide characters and the status bar
	p.waitFor("the first screen", contains("日本語チーム", "ops 🚀 launch crew", "你好！@alice 看看这个", "4 peers", "members 4"))

	// typing and Enter reach Execute with the selected group
	p.write("hello 世界\r")
	if c := p.waitExec(f); c != (execCall{"g1", "hello 世界"}) {
		t.Errorf("Execute(%q, %q)", c.Group, c.Line)
	}

	// an engine event is drawn; a mention elsewhere rings the bell
	f.events <- chat.MessageEvent{Message: chat.Message{ID: "p1", Group: "g1", Kind: chat.KindText, Sender: "bob", SenderFP: fpBob, Body: "from the engine 🎉", SentAt: at("10:20")}}
	f.events <- chat.MessageEvent{Message: chat.Message{ID: "p2", Group: "g3", Kind: chat.KindText, Sender: "carol", Body: "@alice ping", SentAt: at("10:21"), Mentions: true}}
	p.waitFor("the engine's message", contains("from the engine 🎉"))
	p.waitFor("the unread badge", contains("ops 🚀 launch c… 1 @1"))
	if !testwait.Poll(10*time.Second, func() bool { return p.bells.Load() > 0 }) {
		t.Error("no bell for a mention in another group")
	}
	// the window title counts unread messages and mentions of all groups
	waitUntil(t, "the title's counts", func() bool { s, _ := p.title.Load().(string); return s == "(3 @2) canopy" })
	if out := p.output(); strings.Contains(out, "\x1b]9;") || strings.Contains(out, "\x1b]777;") {
		t.Error("a desktop notification was sent without WithDesktopNotify")
	}

	// a bracketed paste keeps its newlines; ? opens the help
	p.write("\x1b[200~one\ntwo\x1b[201~")
	p.waitFor("the pasted lines", contains("› one", "  two"))
	p.write("\r")
	if c := p.waitExec(f); c != (execCall{"g1", "one\ntwo"}) {
		t.Errorf("Execute(%q, %q)", c.Group, c.Line)
	}
	p.write("?")
	p.waitFor("the help", contains("canopy help", "ctrl+c"))
	p.write("\x1b")
	p.waitFor("the help closed", func(s string) bool { return !strings.Contains(s, "canopy help") })

	// Ctrl-C quits and Run returns nil
	p.write("\x03")
	if err := p.waitQuit(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestPTYWordsAreNeverKeys writes whole words that spell key names in one
// write each, the way they arrive over a slow SSH link or from a paste
// without bracketed paste: Bubble Tea delivers each word as one key message
// whose name is the word. They must land in the composer as text: nothing
// is sent, the history is not recalled, the help does not open, the
// program does not quit, and the one real Enter at the end sends exactly
// what was typed.
func TestPTYWordsAreNeverKeys(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startPTY(t, ctx, f, 200, 30) // wide: the whole text fits on the composer's line
	p.waitFor("the first screen", contains("你好！@alice 看看这个", "members 4"))

	// a sent line, so that Up has a history to recall
	p.write("earlier\r")
	if c := p.waitExec(f); c != (execCall{"g1", "earlier"}) {
		t.Fatalf("Execute(%q, %q)", c.Group, c.Line)
	}
	p.waitFor("the composer emptied", contains("› message general"))

	// words that name keys, each in a write of its own; the composer's
	// text after each write is checked before the next is written
	words := []string{
		"please", " enter", " the room", " up", " down", " press ctrl+c to quit",
		" esc", " tab", " shift+tab", " q?", " ?!", " pgup", " home", " end",
		" ctrl+n", " alt+enter", " ctrl+u", " ctrl+j", " backspace", " left",
	}
	var typed string
	for _, w := range words {
		p.write(w)
		typed += w
		p.waitFor("the composer to hold "+typed, contains("› "+typed))
	}
	// a bracketed paste of key names is text too, also into an empty
	// composer, where "?" alone would open the help
	p.write("\x1b[200~ enter?\x1b[201~")
	typed += " enter?"
	p.waitFor("the pasted text", contains("› "+typed))
	if s := p.screen(); strings.Contains(s, "canopy help") {
		t.Errorf("the help opened; screen:\n%s", s)
	}
	if calls := f.calls(); len(calls) != 1 {
		t.Errorf("Execute calls %q, want only the first line", calls)
	}

	// the one real Enter sends the whole text
	p.write("\r")
	if c := p.waitExec(f); c != (execCall{"g1", typed}) {
		t.Errorf("Execute(%q, %q), want %q", c.Group, c.Line, typed)
	}

	// with the group list focused (a real Tab), a word that names one of
	// its keys is text for the composer: the selection does not move
	p.write("\t")
	p.waitFor("the group list focused", contains("▸ groups"))
	p.write("end")
	p.waitFor("the word in the composer", contains("› end"))
	if s := p.screen(); !strings.Contains(s, "# general") {
		t.Errorf("the selected group changed; screen:\n%s", s)
	}
	// a pasted "?" into the empty composer is text, not the help
	p.write("\x15") // ctrl+u: clear the composer
	p.waitFor("the composer emptied", contains("› message general"))
	p.write("\x1b[200~?\x1b[201~")
	p.waitFor("the pasted ?", contains("› ?"))
	if s := p.screen(); strings.Contains(s, "canopy help") {
		t.Errorf("a pasted ? opened the help; screen:\n%s", s)
	}

	p.write("\x03")
	if err := p.waitQuit(); err != nil {
		t.Errorf("Run: %v", err)
	}
	if calls := f.calls(); len(calls) != 2 {
		t.Errorf("Execute calls %q, want 2", calls)
	}
}

// TestRunEndsWithContextAndEngine checks Run's other two ways out.
func TestRunEndsWithContextAndEngine(t *testing.T) {
	// run starts Run in a pseudo-terminal and calls started once the first
	// screen is drawn.
	run := func(t *testing.T, f *fakeClient, ctx context.Context, started func()) error {
		ptmx, tty := openPTY(t)
		defer ptmx.Close()
		defer tty.Close()
		_ = pty.Setsize(ptmx, &pty.Winsize{Cols: 80, Rows: 24})
		go func() {
			var seen strings.Builder
			buf := make([]byte, 4096)
			for {
				n, err := ptmx.Read(buf)
				if started != nil {
					seen.Write(buf[:n])
					if strings.Contains(seen.String(), "general") {
						started()
						started = nil
					}
				}
				if err != nil {
					return
				}
			}
		}()
		return Run(ctx, f, WithInput(tty), WithOutput(tty), WithoutMouse())
	}
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		if err := run(t, newFake(), ctx, cancel); !errors.Is(err, context.Canceled) {
			t.Errorf("Run = %v, want the context's error", err)
		}
	})
	t.Run("engine", func(t *testing.T) {
		f := newFake()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := run(t, f, ctx, func() { close(f.events) }); !errors.Is(err, ErrEngineStopped) {
			t.Errorf("Run = %v, want ErrEngineStopped", err)
		}
	})
}
