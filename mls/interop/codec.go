package main

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
	"google.golang.org/grpc/codes"
)

// Conversions between the interop protocol's byte strings and package
// mls: message framing, proposal descriptions, extensions, the
// ExternalSender struct and the state-update summary.

// asMLSMessage returns data as an encoded MLSMessage of wire format wf,
// wrapping a bare struct (Welcome, GroupInfo) if that is what was given.
func asMLSMessage(data []byte, wf mls.WireFormat) ([]byte, error) {
	var m mls.MLSMessage
	msgErr := m.Unmarshal(data)
	if msgErr == nil {
		if m.WireFormat != wf {
			return nil, invalidArg("expected a %v, got an MLSMessage carrying a %v", wf, m.WireFormat)
		}
		return data, nil
	}
	m = mls.MLSMessage{Version: mls.ProtocolMLS10, WireFormat: wf}
	var err error
	switch wf {
	case mls.WireFormatWelcome:
		m.Welcome = new(mls.Welcome)
		err = m.Welcome.Unmarshal(data)
	case mls.WireFormatGroupInfo:
		m.GroupInfo = new(mls.GroupInfo)
		err = m.GroupInfo.Unmarshal(data)
	default:
		return nil, invalidArg("malformed %v: %w", wf, msgErr)
	}
	if err != nil {
		// Both readings failed: say why for each, as a peer's bug may be
		// in either the MLSMessage framing or the struct.
		return nil, invalidArg("malformed %v: as an MLSMessage: %w; as a bare %v: %w", wf, msgErr, wf, err)
	}
	out, err := m.Marshal()
	if err != nil {
		return nil, invalidArg("malformed %v: %w", wf, err)
	}
	return out, nil
}

// parseGroupInfo returns a GroupInfo as an encoded MLSMessage and decoded.
// The signature is not verified here (the operations using it do).
func parseGroupInfo(data []byte) ([]byte, *mls.GroupInfo, error) {
	msg, err := asMLSMessage(data, mls.WireFormatGroupInfo)
	if err != nil {
		return nil, nil, err
	}
	var m mls.MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return nil, nil, invalidArg("malformed group info: %w", err)
	}
	if !m.GroupInfo.GroupContext.CipherSuite.Supported() {
		return nil, nil, errorf(codes.Unimplemented, "group info: unsupported cipher suite 0x%04x",
			uint16(m.GroupInfo.GroupContext.CipherSuite))
	}
	return msg, m.GroupInfo, nil
}

// contentType returns the content type of a PublicMessage or
// PrivateMessage (in the clear in both).
func contentType(msg []byte) (mls.ContentType, error) {
	var m mls.MLSMessage
	if err := m.Unmarshal(msg); err != nil {
		return 0, invalidArg("malformed message: %w", err)
	}
	switch m.WireFormat {
	case mls.WireFormatPublicMessage:
		return m.PublicMessage.Content.ContentType, nil
	case mls.WireFormatPrivateMessage:
		return m.PrivateMessage.ContentType, nil
	}
	return 0, invalidArg("expected a PublicMessage or PrivateMessage, got a %v", m.WireFormat)
}

// parseKeyPackages decodes and validates KeyPackages, leaving out one
// equal to skip (a client's own KeyPackage in a ReInit's list).
func parseKeyPackages(op string, list [][]byte, skip []byte) ([]*mls.KeyPackage, error) {
	out := make([]*mls.KeyPackage, 0, len(list))
	for i, data := range list {
		kp, err := mls.ParseKeyPackage(data)
		if err != nil {
			return nil, mlsError(fmt.Sprintf("%s: key package %d", op, i), err)
		}
		if skip != nil {
			if enc, err := kp.Marshal(); err == nil && bytes.Equal(enc, skip) {
				continue
			}
		}
		out = append(out, kp)
	}
	return out, nil
}

// convertExtensions turns protocol extensions into mls extensions.
func convertExtensions(in []*mlsclientpb.Extension) ([]mls.Extension, error) {
	out := make([]mls.Extension, 0, len(in))
	for _, e := range in {
		if e.ExtensionType > math.MaxUint16 {
			return nil, invalidArg("extension type %d out of range", e.ExtensionType)
		}
		out = append(out, mls.Extension{Type: mls.ExtensionType(e.ExtensionType), Data: bytes.Clone(e.ExtensionData)})
	}
	return out, nil
}

// --- members by identity ------------------------------------------------------

// groupLeafByIdentity finds the member of g whose basic credential has the
// given identity.
func groupLeafByIdentity(g *mls.Group, identity []byte) (mls.LeafIndex, error) {
	var found []mls.LeafIndex
	for _, m := range g.Members() {
		if bytes.Equal(m.Credential.Identity, identity) {
			found = append(found, m.Index)
		}
	}
	return oneLeaf(found, identity)
}

// treeLeafByIdentity is groupLeafByIdentity on an encoded ratchet tree.
func treeLeafByIdentity(tree mls.RatchetTree, identity []byte) (mls.LeafIndex, error) {
	var found []mls.LeafIndex
	for i := 0; i < len(tree); i += 2 {
		n := tree[i]
		if n != nil && n.Type == mls.NodeTypeLeaf && n.Leaf != nil && bytes.Equal(n.Leaf.Credential.Identity, identity) {
			found = append(found, mls.LeafIndex(i/2))
		}
	}
	return oneLeaf(found, identity)
}

func oneLeaf(found []mls.LeafIndex, identity []byte) (mls.LeafIndex, error) {
	switch len(found) {
	case 0:
		return 0, errorf(codes.NotFound, "no member with identity %q", identity)
	case 1:
		return found[0], nil
	}
	return 0, errorf(codes.FailedPrecondition, "%d members with identity %q", len(found), identity)
}

// groupView is what a proposal description needs to know of its group.
type groupView struct {
	cs      mls.CipherSuite
	groupID []byte
	leaf    func(identity []byte) (mls.LeafIndex, error)
}

func groupViewOf(g *mls.Group) *groupView {
	return &groupView{cs: g.CipherSuite(), groupID: g.GroupID(), leaf: func(id []byte) (mls.LeafIndex, error) {
		return groupLeafByIdentity(g, id)
	}}
}

// groupViewOfGroupInfo is the view of an outsider: the tree comes from the
// GroupInfo's ratchet_tree extension or from ratchetTree.
func groupViewOfGroupInfo(gi *mls.GroupInfo, ratchetTree []byte) (*groupView, error) {
	v := &groupView{cs: gi.GroupContext.CipherSuite, groupID: bytes.Clone(gi.GroupContext.GroupID)}
	v.leaf = func(identity []byte) (mls.LeafIndex, error) {
		tree, ok, err := gi.RatchetTree()
		if err != nil {
			return 0, invalidArg("group info: ratchet_tree extension: %w", err)
		}
		if !ok {
			if len(ratchetTree) == 0 {
				return 0, invalidArg("the group info has no ratchet tree and none was given")
			}
			if err := tree.Unmarshal(bytes.Clone(ratchetTree)); err != nil {
				return 0, invalidArg("ratchet tree: %w", err)
			}
		}
		return treeLeafByIdentity(tree, identity)
	}
	return v, nil
}

// pskNonce returns a fresh psk_nonce (§8.4: Nh bytes).
func (s *Server) pskNonce(cs mls.CipherSuite) ([]byte, error) {
	n := make([]byte, cs.Nh())
	if _, err := s.random.Read(n); err != nil {
		return nil, errorf(codes.Internal, "psk nonce: %w", err)
	}
	return n, nil
}

// proposalFromDescription builds a proposal from a ProposalDescription.
// ReInit descriptions are only valid for external senders.
func (s *Server) proposalFromDescription(d *mlsclientpb.ProposalDescription, v *groupView, allowReInit bool) (*mls.Proposal, error) {
	typ := string(d.ProposalType)
	switch typ {
	case "add":
		kp, err := mls.ParseKeyPackage(d.KeyPackage)
		if err != nil {
			return nil, mlsError("add: key package", err)
		}
		return &mls.Proposal{Type: mls.ProposalTypeAdd, Add: &mls.Add{KeyPackage: *kp}}, nil
	case "remove":
		l, err := v.leaf(d.RemovedId)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: uint32(l)}}, nil
	case "externalPSK":
		nonce, err := s.pskNonce(v.cs)
		if err != nil {
			return nil, err
		}
		id := mls.PreSharedKeyID{Type: mls.PSKTypeExternal, PSKID: bytes.Clone(d.PskId), Nonce: nonce}
		return &mls.Proposal{Type: mls.ProposalTypePSK, PreSharedKey: &mls.PreSharedKey{PSK: id}}, nil
	case "resumptionPSK":
		nonce, err := s.pskNonce(v.cs)
		if err != nil {
			return nil, err
		}
		id := mls.PreSharedKeyID{Type: mls.PSKTypeResumption, Usage: mls.ResumptionApplication,
			PSKGroupID: bytes.Clone(v.groupID), PSKEpoch: d.EpochId, Nonce: nonce}
		return &mls.Proposal{Type: mls.ProposalTypePSK, PreSharedKey: &mls.PreSharedKey{PSK: id}}, nil
	case "groupContextExtensions":
		exts, err := convertExtensions(d.Extensions)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalTypeGroupContextExtensions,
			GroupContextExtensions: &mls.GroupContextExtensions{Extensions: exts}}, nil
	case "reinit":
		if !allowReInit {
			return nil, invalidArg("proposal type %q is only valid for external signers (use ReInitProposal)", typ)
		}
		cs, err := suite(d.CipherSuite)
		if err != nil {
			return nil, err
		}
		exts, err := convertExtensions(d.Extensions)
		if err != nil {
			return nil, err
		}
		return &mls.Proposal{Type: mls.ProposalTypeReInit, ReInit: &mls.ReInit{
			GroupID: bytes.Clone(d.GroupId), Version: mls.ProtocolMLS10, CipherSuite: cs, Extensions: exts}}, nil
	}
	return nil, invalidArg("unknown proposal type %q", typ)
}

// --- ExternalSender (§12.1.8.1) ----------------------------------------------

// The mls package encodes the external_senders list, not a single
// ExternalSender; the struct is the list's body without its
// variable-length prefix (§2.1.2).

func varintPrefix(n int) ([]byte, error) {
	switch {
	case n < 1<<6:
		return []byte{byte(n)}, nil
	case n < 1<<14:
		return []byte{0x40 | byte(n>>8), byte(n)}, nil
	case n < 1<<30:
		return []byte{0x80 | byte(n>>24), byte(n >> 16), byte(n >> 8), byte(n)}, nil
	}
	return nil, errors.New("vector too long")
}

func marshalExternalSender(e mls.ExternalSender) ([]byte, error) {
	list := mls.ExternalSenders{e}
	enc, err := list.Marshal()
	if err != nil {
		return nil, err
	}
	if len(enc) == 0 {
		return nil, errors.New("empty encoding")
	}
	n := 1 << (enc[0] >> 6)
	if n > len(enc) {
		return nil, errors.New("bad encoding")
	}
	return enc[n:], nil
}

func unmarshalExternalSender(data []byte) (mls.ExternalSender, error) {
	prefix, err := varintPrefix(len(data))
	if err != nil {
		return mls.ExternalSender{}, err
	}
	var list mls.ExternalSenders
	if err := list.Unmarshal(append(prefix, data...)); err != nil {
		return mls.ExternalSender{}, fmt.Errorf("malformed ExternalSender: %w", err)
	}
	if len(list) != 1 {
		return mls.ExternalSender{}, fmt.Errorf("malformed ExternalSender: %d structs", len(list))
	}
	return list[0], nil
}

// externalSenderIndex finds the signature key sigPub in an
// external_senders extension of exts.
func externalSenderIndex(exts []mls.Extension, sigPub []byte) (uint32, bool, error) {
	for _, e := range exts {
		if e.Type != mls.ExtensionExternalSenders {
			continue
		}
		var list mls.ExternalSenders
		if err := list.Unmarshal(e.Data); err != nil {
			return 0, false, fmt.Errorf("external_senders extension: %w", err)
		}
		for i, es := range list {
			if bytes.Equal(es.SignatureKey, sigPub) {
				return uint32(i), true, nil
			}
		}
	}
	return 0, false, nil
}

// withExternalSender returns exts with es appended to the
// external_senders extension (created if absent).
func withExternalSender(exts []mls.Extension, es mls.ExternalSender) ([]mls.Extension, error) {
	var list mls.ExternalSenders
	at := -1
	for i, e := range exts {
		if e.Type == mls.ExtensionExternalSenders {
			if err := list.Unmarshal(e.Data); err != nil {
				return nil, fmt.Errorf("%w: the group's external_senders extension: %w", mls.ErrMalformed, err)
			}
			at = i
		}
	}
	list = append(list, es)
	data, err := list.Marshal()
	if err != nil {
		return nil, err
	}
	if at < 0 {
		return append(exts, mls.Extension{Type: mls.ExtensionExternalSenders, Data: data}), nil
	}
	exts[at].Data = data
	return exts, nil
}

// --- state update summary -------------------------------------------------------

// formatStateUpdate encodes a StateUpdate for StateUpdateHeader. Own and
// RemovedSelf are left out: they differ between members by design.
func formatStateUpdate(u *mls.StateUpdate) string {
	leaves := func(ls []mls.LeafIndex) string {
		parts := make([]string, len(ls))
		for i, l := range ls {
			parts[i] = strconv.FormatUint(uint64(l), 10)
		}
		return strings.Join(parts, ",")
	}
	removed := make([]string, len(u.Removed))
	for i, r := range u.Removed {
		var enc []byte
		if r.LeafNode != nil {
			enc, _ = r.LeafNode.Marshal()
		}
		removed[i] = fmt.Sprintf("%d:%x", r.Index, enc)
	}
	psks := make([]string, len(u.PSKs))
	for i, id := range u.PSKs {
		id.Nonce = nil
		enc, _ := id.Marshal()
		psks[i] = hex.EncodeToString(enc)
	}
	var reinit []byte
	if u.ReInit != nil {
		reinit, _ = u.ReInit.Marshal()
	}
	ext := 0
	if u.Extensions {
		ext = 1
	}
	return fmt.Sprintf("epoch=%d;added=%s;updated=%s;removed=%s;psks=%s;extensions=%d;reinit=%x",
		u.Epoch, leaves(u.Added), leaves(u.Updated), strings.Join(removed, ","), strings.Join(psks, ","), ext, reinit)
}
