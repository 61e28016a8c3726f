//go:build devtools

package mls

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"
)

// TestWriteFuzzCorpus regenerates the seed corpora under testdata/fuzz from
// the messages vectors (one case per cipher suite); the output is
// committed. It is a tool, not a check, so it is built only with the
// devtools tag and never runs in a plain `go test`.
func TestWriteFuzzCorpus(t *testing.T) {
	seeds := fuzzSeeds(t)
	for target, files := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		old, _ := filepath.Glob(filepath.Join(dir, "seed-*"))
		for _, p := range old {
			if err := os.Remove(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		names := make([]string, 0, len(files))
		for name := range files {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			content := fmt.Sprintf("go test fuzz v1\n[]byte(%q)\n", files[name])
			if err := os.WriteFile(filepath.Join(dir, "seed-"+name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		t.Logf("%s: %d seeds", target, len(files))
	}
}
