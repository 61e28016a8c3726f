package mls

import (
	"slices"
	"testing"
)

func init() { registerVector("tree-math", checkTreeMath) }

type treeMathVector struct {
	NLeaves uint32    `json:"n_leaves"`
	NNodes  uint32    `json:"n_nodes"`
	Root    uint32    `json:"root"`
	Left    []*uint32 `json:"left"`
	Right   []*uint32 `json:"right"`
	Parent  []*uint32 `json:"parent"`
	Sibling []*uint32 `json:"sibling"`
}

func checkTreeMath(t *testing.T, data []byte) {
	for _, tc := range decodeVectors[treeMathVector](t, data) {
		n := tc.NLeaves
		if got := nodeWidth(n); got != tc.NNodes {
			t.Errorf("n=%d: nodeWidth = %d, want %d", n, got, tc.NNodes)
		}
		if got := root(n); uint32(got) != tc.Root {
			t.Errorf("n=%d: root = %d, want %d", n, got, tc.Root)
		}
		for _, field := range []struct {
			name string
			want []*uint32
			f    func(x NodeIndex) (NodeIndex, bool)
		}{
			{"left", tc.Left, left},
			{"right", tc.Right, right},
			{"parent", tc.Parent, func(x NodeIndex) (NodeIndex, bool) { return parent(x, n) }},
			{"sibling", tc.Sibling, func(x NodeIndex) (NodeIndex, bool) { return sibling(x, n) }},
		} {
			if uint32(len(field.want)) != tc.NNodes {
				t.Fatalf("n=%d: %s has %d entries, want %d", n, field.name, len(field.want), tc.NNodes)
			}
			for i, want := range field.want {
				got, ok := field.f(NodeIndex(i))
				switch {
				case want == nil && ok:
					t.Errorf("n=%d: %s(%d) = %d, want none", n, field.name, i, got)
				case want != nil && !ok:
					t.Errorf("n=%d: %s(%d) undefined, want %d", n, field.name, i, *want)
				case want != nil && uint32(got) != *want:
					t.Errorf("n=%d: %s(%d) = %d, want %d", n, field.name, i, got, *want)
				}
			}
		}
	}
}

// TestTreeMathPaths checks directPath and copath against the example of
// RFC 9420 §4.1.2 (eight leaves, A=0 … H=7) and the definitions in terms of
// parent and sibling for every node of trees up to 64 leaves, full or not.
func TestTreeMathPaths(t *testing.T) {
	// A is leaf 0 (node 0): direct path T=1, U=3, W=7; copath B=2, V=5, Y=11.
	if got := directPath(0, 8); !slices.Equal(got, []NodeIndex{1, 3, 7}) {
		t.Errorf("directPath(A) = %v", got)
	}
	if got := copath(0, 8); !slices.Equal(got, []NodeIndex{2, 5, 11}) {
		t.Errorf("copath(A) = %v", got)
	}
	// G is leaf 6 (node 12): direct path Z=13, Y=11, W=7; copath H=14, X=9, U=3.
	if got := directPath(12, 8); !slices.Equal(got, []NodeIndex{13, 11, 7}) {
		t.Errorf("directPath(G) = %v", got)
	}
	if got := copath(12, 8); !slices.Equal(got, []NodeIndex{14, 9, 3}) {
		t.Errorf("copath(G) = %v", got)
	}
	if got := directPath(7, 8); got == nil || len(got) != 0 {
		t.Errorf("directPath(root) = %#v, want empty", got)
	}
	if got := directPath(15, 8); got != nil {
		t.Errorf("directPath(outside) = %v, want nil", got)
	}

	for n := uint32(1); n <= 64; n++ {
		w := nodeWidth(n)
		r := root(n)
		if _, ok := parent(r, n); ok {
			t.Fatalf("n=%d: root has a parent", n)
		}
		if _, ok := parent(NodeIndex(w), n); ok {
			t.Fatalf("n=%d: node %d outside the tree has a parent", n, w)
		}
		for x := NodeIndex(0); uint32(x) < w; x++ {
			dp, cp := directPath(x, n), copath(x, n)
			if len(dp) != len(cp) {
				t.Fatalf("n=%d x=%d: path lengths %d, %d", n, x, len(dp), len(cp))
			}
			y := x
			for i := range dp {
				p, ok := parent(y, n)
				s, _ := sibling(y, n)
				if !ok || p != dp[i] || s != cp[i] || !inTree(p, n) || !inTree(s, n) {
					t.Fatalf("n=%d x=%d: step %d: parent %d sibling %d, paths %v %v", n, x, i, p, s, dp, cp)
				}
				// The parent's subtree contains exactly y and its sibling.
				plo, phi := subtreeLeaves(p)
				ylo, yhi := subtreeLeaves(y)
				slo, shi := subtreeLeaves(s)
				if ylo < plo || yhi > phi || slo < plo || shi > phi || (ylo < shi && slo < yhi) {
					t.Fatalf("n=%d x=%d: %d and %d are not children of %d", n, x, y, s, p)
				}
				y = p
			}
			if y != r {
				t.Fatalf("n=%d x=%d: direct path ends at %d, root is %d", n, x, y, r)
			}
			if isLeaf(x) {
				l, ok := x.leafIndex()
				if !ok || l.nodeIndex() != x {
					t.Fatalf("leaf/node conversion of %d", x)
				}
			} else if _, ok := x.leafIndex(); ok {
				t.Fatalf("parent node %d converted to a leaf", x)
			}
		}
	}
}

// TestCommonAncestor compares the direct algorithm with the semantic
// definition of Appendix C on every pair of nodes of a 32-leaf tree.
func TestCommonAncestor(t *testing.T) {
	const n = 32
	w := NodeIndex(nodeWidth(n))
	for x := NodeIndex(0); x < w; x++ {
		dx := append([]NodeIndex{x}, directPath(x, n)...)
		for y := NodeIndex(0); y < w; y++ {
			dy := append([]NodeIndex{y}, directPath(y, n)...)
			want, found := NodeIndex(0), false
			for _, a := range dx {
				if slices.Contains(dy, a) && (!found || level(a) < level(want)) {
					want, found = a, true
				}
			}
			if got := commonAncestor(x, y); !found || got != want {
				t.Fatalf("commonAncestor(%d, %d) = %d, want %d", x, y, got, want)
			}
		}
	}
}

func TestTreeMathLimits(t *testing.T) {
	if nodeWidth(0) != 0 || root(0) != 0 {
		t.Error("empty tree")
	}
	if nodeWidth(maxLeaves) != 1<<32-1 || root(maxLeaves) != 1<<31-1 {
		t.Errorf("largest tree: width %d root %d", nodeWidth(maxLeaves), root(maxLeaves))
	}
	if nodeWidth(maxLeaves+1) != 0 || validLeafCount(maxLeaves+1) || validLeafCount(0) {
		t.Error("oversized tree accepted")
	}
	last := LeafIndex(maxLeaves - 1).nodeIndex()
	if dp := directPath(last, maxLeaves); len(dp) != 31 || dp[30] != root(maxLeaves) {
		t.Errorf("direct path of the last leaf of the largest tree: %v", dp)
	}
	if level(^NodeIndex(0)) != 32 {
		t.Error("level of all-ones index")
	}
	if _, ok := left(4); ok {
		t.Error("leaf has a left child")
	}
}

func BenchmarkDirectPath(b *testing.B) {
	for b.Loop() {
		_ = directPath(LeafIndex(99_999).nodeIndex(), 1<<17)
	}
}
