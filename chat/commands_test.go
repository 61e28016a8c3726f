package chat

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// TestCommandRegistry checks that the one registry drives both help and
// dispatch: every listed command and alias reaches a handler, help lists
// every command, group commands refuse to run without a group, and
// argument errors quote the registry's synopsis.
func TestCommandRegistry(t *testing.T) {
	p := newPeer(t, "alice")
	ctx := context.Background()
	help := p.run("", "/help").Text
	for _, c := range Commands {
		if c.run == nil {
			t.Errorf("/%s has no handler", c.Name)
		}
		for _, n := range append([]string{c.Name}, c.aliases...) {
			if commandByName[n] != &Commands[slices.IndexFunc(Commands, func(x Command) bool { return x.Name == c.Name })] {
				t.Errorf("/%s does not resolve to its entry", n)
			}
		}
		if !strings.Contains(help, "/"+c.Name) {
			t.Errorf("help does not list /%s", c.Name)
		}
		if c.inGroup {
			_, err := p.e.Run(ctx, "", "/"+c.Name+" x")
			if err == nil || err.Error() != "no group selected" {
				t.Errorf("/%s without a group: err %v, want no group selected", c.Name, err)
			}
		}
	}
	if got := p.run("", "/?").Text; got != help {
		t.Errorf("/? = %q, want the help text", got)
	}
	for _, q := range []string{"/quit", "/EXIT"} {
		if _, err := p.e.Run(ctx, "", q); !errors.Is(err, ErrQuit) {
			t.Errorf("%s: err %v, want ErrQuit", q, err)
		}
	}
	for line, want := range map[string]string{
		"/create":        "usage: /create NAME [CONTACT…] [--pq]",
		"/dm a b":        "usage: /dm CONTACT|CARD",
		"/search":        "usage: /search WORDS…",
		"/frobnicate 1":  "unknown command /frobnicate (try /help)",
		"/Card":          "",
		"/nick":          "",
		"/invitations  ": "",
	} {
		_, err := p.e.Run(ctx, "", line)
		if want == "" {
			if err != nil {
				t.Errorf("%s: %v", line, err)
			}
			continue
		}
		if err == nil || err.Error() != want {
			t.Errorf("%s: err %v, want %q", line, err, want)
		}
	}
	if got := p.run("", "/nick").Text; got != "your nickname is alice" {
		t.Errorf("/nick = %q", got)
	}
}
