package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
)

// propose runs a proposal-creating function on a group and records the
// proposal as this client's own.
func (s *Server) propose(id uint32, op string, f func(*groupState) ([]byte, error)) (*mlsclientpb.ProposalResponse, error) {
	return withGroup(s, id, op, func(st *groupState) (*mlsclientpb.ProposalResponse, error) {
		msg, err := f(st)
		if err != nil {
			return nil, mlsError(op, err)
		}
		st.noteOwnProposal(msg)
		return &mlsclientpb.ProposalResponse{Proposal: msg}, nil
	})
}

// AddProposal proposes adding the client of a KeyPackage.
func (s *Server) AddProposal(_ context.Context, req *mlsclientpb.AddProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	kp, err := mls.ParseKeyPackage(req.KeyPackage)
	if err != nil {
		return nil, mlsError("add proposal: key package", err)
	}
	return s.propose(req.StateId, "add proposal", func(st *groupState) ([]byte, error) {
		return st.g.ProposeAdd(kp, nil)
	})
}

// UpdateProposal proposes a fresh leaf for this client.
func (s *Server) UpdateProposal(_ context.Context, req *mlsclientpb.UpdateProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	return s.propose(req.StateId, "update proposal", func(st *groupState) ([]byte, error) {
		return st.g.ProposeUpdate(nil)
	})
}

// RemoveProposal proposes removing the member whose identity is removed_id.
func (s *Server) RemoveProposal(_ context.Context, req *mlsclientpb.RemoveProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	return s.propose(req.StateId, "remove proposal", func(st *groupState) ([]byte, error) {
		leaf, err := groupLeafByIdentity(st.g, req.RemovedId)
		if err != nil {
			return nil, err
		}
		return st.g.ProposeRemove(leaf, nil)
	})
}

// ExternalPSKProposal proposes injecting a stored external PSK.
func (s *Server) ExternalPSKProposal(_ context.Context, req *mlsclientpb.ExternalPSKProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	return s.propose(req.StateId, "external psk proposal", func(st *groupState) ([]byte, error) {
		return st.g.ProposeExternalPSK(req.PskId, nil)
	})
}

// ResumptionPSKProposal proposes injecting the resumption PSK of an epoch.
func (s *Server) ResumptionPSKProposal(_ context.Context, req *mlsclientpb.ResumptionPSKProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	return s.propose(req.StateId, "resumption psk proposal", func(st *groupState) ([]byte, error) {
		return st.g.ProposeResumptionPSK(req.EpochId, nil)
	})
}

// GroupContextExtensionsProposal proposes new GroupContext extensions.
func (s *Server) GroupContextExtensionsProposal(_ context.Context, req *mlsclientpb.GroupContextExtensionsProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	exts, err := convertExtensions(req.Extensions)
	if err != nil {
		return nil, mlsError("group context extensions proposal", err)
	}
	return s.propose(req.StateId, "group context extensions proposal", func(st *groupState) ([]byte, error) {
		return st.g.ProposeGroupContextExtensions(exts, nil)
	})
}

// receiveProposals has the group process proposals sent by others
// (skipping this client's own, which are already cached).
func receiveProposals(st *groupState, op string, proposals [][]byte) error {
	for i, p := range proposals {
		if st.isOwnProposal(p) {
			continue
		}
		ct, err := contentType(p)
		if err != nil {
			return fmt.Errorf("%s: proposal %d: %w", op, i, err)
		}
		if ct != mls.ContentTypeProposal {
			return invalidArg("%s: proposal %d is a %v message", op, i, ct)
		}
		if _, err := st.g.Process(p); err != nil {
			if errors.Is(err, mls.ErrOwnMessage) {
				continue // sent by this client before a restart of the epoch bookkeeping
			}
			return mlsError(fmt.Sprintf("%s: proposal %d", op, i), err)
		}
	}
	return nil
}

// --- external proposals (§12.1.8) ---------------------------------------------

// NewMemberAddProposal creates a KeyPackage and the new_member_proposal
// Add for it; the transaction later joins with JoinGroup.
func (s *Server) NewMemberAddProposal(_ context.Context, req *mlsclientpb.NewMemberAddProposalRequest) (*mlsclientpb.NewMemberAddProposalResponse, error) {
	const op = "new member add proposal"
	giMsg, gi, err := parseGroupInfo(req.GroupInfo)
	if err != nil {
		return nil, mlsError(op, err)
	}
	b, _, err := s.newKeyPackage(gi.GroupContext.CipherSuite, req.Identity)
	if err != nil {
		return nil, mlsError(op, err)
	}
	msg, err := mls.NewMemberAddProposal(giMsg, b, nil, mls.WithRandom(s.random))
	if err != nil {
		return nil, mlsError(op, err)
	}
	id := s.st.add(&txState{bundle: b, identity: b.KeyPackage.LeafNode.Credential.Identity})
	return &mlsclientpb.NewMemberAddProposalResponse{
		TransactionId:  id,
		Proposal:       msg,
		InitPriv:       b.InitPriv,
		EncryptionPriv: b.EncryptionPriv,
		SignaturePriv:  b.SignaturePriv,
	}, nil
}

// CreateExternalSigner creates an external sender key and returns its
// ExternalSender struct (§12.1.8.1).
func (s *Server) CreateExternalSigner(_ context.Context, req *mlsclientpb.CreateExternalSignerRequest) (*mlsclientpb.CreateExternalSignerResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, mlsError("create external signer", err)
	}
	priv, pub, cred, err := s.newSigner(cs, req.Identity)
	if err != nil {
		return nil, mlsError("create external signer", err)
	}
	enc, err := marshalExternalSender(mls.ExternalSender{SignatureKey: pub, Credential: cred})
	if err != nil {
		return nil, mlsError("create external signer", err)
	}
	id := s.st.add(&signerState{cs: cs, sigPriv: priv, sigPub: pub, cred: cred})
	return &mlsclientpb.CreateExternalSignerResponse{SignerId: id, ExternalSender: enc}, nil
}

// AddExternalSigner proposes (GroupContextExtensions) appending an
// external sender to the group's external_senders extension; its
// signer_index is its position in that list.
func (s *Server) AddExternalSigner(_ context.Context, req *mlsclientpb.AddExternalSignerRequest) (*mlsclientpb.ProposalResponse, error) {
	const op = "add external signer"
	es, err := unmarshalExternalSender(req.ExternalSender)
	if err != nil {
		return nil, invalidArg("%s: %w", op, err)
	}
	return s.propose(req.StateId, op, func(st *groupState) ([]byte, error) {
		exts, err := withExternalSender(st.g.Extensions(), es)
		if err != nil {
			return nil, err
		}
		return st.g.ProposeGroupContextExtensions(exts, nil)
	})
}

// ExternalSignerProposal creates a proposal signed by an external sender.
func (s *Server) ExternalSignerProposal(_ context.Context, req *mlsclientpb.ExternalSignerProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	const op = "external signer proposal"
	sig, err := lookup[*signerState](&s.st, req.SignerId, op)
	if err != nil {
		return nil, err
	}
	giMsg, gi, err := parseGroupInfo(req.GroupInfo)
	if err != nil {
		return nil, mlsError(op, err)
	}
	if req.Description == nil {
		return nil, invalidArg("%s: no proposal description", op)
	}
	view, err := groupViewOfGroupInfo(gi, req.RatchetTree)
	if err != nil {
		return nil, err
	}
	p, err := s.proposalFromDescription(req.Description, view, true)
	if err != nil {
		return nil, mlsError(op, err)
	}
	sig.Lock()
	defer sig.Unlock()
	if sig.cs != gi.GroupContext.CipherSuite {
		return nil, invalidArg("%s: signer for %v, group uses %v", op, sig.cs, gi.GroupContext.CipherSuite)
	}
	// The official runner does not send signer_index: the signer's
	// position in the group's external_senders extension is authoritative.
	index := req.SignerIndex
	if i, ok, err := externalSenderIndex(gi.GroupContext.Extensions, sig.sigPub); err != nil {
		return nil, invalidArg("%s: %w", op, err)
	} else if ok {
		index = i
	}
	msg, err := mls.ExternalProposal(giMsg, index, sig.sigPriv, p, nil, mls.WithRandom(s.random))
	if err != nil {
		return nil, mlsError(op, err)
	}
	return &mlsclientpb.ProposalResponse{Proposal: msg}, nil
}
