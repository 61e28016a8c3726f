package main

import (
	"encoding/json"
	"errors"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/canopy-chat/canopy"

// depScope is what a layoutRule checks of the packages it covers.
type depScope int

const (
	// imports: the packages' direct imports.
	imports depScope = iota
	// deps: every dependency, transitively (test files excluded).
	deps
	// testDeps: every dependency of the packages built with their tests.
	testDeps
	// testImports: the direct imports of the packages and of their tests.
	testImports
)

// layoutRule is one rule of DESIGN.md §1. It covers the package at the
// top-level directory pkg ("" is package main at the root) and its
// subpackages.
type layoutRule struct {
	pkg   string
	scope depScope
	// may lists the canopy top-level packages the covered packages may
	// use besides their own tree; any other canopy package fails the rule.
	may []string
	// mayNot lists import path prefixes (inside the module or not) the
	// covered packages must not use, e.g. "github.com/libp2p/".
	mayNot []string
}

// layoutRules is DESIGN.md §1: imports point down only,
//
//	main → tui → chat → {mls, ordering, p2p, store, blob} → internal
//	main → relay → {p2p, store}
//
// A new rule is a new line. internal/ holds small helpers (atomic file
// writes, test waits, benchmarks' CPU time, the long-test switch) that
// any package may use and that use nothing of ours. Nothing imports main (TestLayout checks it apart).
var layoutRules = []layoutRule{
	{pkg: "", scope: imports, may: []string{"tui", "chat", "p2p", "store", "relay", "internal"}},
	{pkg: "tui", scope: imports, may: []string{"chat", "internal"}},
	// p2p is sealed: chat, test files included, imports no libp2p or
	// multiformats package and reaches the network only through p2p's API
	// (p2p.PeerID and the other aliases name libp2p's types; p2p/p2ptest
	// helps tests). TestChatUsesNoRawHost covers what imports cannot show.
	{pkg: "chat", scope: testImports, may: []string{"mls", "ordering", "p2p", "store", "blob", "internal"},
		mayNot: []string{"github.com/libp2p/", "github.com/multiformats/"}},
	// The relay is built from p2p and store and never reaches chat.
	{pkg: "relay", scope: imports, may: []string{"p2p", "store", "internal"}},
	{pkg: "chat", scope: imports, may: []string{"mls", "ordering", "p2p", "store", "blob", "internal"}},
	// The leaves depend on no other canopy package.
	{pkg: "mls", scope: deps, may: []string{"internal"}},
	{pkg: "ordering", scope: deps, may: []string{"internal"}},
	{pkg: "p2p", scope: deps, may: []string{"internal"}},
	{pkg: "store", scope: deps, may: []string{"internal"}},
	{pkg: "blob", scope: deps, may: []string{"internal"}},
	// p2p moves opaque bytes: not even its tests use another canopy
	// package (the test helpers of internal/ excepted).
	{pkg: "p2p", scope: testDeps, may: []string{"internal"}},
	{pkg: "internal", scope: deps},
}

// layoutPackages are the packages DESIGN.md §1 names; each must exist.
var layoutPackages = []string{"", "tui", "chat", "mls", "ordering", "p2p", "store", "relay"}

type listedPackage struct {
	ImportPath                               string
	Imports, TestImports, XTestImports, Deps []string
}

func goList(t *testing.T, args ...string) []listedPackage {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-json=ImportPath,Imports,TestImports,XTestImports,Deps"}, args...)...).Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			t.Fatalf("go list %v: %v\n%s", args, err, ee.Stderr)
		}
		t.Fatalf("go list %v: %v", args, err)
	}
	var pkgs []listedPackage
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p listedPackage
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	return pkgs
}

// top returns the top-level directory of a canopy package ("" for main).
func top(path string) (string, bool) {
	if path == module {
		return "", true
	}
	rel, ok := strings.CutPrefix(path, module+"/")
	first, _, _ := strings.Cut(rel, "/")
	// An external test package (p2p_test) belongs to its package's tree.
	return strings.TrimSuffix(first, "_test"), ok
}

// TestLayout enforces layoutRules on the packages of the module.
func TestLayout(t *testing.T) {
	all := goList(t, "./...")
	seen := map[string]bool{}
	for _, p := range all {
		if tp, ok := top(p.ImportPath); ok && (tp == "" || p.ImportPath == module+"/"+tp) {
			seen[tp] = true
		}
	}
	for _, want := range layoutPackages {
		if !seen[want] {
			t.Errorf("package %q missing from the layout of DESIGN.md §1", want)
		}
	}
	for _, p := range all {
		if slices.Contains(p.Imports, module) {
			t.Errorf("%s imports main", p.ImportPath)
		}
	}
	for _, r := range layoutRules {
		pkgs := all
		if r.scope == testDeps {
			pattern := "./" + r.pkg + "/..."
			if r.pkg == "" {
				pattern = "."
			}
			// One package whose Deps are everything the packages of
			// pattern need with their tests.
			var deps []string
			for _, p := range goList(t, "-deps", "-test", pattern) {
				deps = append(deps, p.ImportPath)
			}
			pkgs = []listedPackage{{ImportPath: module + "/" + r.pkg, Deps: deps}}
		}
		for _, p := range pkgs {
			if tp, ok := top(p.ImportPath); !ok || tp != r.pkg {
				continue
			}
			var used []string
			switch r.scope {
			case imports:
				used = p.Imports
			case testImports:
				used = slices.Concat(p.Imports, p.TestImports, p.XTestImports)
			default:
				used = p.Deps
			}
			checkRule(t, r, p.ImportPath, used)
		}
	}
}

func checkRule(t *testing.T, r layoutRule, pkg string, used []string) {
	t.Helper()
	for _, u := range used {
		// go list -test names test variants "p [q.test]".
		u, _, _ = strings.Cut(u, " ")
		for _, bad := range r.mayNot {
			if strings.HasPrefix(u, bad) {
				t.Errorf("%s uses %s: rule %+v", pkg, u, r)
			}
		}
		tp, ours := top(u)
		if !ours || tp == r.pkg || strings.HasSuffix(u, ".test") {
			continue
		}
		allowed := false
		for _, m := range r.may {
			allowed = allowed || tp == m
		}
		if !allowed {
			t.Errorf("%s uses %s: rule %+v", pkg, u, r)
		}
	}
}

// TestChatUsesNoRawHost keeps chat off the libp2p host that p2p.Node wraps:
// Node.Host() remains for p2p's own tests, and a call needs no import, so
// the import rules (layoutRules) cannot see it. Every call of a method named Host
// without arguments in chat's files, tests included, is refused.
func TestChatUsesNoRawHost(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("chat", "*.go"))
	if err != nil || len(files) == 0 {
		t.Fatalf("chat's files: %v (%d)", err, len(files))
	}
	fset := token.NewFileSet()
	for _, f := range files {
		file, err := parser.ParseFile(fset, f, nil, parser.SkipObjectResolution)
		if err != nil {
			t.Fatal(err)
		}
		ast.Inspect(file, func(n ast.Node) bool {
			if call, ok := n.(*ast.CallExpr); ok && len(call.Args) == 0 {
				if sel, ok := call.Fun.(*ast.SelectorExpr); ok && sel.Sel.Name == "Host" {
					t.Errorf("%s: chat calls Host(): use p2p.Node's API (Subscribe, IsConnected, AddAddrs, …)", fset.Position(call.Pos()))
				}
			}
			return true
		})
	}
}
