package mls

import (
	"errors"
	"fmt"

	"golang.org/x/crypto/cryptobyte"
)

// PSKType distinguishes external from resumption PSKs (§8.4).
type PSKType uint8

const (
	PSKTypeExternal   PSKType = 1
	PSKTypeResumption PSKType = 2
)

// ResumptionPSKUsage says why a resumption PSK is injected (§8.4).
type ResumptionPSKUsage uint8

const (
	ResumptionApplication ResumptionPSKUsage = 1
	ResumptionReInit      ResumptionPSKUsage = 2
	ResumptionBranch      ResumptionPSKUsage = 3
)

// PreSharedKeyID names a PSK (§8.4):
//
//	struct {
//	    PSKType psktype;
//	    select (PreSharedKeyID.psktype) {
//	        case external:
//	            opaque psk_id<V>;
//	        case resumption:
//	            ResumptionPSKUsage usage;
//	            opaque psk_group_id<V>;
//	            uint64 psk_epoch;
//	    };
//	    opaque psk_nonce<V>;
//	} PreSharedKeyID;
type PreSharedKeyID struct {
	Type PSKType
	// External
	PSKID []byte
	// Resumption
	Usage      ResumptionPSKUsage
	PSKGroupID []byte
	PSKEpoch   uint64

	Nonce []byte
}

func (p *PreSharedKeyID) marshal(b *cryptobyte.Builder) {
	b.AddUint8(uint8(p.Type))
	switch p.Type {
	case PSKTypeExternal:
		addOpaque(b, p.PSKID)
	case PSKTypeResumption:
		b.AddUint8(uint8(p.Usage))
		addOpaque(b, p.PSKGroupID)
		b.AddUint64(p.PSKEpoch)
	default:
		b.SetError(errInvalidPSKType)
		return
	}
	addOpaque(b, p.Nonce)
}

func (p *PreSharedKeyID) unmarshal(s *cryptobyte.String) bool {
	if !s.ReadUint8((*uint8)(&p.Type)) {
		return false
	}
	switch p.Type {
	case PSKTypeExternal:
		if !readOpaque(s, &p.PSKID) {
			return false
		}
	case PSKTypeResumption:
		if !s.ReadUint8((*uint8)(&p.Usage)) || p.Usage < ResumptionApplication || p.Usage > ResumptionBranch ||
			!readOpaque(s, &p.PSKGroupID) || !s.ReadUint64(&p.PSKEpoch) {
			return false
		}
	default:
		return false
	}
	return readOpaque(s, &p.Nonce)
}

// Marshal returns the encoding of p.
func (p *PreSharedKeyID) Marshal() ([]byte, error) { return marshalStruct(p) }

// Unmarshal decodes p from data, rejecting trailing bytes.
func (p *PreSharedKeyID) Unmarshal(data []byte) error {
	return unmarshalStruct(data, p, "PreSharedKeyID")
}

// validatePreSharedKeyID applies the per-proposal rules of §12.1.4 to a
// PreSharedKeyID: psk_nonce must be Nh bytes, and resumption PSKs with usage
// reinit (resp. branch) are only allowed while processing a
// reinitialization (resp. a subgroup branch).
func validatePreSharedKeyID(cs CipherSuite, p *PreSharedKeyID, inReInit, inBranch bool) error {
	if len(p.Nonce) != cs.Nh() {
		return fmt.Errorf("mls: psk_nonce is %d bytes, want %d", len(p.Nonce), cs.Nh())
	}
	switch p.Type {
	case PSKTypeExternal:
	case PSKTypeResumption:
		switch p.Usage {
		case ResumptionApplication:
		case ResumptionReInit:
			if !inReInit {
				return errors.New("mls: resumption PSK with usage reinit outside a reinitialization")
			}
		case ResumptionBranch:
			if !inBranch {
				return errors.New("mls: resumption PSK with usage branch outside a subgroup branch")
			}
		default:
			return fmt.Errorf("mls: invalid resumption PSK usage %d", p.Usage)
		}
	default:
		return errInvalidPSKType
	}
	return nil
}

// pskEntry is one PSK injected into the key schedule: its id (as carried
// in the PreSharedKey proposal or GroupSecrets) and its value (the external
// PSK, or the resumption_psk of the named group and epoch).
type pskEntry struct {
	ID  PreSharedKeyID
	PSK []byte
}

// pskLabel is
//
//	struct {
//	    PreSharedKeyID id;
//	    uint16 index;
//	    uint16 count;
//	} PSKLabel;
type pskLabel struct {
	id           *PreSharedKeyID
	index, count uint16
}

func (l *pskLabel) marshal(b *cryptobyte.Builder) {
	l.id.marshal(b)
	b.AddUint16(l.index)
	b.AddUint16(l.count)
}

// computePSKSecret derives psk_secret from the PSKs of a Commit or Welcome,
// in their order there (§8.4):
//
//	psk_extracted_[i] = KDF.Extract(0, psk_[i])
//	psk_input_[i]     = ExpandWithLabel(psk_extracted_[i], "derived psk", PSKLabel, KDF.Nh)
//	psk_secret_[0]    = 0
//	psk_secret_[i]    = KDF.Extract(psk_input_[i-1], psk_secret_[i-1])
//
// where 0 is the all-zero string of Nh bytes; with no PSKs the result is
// that zero string. At most 65535 PSKs fit the uint16 count.
func computePSKSecret(cs CipherSuite, psks []pskEntry) ([]byte, error) {
	if _, err := cs.params(); err != nil {
		return nil, err
	}
	if len(psks) > 0xffff {
		return nil, fmt.Errorf("mls: %d PSKs exceed the limit of 65535", len(psks))
	}
	zero := make([]byte, cs.Nh())
	secret := make([]byte, cs.Nh())
	for i := range psks {
		label, err := marshalStruct(&pskLabel{id: &psks[i].ID, index: uint16(i), count: uint16(len(psks))})
		if err != nil {
			return nil, err
		}
		extracted := cs.Extract(zero, psks[i].PSK)
		input, err := cs.ExpandWithLabel(extracted, "derived psk", label, cs.Nh())
		clear(extracted)
		if err != nil {
			return nil, err
		}
		next := cs.Extract(input, secret)
		clear(input)
		clear(secret)
		secret = next
	}
	return secret, nil
}
