package main

import (
	"bytes"
	"strings"
	"testing"
)

func TestHelpListsSubcommands(t *testing.T) {
	for _, arg := range []string{"--help", "-h", "help"} {
		var out, errb bytes.Buffer
		if code := run([]string{arg}, &out, &errb); code != 0 {
			t.Fatalf("%s: exit %d, stderr %q", arg, code, errb.String())
		}
		for _, sc := range subcommands() {
			if !strings.Contains(out.String(), sc.name) {
				t.Errorf("%s: help does not list %q:\n%s", arg, sc.name, out.String())
			}
		}
	}
}

func TestUnknownSubcommandFails(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run([]string{"frobnicate"}, &out, &errb); code == 0 {
		t.Fatal("unknown subcommand exited 0")
	}
	if !strings.Contains(errb.String(), `unknown subcommand "frobnicate"`) {
		t.Errorf("stderr = %q", errb.String())
	}
}

func TestUnbuiltSubcommandsSayNotAvailable(t *testing.T) {
	for _, sc := range subcommands() {
		if sc.run != nil {
			continue
		}
		var out, errb bytes.Buffer
		if code := run([]string{sc.name}, &out, &errb); code == 0 {
			t.Errorf("%s: exit 0 for a subcommand that does not exist yet", sc.name)
		}
		if !strings.Contains(errb.String(), "not available yet") {
			t.Errorf("%s: stderr = %q", sc.name, errb.String())
		}
	}
}
