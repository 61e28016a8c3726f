package chat

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/p2p"
	"github.com/canopy-chat/canopy/store"
	"golang.org/x/crypto/cryptobyte"
)

// The profile's identity: an MLS signature key with a basic credential, and
// a libp2p key. The credential's identity is the binary libp2p peer id, so
// a member of a group is also an address on the network: the engine finds
// members (for KeyPackages, Welcomes, trees and sync) by the identity in
// their leaf. The nickname is not part of the credential: it can change
// without a new key.

// suite is the cipher suite of canopy groups: X25519, AES-128-GCM,
// SHA-256, Ed25519 (MLS's mandatory-to-implement suite).
const suite = mls.MLS_128_DHKEMX25519_AES128GCM_SHA256_Ed25519

type identity struct {
	sigPriv []byte
	sigPub  []byte
	cred    mls.Credential
	fp      []byte
	key     p2p.PrivKey
	id      p2p.PeerID
}

// loadIdentity returns the stored identity, creating one on first use.
// created reports a new profile.
func loadIdentity(ctx context.Context, db store.IdentityStore) (_ *identity, created bool, err error) {
	st, err := db.Identity(ctx)
	if errors.Is(err, store.ErrNotFound) {
		return newIdentity(ctx, db)
	}
	if err != nil {
		return nil, false, err
	}
	if mls.CipherSuite(st.CipherSuite) != suite {
		return nil, false, fmt.Errorf("chat: profile uses cipher suite %#04x, this build uses %#04x", st.CipherSuite, uint16(suite))
	}
	key, err := p2p.UnmarshalIdentity(st.P2PPrivateKey)
	if err != nil {
		return nil, false, err
	}
	var cred mls.Credential
	if err := cred.Unmarshal(st.Credential); err != nil {
		return nil, false, fmt.Errorf("chat: stored credential: %w", err)
	}
	id, err := p2p.PeerIDOf(key)
	if err != nil {
		return nil, false, err
	}
	if string(cred.Identity) != string(id) {
		return nil, false, errors.New("chat: stored credential does not match the profile's peer id")
	}
	return &identity{
		sigPriv: st.SignaturePrivate, sigPub: st.SignaturePublic, cred: cred,
		fp: Fingerprint(uint16(suite), st.SignaturePublic), key: key, id: id,
	}, false, nil
}

func newIdentity(ctx context.Context, db store.IdentityStore) (*identity, bool, error) {
	key, err := p2p.GenerateIdentity()
	if err != nil {
		return nil, false, err
	}
	id, err := p2p.PeerIDOf(key)
	if err != nil {
		return nil, false, err
	}
	priv, pub, err := suite.GenerateSignatureKeyPair(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	cred := mls.NewBasicCredential([]byte(id))
	credBytes, err := cred.Marshal()
	if err != nil {
		return nil, false, err
	}
	keyBytes, err := p2p.MarshalIdentity(key)
	if err != nil {
		return nil, false, err
	}
	if err := db.PutIdentity(ctx, store.Identity{
		SignaturePublic: pub, SignaturePrivate: priv, Credential: credBytes,
		CipherSuite: uint16(suite), P2PPrivateKey: keyBytes,
	}); err != nil {
		return nil, false, err
	}
	return &identity{sigPriv: priv, sigPub: pub, cred: cred, fp: Fingerprint(uint16(suite), pub), key: key, id: id}, true, nil
}

// peerOfCredential returns the peer id a member's credential names.
func peerOfCredential(c *mls.Credential) (p2p.PeerID, error) {
	if c.Type != mls.CredentialBasic {
		return "", errors.New("chat: not a basic credential")
	}
	id, err := p2p.PeerIDFromBytes(c.Identity)
	if err != nil {
		return "", fmt.Errorf("chat: credential identity is not a peer id: %w", err)
	}
	return id, nil
}

// validateCredential is canopy's Authentication Service check (RFC 9420
// §5.3.1): a basic credential naming a valid peer id. Binding that peer to
// a person is the users' business (safety numbers).
func validateCredential(c *mls.Credential, _ []byte) error {
	_, err := peerOfCredential(c)
	return err
}

// KeyPackage pool.
//
// The profile keeps keyPackagePool one-time KeyPackages and one last-resort
// package (RFC 9420 §16.8). A one-time package is handed out at most once:
// when it is, it gets an expiry date (which marks it as handed out) and a
// new one is made. Its private keys stay until a Welcome uses them or it
// expires. The last-resort package is handed out when no one-time package
// is left (and is what relays give out for offline users). The pool is kept
// for each cipher suite the client offers (pq.go): a group's members all
// need a KeyPackage of the group's suite.

const (
	keyPackagePool     = 8
	keyPackageLifetime = 90 * 24 * time.Hour
	// handedOutTTL is how long a handed-out package waits for its Welcome.
	handedOutTTL = 60 * 24 * time.Hour
)

func encodeKPPrivate(b *mls.KeyPackageBundle) []byte {
	var cb cryptobyte.Builder
	cb.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(b.InitPriv) })
	cb.AddUint16LengthPrefixed(func(c *cryptobyte.Builder) { c.AddBytes(b.EncryptionPriv) })
	out, _ := cb.Bytes()
	return out
}

func decodeKPPrivate(data []byte) (initPriv, encPriv []byte, err error) {
	s := cryptobyte.String(data)
	var a, b cryptobyte.String
	if !s.ReadUint16LengthPrefixed(&a) || !s.ReadUint16LengthPrefixed(&b) || !s.Empty() {
		return nil, nil, errors.New("chat: malformed stored KeyPackage keys")
	}
	return a, b, nil
}

// newKeyPackage makes a KeyPackage of the default suite for the profile.
func (e *Engine) newKeyPackage(lastResort bool) (*mls.KeyPackageBundle, error) {
	return e.newKeyPackageFor(suite, lastResort)
}

// newKeyPackageFor makes a KeyPackage of cipher suite cs for the profile.
func (e *Engine) newKeyPackageFor(cs mls.CipherSuite, lastResort bool) (*mls.KeyPackageBundle, error) {
	now := e.now()
	leafExt, err := profileExtension(e.nick())
	if err != nil {
		return nil, err
	}
	opts := []mls.Option{
		mls.WithCapabilities(e.capabilities()),
		mls.WithLeafExtensions(leafExt),
		mls.WithLifetime(mls.Lifetime{NotBefore: uint64(now.Add(-time.Hour).Unix()), NotAfter: uint64(now.Add(keyPackageLifetime).Unix())}),
	}
	if lastResort {
		opts = append(opts, mls.WithKeyPackageExtensions([]mls.Extension{{Type: mls.ExtensionLastResort}}))
	}
	return mls.NewKeyPackage(cs, e.id.sigPriv, e.id.cred, opts...)
}

func (e *Engine) storeKeyPackage(ctx context.Context, b *mls.KeyPackageBundle, lastResort bool) (store.KeyPackage, error) {
	data, err := b.Marshal()
	if err != nil {
		return store.KeyPackage{}, err
	}
	ref, err := b.KeyPackage.Ref()
	if err != nil {
		return store.KeyPackage{}, err
	}
	kp := store.KeyPackage{
		Ref: ref, CipherSuite: uint16(b.KeyPackage.CipherSuite), Data: data, Private: encodeKPPrivate(b),
		LastResort: lastResort, CreatedAt: e.now(),
	}
	return kp, e.db.PutKeyPackage(ctx, kp)
}

// fillKeyPackages tops the pool up.
func (e *Engine) fillKeyPackages(ctx context.Context) error {
	e.kpMu.Lock()
	defer e.kpMu.Unlock()
	if _, err := e.db.DeleteExpiredKeyPackages(ctx, e.now()); err != nil {
		return err
	}
	all, err := e.db.ListKeyPackages(ctx)
	if err != nil {
		return err
	}
	for _, cs := range e.suites() {
		fresh, lastResort := 0, 0
		for _, kp := range all {
			switch {
			case kp.CipherSuite != uint16(cs):
			case kp.LastResort:
				lastResort++
			case kp.ExpiresAt.IsZero():
				fresh++
			}
		}
		for ; fresh < keyPackagePool; fresh++ {
			b, err := e.newKeyPackageFor(cs, false)
			if err != nil {
				return err
			}
			if _, err := e.storeKeyPackage(ctx, b, false); err != nil {
				return err
			}
		}
		if lastResort == 0 {
			b, err := e.newKeyPackageFor(cs, true)
			if err != nil {
				return err
			}
			if _, err := e.storeKeyPackage(ctx, b, true); err != nil {
				return err
			}
		}
	}
	return nil
}

// Handed-out packages are bounded (issue 13): a requester gets at most
// maxHandedOutPerPeer one-time packages and the profile keeps at most
// maxHandedOut handed-out packages (with their private keys) waiting for
// a Welcome, counting those uploaded to relays; past either bound only the
// last-resort package is served. Anyone can ask, with as many peer ids as
// they like: the total bound is what keeps the store and the Welcome
// lookup small. The per-requester grants are kept in memory (a restart
// forgets them; the total bound is in the store and survives it).
const (
	maxHandedOutPerPeer = 2
	maxHandedOut        = 32
)

type kpGrant struct {
	ref []byte
	at  time.Time
}

// handedOut counts the one-time packages handed out and not yet used, and
// forgets the grants whose package is gone (used, expired). kpMu held.
func (e *Engine) handedOut(all []store.KeyPackage) int {
	live := map[string]bool{}
	n := 0
	for _, kp := range all {
		if !kp.LastResort && !kp.ExpiresAt.IsZero() {
			live[string(kp.Ref)] = true
			n++
		}
	}
	for p, gs := range e.kpGrants {
		gs = slices.DeleteFunc(gs, func(g kpGrant) bool { return !live[string(g.ref)] })
		if len(gs) == 0 {
			delete(e.kpGrants, p)
		} else {
			e.kpGrants[p] = gs
		}
	}
	return n
}

// handOutKeyPackage returns a KeyPackage of cipher suite cs (0: the
// default suite) for from, who wants to add us: a fresh one-time package
// (marked as handed out) within the bounds above, else the last-resort one.
func (e *Engine) handOutKeyPackage(ctx context.Context, from p2p.PeerID, cs uint16) (p2p.KeyPackage, error) {
	if cs == 0 {
		cs = uint16(suite)
	}
	e.kpMu.Lock()
	all, err := e.db.ListKeyPackages(ctx)
	if err != nil {
		e.kpMu.Unlock()
		return p2p.KeyPackage{}, err
	}
	if e.kpGrants == nil {
		e.kpGrants = map[p2p.PeerID][]kpGrant{}
	}
	fresh := e.handedOut(all) < maxHandedOut && len(e.kpGrants[from]) < maxHandedOutPerPeer
	var last *store.KeyPackage
	for i := range all {
		kp := all[i]
		if kp.CipherSuite != cs {
			continue
		}
		if kp.LastResort {
			last = &all[i]
			continue
		}
		if !fresh || !kp.ExpiresAt.IsZero() {
			continue
		}
		kp.ExpiresAt = e.now().Add(handedOutTTL)
		err := e.db.PutKeyPackage(ctx, kp)
		if err == nil {
			e.kpGrants[from] = append(e.kpGrants[from], kpGrant{ref: kp.Ref, at: e.now()})
		}
		e.kpMu.Unlock()
		if err != nil {
			return p2p.KeyPackage{}, err
		}
		e.goBackground(func(ctx context.Context) { _ = e.fillKeyPackages(ctx) })
		return p2p.KeyPackage{Data: kp.Data, CipherSuite: cs}, nil
	}
	e.kpMu.Unlock()
	if last == nil {
		return p2p.KeyPackage{}, p2p.ErrNotFound
	}
	return p2p.KeyPackage{Data: last.Data, LastResort: true, CipherSuite: cs}, nil
}

// relayKeyPackages marks up to n fresh one-time packages of each suite as
// handed out (within maxHandedOut) and returns them with the last-resort
// packages, for upload to relays.
func (e *Engine) relayKeyPackages(ctx context.Context, n int) ([]p2p.KeyPackage, error) {
	e.kpMu.Lock()
	defer e.kpMu.Unlock()
	all, err := e.db.ListKeyPackages(ctx)
	if err != nil {
		return nil, err
	}
	budget := maxHandedOut - e.handedOut(all)
	var out []p2p.KeyPackage
	taken := map[uint16]int{}
	for _, kp := range all {
		switch {
		case kp.LastResort:
			out = append(out, p2p.KeyPackage{Data: kp.Data, LastResort: true, CipherSuite: kp.CipherSuite})
		case kp.ExpiresAt.IsZero() && taken[kp.CipherSuite] < n && budget > 0:
			taken[kp.CipherSuite]++
			budget--
			kp.ExpiresAt = e.now().Add(handedOutTTL)
			if err := e.db.PutKeyPackage(ctx, kp); err != nil {
				return nil, err
			}
			out = append(out, p2p.KeyPackage{Data: kp.Data, CipherSuite: kp.CipherSuite})
		}
	}
	return out, nil
}

// maxWelcomeSecrets bounds the entries of a Welcome the lookup reads (a
// Welcome has one per member it adds).
const maxWelcomeSecrets = 1 << 14

// errNoKeyPackage: no KeyPackage of the profile is named by a Welcome.
var errNoKeyPackage = errors.New("the KeyPackage this invitation was made for is gone (used or expired): ask to be invited again")

// welcomeBundle finds the KeyPackage a Welcome was made for by reference:
// each EncryptedGroupSecrets names its new member's KeyPackageRef, looked
// up among the profile's packages (bounded above). No package is parsed or
// tried unless the Welcome names it, so a junk Welcome costs one pass over
// its entries. It returns the bundle and its stored ref.
func (e *Engine) welcomeBundle(ctx context.Context, welcome []byte) (*mls.KeyPackageBundle, []byte, error) {
	var msg mls.MLSMessage
	if err := msg.Unmarshal(welcome); err != nil || msg.Welcome == nil {
		return nil, nil, errors.New("invitation is not a Welcome")
	}
	if len(msg.Welcome.Secrets) > maxWelcomeSecrets {
		return nil, nil, fmt.Errorf("a Welcome for %d members is more than this engine reads (%d)", len(msg.Welcome.Secrets), maxWelcomeSecrets)
	}
	all, err := e.db.ListKeyPackages(ctx)
	if err != nil {
		return nil, nil, err
	}
	byRef := make(map[string]*store.KeyPackage, len(all))
	for i := range all {
		byRef[string(all[i].Ref)] = &all[i]
	}
	for _, sec := range msg.Welcome.Secrets {
		kp := byRef[string(sec.NewMember)]
		if kp == nil {
			continue
		}
		pkg, err := mls.ParseKeyPackage(kp.Data)
		if err != nil {
			e.log.Warn("unreadable stored KeyPackage", "err", err)
			continue
		}
		initPriv, encPriv, err := decodeKPPrivate(kp.Private)
		if err != nil {
			continue
		}
		return &mls.KeyPackageBundle{KeyPackage: *pkg, InitPriv: initPriv, EncryptionPriv: encPriv, SignaturePriv: e.id.sigPriv}, kp.Ref, nil
	}
	return nil, nil, errNoKeyPackage
}

// ProfileCard returns the contact card of the profile in db, creating the
// profile's identity (with nick, or $USER) when it has none. The card
// carries no addresses: only a running engine knows them (it keeps them in
// ProfileDir/card, see CardFileName).
func ProfileCard(ctx context.Context, db *store.DB, nick string) (*Card, error) {
	id, created, err := loadIdentity(ctx, db)
	if err != nil {
		return nil, err
	}
	e := &Engine{db: db, id: id, cfg: Config{Nick: nick}}
	e.cfg.defaults()
	if err := e.loadSelf(ctx, created); err != nil {
		return nil, err
	}
	return &Card{PeerID: id.id, Fingerprint: id.fp, Nick: e.selfNick}, nil
}

// RotateSignatureKey replaces the profile's MLS signature key with a new
// one (after a suspected compromise of the device's keys), keeping the
// peer id. KeyPackages made with the old key are deleted. Groups joined
// before keep the old key until they are left; contacts see the new
// fingerprint in the next card or KeyPackage and are warned that the key
// changed, so that they compare safety numbers again.
func RotateSignatureKey(ctx context.Context, db *store.DB) (*Card, error) {
	id, _, err := loadIdentity(ctx, db)
	if err != nil {
		return nil, err
	}
	priv, pub, err := suite.GenerateSignatureKeyPair(rand.Reader)
	if err != nil {
		return nil, err
	}
	credBytes, err := id.cred.Marshal()
	if err != nil {
		return nil, err
	}
	keyBytes, err := p2p.MarshalIdentity(id.key)
	if err != nil {
		return nil, err
	}
	if err := db.PutIdentity(ctx, store.Identity{
		SignaturePublic: pub, SignaturePrivate: priv, Credential: credBytes,
		CipherSuite: uint16(suite), P2PPrivateKey: keyBytes,
	}); err != nil {
		return nil, err
	}
	kps, err := db.ListKeyPackages(ctx)
	if err != nil {
		return nil, err
	}
	for _, kp := range kps {
		if err := db.DeleteKeyPackage(ctx, kp.Ref); err != nil {
			return nil, err
		}
	}
	return ProfileCard(ctx, db, "")
}
