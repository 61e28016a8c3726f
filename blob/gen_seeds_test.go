//go:build devtools

package blob

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// TestWriteFuzzSeeds regenerates the seed corpora under testdata/fuzz:
// go test -tags devtools ./blob -run TestWriteFuzzSeeds
func TestWriteFuzzSeeds(t *testing.T) {
	seeds := map[string][][]any{}
	a := &Announcement{Key: Key{9}, SHA256: [32]byte{7}, Size: 123456, Width: 640, Height: 480, Name: "screenshot.png", MediaType: "image/png"}
	b1, _ := a.Marshal()
	a2 := &Announcement{Key: Key{1}, Name: "../../etc/passwd"}
	b2, _ := a2.Marshal()
	seeds["FuzzParseAnnouncement"] = [][]any{{b1}, {b2}, {append(b1, 0)}, {b1[:40]}, {[]byte{2}}}
	for _, size := range []int{0, 5, ChunkSize + 3} {
		var ct bytes.Buffer
		if _, err := Seal(&ct, bytes.NewReader(make([]byte, size)), fuzzKey, uint64(size)); err != nil {
			t.Fatal(err)
		}
		seeds["FuzzOpen"] = append(seeds["FuzzOpen"], []any{ct.Bytes(), uint32(size)})
		seeds["FuzzDownloadChunks"] = append(seeds["FuzzDownloadChunks"], []any{ct.Bytes(), uint32(size)})
		trunc := ct.Bytes()[:ct.Len()/2]
		seeds["FuzzOpen"] = append(seeds["FuzzOpen"], []any{trunc, uint32(size)})
	}
	for target, list := range seeds {
		dir := filepath.Join("testdata", "fuzz", target)
		os.MkdirAll(dir, 0o755)
		for i, args := range list {
			var b bytes.Buffer
			b.WriteString("go test fuzz v1\n")
			for _, arg := range args {
				switch v := arg.(type) {
				case []byte:
					fmt.Fprintf(&b, "[]byte(%q)\n", v)
				case uint32:
					fmt.Fprintf(&b, "uint32(%d)\n", v)
				}
			}
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("seed%d", i)), b.Bytes(), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}
