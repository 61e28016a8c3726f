package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestFirstRunNick(t *testing.T) {
	env := func(vars map[string]string) func(string) string {
		return func(k string) string { return vars[k] }
	}
	none := func() string { return "" }
	for _, tc := range []struct {
		name, flag, profile string
		env                 map[string]string
		account             func() string
		want                string
	}{
		{"flag wins", "ann", "bob", map[string]string{"USER": "u"}, none, "ann"},
		{"a named profile", "", "bob", map[string]string{"USER": "u"}, none, "bob"},
		{"default profile: $USER", "", "default", map[string]string{"USER": "u"}, none, "u"},
		{"empty $USER: $LOGNAME", "", "default", map[string]string{"USER": " ", "LOGNAME": "l"}, none, "l"},
		{"no variables: the account", "", "default", nil, func() string { return "acct" }, "acct"},
		{"nothing at all", "", "", nil, none, ""},
	} {
		if got := firstRunNick(tc.flag, tc.profile, env(tc.env), tc.account); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestChatRejectsUnknownNotify(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"chat", "--data", t.TempDir(), "--notify", "dbus"}, &out, &errb); code == 0 {
		t.Fatal("--notify dbus accepted")
	}
	if !strings.Contains(errb.String(), "osc9") {
		t.Errorf("stderr %q does not name the choices", errb.String())
	}
}
