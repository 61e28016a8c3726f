package main

import (
	"context"
	"fmt"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
	"google.golang.org/grpc/codes"
)

// --- commits ----------------------------------------------------------------

// Commit commits the given proposals by reference (after processing them)
// and by value. The Commit stays pending until HandlePendingCommit.
func (s *Server) Commit(_ context.Context, req *mlsclientpb.CommitRequest) (*mlsclientpb.CommitResponse, error) {
	return s.commit(req, "commit", false)
}

// ReInitCommit is Commit for a list that contains a ReInit proposal.
func (s *Server) ReInitCommit(_ context.Context, req *mlsclientpb.CommitRequest) (*mlsclientpb.CommitResponse, error) {
	return s.commit(req, "reinit commit", true)
}

func (s *Server) commit(req *mlsclientpb.CommitRequest, op string, reinit bool) (*mlsclientpb.CommitResponse, error) {
	return withGroup(s, req.StateId, op, func(st *groupState) (*mlsclientpb.CommitResponse, error) {
		if err := receiveProposals(st, op, req.ByReference); err != nil {
			return nil, err
		}
		view := groupViewOf(st.g)
		props := make([]*mls.Proposal, len(req.ByValue))
		for i, d := range req.ByValue {
			p, err := s.proposalFromDescription(d, view, false)
			if err != nil {
				return nil, fmt.Errorf("%s: by-value proposal %d: %w", op, i, err)
			}
			props[i] = p
		}
		if st.pending != nil {
			st.g.DiscardPendingCommit(st.pending)
			st.pending = nil
		}
		pc, err := st.g.Commit(mls.CommitOptions{Proposals: props, ForcePath: req.ForcePath, ExternalTree: req.ExternalTree})
		if err != nil {
			return nil, mlsError(op, err)
		}
		if reinit && pc.Update.ReInit == nil {
			st.g.DiscardPendingCommit(pc)
			return nil, errorf(codes.FailedPrecondition, "%s: the Commit carries no ReInit proposal", op)
		}
		st.pending = pc
		resp := &mlsclientpb.CommitResponse{Commit: pc.Message, Welcome: pc.Welcome}
		if req.ExternalTree {
			resp.RatchetTree = pc.RatchetTree
		}
		return resp, nil
	})
}

// handleCommit processes a Commit of another member with the proposals it
// covers by reference.
func handleCommit(st *groupState, op string, req *mlsclientpb.HandleCommitRequest) (*mls.StateUpdate, error) {
	if err := receiveProposals(st, op, req.Proposal); err != nil {
		return nil, err
	}
	ct, err := contentType(req.Commit)
	if err != nil {
		return nil, mlsError(op, err)
	}
	if ct != mls.ContentTypeCommit {
		return nil, invalidArg("%s: the message carries a %v, not a Commit", op, ct)
	}
	r, err := st.g.Process(req.Commit)
	if err != nil {
		return nil, mlsError(op, err)
	}
	if r.Commit == nil {
		return nil, errorf(codes.Internal, "%s: no state update for a processed Commit", op)
	}
	st.pending = nil // void now
	return r.Commit, nil
}

// mergePending merges the client's own pending Commit.
func mergePending(st *groupState, op string) (*mls.StateUpdate, error) {
	if st.pending == nil {
		return nil, errorf(codes.FailedPrecondition, "%s: no pending commit", op)
	}
	upd, err := st.g.MergePendingCommit(st.pending)
	if err != nil {
		return nil, mlsError(op, err)
	}
	st.pending = nil
	return upd, nil
}

// HandleCommit processes a Commit of another member.
func (s *Server) HandleCommit(ctx context.Context, req *mlsclientpb.HandleCommitRequest) (*mlsclientpb.HandleCommitResponse, error) {
	return withGroup(s, req.StateId, "handle commit", func(st *groupState) (*mlsclientpb.HandleCommitResponse, error) {
		upd, err := handleCommit(st, "handle commit", req)
		if err != nil {
			return nil, err
		}
		setStateUpdate(ctx, upd)
		return &mlsclientpb.HandleCommitResponse{StateId: req.StateId, EpochAuthenticator: st.g.EpochAuthenticator()}, nil
	})
}

// HandlePendingCommit merges the client's own Commit.
func (s *Server) HandlePendingCommit(ctx context.Context, req *mlsclientpb.HandlePendingCommitRequest) (*mlsclientpb.HandleCommitResponse, error) {
	return withGroup(s, req.StateId, "handle pending commit", func(st *groupState) (*mlsclientpb.HandleCommitResponse, error) {
		upd, err := mergePending(st, "handle pending commit")
		if err != nil {
			return nil, err
		}
		setStateUpdate(ctx, upd)
		return &mlsclientpb.HandleCommitResponse{StateId: req.StateId, EpochAuthenticator: st.g.EpochAuthenticator()}, nil
	})
}

// --- reinitialization (§11.2) -----------------------------------------------

// ReInitProposal proposes reinitializing the group.
func (s *Server) ReInitProposal(_ context.Context, req *mlsclientpb.ReInitProposalRequest) (*mlsclientpb.ProposalResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, mlsError("reinit proposal", err)
	}
	exts, err := convertExtensions(req.Extensions)
	if err != nil {
		return nil, mlsError("reinit proposal", err)
	}
	return s.propose(req.StateId, "reinit proposal", func(st *groupState) ([]byte, error) {
		return st.g.ProposeReInit(req.GroupId, cs, exts, nil)
	})
}

// startReInit creates the reinit state of a group closed by a ReInit: a
// KeyPackage for the new group's cipher suite, with a fresh signature key.
func (s *Server) startReInit(ctx context.Context, st *groupState, op string, upd *mls.StateUpdate) (*mlsclientpb.HandleReInitCommitResponse, error) {
	setStateUpdate(ctx, upd)
	r, ok := st.g.PendingReInit()
	if !ok {
		return nil, errorf(codes.FailedPrecondition, "%s: the Commit carried no ReInit proposal", op)
	}
	b, enc, err := s.newKeyPackage(r.CipherSuite, st.identity)
	if err != nil {
		return nil, mlsError(op, err)
	}
	id := s.st.add(&reinitState{old: st.g.Clone(), bundle: b, encrypt: st.encrypt, identity: st.identity})
	return &mlsclientpb.HandleReInitCommitResponse{ReinitId: id, KeyPackage: enc, EpochAuthenticator: st.g.EpochAuthenticator()}, nil
}

// HandlePendingReInitCommit merges the client's own ReInit Commit and
// returns a KeyPackage for the new group.
func (s *Server) HandlePendingReInitCommit(ctx context.Context, req *mlsclientpb.HandlePendingCommitRequest) (*mlsclientpb.HandleReInitCommitResponse, error) {
	const op = "handle pending reinit commit"
	return withGroup(s, req.StateId, op, func(st *groupState) (*mlsclientpb.HandleReInitCommitResponse, error) {
		if st.pending != nil && st.pending.Update.ReInit == nil {
			return nil, errorf(codes.FailedPrecondition, "%s: the pending Commit carries no ReInit", op)
		}
		upd, err := mergePending(st, op)
		if err != nil {
			return nil, err
		}
		return s.startReInit(ctx, st, op, upd)
	})
}

// HandleReInitCommit processes another member's ReInit Commit and returns
// a KeyPackage for the new group.
func (s *Server) HandleReInitCommit(ctx context.Context, req *mlsclientpb.HandleCommitRequest) (*mlsclientpb.HandleReInitCommitResponse, error) {
	const op = "handle reinit commit"
	return withGroup(s, req.StateId, op, func(st *groupState) (*mlsclientpb.HandleReInitCommitResponse, error) {
		upd, err := handleCommit(st, op, req)
		if err != nil {
			return nil, err
		}
		return s.startReInit(ctx, st, op, upd)
	})
}

// ReInitWelcome creates the new group of a ReInit with the other
// members' KeyPackages.
func (s *Server) ReInitWelcome(_ context.Context, req *mlsclientpb.ReInitWelcomeRequest) (*mlsclientpb.CreateSubgroupResponse, error) {
	const op = "reinit welcome"
	r, err := lookup[*reinitState](&s.st, req.ReinitId, op)
	if err != nil {
		return nil, err
	}
	r.Lock()
	defer r.Unlock()
	own, err := r.bundle.KeyPackage.Marshal()
	if err != nil {
		return nil, mlsError(op, err)
	}
	kps, err := parseKeyPackages(op, req.KeyPackage, own)
	if err != nil {
		return nil, err
	}
	opts := mls.CommitOptions{ForcePath: req.ForcePath, ExternalTree: req.ExternalTree}
	g, pc, err := r.old.ReInitGroup(kps, r.bundle.SignaturePriv, opts, s.groupOpts(r.encrypt, r.psks)...)
	if err != nil {
		return nil, mlsError(op, err)
	}
	id := s.st.add(&groupState{g: g, encrypt: r.encrypt, identity: r.identity})
	return subgroupResponse(id, g, pc, req.ExternalTree), nil
}

// HandleReInitWelcome joins the new group of a ReInit.
func (s *Server) HandleReInitWelcome(_ context.Context, req *mlsclientpb.HandleReInitWelcomeRequest) (*mlsclientpb.JoinGroupResponse, error) {
	const op = "handle reinit welcome"
	r, err := lookup[*reinitState](&s.st, req.ReinitId, op)
	if err != nil {
		return nil, err
	}
	welcome, err := asMLSMessage(req.Welcome, mls.WireFormatWelcome)
	if err != nil {
		return nil, mlsError(op, err)
	}
	r.Lock()
	defer r.Unlock()
	opts := append(s.groupOpts(r.encrypt, r.psks), mls.WithResumptionGroups(r.old))
	g, err := mls.JoinFromWelcome(welcome, r.bundle, req.RatchetTree, opts...)
	if err != nil {
		return nil, mlsError(op, err)
	}
	id := s.st.add(&groupState{g: g, encrypt: r.encrypt, identity: r.identity})
	return &mlsclientpb.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// --- branching (§11.3) --------------------------------------------------------

// CreateBranch creates a subgroup with the given members' KeyPackages.
func (s *Server) CreateBranch(_ context.Context, req *mlsclientpb.CreateBranchRequest) (*mlsclientpb.CreateSubgroupResponse, error) {
	const op = "create branch"
	exts, err := convertExtensions(req.Extensions)
	if err != nil {
		return nil, mlsError(op, err)
	}
	kps, err := parseKeyPackages(op, req.KeyPackages, nil)
	if err != nil {
		return nil, err
	}
	return withGroup(s, req.StateId, op, func(st *groupState) (*mlsclientpb.CreateSubgroupResponse, error) {
		opts := mls.CommitOptions{ForcePath: req.ForcePath, ExternalTree: req.ExternalTree}
		newOpts := append(s.groupOpts(st.encrypt, nil), mls.WithGroupExtensions(exts))
		g, pc, err := st.g.Branch(req.GroupId, kps, opts, newOpts...)
		if err != nil {
			return nil, mlsError(op, err)
		}
		id := s.st.add(&groupState{g: g, encrypt: st.encrypt, identity: st.identity})
		return subgroupResponse(id, g, pc, req.ExternalTree), nil
	})
}

// HandleBranch joins a subgroup of a group this client is in, with the
// KeyPackage of a transaction.
func (s *Server) HandleBranch(_ context.Context, req *mlsclientpb.HandleBranchRequest) (*mlsclientpb.HandleBranchResponse, error) {
	const op = "handle branch"
	st, err := lookup[*groupState](&s.st, req.StateId, op)
	if err != nil {
		return nil, err
	}
	tx, err := lookup[*txState](&s.st, req.TransactionId, op)
	if err != nil {
		return nil, err
	}
	welcome, err := asMLSMessage(req.Welcome, mls.WireFormatWelcome)
	if err != nil {
		return nil, mlsError(op, err)
	}
	unlock := lockItems([]uint32{req.StateId, req.TransactionId}, []item{st, tx})
	defer unlock()
	opts := append(s.groupOpts(st.encrypt, tx.psks), mls.WithResumptionGroups(st.g))
	g, err := mls.JoinFromWelcome(welcome, tx.bundle, req.RatchetTree, opts...)
	if err != nil {
		return nil, mlsError(op, err)
	}
	id := s.st.add(&groupState{g: g, encrypt: st.encrypt, identity: tx.identity})
	return &mlsclientpb.HandleBranchResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

func subgroupResponse(id uint32, g *mls.Group, pc *mls.PendingCommit, externalTree bool) *mlsclientpb.CreateSubgroupResponse {
	resp := &mlsclientpb.CreateSubgroupResponse{StateId: id, Welcome: pc.Welcome, EpochAuthenticator: g.EpochAuthenticator()}
	if externalTree {
		resp.RatchetTree = pc.RatchetTree
	}
	return resp
}
