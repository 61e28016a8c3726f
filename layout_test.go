package main

import (
	"encoding/json"
	"io"
	"os/exec"
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
// reaches chat, and nothing imports main.
func TestImportDirection(t *testing.T) {
	const module = "github.com/canopy-chat/canopy"
	cmd := exec.Command("go", "list", "-json=ImportPath,Imports,Deps", "./...")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	type pkg struct {
		ImportPath    string
		Imports, Deps []string
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
