package chat

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// logWatch is a slog.Handler that keeps every record's message, so that a
// test can wait until an engine has logged that it handled something it
// shows no other sign of (an ignored edit): a barrier instead of a sleep.
type logWatch struct {
	mu   sync.Mutex
	cond *sync.Cond
	msgs []string
}

func newLogWatch() *logWatch {
	w := &logWatch{}
	w.cond = sync.NewCond(&w.mu)
	return w
}

// option makes the engine log to w.
func (w *logWatch) option() engineOpt {
	return func(c *Config) { c.Logger = slog.New(w) }
}

func (w *logWatch) Enabled(context.Context, slog.Level) bool { return true }
func (w *logWatch) WithAttrs([]slog.Attr) slog.Handler       { return w }
func (w *logWatch) WithGroup(string) slog.Handler            { return w }

func (w *logWatch) Handle(_ context.Context, r slog.Record) error {
	w.mu.Lock()
	w.msgs = append(w.msgs, r.Message)
	w.cond.Broadcast()
	w.mu.Unlock()
	return nil
}

// wait blocks until a record with message msg was logged.
func (w *logWatch) wait(t testing.TB, msg string) {
	t.Helper()
	expired := false
	timer := time.AfterFunc(waitLong, func() {
		w.mu.Lock()
		expired = true
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer timer.Stop()
	w.mu.Lock()
	defer w.mu.Unlock()
	for i := 0; ; {
		for ; i < len(w.msgs); i++ {
			if w.msgs[i] == msg {
				return
			}
		}
		if expired {
			t.Fatalf("timed out waiting for the log record %q", msg)
		}
		w.cond.Wait()
	}
}
