package mls

import (
	"bytes"

	"golang.org/x/crypto/cryptobyte"
)

// PathSecret carries the path secret of a joiner's lowest common ancestor
// with the committer (§12.4.3.1):
//
//	struct {
//	  opaque path_secret<V>;
//	} PathSecret;
type PathSecret struct {
	PathSecret []byte
}

func (p *PathSecret) marshal(b *cryptobyte.Builder)       { addOpaque(b, p.PathSecret) }
func (p *PathSecret) unmarshal(s *cryptobyte.String) bool { return readOpaque(s, &p.PathSecret) }

// GroupSecrets is the HPKE-encrypted part of a Welcome (§12.4.3.1):
//
//	struct {
//	  opaque joiner_secret<V>;
//	  optional<PathSecret> path_secret;
//	  PreSharedKeyID psks<V>;
//	} GroupSecrets;
//
// A nil PathSecret encodes the absent optional.
type GroupSecrets struct {
	JoinerSecret []byte
	PathSecret   *PathSecret
	PSKs         []PreSharedKeyID
}

func (g *GroupSecrets) marshal(b *cryptobyte.Builder) {
	addOpaque(b, g.JoinerSecret)
	addOptional(b, g.PathSecret != nil, func(b *cryptobyte.Builder) { g.PathSecret.marshal(b) })
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range g.PSKs {
			g.PSKs[i].marshal(b)
		}
	})
}

func (g *GroupSecrets) unmarshal(s *cryptobyte.String) bool {
	*g = GroupSecrets{}
	if !readOpaque(s, &g.JoinerSecret) {
		return false
	}
	var present bool
	ps := new(PathSecret)
	if !readOptional(s, &present, ps.unmarshal) {
		return false
	}
	if present {
		g.PathSecret = ps
	}
	return readVectorExact(s, &g.PSKs, (*PreSharedKeyID).unmarshal)
}

// Marshal returns the encoding of g.
func (g *GroupSecrets) Marshal() ([]byte, error) { return marshalStruct(g) }

// Unmarshal decodes g from data, rejecting trailing bytes.
func (g *GroupSecrets) Unmarshal(data []byte) error {
	return unmarshalStruct(data, g, "GroupSecrets")
}

// EncryptedGroupSecrets is one recipient's entry in a Welcome (§12.4.3.1):
//
//	struct {
//	  KeyPackageRef new_member;
//	  HPKECiphertext encrypted_group_secrets;
//	} EncryptedGroupSecrets;
type EncryptedGroupSecrets struct {
	NewMember             KeyPackageRef
	EncryptedGroupSecrets HPKECiphertext
}

func (e *EncryptedGroupSecrets) marshal(b *cryptobyte.Builder) {
	addOpaque(b, e.NewMember)
	e.EncryptedGroupSecrets.marshal(b)
}

func (e *EncryptedGroupSecrets) unmarshal(s *cryptobyte.String) bool {
	return readOpaque(s, (*[]byte)(&e.NewMember)) && e.EncryptedGroupSecrets.unmarshal(s)
}

// Welcome brings new members into the group (§12.4.3.1):
//
//	struct {
//	  CipherSuite cipher_suite;
//	  EncryptedGroupSecrets secrets<V>;
//	  opaque encrypted_group_info<V>;
//	} Welcome;
//
// The cipher suite is decoded as-is; the joiner checks it against its
// KeyPackage.
type Welcome struct {
	CipherSuite        CipherSuite
	Secrets            []EncryptedGroupSecrets
	EncryptedGroupInfo []byte
}

// sizeHint is an upper estimate of the encoding's length.
func (w *Welcome) sizeHint() int {
	n := 16 + len(w.EncryptedGroupInfo)
	for i := range w.Secrets {
		e := &w.Secrets[i]
		n += 16 + len(e.NewMember) + len(e.EncryptedGroupSecrets.KEMOutput) + len(e.EncryptedGroupSecrets.Ciphertext)
	}
	return n
}

func (w *Welcome) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(w.CipherSuite))
	addVarVector(b, func(b *cryptobyte.Builder) {
		for i := range w.Secrets {
			w.Secrets[i].marshal(b)
		}
	})
	addOpaque(b, w.EncryptedGroupInfo)
}

func (w *Welcome) unmarshal(s *cryptobyte.String) bool {
	*w = Welcome{}
	if !s.ReadUint16((*uint16)(&w.CipherSuite)) {
		return false
	}
	return readVectorExact(s, &w.Secrets, (*EncryptedGroupSecrets).unmarshal) &&
		readOpaque(s, &w.EncryptedGroupInfo)
}

// Marshal returns the encoding of w.
func (w *Welcome) Marshal() ([]byte, error) { return marshalStruct(w) }

// Unmarshal decodes w from data, rejecting trailing bytes.
func (w *Welcome) Unmarshal(data []byte) error { return unmarshalStruct(data, w, "Welcome") }

// Find returns the entry of secrets addressed to the KeyPackage ref
// (§12.4.3.1, first step of joining).
func (w *Welcome) Find(ref KeyPackageRef) (*EncryptedGroupSecrets, bool) {
	for i := range w.Secrets {
		if bytes.Equal(w.Secrets[i].NewMember, ref) {
			return &w.Secrets[i], true
		}
	}
	return nil, false
}
