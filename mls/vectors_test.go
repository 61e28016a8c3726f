package mls

import (
	"bytes"
	"compress/gzip"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/internal/longtest"
)

// The official RFC 9420 test vectors (../shared/mls-test-vectors, format in
// FORMAT.md) are committed gzip-compressed under testdata/vectors so the
// tests run from a clean clone. Each vector file has one checker, registered
// from the _test.go file that exercises that part of the protocol, and
// TestVectors runs one subtest per file named by the file's base name.

// vectorTests maps a vector file's base name (e.g. "crypto-basics",
// "interop-passive-commit") to its checker.
var vectorTests = map[string]func(t *testing.T, data []byte){}

func registerVector(name string, check func(t *testing.T, data []byte)) {
	if _, dup := vectorTests[name]; dup {
		panic("duplicate vector checker " + name)
	}
	vectorTests[name] = check
}

// requiredVectors are the files that must have a checker. A missing file, a
// missing checker or an unsupported suite fails; nothing is skipped.
var requiredVectors = []string{
	"crypto-basics",
	"deserialization",
	"key-schedule",
	"message-protection",
	"messages",
	"psk_secret",
	"secret-tree",
	"transcript-hashes",
	"tree-math",
	"tree-operations",
	"tree-validation",
	"treekem",
	"welcome",
	"passive-client-welcome",
	"passive-client-handling-commit",
	"passive-client-random",
	"interop-passive-application",
	"interop-passive-branch",
	"interop-passive-commit",
	"interop-passive-external_join",
	"interop-passive-external_proposals",
	"interop-passive-reinit",
	"interop-passive-welcome_join",
}

func TestVectors(t *testing.T) {
	// Every committed vector file must be required, so none is silently unchecked.
	files, err := filepath.Glob(filepath.Join("testdata", "vectors", "*.json.gz"))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".json.gz")
		if !slices.Contains(requiredVectors, name) {
			t.Errorf("vector file %s is not in requiredVectors", f)
		}
	}
	for _, name := range requiredVectors {
		if _, ok := vectorTests[name]; !ok {
			t.Errorf("no checker registered for required vector file %q", name)
		}
	}
	names := make([]string, 0, len(vectorTests))
	for name := range vectorTests {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		check := vectorTests[name]
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			check(t, loadVectorFile(t, name))
		})
	}
}

// loadVectorFile returns the decompressed JSON of testdata/vectors/NAME.json.gz.
func loadVectorFile(t testing.TB, name string) []byte {
	t.Helper()
	path := filepath.Join("testdata", "vectors", name+".json.gz")
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("vector file missing: %v", err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	data, err := io.ReadAll(zr)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return data
}

// decodeVectors unmarshals a vector file into a slice of test cases.
func decodeVectors[T any](t testing.TB, data []byte) []T {
	t.Helper()
	var cases []T
	if err := json.Unmarshal(data, &cases); err != nil {
		t.Fatalf("decoding vectors: %v", err)
	}
	if len(cases) == 0 {
		t.Fatal("vector file has no test cases")
	}
	return cases
}

// hexBytes is a hex-encoded byte string in a vector file; JSON null decodes to nil.
type hexBytes []byte

func (h *hexBytes) UnmarshalJSON(data []byte) error {
	if string(data) == "null" {
		*h = nil
		return nil
	}
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	b, err := hex.DecodeString(s)
	if err != nil {
		return err
	}
	*h = b
	return nil
}

// sampledSuites are the suites whose cases the default test run samples:
// NIST P-521 and P-384 cost an order of magnitude more per case than the
// others (P-521's treekem cases alone took most of the package's time),
// while the code they exercise is the same suite-generic code. The
// default run checks a deterministic sample of their cases (sampledCase);
// the long run (CANOPY_LONG=1, see internal/longtest) checks every one.
var sampledSuites = map[CipherSuite]bool{
	MLS_256_DHKEMP521_AES256GCM_SHA512_P521: true,
	MLS_256_DHKEMP384_AES256GCM_SHA384_P384: true,
}

// sampleStride: the default run checks every sampleStride-th case of a
// sampled suite, plus the last (vector files tend to grow their trees and
// groups towards the end, so the largest case is always among them).
const sampleStride = 4

// sampledCase reports whether the default run checks case i of n.
func sampledCase(i, n int) bool { return i%sampleStride == 0 || i == n-1 }

// runPerSuite runs check on every case, grouping cases into one nested
// subtest per cipher suite ("suite-1" … "suite-7") and one subtest per case.
// A case whose suite is not supported fails. Of a sampled suite the default
// run checks the cases sampledCase picks; CANOPY_LONG=1 checks them all.
func runPerSuite[T any](t *testing.T, cases []T, suiteOf func(T) uint16, check func(t *testing.T, cs CipherSuite, tc T)) {
	t.Helper()
	bySuite := map[uint16][]T{}
	var order []uint16
	for _, tc := range cases {
		s := suiteOf(tc)
		if _, seen := bySuite[s]; !seen {
			order = append(order, s)
		}
		bySuite[s] = append(bySuite[s], tc)
	}
	sort.Slice(order, func(i, j int) bool { return order[i] < order[j] })
	for _, s := range order {
		cs := CipherSuite(s)
		t.Run(fmt.Sprintf("suite-%d", s), func(t *testing.T) {
			if !cs.Supported() {
				t.Fatalf("unsupported cipher suite 0x%04x", s)
			}
			cases := bySuite[s]
			sample := sampledSuites[cs] && !longtest.Enabled()
			ran := 0
			for i, tc := range cases {
				if sample && !sampledCase(i, len(cases)) {
					continue
				}
				ran++
				t.Run(fmt.Sprintf("case-%d", i), func(t *testing.T) { check(t, cs, tc) })
			}
			if ran < len(cases) {
				t.Logf("checked %d of %d cases (a deterministic sample; %s=1 checks all)", ran, len(cases), longtest.EnvVar)
			}
		})
	}
}

// mustEqualBytes fails with a hex diff when got != want.
func mustEqualBytes(t testing.TB, what string, got, want []byte) {
	t.Helper()
	if !bytes.Equal(got, want) {
		t.Fatalf("%s mismatch:\n got  %x\n want %x", what, got, want)
	}
}
