package main

import (
	"encoding/json"
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

// TestImportDirection enforces DESIGN.md §1: imports point down only.
//
//	main → tui → chat → {mls, ordering, p2p, store}
//	main → relay → {p2p, store}
//
// mls, ordering, p2p and store depend on no project package at all (checked
// transitively, test files excluded), tui talks to chat only, relay never
// reaches chat, and nothing imports main. p2p is sealed: chat, test files
// included, imports no libp2p or multiformats package and reaches the
// network only through p2p's API (p2p.PeerID and the other aliases name
// libp2p's types; p2p/p2ptest helps tests).
func TestImportDirection(t *testing.T) {
	const module = "github.com/canopy-chat/canopy"
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,TestImports,XTestImports,Deps", "./...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath                               string
		Imports, TestImports, XTestImports, Deps []string
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for {
		var p pkg
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		pkgs = append(pkgs, p)
	}
	seen := map[string]bool{}
	for _, p := range pkgs {
		seen[p.ImportPath] = true
	}
	for _, want := range []string{"", "/tui", "/chat", "/mls", "/ordering", "/p2p", "/store", "/relay"} {
		if !seen[module+want] {
			t.Errorf("package %s missing from the layout of DESIGN.md §1", module+want)
		}
	}
	rel := func(path string) (string, bool) {
		if path == module {
			return "main", true
		}
		return strings.CutPrefix(path, module+"/")
	}
	// leaves may depend on nothing of ours; the value lists what a package
	// may import directly.
	leaves := map[string]bool{"mls": true, "ordering": true, "p2p": true, "store": true}
	allowed := map[string]map[string]bool{
		"tui":   {"chat": true},
		"chat":  {"mls": true, "ordering": true, "p2p": true, "store": true},
		"main":  {"tui": true, "chat": true, "p2p": true, "store": true, "relay": true},
		"relay": {"p2p": true, "store": true},
	}
	// sealed lists the import path prefixes a package (with its tests)
	// must not import directly: what p2p seals off.
	sealed := map[string][]string{
		"chat": {"github.com/libp2p/", "github.com/multiformats/"},
	}
	for _, p := range pkgs {
		name, ok := rel(p.ImportPath)
		if !ok {
			continue
		}
		for _, imp := range p.Imports {
			if imp == module {
				t.Errorf("%s imports main", name)
			}
		}
		top, _, _ := strings.Cut(name, "/")
		for _, imp := range slices.Concat(p.Imports, p.TestImports, p.XTestImports) {
			for _, prefix := range sealed[top] {
				if strings.HasPrefix(imp, prefix) {
					t.Errorf("%s imports %s: p2p is sealed, use p2p's API and types (p2p.PeerID, p2p.Multiaddr, …)", name, imp)
				}
			}
		}
		switch {
		case leaves[top]:
			for _, d := range p.Deps {
				if dep, ours := rel(d); ours {
					depTop, _, _ := strings.Cut(dep, "/")
					if depTop != top {
						t.Errorf("%s depends on %s: %s must not import other canopy packages", name, dep, top)
					}
				}
			}
		case allowed[top] != nil:
			for _, imp := range p.Imports {
				if dep, ours := rel(imp); ours {
					depTop, _, _ := strings.Cut(dep, "/")
					if depTop != top && !allowed[top][depTop] {
						t.Errorf("%s imports %s: not allowed by DESIGN.md §1", name, dep)
					}
				}
			}
		}
	}
}

// TestChatUsesNoRawHost keeps chat off the libp2p host that p2p.Node wraps:
// Node.Host() remains for p2p's own tests, and a call needs no import, so
// the import rule above cannot see it. Every call of a method named Host
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
