package mls

import (
	"errors"
	"fmt"
	"io"
	"slices"

	"golang.org/x/crypto/cryptobyte"
)

// The key schedule of RFC 9420 §8: from the previous epoch's init_secret,
// the commit_secret, the psk_secret and the new GroupContext to the
// joiner_secret, welcome_secret, epoch_secret and the secrets derived from
// it; plus the exporter (§8.5), external initialization (§8.3), the Welcome
// key and nonce (§12.4.3.1) and the confirmation tag (§6.1).
//
//	init_secret_[n-1] ──salt──▶ Extract ◀── commit_secret
//	                               │
//	            ExpandWithLabel(., "joiner", GroupContext_[n], Nh) = joiner_secret
//	                               │
//	   joiner_secret ──salt──▶ Extract ◀── psk_secret (or 0)
//	                               ├──▶ DeriveSecret(., "welcome") = welcome_secret
//	            ExpandWithLabel(., "epoch", GroupContext_[n], Nh) = epoch_secret
//	                               ├──▶ DeriveSecret(., <label>) = <secret>
//	                     DeriveSecret(., "init") = init_secret_[n]
//
// Deletion (§9.2): the intermediate values (the two extracts and
// epoch_secret) are wiped before the functions return. joiner_secret and
// welcome_secret are kept in epochSecrets only because a committer needs
// them to build the Welcome; dropJoinerSecrets wipes them. encryption_secret
// is handed to the secret tree and wiped by newSecretTree. The caller owns
// the inputs (init_secret, commit_secret, psk_secret) and should wipe them
// once the epoch is accepted.

// epochSecrets are the secrets of one epoch (§8 "Epoch-Derived Secrets").
// A field that has been consumed and deleted is nil. Not safe for
// concurrent use.
type epochSecrets struct {
	Suite CipherSuite

	// Needed only to create the Welcome of the Commit that started the
	// epoch (§12.4.3.1); see dropJoinerSecrets.
	JoinerSecret  []byte
	WelcomeSecret []byte

	// Root of the secret tree (§9); consumed by newSecretTree.
	EncryptionSecret []byte

	SenderDataSecret   []byte // "sender data": PrivateMessage sender data keys (§6.3.2)
	ExporterSecret     []byte // "exporter": MLS-Exporter (§8.5)
	ExternalSecret     []byte // "external": external_priv/external_pub (§8, §8.3)
	ConfirmationKey    []byte // "confirm": confirmation tag (§6.1)
	MembershipKey      []byte // "membership": PublicMessage membership tag (§6.2)
	ResumptionPSK      []byte // "resumption": resumption PSK (§8.6)
	EpochAuthenticator []byte // "authentication": epoch authenticator (§8.7)
	InitSecret         []byte // "init": init_secret of the next epoch
}

// keyScheduleInput checks an Nh-byte key schedule input; nil stands for the
// all-zero string (commit_secret of a Commit without path, psk_secret with
// no PSKs).
func keyScheduleInput(cs CipherSuite, v []byte, what string) ([]byte, error) {
	if v == nil {
		return make([]byte, cs.Nh()), nil
	}
	if len(v) != cs.Nh() {
		return nil, fmt.Errorf("mls: %s is %d bytes, want %d", what, len(v), cs.Nh())
	}
	return v, nil
}

func marshalGroupContextFor(cs CipherSuite, gc *GroupContext) ([]byte, error) {
	if gc == nil {
		return nil, errors.New("mls: key schedule without GroupContext")
	}
	if gc.CipherSuite != cs {
		return nil, fmt.Errorf("mls: GroupContext cipher suite %v in a %v key schedule", gc.CipherSuite, cs)
	}
	return gc.Marshal()
}

// deriveJoinerSecret computes joiner_secret =
// ExpandWithLabel(Extract(init_secret, commit_secret), "joiner", GroupContext, Nh).
// A nil commitSecret is the all-zero commit_secret.
func deriveJoinerSecret(cs CipherSuite, initSecret, commitSecret []byte, gc *GroupContext) ([]byte, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(initSecret) != cs.Nh() {
		return nil, fmt.Errorf("mls: init_secret is %d bytes, want %d", len(initSecret), cs.Nh())
	}
	commitSecret, err := keyScheduleInput(cs, commitSecret, "commit_secret")
	if err != nil {
		return nil, err
	}
	gcBytes, err := marshalGroupContextFor(cs, gc)
	if err != nil {
		return nil, err
	}
	prk := cs.Extract(initSecret, commitSecret)
	defer clear(prk)
	return cs.ExpandWithLabel(prk, "joiner", gcBytes, cs.Nh())
}

// memberSecret is Extract(joiner_secret, psk_secret), the value from which
// welcome_secret and epoch_secret are derived.
func memberSecret(cs CipherSuite, joinerSecret, pskSecret []byte) ([]byte, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(joinerSecret) != cs.Nh() {
		return nil, fmt.Errorf("mls: joiner_secret is %d bytes, want %d", len(joinerSecret), cs.Nh())
	}
	pskSecret, err := keyScheduleInput(cs, pskSecret, "psk_secret")
	if err != nil {
		return nil, err
	}
	return cs.Extract(joinerSecret, pskSecret), nil
}

// deriveWelcomeSecret computes welcome_secret = DeriveSecret(Extract(
// joiner_secret, psk_secret), "welcome"). A joiner needs it before it knows
// the GroupContext: it decrypts the GroupInfo that carries it. A nil
// pskSecret is the all-zero psk_secret.
func deriveWelcomeSecret(cs CipherSuite, joinerSecret, pskSecret []byte) ([]byte, error) {
	m, err := memberSecret(cs, joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	defer clear(m)
	return cs.DeriveSecret(m, "welcome")
}

// welcomeKeyNonce derives the AEAD key and nonce that encrypt the Welcome's
// GroupInfo (§12.4.3.1):
//
//	welcome_nonce = ExpandWithLabel(welcome_secret, "nonce", "", AEAD.Nn)
//	welcome_key   = ExpandWithLabel(welcome_secret, "key", "", AEAD.Nk)
func welcomeKeyNonce(cs CipherSuite, welcomeSecret []byte) (key, nonce []byte, err error) {
	if key, err = cs.ExpandWithLabel(welcomeSecret, "key", nil, cs.Nk()); err != nil {
		return nil, nil, err
	}
	if nonce, err = cs.ExpandWithLabel(welcomeSecret, "nonce", nil, cs.Nn()); err != nil {
		return nil, nil, err
	}
	return key, nonce, nil
}

// newEpochSecrets runs the whole key schedule of a new epoch: from the
// previous epoch's init_secret (or the one of an external init, §8.3), the
// Commit's commit_secret (nil: all zero, for a Commit without path), the
// psk_secret (nil: no PSKs) and the new epoch's GroupContext.
func newEpochSecrets(cs CipherSuite, initSecret, commitSecret, pskSecret []byte, gc *GroupContext) (*epochSecrets, error) {
	joiner, err := deriveJoinerSecret(cs, initSecret, commitSecret, gc)
	if err != nil {
		return nil, err
	}
	e, err := epochSecretsFromJoiner(cs, joiner, pskSecret, gc)
	clear(joiner) // epochSecretsFromJoiner keeps its own copy
	return e, err
}

// epochSecretsFromJoiner runs the key schedule from joiner_secret, as a new
// member does with the joiner_secret of its GroupSecrets (§12.4.3.1).
func epochSecretsFromJoiner(cs CipherSuite, joinerSecret, pskSecret []byte, gc *GroupContext) (*epochSecrets, error) {
	gcBytes, err := marshalGroupContextFor(cs, gc)
	if err != nil {
		return nil, err
	}
	m, err := memberSecret(cs, joinerSecret, pskSecret)
	if err != nil {
		return nil, err
	}
	defer clear(m)
	welcome, err := cs.DeriveSecret(m, "welcome")
	if err != nil {
		return nil, err
	}
	epochSecret, err := cs.ExpandWithLabel(m, "epoch", gcBytes, cs.Nh())
	if err != nil {
		return nil, err
	}
	e, err := epochSecretsFromEpochSecret(cs, epochSecret)
	clear(epochSecret)
	if err != nil {
		return nil, err
	}
	e.JoinerSecret = slices.Clone(joinerSecret)
	e.WelcomeSecret = welcome
	return e, nil
}

// initialEpochSecrets starts the key schedule of a new group (§11): epoch 0
// has a fresh random epoch_secret of Nh bytes read from rand.
func initialEpochSecrets(cs CipherSuite, rand io.Reader) (*epochSecrets, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if rand == nil {
		return nil, errors.New("mls: no random source (nil io.Reader)")
	}
	epochSecret := make([]byte, cs.Nh())
	defer clear(epochSecret)
	if _, err := io.ReadFull(rand, epochSecret); err != nil {
		return nil, fmt.Errorf("mls: reading randomness: %w", err)
	}
	return epochSecretsFromEpochSecret(cs, epochSecret)
}

// epochSecretLabels are the DeriveSecret labels of the epoch-derived
// secrets, in the order of the table of §8.
var epochSecretLabels = [...]string{
	"sender data", "encryption", "exporter", "external", "confirm",
	"membership", "resumption", "authentication", "init",
}

// epochSecretsFromEpochSecret derives every secret of the §8 table from
// epoch_secret (which the caller wipes).
func epochSecretsFromEpochSecret(cs CipherSuite, epochSecret []byte) (*epochSecrets, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(epochSecret) != cs.Nh() {
		return nil, fmt.Errorf("mls: epoch_secret is %d bytes, want %d", len(epochSecret), cs.Nh())
	}
	e := &epochSecrets{Suite: cs}
	fields := e.derivedFields()
	for i, label := range epochSecretLabels {
		s, err := cs.DeriveSecret(epochSecret, label)
		if err != nil {
			e.wipe()
			return nil, err
		}
		*fields[i] = s
	}
	return e, nil
}

// derivedFields returns pointers to the epoch-derived secrets in the order
// of epochSecretLabels.
func (e *epochSecrets) derivedFields() [len(epochSecretLabels)]*[]byte {
	return [...]*[]byte{
		&e.SenderDataSecret, &e.EncryptionSecret, &e.ExporterSecret, &e.ExternalSecret, &e.ConfirmationKey,
		&e.MembershipKey, &e.ResumptionPSK, &e.EpochAuthenticator, &e.InitSecret,
	}
}

// allFields returns pointers to every secret, in serialization order.
func (e *epochSecrets) allFields() []*[]byte {
	d := e.derivedFields()
	return append([]*[]byte{&e.JoinerSecret, &e.WelcomeSecret}, d[:]...)
}

// dropJoinerSecrets wipes joiner_secret and welcome_secret once the Welcome
// (if any) has been built.
func (e *epochSecrets) dropJoinerSecrets() {
	clear(e.JoinerSecret)
	clear(e.WelcomeSecret)
	e.JoinerSecret, e.WelcomeSecret = nil, nil
}

// newSecretTree builds the epoch's secret tree over n leaves (the ratchet
// tree's leaf count) and wipes encryption_secret, which the tree now holds
// as its root (§9.2). It fails if the tree was already built.
func (e *epochSecrets) newSecretTree(n uint32, opts SecretTreeOptions) (*secretTree, error) {
	if e.EncryptionSecret == nil {
		return nil, errors.New("mls: encryption_secret already consumed")
	}
	t, err := newSecretTree(e.Suite, e.EncryptionSecret, n, opts)
	if err != nil {
		return nil, err
	}
	clear(e.EncryptionSecret)
	e.EncryptionSecret = nil
	return t, nil
}

// exporter is MLS-Exporter(label, context, length) with this epoch's
// exporter_secret (§8.5).
func (e *epochSecrets) exporter(label string, context []byte, length int) ([]byte, error) {
	return mlsExporter(e.Suite, e.ExporterSecret, label, context, length)
}

// mlsExporter implements §8.5:
//
//	MLS-Exporter(Label, Context, Length) =
//	    ExpandWithLabel(DeriveSecret(exporter_secret, Label),
//	                    "exported", Hash(Context), Length)
//
// length is at most 65535 (the KDFLabel length field) and 255·Nh (HKDF).
func mlsExporter(cs CipherSuite, exporterSecret []byte, label string, context []byte, length int) ([]byte, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(exporterSecret) != cs.Nh() {
		return nil, errors.New("mls: exporter_secret not available")
	}
	if length < 0 || length > 0xffff || length > 255*cs.Nh() {
		return nil, fmt.Errorf("mls: exporter length %d out of range", length)
	}
	s, err := cs.DeriveSecret(exporterSecret, label)
	if err != nil {
		return nil, err
	}
	defer clear(s)
	return cs.ExpandWithLabel(s, "exported", cs.Hash(context), length)
}

// externalKeyPair derives external_priv, external_pub =
// KEM.DeriveKeyPair(external_secret) (§8); external_pub goes into the
// GroupInfo's external_pub extension.
func (e *epochSecrets) externalKeyPair() (priv, pub []byte, err error) {
	if len(e.ExternalSecret) == 0 {
		return nil, nil, errors.New("mls: external_secret not available")
	}
	return e.Suite.DeriveKeyPair(e.ExternalSecret)
}

// confirmationTag computes confirmation_tag = MAC(confirmation_key,
// confirmed_transcript_hash) (§6.1).
func confirmationTag(cs CipherSuite, confirmationKey, confirmedTranscriptHash []byte) []byte {
	return cs.MAC(confirmationKey, confirmedTranscriptHash)
}

// confirmationTag computes the tag of this epoch over its confirmed
// transcript hash.
func (e *epochSecrets) confirmationTag(confirmedTranscriptHash []byte) []byte {
	return confirmationTag(e.Suite, e.ConfirmationKey, confirmedTranscriptHash)
}

// verifyConfirmationTag checks a received confirmation tag in constant time.
func (e *epochSecrets) verifyConfirmationTag(confirmedTranscriptHash, tag []byte) bool {
	return len(e.ConfirmationKey) != 0 && e.Suite.VerifyMAC(e.ConfirmationKey, confirmedTranscriptHash, tag)
}

// clone returns an independent deep copy.
func (e *epochSecrets) clone() *epochSecrets {
	c := &epochSecrets{Suite: e.Suite}
	src, dst := e.allFields(), c.allFields()
	for i := range src {
		*dst[i] = slices.Clone(*src[i])
	}
	return c
}

// wipe overwrites and drops every secret.
func (e *epochSecrets) wipe() {
	for _, f := range e.allFields() {
		clear(*f)
		*f = nil
	}
}

// Serialization for group state snapshots (canopy's encoding, not an
// RFC 9420 structure); a deleted secret is an empty vector:
//
//	struct {
//	    uint8 version = 1;
//	    CipherSuite cipher_suite;
//	    opaque joiner_secret<V>;
//	    opaque welcome_secret<V>;
//	    opaque sender_data_secret<V>;
//	    opaque encryption_secret<V>;
//	    opaque exporter_secret<V>;
//	    opaque external_secret<V>;
//	    opaque confirmation_key<V>;
//	    opaque membership_key<V>;
//	    opaque resumption_psk<V>;
//	    opaque epoch_authenticator<V>;
//	    opaque init_secret<V>;
//	} EpochSecretsState;

const epochSecretsStateVersion = 1

func (e *epochSecrets) marshal(b *cryptobyte.Builder) {
	b.AddUint8(epochSecretsStateVersion)
	b.AddUint16(uint16(e.Suite))
	for _, f := range e.allFields() {
		addOpaque(b, *f)
	}
}

// unmarshal decodes an EpochSecretsState; every secret is empty or Nh
// bytes, and decoded secrets are copies of the input.
func (e *epochSecrets) unmarshal(s *cryptobyte.String) bool {
	*e = epochSecrets{}
	var version uint8
	if !s.ReadUint8(&version) || version != epochSecretsStateVersion ||
		!s.ReadUint16((*uint16)(&e.Suite)) || !e.Suite.Supported() {
		return false
	}
	for _, f := range e.allFields() {
		var v []byte
		if !readOpaque(s, &v) || (len(v) != 0 && len(v) != e.Suite.Nh()) {
			return false
		}
		if len(v) != 0 {
			*f = slices.Clone(v)
		}
	}
	return true
}

// marshalBinary returns the EpochSecretsState encoding.
func (e *epochSecrets) marshalBinary() ([]byte, error) { return marshalStruct(e) }

// unmarshalEpochSecrets restores marshalBinary's output.
func unmarshalEpochSecrets(data []byte) (*epochSecrets, error) {
	e := &epochSecrets{}
	if err := unmarshalStruct(data, e, "epoch secrets state"); err != nil {
		return nil, err
	}
	return e, nil
}

// externalInitLabel is the HPKE exporter context of §8.3.
const externalInitLabel = "MLS 1.0 external init secret"

// externalInitSecretSend is the joiner's side of external initialization
// (§8.3):
//
//	kem_output, context = SetupBaseS(external_pub, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// kem_output goes into the ExternalInit proposal. The HPKE encapsulation
// reads its randomness from rand.
func externalInitSecretSend(cs CipherSuite, externalPub []byte, rand io.Reader) (kemOutput, initSecret []byte, err error) {
	p, err := cs.params()
	if err != nil {
		return nil, nil, err
	}
	if rand == nil {
		return nil, nil, errors.New("mls: no random source (nil io.Reader)")
	}
	if p.kemInfo.xwing {
		// As in EncryptWithLabel: circl accepts a low-order X25519 part.
		if err := cs.ValidateHPKEPublicKey(externalPub); err != nil {
			return nil, nil, fmt.Errorf("external_pub: %w", err)
		}
	}
	pk, err := p.kemScheme.UnmarshalBinaryPublicKey(externalPub)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: external_pub: %v", ErrInvalidKey, err)
	}
	sender, err := p.hpkeSuite.NewSender(pk, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE: %w", err)
	}
	enc, ctx, err := sender.Setup(rand)
	if err != nil {
		return nil, nil, fmt.Errorf("mls: HPKE setup for external init: %w", err)
	}
	return enc, ctx.Export([]byte(externalInitLabel), uint(cs.Nh())), nil
}

// externalInitSecretReceive is the members' side of external initialization
// (§8.3): with external_priv of the previous epoch and the ExternalInit
// proposal's kem_output,
//
//	context = SetupBaseR(kem_output, external_priv, "")
//	init_secret = context.export("MLS 1.0 external init secret", KDF.Nh)
//
// An invalid kem_output gives an error wrapping ErrDecryption.
func externalInitSecretReceive(cs CipherSuite, externalPriv, kemOutput []byte) ([]byte, error) {
	p, err := cs.params()
	if err != nil {
		return nil, err
	}
	sk, err := p.kemScheme.UnmarshalBinaryPrivateKey(externalPriv)
	if err != nil {
		return nil, fmt.Errorf("%w: external_priv: %v", ErrInvalidKey, err)
	}
	receiver, err := p.hpkeSuite.NewReceiver(sk, nil)
	if err != nil {
		return nil, fmt.Errorf("mls: HPKE: %w", err)
	}
	ctx, err := receiver.Setup(kemOutput)
	if err != nil {
		return nil, fmt.Errorf("%w: invalid external init kem_output: %v", ErrDecryption, err)
	}
	return ctx.Export([]byte(externalInitLabel), uint(cs.Nh())), nil
}
