package tui

import (
	"context"
	"errors"
	"io"
	"os"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"

	"github.com/canopy-chat/canopy/chat"
)

// ErrEngineStopped is returned by Run when the engine closed its event
// channel while the TUI was running.
var ErrEngineStopped = errors.New("tui: the chat engine stopped")

// Option configures Run.
type Option func(*options)

type options struct {
	input       io.Reader
	output      io.Writer
	loc         *time.Location
	mouse       bool
	noBell      bool
	notify      func(chat.Message)
	desktop     DesktopNotify
	historyPage int
}

func defaultOptions() options {
	return options{loc: time.Local, mouse: true, historyPage: 200}
}

// WithInput reads keys from r instead of standard input.
func WithInput(r io.Reader) Option { return func(o *options) { o.input = r } }

// WithOutput draws on w instead of standard output. If w is a terminal
// (an *os.File, say) its size and colour support are used.
func WithOutput(w io.Writer) Option { return func(o *options) { o.output = w } }

// WithLocation shows timestamps in loc instead of the local time zone.
func WithLocation(loc *time.Location) Option {
	return func(o *options) {
		if loc != nil {
			o.loc = loc
		}
	}
}

// WithoutMouse leaves the mouse to the terminal (native text selection)
// instead of using it for scrolling and clicking.
func WithoutMouse() Option { return func(o *options) { o.mouse = false } }

// WithoutBell keeps the terminal bell silent on mentions.
func WithoutBell() Option { return func(o *options) { o.noBell = true } }

// WithNotify calls fn (in a goroutine of its own) for every message that
// mentions the user while they cannot see it: in another group or with the
// terminal window in the background. Use it for desktop notifications; the
// bell rings as well unless WithoutBell is given.
func WithNotify(fn func(chat.Message)) Option { return func(o *options) { o.notify = fn } }

// WithDesktopNotify turns on desktop notifications for the mentions the
// bell rings for, sent as terminal escape sequences of kind k (the terminal
// shows them; over SSH too). They name the sender and the group, never the
// message: a notification is seen outside the terminal. Off by default.
func WithDesktopNotify(k DesktopNotify) Option { return func(o *options) { o.desktop = k } }

// WithHistoryPage sets how many messages are loaded per page of scrollback
// (default 200).
func WithHistoryPage(n int) Option {
	return func(o *options) {
		if n > 0 {
			o.historyPage = n
		}
	}
}

// Run shows the messenger for c until the user quits (nil), ctx ends
// (ctx.Err()) or the engine stops (ErrEngineStopped). It takes over the
// terminal: alternate screen, mouse cell motion (unless WithoutMouse),
// bracketed paste and focus reporting.
func Run(ctx context.Context, c chat.Client, opts ...Option) error {
	o := defaultOptions()
	for _, opt := range opts {
		opt(&o)
	}
	if o.output == nil {
		o.output = os.Stdout
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()

	gfx, reply, late := detectGraphics(o)
	out := lockOutput(o.output)
	r := lipgloss.NewRenderer(out)
	m := newModel(runCtx, c, newStyles(r), o)
	m.s.gfx, m.s.cellW, m.s.cellH = gfx, reply.cellW, reply.cellH
	switch gfx {
	case graphicsKitty:
		m.fx.graphics = func(seq string) { _, _ = out.Write([]byte(seq)) }
	case graphicsSixel:
		m.fx.sixels = &sixelImages{}
		outputOf(out).sixels = m.fx.sixels
	}
	m.fx.bell = func() { _, _ = out.Write([]byte("\a")) }
	m.fx.notify = o.notify
	m.fx.clipboard = func(text string) { _, _ = out.Write([]byte(ansi.SetSystemClipboard(text))) }
	m.mouseOff = !o.mouse
	if o.desktop != NotifyOff {
		kind := o.desktop
		m.fx.desktop = func(title, body string) { _, _ = out.Write([]byte(kind.osc(title, body))) }
	}

	popts := []tea.ProgramOption{
		tea.WithOutput(out),
		tea.WithAltScreen(),
		tea.WithReportFocus(),
	}
	if o.mouse {
		popts = append(popts, tea.WithMouseCellMotion())
	}
	if o.input != nil {
		popts = append(popts, tea.WithInput(o.input))
	}
	if late {
		popts = append(popts, tea.WithFilter(lateReplyFilter(time.Now)))
	}
	p := tea.NewProgram(m, popts...)
	// The title shows unread counts while canopy runs; terminals that keep
	// a title stack (xterm and most others) get the previous one back.
	_, _ = out.Write([]byte(pushTitle))
	defer func() { _, _ = out.Write([]byte(popTitle)) }()
	// When ctx ends the program quits the ordinary way (restoring the
	// terminal and waiting for its input reader) rather than being killed.
	stop := context.AfterFunc(ctx, p.Quit)
	defer stop()
	final, err := p.Run()
	if ctx.Err() != nil {
		return ctx.Err()
	}
	if err != nil && !errors.Is(err, tea.ErrInterrupted) {
		return err
	}
	fm, _ := final.(*model)
	if fm != nil && fm.s.gfx == graphicsKitty {
		// the terminal keeps image data until told; free canopy's
		for _, im := range fm.s.images {
			if im.kittyID != 0 {
				_, _ = out.Write([]byte(kittyDelete(im.kittyID)))
			}
		}
	}
	if fm != nil && fm.engineStopped {
		return ErrEngineStopped
	}
	return nil
}

// detectGraphics picks the image protocol: CANOPY_IMAGES if set, else the
// terminal's answer to graphicsQuery. The terminal is asked even when the
// protocol is forced (for its cell size), but never when images are off.
// late: the terminal was asked and did not finish answering in time.
func detectGraphics(o options) (g graphics, reply termReply, late bool) {
	forced, isForced := graphicsFromEnv()
	if isForced && forced == graphicsNone {
		return graphicsNone, termReply{}, false
	}
	in, _ := o.input.(*os.File)
	if o.input == nil {
		in = os.Stdin
	}
	out, _ := o.output.(*os.File)
	if in == nil || out == nil {
		return forced, termReply{}, false
	}
	reply, asked := queryTerminal(in, out, graphicsTimeout)
	late = asked && !reply.done
	if isForced {
		return forced, reply, late
	}
	return reply.protocol(), reply, late
}

// outputOf returns the lockedWriter under a lockOutput writer.
func outputOf(w io.Writer) *lockedWriter {
	if f, ok := w.(*lockedFile); ok {
		return f.lockedWriter
	}
	return w.(*lockedWriter)
}

// XTWINOPS: save and restore the window title.
const (
	pushTitle = "\x1b[22;0t"
	popTitle  = "\x1b[23;0t"
)

// lockOutput serialises writes to the terminal, so that the bell, written
// from a command's goroutine, lands between two frames of the renderer and
// never inside an escape sequence. A terminal stays recognisable as one
// (Bubble Tea and Lip Gloss look for Fd).
func lockOutput(w io.Writer) io.Writer {
	lw := &lockedWriter{w: w}
	if f, ok := w.(interface {
		io.ReadWriteCloser
		Fd() uintptr
	}); ok {
		return &lockedFile{lockedWriter: lw, f: f}
	}
	return lw
}

type lockedWriter struct {
	mu sync.Mutex
	w  io.Writer
	// sixels, when set, expands the sixel markers of frames into images
	sixels *sixelImages
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.sixels != nil {
		if q := l.sixels.expand(p); len(q) != len(p) {
			// the caller wrote all of p, as far as it needs to know
			if _, err := l.w.Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return l.w.Write(p)
}

type lockedFile struct {
	*lockedWriter
	f interface {
		io.ReadWriteCloser
		Fd() uintptr
	}
}

func (l *lockedFile) Read(p []byte) (int, error) { return l.f.Read(p) }
func (l *lockedFile) Close() error               { return l.f.Close() }
func (l *lockedFile) Fd() uintptr                { return l.f.Fd() }
