package p2p

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"os"
	"strings"
	"sync"
	"sync/atomic"

	golog "github.com/ipfs/go-log/v2"
	"github.com/libp2p/go-libp2p/gologshim"
	"go.uber.org/zap/zapcore"
)

// canopy's TUI owns the terminal, so nothing in p2p may print to stdout or
// stderr. p2p's own logging goes to the *slog.Logger given with WithLogger
// (default: discard). libp2p's loggers are process-global, so they are
// routed once, at package initialisation, into a forwarding handler:
//
//   - go-libp2p (gologshim, including mDNS) through gologshim.SetDefaultHandler,
//   - go-libp2p-kad-dht (go-log/zap) through go-log's primary core,
//   - the zeroconf mDNS library, which uses the standard log package, by
//     redirecting the standard logger while mDNS runs (only if the program
//     has not redirected it itself).
//
// The forwarding handler writes to the logger set with SetLibp2pLogger, or
// else to the logger of the oldest open Node that has one, or nowhere.
// libp2p records below Warn are forwarded only when that logger is enabled
// for Debug: libp2p is chatty at Info.

func init() {
	gologshim.SetDefaultHandler(forwardHandler{})
	golog.SetPrimaryCore(zapForwardCore{})
}

var libp2pLogs struct {
	mu       sync.Mutex
	explicit *slog.Logger
	nodes    []nodeLogger
	target   atomic.Pointer[slog.Logger]
}

type nodeLogger struct {
	owner any
	l     *slog.Logger
}

// SetLibp2pLogger sends libp2p's process-wide logs to l (nil: back to the
// default choice, see WithLogger).
func SetLibp2pLogger(l *slog.Logger) {
	libp2pLogs.mu.Lock()
	defer libp2pLogs.mu.Unlock()
	libp2pLogs.explicit = l
	updateLibp2pTarget()
}

func registerLibp2pLogger(owner any, l *slog.Logger) {
	if l == nil {
		return
	}
	libp2pLogs.mu.Lock()
	defer libp2pLogs.mu.Unlock()
	libp2pLogs.nodes = append(libp2pLogs.nodes, nodeLogger{owner, l})
	updateLibp2pTarget()
}

func unregisterLibp2pLogger(owner any) {
	libp2pLogs.mu.Lock()
	defer libp2pLogs.mu.Unlock()
	kept := libp2pLogs.nodes[:0]
	for _, n := range libp2pLogs.nodes {
		if n.owner != owner {
			kept = append(kept, n)
		}
	}
	libp2pLogs.nodes = kept
	updateLibp2pTarget()
}

func updateLibp2pTarget() {
	switch {
	case libp2pLogs.explicit != nil:
		libp2pLogs.target.Store(libp2pLogs.explicit)
	case len(libp2pLogs.nodes) > 0:
		libp2pLogs.target.Store(libp2pLogs.nodes[0].l)
	default:
		libp2pLogs.target.Store(nil)
	}
}

func libp2pTarget(ctx context.Context, lvl slog.Level) slog.Handler {
	l := libp2pLogs.target.Load()
	if l == nil {
		return nil
	}
	h := l.Handler()
	if lvl < slog.LevelWarn && !h.Enabled(ctx, slog.LevelDebug) {
		return nil
	}
	if !h.Enabled(ctx, lvl) {
		return nil
	}
	return h
}

// forwardHandler is the slog.Handler installed into gologshim.
type forwardHandler struct {
	ops []func(slog.Handler) slog.Handler
}

func (f forwardHandler) Enabled(ctx context.Context, lvl slog.Level) bool {
	return libp2pTarget(ctx, lvl) != nil
}

func (f forwardHandler) Handle(ctx context.Context, r slog.Record) error {
	h := libp2pTarget(ctx, r.Level)
	if h == nil {
		return nil
	}
	for _, op := range f.ops {
		h = op(h)
	}
	return h.Handle(ctx, r)
}

func (f forwardHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	ops := append(f.ops[:len(f.ops):len(f.ops)], func(h slog.Handler) slog.Handler { return h.WithAttrs(attrs) })
	return forwardHandler{ops: ops}
}

func (f forwardHandler) WithGroup(name string) slog.Handler {
	ops := append(f.ops[:len(f.ops):len(f.ops)], func(h slog.Handler) slog.Handler { return h.WithGroup(name) })
	return forwardHandler{ops: ops}
}

// zapForwardCore is the zap core installed into go-log.
type zapForwardCore struct {
	fields []zapcore.Field
}

func zapToSlogLevel(l zapcore.Level) slog.Level {
	switch {
	case l <= zapcore.DebugLevel:
		return slog.LevelDebug
	case l == zapcore.InfoLevel:
		return slog.LevelInfo
	case l == zapcore.WarnLevel:
		return slog.LevelWarn
	}
	return slog.LevelError
}

func (c zapForwardCore) Enabled(l zapcore.Level) bool {
	return libp2pTarget(context.Background(), zapToSlogLevel(l)) != nil
}

func (c zapForwardCore) With(fields []zapcore.Field) zapcore.Core {
	return zapForwardCore{fields: append(c.fields[:len(c.fields):len(c.fields)], fields...)}
}

func (c zapForwardCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if c.Enabled(e.Level) {
		return ce.AddCore(e, c)
	}
	return ce
}

func (c zapForwardCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	lvl := zapToSlogLevel(e.Level)
	h := libp2pTarget(context.Background(), lvl)
	if h == nil {
		return nil
	}
	r := slog.NewRecord(e.Time, lvl, e.Message, 0)
	if e.LoggerName != "" {
		r.AddAttrs(slog.String("logger", e.LoggerName))
	}
	menc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(menc)
	}
	for _, f := range fields {
		f.AddTo(menc)
	}
	for k, v := range menc.Fields {
		r.AddAttrs(slog.Any(k, v))
	}
	return h.Handle(context.Background(), r)
}

func (c zapForwardCore) Sync() error { return nil }

var stdLogOnce sync.Once

// redirectStdLog routes the standard logger (used by the zeroconf mDNS
// library) into the forwarding handler, unless the program redirected it.
func redirectStdLog() {
	stdLogOnce.Do(func() {
		if log.Writer() == os.Stderr {
			log.SetOutput(stdLogWriter{})
		}
	})
}

type stdLogWriter struct{}

func (stdLogWriter) Write(p []byte) (int, error) {
	h := libp2pTarget(context.Background(), slog.LevelWarn)
	// slog's built-in default handler writes through the standard logger:
	// forwarding to it would loop.
	if h == nil || fmt.Sprintf("%T", h) == "*slog.defaultHandler" {
		return len(p), nil
	}
	msg := strings.TrimSpace(string(p))
	// Strip the standard logger's date/time prefix if present.
	if i := strings.Index(msg, " "); i == 10 && strings.Count(msg[:i], "/") == 2 {
		if j := strings.Index(msg[i+1:], " "); j >= 0 {
			msg = msg[i+1+j+1:]
		}
	}
	r := slog.NewRecord(timeNow(), slog.LevelWarn, msg, 0)
	r.AddAttrs(slog.String("logger", "stdlog"))
	_ = h.Handle(context.Background(), r)
	return len(p), nil
}
