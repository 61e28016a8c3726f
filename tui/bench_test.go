package tui

import (
	"fmt"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/chat"
)

// BenchmarkTimelineNewMessage is the cost of a screen update after a message
// arrives in a group with a full buffer (5000 entries): entries are rendered
// once and cached, so this stays in the milliseconds.
func BenchmarkTimelineNewMessage(b *testing.B) {
	d := newDriver(b, 100, 30)
	buf := d.m.s.buffer("g1")
	for i := range maxEntries {
		buf.apply(chat.Message{
			ID: chat.MessageID(fmt.Sprint("b", i)), Kind: chat.KindText, Sender: "bob", SenderFP: fpBob,
			Body:   "a moderately long message, 日本語も少し入っている 🎉, with enough words to wrap",
			SentAt: t0.Add(time.Duration(i) * time.Second),
		})
	}
	d.m.View()
	b.ResetTimer()
	for i := range b.N {
		d.events(chat.MessageEvent{Message: chat.Message{ID: chat.MessageID(fmt.Sprint("n", i)), Group: "g1", Kind: chat.KindText, Sender: "carol", Body: "new", SentAt: t0}})
		d.m.View()
	}
}
