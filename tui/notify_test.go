//go:build !windows

package tui

import (
	"context"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/chat"
	"github.com/canopy-chat/canopy/internal/testwait"
)

func TestNotificationTextIsSafe(t *testing.T) {
	hostile := chat.Message{Sender: "ev\x1b]9;1;x\x07il;\x9c\u202e", Body: "secret plans"}
	title, body := notificationText(hostile, "g;\x1b\\roup")
	for _, k := range []DesktopNotify{NotifyOSC9, NotifyOSC777} {
		seq := k.osc(title, body)
		inner := seq[2 : len(seq)-2] // between "ESC ]" and "ESC \"
		if strings.ContainsAny(inner, "\x1b\x07\x9c\u202e") {
			t.Errorf("%d: control characters inside the sequence: %q", k, seq)
		}
		if k == NotifyOSC777 && strings.Count(inner, ";") != 3 {
			t.Errorf("OSC 777 fields: %q", seq)
		}
		if k == NotifyOSC9 && strings.Count(inner, ";") != 1 {
			t.Errorf("OSC 9 with a ';' in the text: %q", seq)
		}
		if strings.Contains(seq, "secret") {
			t.Errorf("the message text is in the notification: %q", seq)
		}
	}
	if got := NotifyOSC777.osc(notificationText(chat.Message{Sender: "bob"}, "日本語チーム")); got != "\x1b]777;notify;canopy;bob mentioned you in 日本語チーム\x1b\\" {
		t.Errorf("OSC 777: %q", got)
	}
	long := strings.Repeat("x", 500)
	if _, b := notificationText(chat.Message{Sender: long}, long); len([]rune(b)) > 2*maxNotifyLen+30 {
		t.Errorf("unbounded: %d runes", len([]rune(b)))
	}
	for in, want := range map[string]DesktopNotify{"": NotifyOff, "off": NotifyOff, "OSC9": NotifyOSC9, "osc777": NotifyOSC777} {
		if got, ok := ParseDesktopNotify(in); !ok || got != want {
			t.Errorf("ParseDesktopNotify(%q) = %d, %v", in, got, ok)
		}
	}
	if _, ok := ParseDesktopNotify("dbus"); ok {
		t.Error("ParseDesktopNotify accepted dbus")
	}
}

// TestPTYDesktopNotification: with WithDesktopNotify, a mention in another
// group reaches the terminal as OSC 9, naming sender and group only; a
// message without a mention sends nothing.
func TestPTYDesktopNotification(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startPTY(t, ctx, f, 100, 30, WithDesktopNotify(NotifyOSC9))
	p.waitFor("the first screen", contains("你好！@alice 看看这个", "members 4"))
	f.events <- chat.MessageEvent{Message: chat.Message{ID: "q1", Group: "g3", Kind: chat.KindText, Sender: "carol", Body: "no mention", SentAt: at("10:20")}}
	f.events <- chat.MessageEvent{Message: chat.Message{ID: "q2", Group: "g3", Kind: chat.KindText, Sender: "carol", Body: "@alice the launch", SentAt: at("10:21"), Mentions: true}}
	want := "\x1b]9;canopy: carol mentioned you in ops 🚀 launch crew\x1b\\"
	p.waitFor("the unread badge", contains("launch c… 2 @1"))
	testwait.Poll(10*time.Second, func() bool { return strings.Contains(p.output(), want) })
	out := p.output()
	if n := strings.Count(out, "\x1b]9;"); n != 1 || !strings.Contains(out, want) {
		t.Errorf("%d notifications; want one %q", n, want)
	}
	if strings.Contains(out, "\x1b]9;canopy: carol mentioned you in ops 🚀 launch crew the launch") {
		t.Error("the message text was sent")
	}
	p.write("\x03")
	if err := p.waitQuit(); err != nil {
		t.Errorf("Run: %v", err)
	}
}

// TestPTYCardCopyAndMouseToggle: /card puts the compact card on the
// clipboard with OSC 52; alt+m turns mouse capture off and on again.
func TestPTYCardCopyAndMouseToggle(t *testing.T) {
	f := newFake()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p := startPTY(t, ctx, f, 100, 30)
	p.waitFor("the first screen", contains("你好！@alice 看看这个", "members 4"))
	if !strings.Contains(p.output(), "\x1b[?1002h") {
		t.Fatal("mouse cell motion not on at the start")
	}

	p.write("/card\r")
	p.waitExec(f)
	want := "\x1b]52;c;" + base64.StdEncoding.EncodeToString([]byte(f.self.Card))
	waitUntil(t, "the OSC 52 sequence", func() bool { return strings.Contains(p.output(), want) })
	p.waitFor("the notice", contains("contact card is on the clipboard"))

	p.write("\x1bm") // alt+m
	waitUntil(t, "mouse capture off", func() bool { return strings.Contains(p.output(), "\x1b[?1002l") })
	p.waitFor("the notice", contains("mouse off"))
	n := strings.Count(p.output(), "\x1b[?1002h")
	p.write("\x1bm")
	waitUntil(t, "mouse capture on again", func() bool { return strings.Count(p.output(), "\x1b[?1002h") > n })

	p.write("\x03")
	if err := p.waitQuit(); err != nil {
		t.Errorf("Run: %v", err)
	}
}
