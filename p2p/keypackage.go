package p2p

import (
	"context"
	"fmt"
	"math"

	"github.com/libp2p/go-libp2p/core/peer"
)

// /canopy/keypackage/1 fetches one KeyPackage of a user (identified by the
// peer id of their node) from that node or from a relay.
//
//	request:  owner bytes (empty: the serving node itself) | suite uvarint
//	response: status | last_resort u8 | suite uvarint | data bytes
//
// suite is an MLS cipher suite (0: any). A member node serves its own
// packages through Handlers.KeyPackage (or KeyPackageForSuite). A relay
// serves packages its users uploaded (Node.PutKeyPackages): each one-time
// package once, then the last-resort package of the suite as often as asked.

// KeyPackageHandler hands out one of this node's KeyPackages to `from`, or
// returns an error wrapping ErrNotFound when there is none. It is not told
// the cipher suite asked for; a node with packages of several suites sets
// Handlers.KeyPackageForSuite instead.
type KeyPackageHandler func(ctx context.Context, from peer.ID) (KeyPackage, error)

// KeyPackageSuiteHandler is a KeyPackageHandler that is told the cipher
// suite asked for (0: any).
type KeyPackageSuiteHandler func(ctx context.Context, from peer.ID, suite uint16) (KeyPackage, error)

func encodeKeyPackageRequest(owner peer.ID, suite uint16) []byte {
	var e enc
	e.bytes([]byte(owner))
	e.uvarint(uint64(suite))
	return e.body()
}

func decodeKeyPackageRequest(b []byte) (peer.ID, uint16, error) {
	d := newDec(b)
	raw := d.bytes(maxPeerIDLen)
	suite := d.uvarint()
	if err := d.done(); err != nil {
		return "", 0, err
	}
	if suite > math.MaxUint16 {
		return "", 0, fmt.Errorf("%w: cipher suite %d", errDecode, suite)
	}
	if len(raw) == 0 {
		return "", uint16(suite), nil
	}
	id, err := peer.IDFromBytes(raw)
	if err != nil {
		return "", 0, fmt.Errorf("%w: owner: %v", errDecode, err)
	}
	return id, uint16(suite), nil
}

func encodeKeyPackage(kp KeyPackage) []byte {
	var e enc
	e.bool(kp.LastResort)
	e.uvarint(uint64(kp.CipherSuite))
	e.bytes(kp.Data)
	return e.body()
}

func decodeKeyPackage(b []byte) (KeyPackage, error) {
	d := newDec(b)
	kp := KeyPackage{LastResort: d.bool()}
	suite := d.uvarint()
	kp.Data = d.bytes(MaxKeyPackageSize)
	if err := d.done(); err != nil {
		return KeyPackage{}, err
	}
	if suite > math.MaxUint16 {
		return KeyPackage{}, fmt.Errorf("%w: cipher suite %d", errDecode, suite)
	}
	kp.CipherSuite = uint16(suite)
	if len(kp.Data) == 0 {
		return KeyPackage{}, fmt.Errorf("%w: empty key package", errDecode)
	}
	return kp, nil
}

const keyPackageRespMax = MaxKeyPackageSize + 16

func (n *Node) serveKeyPackage(ctx context.Context, f *frameStream, from peer.ID, req []byte) error {
	owner, suite, err := decodeKeyPackageRequest(req)
	if err != nil {
		return err
	}
	var kp KeyPackage
	switch {
	case owner == "" || owner == n.h.ID():
		h := n.getHandlers()
		switch {
		case h.KeyPackageForSuite != nil:
			kp, err = h.KeyPackageForSuite(ctx, from, suite)
		case h.KeyPackage != nil:
			kp, err = h.KeyPackage(ctx, from)
		default:
			return fmt.Errorf("%w: no key packages", ErrNotFound)
		}
	case n.relay != nil:
		kp, err = n.relay.takeKeyPackage(ctx, owner, suite, sourceOf(f.s.Conn()))
	default:
		return fmt.Errorf("%w: not a relay; ask the owner", ErrNotFound)
	}
	if err != nil {
		return err
	}
	if len(kp.Data) == 0 || len(kp.Data) > MaxKeyPackageSize {
		return fmt.Errorf("%w: key package of %d bytes", ErrFrameTooLarge, len(kp.Data))
	}
	if suite != 0 && kp.CipherSuite != 0 && kp.CipherSuite != suite {
		return fmt.Errorf("%w: no key package for cipher suite %d", ErrNotFound, suite)
	}
	return f.writeStatus(CodeOK, "", encodeKeyPackage(kp), keyPackageRespMax)
}

// FetchKeyPackage fetches a KeyPackage of owner from peer `from`: the owner
// itself (pass owner == from, or "") or a relay holding owner's packages.
func (n *Node) FetchKeyPackage(ctx context.Context, from, owner peer.ID) (KeyPackage, error) {
	return n.FetchKeyPackageForSuite(ctx, from, owner, 0)
}

// FetchKeyPackageForSuite is FetchKeyPackage for a given MLS cipher suite
// (0: any), e.g. the suite of the group the package is for.
func (n *Node) FetchKeyPackageForSuite(ctx context.Context, from, owner peer.ID, suite uint16) (KeyPackage, error) {
	if owner == from {
		owner = ""
	}
	var kp KeyPackage
	err := n.call(ctx, from, ProtocolKeyPackage, func(f *frameStream) error {
		if err := writeReq(f, encodeKeyPackageRequest(owner, suite), smallFrame); err != nil {
			return err
		}
		body, err := expectOK(f, keyPackageRespMax)
		if err != nil {
			return err
		}
		if kp, err = decodeKeyPackage(body); err != nil {
			return err
		}
		if suite != 0 && kp.CipherSuite != 0 && kp.CipherSuite != suite {
			return fmt.Errorf("%w: asked for cipher suite %d, got %d", ErrBadResponse, suite, kp.CipherSuite)
		}
		return nil
	})
	return kp, err
}
