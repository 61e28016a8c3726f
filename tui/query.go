package tui

import (
	"errors"
	"io"
	"os"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/term"
	"github.com/muesli/cancelreader"
)

// graphicsTimeout bounds the wait for the terminal's answer at start. A
// terminal answers DA1 within a few milliseconds, over SSH within a round
// trip; one that does not answer at all gets no images.
const graphicsTimeout = 200 * time.Millisecond

// queryTerminal asks the terminal on in/out which graphics protocol it
// speaks and how large its cells are (parseTermReply). Bubble Tea v1 has
// no way to hand a program the answers to its own queries (unknown
// sequences are dropped by its input reader), so this runs before the
// program starts, in raw mode so that the answer is not echoed and
// arrives without waiting for a newline. No answer within timeout means
// no graphics. Keys typed during the wait are lost; an answer that comes
// after the wait reaches Bubble Tea as input (lateReplyFilter). asked
// reports whether the query was sent.
func queryTerminal(in, out *os.File, timeout time.Duration) (r termReply, asked bool) {
	if !term.IsTerminal(in.Fd()) || !term.IsTerminal(out.Fd()) {
		return termReply{}, false
	}
	return queryTTY(in, out, timeout), true
}

func queryTTY(in, out *os.File, timeout time.Duration) termReply {
	state, err := term.MakeRaw(in.Fd())
	if err != nil {
		return termReply{}
	}
	defer func() { _ = term.Restore(in.Fd(), state) }()
	// A cancelable reader, so that the read stops at the deadline instead
	// of staying blocked and eating the first key meant for Bubble Tea.
	cr, err := cancelreader.NewReader(in)
	if err != nil {
		return termReply{}
	}
	defer cr.Close()
	if _, err := out.WriteString(graphicsQuery); err != nil {
		return termReply{}
	}
	return readReply(cr, timeout)
}

// readReply reads r until the DA1 answer arrives or timeout passes, then
// cancels the read.
func readReply(cr cancelreader.CancelReader, timeout time.Duration) termReply {
	got := make(chan termReply, 1)
	go func() {
		var buf []byte
		chunk := make([]byte, 256)
		for len(buf) < 4096 {
			n, err := cr.Read(chunk)
			buf = append(buf, chunk[:n]...)
			if r := parseTermReply(buf); r.done {
				got <- r
				return
			}
			if err != nil {
				if !errors.Is(err, cancelreader.ErrCanceled) && !errors.Is(err, io.EOF) {
					got <- termReply{}
				}
				return
			}
		}
		got <- termReply{}
	}()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case r := <-got:
		return r
	case <-t.C:
		cr.Cancel()
		return termReply{}
	}
}

// lateReplyWindow is how long after start a late answer is filtered out.
const lateReplyWindow = 5 * time.Second

// lateReplyFilter is a tea.WithFilter filter for when the terminal did not
// answer in time: its kitty answer may still come (over a slow link), and
// Bubble Tea v1 reads an APC string as keys, alt+_ "Gi=31;OK" alt+\,
// which would be typed into the composer. For a few seconds after start
// such a run of keys is dropped. (The DA1 and cell-size answers are CSI
// sequences, which Bubble Tea already ignores.)
func lateReplyFilter(now func() time.Time) func(tea.Model, tea.Msg) tea.Msg {
	until := now().Add(lateReplyWindow)
	in := false
	return func(_ tea.Model, msg tea.Msg) tea.Msg {
		k, ok := msg.(tea.KeyMsg)
		if !ok || k.Type != tea.KeyRunes || (!in && now().After(until)) {
			return msg
		}
		text := string(k.Runes)
		switch {
		case !in && k.Alt && text == "_":
			in = true
			return nil
		case in && k.Alt && text == "\\":
			in = false
			return nil
		case in && !k.Alt && strings.Trim(text, "Gi=0123456789;,:ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") == "":
			return nil
		}
		in = false
		return msg
	}
}
