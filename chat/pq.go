package chat

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/canopy-chat/canopy/mls"
)

// Post-quantum groups.
//
// A group is on one MLS cipher suite for its whole life. canopy groups use
// suite 1 (suite, identity.go) unless created with `/create NAME --pq`,
// which puts them on pqSuite, the hybrid X-Wing suite (ML-KEM-768 +
// X25519): what an attacker records of such a group's traffic today stays
// secret even against a later quantum computer. Both suites sign with
// Ed25519, so a profile has one signature key and one fingerprint (taken
// with suite 1) whatever the suite of the group.
//
// Every member of a PQ group needs a KeyPackage of that suite, so a
// profile keeps, serves and uploads to relays a pool of each suite it
// offers (identity.go); an inviter asks for the group's suite
// (p2p.FetchKeyPackageForSuite). A client that does not offer the suite
// answers "not found", and the inviter says so in plain words
// (SuiteUnsupportedError) instead of "offline". Leaves list the suites the
// client offers in their capabilities, so that a ReInit to a suite some
// member's client lacks is refused before it is committed (mls
// MembersLackCipherSuiteError).

// pqSuite is the cipher suite of post-quantum groups. Its code point
// comes from an Internet-Draft, not (yet) from IANA's registry: see the
// README's X-Wing section.
const pqSuite = mls.MLS_256_XWING_CHACHA20POLY1305_SHA256_Ed25519

// offeredSuites are the cipher suites this client can run groups on,
// the default first.
var offeredSuites = []mls.CipherSuite{suite, pqSuite}

// ErrSuiteUnsupported is wrapped by SuiteUnsupportedError.
var ErrSuiteUnsupported = errors.New("chat: cipher suite not offered")

// SuiteUnsupportedError says that a contact's client does not offer a
// group's cipher suite (an older canopy), so it cannot be invited.
type SuiteUnsupportedError struct {
	Name  string // the contact's display name
	Suite mls.CipherSuite
}

func (e *SuiteUnsupportedError) Error() string {
	if e.Suite == pqSuite {
		return fmt.Sprintf("%s's client does not offer post-quantum groups (suite %#04x)", e.Name, uint16(e.Suite))
	}
	return fmt.Sprintf("%s's client does not offer cipher suite %#04x", e.Name, uint16(e.Suite))
}

func (e *SuiteUnsupportedError) Unwrap() error { return ErrSuiteUnsupported }

// suites returns the cipher suites this engine offers.
func (e *Engine) suites() []mls.CipherSuite {
	if e.cfg.offered != nil {
		return e.cfg.offered
	}
	return offeredSuites
}

// capabilities are the leaf capabilities of this client: canopy's
// extensions and exactly the suites it offers (not every suite mls/
// implements: a member is asked for KeyPackages of a listed suite).
func (e *Engine) capabilities() mls.Capabilities {
	c := capabilities()
	c.CipherSuites = slices.Clone(e.suites())
	return c
}

// suiteName is how the UI names a group's cipher suite.
func suiteName(cs mls.CipherSuite) string {
	if cs == pqSuite {
		return "post-quantum (X-Wing, suite 0x004d)"
	}
	return fmt.Sprintf("suite %#04x", uint16(cs))
}

// parsePQFlag takes a --pq flag out of a command's arguments.
func parsePQFlag(args []string) (rest []string, pq bool) {
	for _, a := range args {
		if strings.EqualFold(a, "--pq") {
			pq = true
			continue
		}
		rest = append(rest, a)
	}
	return rest, pq
}

// PostQuantum reports whether the group is on the post-quantum suite.
func (v GroupView) PostQuantum() bool { return mls.CipherSuite(v.CipherSuite) == pqSuite }

// groupSuite returns the cipher suite of a group (suite 1 when its state
// is unreadable).
func (g *group) groupSuite() mls.CipherSuite {
	if cs := g.view.snapshot().CipherSuite; cs != 0 {
		return mls.CipherSuite(cs)
	}
	return suite
}

// cardNick is the nick on a pasted card, if any (a name hint).
func cardNick(c *Card) string {
	if c == nil {
		return ""
	}
	return c.Nick
}
