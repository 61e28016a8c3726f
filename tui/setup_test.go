package tui

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
)

func setupKeys(m *setupModel, s string) {
	for _, r := range s {
		var msg tea.KeyMsg
		switch r {
		case '\r':
			msg = tea.KeyMsg{Type: tea.KeyEnter}
		case '\t':
			msg = tea.KeyMsg{Type: tea.KeyTab}
		case 0x15:
			msg = tea.KeyMsg{Type: tea.KeyCtrlU}
		default:
			msg = tea.KeyMsg{Type: tea.KeyRunes, Runes: []rune{r}}
		}
		m.Update(msg)
	}
}

func TestSetupModel(t *testing.T) {
	m := newSetupModel(asciiStyles(), "alice")
	golden(t, "setup_start", m.View())

	// an invalid nick is refused with a reason
	setupKeys(m, "\x15bad nick\r")
	if m.focus != 0 || !strings.Contains(m.View(), "no spaces") {
		t.Fatalf("bad nick accepted: focus %d\n%s", m.focus, m.View())
	}
	setupKeys(m, "\x15李小龙\r")
	if m.focus != 1 {
		t.Fatalf("good nick refused: %s", m.err)
	}
	// the passphrase is masked; a differing confirmation is refused
	setupKeys(m, "s3cret\rs3crex\r")
	v := m.View()
	if strings.Contains(v, "s3cret") || !strings.Contains(v, "******") {
		t.Errorf("passphrase not masked:\n%s", v)
	}
	if m.done || !strings.Contains(v, "passphrases differ") || m.inputs[2].Value() != "" {
		t.Fatalf("mismatch accepted:\n%s", v)
	}
	golden(t, "setup_mismatch", v)
	setupKeys(m, "s3cret\r")
	if !m.done || m.nick() != "李小龙" || m.inputs[1].Value() != "s3cret" {
		t.Fatalf("done %v nick %q pass %q", m.done, m.nick(), m.inputs[1].Value())
	}
}

func TestSetupValidateNick(t *testing.T) {
	for nick, ok := range map[string]bool{
		"alice": true, "李小龙": true, "émile_2": true,
		"": false, "a b": false, "/kick": false, "@bob": false, "x\x1b[31m": false,
		strings.Repeat("n", 33): false, strings.Repeat("n", 32): true,
	} {
		if got := validateNick(nick) == ""; got != ok {
			t.Errorf("validateNick(%q) ok = %v, want %v", nick, got, ok)
		}
	}
}

// TestSetupProgram runs Setup as a real program on piped input.
func TestSetupProgram(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, tc := range []struct {
		name, in   string
		nick, pass string
		err        error
	}{
		{"defaults without passphrase", "\r\r", "alice", "", nil},
		{"new nick and passphrase", "\x15bob\rpw one\rpw one\r", "bob", "pw one", nil},
		{"retry after mismatch", "\rpw1\rpw2\rpw1\r", "alice", "pw1", nil},
		{"cancelled", "\x1b", "", "", ErrSetupCancelled},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			nick, pass, err := Setup(ctx, "alice", strings.NewReader(tc.in), &out)
			if !errors.Is(err, tc.err) || nick != tc.nick || pass != tc.pass {
				t.Errorf("Setup = %q, %q, %v; want %q, %q, %v", nick, pass, err, tc.nick, tc.pass, tc.err)
			}
			if tc.pass != "" && strings.Contains(out.String(), tc.pass) {
				t.Error("the passphrase was echoed")
			}
		})
	}
	t.Run("context", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, _, err := Setup(ctx, "alice", strings.NewReader(""), &bytes.Buffer{})
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("Setup = %v, want the context's error", err)
		}
	})
}
