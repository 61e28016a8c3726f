//go:build !windows

package tui

import (
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"
	"github.com/creack/pty"

	"github.com/canopy-chat/canopy/chat"
)

// TestPTYEndToEnd runs the real tea.Program through Run in a pseudo-terminal
// against the fake engine, and reads the screen back with a virtual terminal
// emulator: what a user would see, byte for byte through the renderer.
func TestPTYEndToEnd(t *testing.T) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer ptmx.Close()
	defer tty.Close()
	const cols, rows = 100, 30
	if err := pty.Setsize(ptmx, &pty.Winsize{Cols: cols, Rows: rows}); err != nil {
		t.Fatal(err)
	}

	emu := vt.NewEmulator(cols, rows)
	var bells atomic.Int32
	emu.SetCallbacks(vt.Callbacks{Bell: func() { bells.Add(1) }})
	var mu sync.Mutex
	readerDone := make(chan struct{})
	go func() { // program output → emulator
		defer close(readerDone)
		buf := make([]byte, 64<<10)
		for {
			n, err := ptmx.Read(buf)
			if n > 0 {
				mu.Lock()
				_, _ = emu.Write(buf[:n])
				mu.Unlock()
			}
			if err != nil {
				return
			}
		}
	}()
	// Emulator replies (to terminal queries) → program. The goroutine stays
	// blocked on the emulator when the test ends: closing the emulator
	// while it is read or written is a data race inside vt.
	go func() { _, _ = io.Copy(ptmx, emu) }()

	screen := func() string {
		mu.Lock()
		defer mu.Unlock()
		return emu.String()
	}
	waitFor := func(what string, cond func(string) bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			s := screen()
			if cond(s) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s; screen:\n%s", what, s)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	contains := func(parts ...string) func(string) bool {
		return func(s string) bool {
			for _, p := range parts {
				if !strings.Contains(s, p) {
					return false
				}
			}
			return true
		}
	}

	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, f, WithInput(tty), WithOutput(tty), WithLocation(time.UTC))
	}()

	// the group list, a message with wide characters and the status bar
	waitFor("the first screen", contains("日本語チーム", "ops 🚀 launch crew", "你好！@alice 看看这个", "4 peers", "members 4"))

	// typing and Enter reach Execute with the selected group
	if _, err := ptmx.Write([]byte("hello 世界\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-f.execCh:
		if c != (execCall{"g1", "hello 世界"}) {
			t.Errorf("Execute(%q, %q)", c.Group, c.Line)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Execute not called; screen:\n%s", screen())
	}

	// an engine event is drawn; a mention elsewhere rings the bell
	f.events <- chat.MessageEvent{Message: chat.Message{ID: "p1", Group: "g1", Kind: chat.KindText, Sender: "bob", SenderFP: fpBob, Body: "from the engine 🎉", SentAt: at("10:20")}}
	f.events <- chat.MessageEvent{Message: chat.Message{ID: "p2", Group: "g3", Kind: chat.KindText, Sender: "carol", Body: "@alice ping", SentAt: at("10:21"), Mentions: true}}
	waitFor("the engine's message", contains("from the engine 🎉"))
	waitFor("the unread badge", contains("ops 🚀 launch c… 1 @1"))
	deadline := time.Now().Add(10 * time.Second)
	for bells.Load() == 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if bells.Load() == 0 {
		t.Error("no bell for a mention in another group")
	}

	// a bracketed paste keeps its newlines; ? opens the help
	if _, err := ptmx.Write([]byte("\x1b[200~one\ntwo\x1b[201~")); err != nil {
		t.Fatal(err)
	}
	waitFor("the pasted lines", contains("› one", "  two"))
	if _, err := ptmx.Write([]byte("\r")); err != nil {
		t.Fatal(err)
	}
	select {
	case c := <-f.execCh:
		if c != (execCall{"g1", "one\ntwo"}) {
			t.Errorf("Execute(%q, %q)", c.Group, c.Line)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("Execute not called for the paste; screen:\n%s", screen())
	}
	if _, err := ptmx.Write([]byte("?")); err != nil {
		t.Fatal(err)
	}
	waitFor("the help", contains("canopy help", "ctrl+c"))
	if _, err := ptmx.Write([]byte("\x1b")); err != nil {
		t.Fatal(err)
	}

	// Ctrl-C quits and Run returns nil
	time.Sleep(100 * time.Millisecond) // let esc stand alone
	if _, err := ptmx.Write([]byte{3}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after ctrl+c")
	}
}

// TestRunEndsWithContextAndEngine checks Run's other two ways out.
func TestRunEndsWithContextAndEngine(t *testing.T) {
	// run starts Run in a pseudo-terminal and calls started once the first
	// screen is drawn.
	run := func(t *testing.T, f *fakeClient, ctx context.Context, started func()) error {
		ptmx, tty, err := pty.Open()
		if err != nil {
			t.Skipf("no pseudo-terminal: %v", err)
		}
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
