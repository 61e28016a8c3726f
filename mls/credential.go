package mls

import (
	"bytes"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// CredentialType is an MLS credential type (§5.3, §17.5).
type CredentialType uint16

// Credential types registered by RFC 9420 §17.5.
const (
	CredentialBasic CredentialType = 0x0001
	CredentialX509  CredentialType = 0x0002
)

func (t CredentialType) String() string {
	switch t {
	case CredentialBasic:
		return "basic"
	case CredentialX509:
		return "x509"
	}
	return fmt.Sprintf("CredentialType(0x%04x)", uint16(t))
}

// Credential binds an identity to a signature key (§5.3):
//
//	struct {
//	    opaque cert_data<V>;
//	} Certificate;
//
//	struct {
//	    CredentialType credential_type;
//	    select (Credential.credential_type) {
//	        case basic:
//	            opaque identity<V>;
//	        case x509:
//	            Certificate certificates<V>;
//	    };
//	} Credential;
//
// Decision: only basic and x509 are decodable. §5.3 gives no length prefix
// around the select body, so a credential of any other type cannot be
// skipped or carried opaquely; §13.5 also says an unsupported
// credential_type (including GREASE values, which must never appear here)
// causes the enclosing message to be rejected. Unknown types are therefore a
// decoding error (ErrMalformed). Unknown values are still fine in
// Capabilities.Credentials, which is a plain list.
//
// Certificates are the DER certificates of the chain (end entity first), each
// carried as the cert_data of one Certificate; canopy does not parse them
// here (the Authentication Service does).
type Credential struct {
	Type         CredentialType
	Identity     []byte   // basic
	Certificates [][]byte // x509: Certificate.cert_data, end-entity first
}

// NewBasicCredential returns a basic credential for identity.
func NewBasicCredential(identity []byte) Credential {
	return Credential{Type: CredentialBasic, Identity: identity}
}

func (c *Credential) marshal(b *cryptobyte.Builder) {
	b.AddUint16(uint16(c.Type))
	switch c.Type {
	case CredentialBasic:
		addOpaque(b, c.Identity)
	case CredentialX509:
		addVarVector(b, func(b *cryptobyte.Builder) {
			for _, cert := range c.Certificates {
				addOpaque(b, cert)
			}
		})
	default:
		b.SetError(fmt.Errorf("mls: cannot encode credential of unknown type %v", c.Type))
	}
}

func (c *Credential) unmarshal(s *cryptobyte.String) bool {
	*c = Credential{}
	if !s.ReadUint16((*uint16)(&c.Type)) {
		return false
	}
	switch c.Type {
	case CredentialBasic:
		return readOpaque(s, &c.Identity)
	case CredentialX509:
		return readVectorExact(s, &c.Certificates, func(cert *[]byte, s *cryptobyte.String) bool {
			return readOpaque(s, cert)
		})
	default:
		return false
	}
}

// Marshal returns the encoding of c.
func (c *Credential) Marshal() ([]byte, error) { return marshalStruct(c) }

// Unmarshal decodes c from data, rejecting trailing bytes.
func (c *Credential) Unmarshal(data []byte) error { return unmarshalStruct(data, c, "Credential") }

// Equal reports whether c and o encode identically.
func (c *Credential) Equal(o *Credential) bool {
	if c.Type != o.Type {
		return false
	}
	switch c.Type {
	case CredentialBasic:
		return bytes.Equal(c.Identity, o.Identity)
	case CredentialX509:
		if len(c.Certificates) != len(o.Certificates) {
			return false
		}
		for i := range c.Certificates {
			if !bytes.Equal(c.Certificates[i], o.Certificates[i]) {
				return false
			}
		}
		return true
	}
	return false
}
