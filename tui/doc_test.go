package tui

import (
	"os"
	"strings"
	"testing"
)

// TestDocListsKeys keeps the package documentation (the user guide) in step
// with the keymap and the commands.
func TestDocListsKeys(t *testing.T) {
	src, err := os.ReadFile("doc.go")
	if err != nil {
		t.Fatal(err)
	}
	doc := string(src)
	for _, sec := range defaultKeyMap().sections() {
		for _, r := range sec.rows {
			if line := r.keys() + " "; !strings.Contains(doc, "//\t"+line) {
				t.Errorf("doc.go does not list %q", r.keys())
			}
		}
	}
	// (chat.Commands belongs to the engine and grows; the doc points to it.)
	if !strings.Contains(doc, "chat.Commands") {
		t.Error("doc.go does not point to chat.Commands")
	}
	for _, opt := range []string{"WithInput", "WithOutput", "WithLocation", "WithoutMouse", "WithoutBell", "WithNotify", "WithHistoryPage"} {
		if !strings.Contains(doc, opt) {
			t.Errorf("doc.go does not mention %s", opt)
		}
	}
}

func TestSanitize(t *testing.T) {
	for in, want := range map[string]string{
		"plain 世界 🎉":                       "plain 世界 🎉",
		"a\x1b[31mred\x1b[0m":              "ared",
		"title\x1b]0;pwned\x07 after":      "title after",
		"bell\a tab\t nl\n cr\r":           "bell tab     nl  cr",
		"\u202eevil\u202c \u2066iso\u2069": "evil iso",
		"c1\u009b31m":                      "c131m", // the C1 CSI is dropped, harmless text stays
		"bad \xff utf8":                    "bad \uFFFD utf8",
	} {
		if got := sanitize(in, false); got != want {
			t.Errorf("sanitize(%q) = %q, want %q", in, got, want)
		}
	}
	if got := sanitize("two\nlines", true); got != "two\nlines" {
		t.Errorf("multiline: %q", got)
	}
}

func TestWrapAndFitMeasureCells(t *testing.T) {
	for _, tc := range []struct {
		in string
		w  int
	}{
		{"こんにちは、世界。これは長いメッセージです。", 9},
		{"emoji 🎉🎉🎉 and words that wrap", 7},
		{"averyveryverylongwordwithoutspaces", 10},
		{"混ぜる mixed テキスト text", 5},
	} {
		for _, l := range wrap(tc.in, tc.w) {
			if width(l) > tc.w {
				t.Errorf("wrap(%q, %d): line %q is %d cells", tc.in, tc.w, l, width(l))
			}
		}
		for w := 1; w < 12; w++ {
			if got := width(fit(tc.in, w)); got != w {
				t.Errorf("fit(%q, %d) is %d cells", tc.in, w, got)
			}
			if got := width(fitRight(tc.in, w)); got != w {
				t.Errorf("fitRight(%q, %d) is %d cells", tc.in, w, got)
			}
		}
	}
	// a wide character cut by an overlay's edge becomes a space
	bg := []string{"日本語日本語"}
	got := overlay(bg, []string{"X"}, 3, 0)[0]
	if width(got) != 12 || !strings.Contains(got, "X") {
		t.Errorf("overlay = %q (%d cells)", got, width(got))
	}
}

func TestNickColoursAreStable(t *testing.T) {
	a, b := nickColourIndex(fpBob), nickColourIndex(fpBob)
	if a != b {
		t.Fatal("unstable")
	}
	seen := map[int]bool{}
	for _, fp := range []string{fpAlice, fpBob, fpCarol, fpLi, "x", "y", "z"} {
		seen[nickColourIndex(fp)] = true
	}
	if len(seen) < 4 {
		t.Errorf("poor spread: %v", seen)
	}
}
