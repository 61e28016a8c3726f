package blob

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Export decrypts id's complete ciphertext into dir under a name derived
// from the announced one and returns the file's path. The plaintext is
// written to a hidden temporary file first and checked against the
// announced SHA-256; only a file that matches gets its name, so a file in
// dir is always complete. An existing file is never replaced: "a.txt"
// becomes "a (1).txt" and so on. The name cannot leave dir: separators,
// "..", control characters and leading dots are replaced (SafeName).
// A hash mismatch deletes the ciphertext too (it can never become right)
// and returns ErrHash.
func (s *Store) Export(a *Announcement, dir string) (string, error) {
	id := a.ID()
	src, err := os.Open(s.path(id))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return "", ErrNotFound
		}
		return "", err
	}
	defer src.Close()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, tempExport+"*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	sum, err := Open(tmp, src, a.Key, a.Size)
	if err != nil {
		return "", err
	}
	if sum != a.SHA256 {
		_ = s.Remove(id)
		return "", ErrHash
	}
	if err := tmp.Sync(); err != nil {
		return "", err
	}
	if err := tmp.Close(); err != nil {
		return "", err
	}
	if err := os.Chmod(tmp.Name(), 0o600); err != nil {
		return "", err
	}
	name := SafeName(a.Name)
	ext := filepath.Ext(name)
	stem := strings.TrimSuffix(name, ext)
	for i := 0; i < 10000; i++ {
		cand := name
		if i > 0 {
			cand = stem + " (" + strconv.Itoa(i) + ")" + ext
		}
		path := filepath.Join(dir, cand)
		// A hard link fails if the name exists, so nothing is replaced,
		// and the file appears complete or not at all.
		err := os.Link(tmp.Name(), path)
		if err == nil {
			return path, nil
		}
		if !errors.Is(err, os.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("blob: no free name for %q in %s", name, dir)
}

// SafeName turns an announced file name into one that names a plain file
// inside a directory on any common file system: the last path element only,
// no control or separator characters, no leading dot (no hidden files, no
// "." or ".."), at most 200 bytes, never empty.
func SafeName(name string) string {
	name = strings.ToValidUTF8(name, "_")
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		switch {
		case unicode.IsControl(r), r == ':', r == '*', r == '?', r == '"', r == '<', r == '>', r == '|',
			unicode.Is(unicode.Cf, r): // bidi overrides that disguise an extension
			return '_'
		}
		return r
	}, name)
	name = strings.TrimSpace(strings.TrimLeft(name, ". "))
	if len(name) > 200 {
		ext := filepath.Ext(name)
		if len(ext) > 16 {
			ext = ""
		}
		stem := strings.TrimSuffix(name, ext)
		for len(stem)+len(ext) > 200 {
			_, n := utf8.DecodeLastRuneInString(stem)
			stem = stem[:len(stem)-n]
		}
		name = stem + ext
	}
	if name == "" {
		name = "file"
	}
	return name
}
