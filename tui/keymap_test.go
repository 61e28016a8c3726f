package tui

import (
	"reflect"
	"slices"
	"testing"

	"github.com/charmbracelet/bubbles/help"
	"github.com/charmbracelet/bubbles/key"
)

// TestKeyMapHelp checks the help.KeyMap side of the keymap: FullHelp holds
// every binding of the keymap (so a bubbles help view would list them all),
// ShortHelp only keys that are bound, and the composer hint is rendered
// from ShortHelp.
func TestKeyMapHelp(t *testing.T) {
	k := defaultKeyMap()
	var full []key.Binding
	for _, col := range k.FullHelp() {
		full = append(full, col...)
	}
	same := func(a, b key.Binding) bool { return slices.Equal(a.Keys(), b.Keys()) && a.Help() == b.Help() }
	v := reflect.ValueOf(k)
	for i := range v.NumField() {
		b := v.Field(i).Interface().(key.Binding)
		if !slices.ContainsFunc(full, func(f key.Binding) bool { return same(f, b) }) {
			t.Errorf("FullHelp lacks %s (%q)", v.Type().Field(i).Name, b.Help().Key)
		}
	}
	if len(k.FullHelp()) != len(k.sections()) {
		t.Errorf("FullHelp has %d columns for %d sections", len(k.FullHelp()), len(k.sections()))
	}
	for _, s := range k.ShortHelp() {
		found := false
		for i := range v.NumField() {
			found = found || slices.Equal(v.Field(i).Interface().(key.Binding).Keys(), s.Keys())
		}
		if !found || len(s.Keys()) == 0 {
			t.Errorf("ShortHelp %q is not a binding of the keymap", s.Help().Key)
		}
	}
	if got, want := help.New().View(k), ""; got == want {
		t.Error("a bubbles help view of the keymap is empty")
	}
	if got, want := k.composerHint(100), "enter send · alt+enter newline · tab complete/focus · ? help"; got != want {
		t.Errorf("wide hint %q, want %q", got, want)
	}
	if got, want := k.composerHint(60), "enter send · alt+enter newline · ? help"; got != want {
		t.Errorf("narrow hint %q, want %q", got, want)
	}
}
