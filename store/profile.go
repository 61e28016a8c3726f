package store

import (
	"fmt"
	"os"
	"path/filepath"
	"unicode/utf8"
)

// DefaultProfile is the profile used when none is named.
const DefaultProfile = "default"

// DataHome returns $XDG_DATA_HOME, or ~/.local/share when it is unset or
// not absolute (as the XDG Base Directory specification says).
func DataHome() (string, error) {
	if d := os.Getenv("XDG_DATA_HOME"); d != "" && filepath.IsAbs(d) {
		return d, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("store: cannot find the data directory: %w", err)
	}
	return filepath.Join(home, ".local", "share"), nil
}

// ProfileDir returns the directory of profile name: dataHome/canopy/name.
// An empty dataHome means DataHome(); an empty name means DefaultProfile.
// The directory is not created (Open does that).
func ProfileDir(dataHome, name string) (string, error) {
	if name == "" {
		name = DefaultProfile
	}
	if err := ValidateProfileName(name); err != nil {
		return "", err
	}
	if dataHome == "" {
		d, err := DataHome()
		if err != nil {
			return "", err
		}
		dataHome = d
	}
	return filepath.Join(dataHome, "canopy", name), nil
}

// ValidateProfileName accepts 1–64 ASCII letters, digits, '-', '_' and '.',
// not starting with '.' or '-': names that are safe as a directory name
// everywhere and cannot escape the canopy directory.
func ValidateProfileName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: profile name must be 1 to 64 characters", ErrInvalid)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("%w: profile name %q must not start with %q", ErrInvalid, name, name[0])
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.'
		if !ok {
			r, _ := utf8.DecodeRuneInString(name[i:])
			return fmt.Errorf("%w: profile name %q contains %q; use letters, digits, '-', '_' or '.'", ErrInvalid, name, r)
		}
	}
	return nil
}
