package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
)

// DefaultName is what the Name RPC reports unless WithName says otherwise.
const DefaultName = "canopy"

// Server implements service MLSClient of the official MLS interop test
// harness (mls_client.proto) on top of package mls. It is safe for
// concurrent use: every state has its own lock.
//
// Wire encodings: key packages, proposals, commits, welcomes and group
// infos are MLSMessages (RFC 9420 §6); bare KeyPackage, Welcome and
// GroupInfo structs are accepted on input too. Ratchet trees are
// `optional<Node> ratchet_tree<V>` (§12.4.3.3). Credentials are basic
// credentials with the request's identity.
type Server struct {
	// UnsafeMLSClientServer rather than UnimplementedMLSClientServer: a
	// missing RPC is a compile error, not a runtime "unimplemented".
	mlsclientpb.UnsafeMLSClientServer

	random  io.Reader
	name    string
	padding mls.PaddingPolicy
	log     *slog.Logger
	st      store
}

var _ mlsclientpb.MLSClientServer = (*Server)(nil)

// ServerOption configures a Server.
type ServerOption func(*Server)

// WithName sets what the Name RPC answers (DefaultName if unset), so that
// two instances can be told apart in the runner's results.
func WithName(name string) ServerOption { return func(s *Server) { s.name = name } }

// WithPadding sets the padding of the PrivateMessages (handshake and
// application) of every group the server creates or joins (§6.3.1). The
// zero policy is package mls's default.
func WithPadding(p mls.PaddingPolicy) ServerOption { return func(s *Server) { s.padding = p } }

// WithLogger sets the logger of the RPC log (see logRPC; nil: none). Failed
// RPCs are logged at level WARN, the others at DEBUG.
func WithLogger(l *slog.Logger) ServerOption { return func(s *Server) { s.log = l } }

// NewServer returns a server with no state. random is the source of
// randomness (nil: crypto/rand).
func NewServer(random io.Reader, opts ...ServerOption) *Server {
	if random == nil {
		random = rand.Reader
	}
	s := &Server{random: random, name: DefaultName}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	return s
}

// Serve registers s on a new gRPC server, with the RPC log as its first
// unary interceptor, and serves lis until the listener fails or Stop is
// called on the returned server (Serve runs in its own goroutine; its
// error is sent on the returned channel).
func (s *Server) Serve(lis net.Listener, opts ...grpc.ServerOption) (*grpc.Server, <-chan error) {
	opts = append([]grpc.ServerOption{grpc.ChainUnaryInterceptor(s.logRPC)}, opts...)
	gs := grpc.NewServer(opts...)
	mlsclientpb.RegisterMLSClientServer(gs, s)
	errc := make(chan error, 1)
	go func() { errc <- gs.Serve(lis) }()
	return gs, errc
}

// StateUpdateHeader is the gRPC response header in which HandleCommit,
// HandlePendingCommit and their ReInit variants report what the Commit
// changed (the "stateUpdate" of the test-runner transcript). It is a
// canopy extension: the official runner ignores it, canopy's own script
// driver compares it across members. Format (fields separated by ";"):
//
//	epoch=N;added=L,L;updated=L;removed=L:<leaf node hex>,...;psks=<hex>,...;extensions=0|1;reinit=<hex>
//
// where psks are the PreSharedKeyIDs with an empty psk_nonce.
const StateUpdateHeader = "canopy-state-update"

// suite checks a cipher suite of a request.
func suite(v uint32) (mls.CipherSuite, error) {
	if v > math.MaxUint16 || !mls.CipherSuite(v).Supported() {
		return 0, errorf(codes.Unimplemented, "unsupported cipher suite 0x%04x", v)
	}
	return mls.CipherSuite(v), nil
}

// --- common option sets -----------------------------------------------------

// groupOpts are the local policy options of every group of this server.
func (s *Server) groupOpts(encrypt bool, psks map[string][]byte) []mls.Option {
	opts := []mls.Option{mls.WithRandom(s.random), mls.WithEncryptedHandshake(encrypt), mls.WithPadding(s.padding)}
	return append(opts, pskOptions(psks)...)
}

// newSigner returns a fresh signature key and the basic credential of
// identity.
func (s *Server) newSigner(cs mls.CipherSuite, identity []byte) ([]byte, []byte, mls.Credential, error) {
	priv, pub, err := cs.GenerateSignatureKeyPair(s.random)
	if err != nil {
		return nil, nil, mls.Credential{}, errorf(codes.Internal, "signature key: %w", err)
	}
	return priv, pub, mls.NewBasicCredential(append([]byte(nil), identity...)), nil
}

// newKeyPackage creates a KeyPackage with a fresh signature key.
func (s *Server) newKeyPackage(cs mls.CipherSuite, identity []byte) (*mls.KeyPackageBundle, []byte, error) {
	priv, _, cred, err := s.newSigner(cs, identity)
	if err != nil {
		return nil, nil, err
	}
	b, err := mls.NewKeyPackage(cs, priv, cred, mls.WithRandom(s.random))
	if err != nil {
		return nil, nil, mlsError("create key package", err)
	}
	enc, err := b.Marshal()
	if err != nil {
		return nil, nil, mlsError("encode key package", err)
	}
	return b, enc, nil
}

// setStateUpdate sends the StateUpdateHeader for u.
func setStateUpdate(ctx context.Context, u *mls.StateUpdate) {
	if u == nil {
		return
	}
	// The header is informative: failing to set it (no transport stream,
	// as in direct calls from tests) is not an error of the RPC.
	_ = grpc.SetHeader(ctx, metadata.Pairs(StateUpdateHeader, formatStateUpdate(u)))
}

// --- information ----------------------------------------------------------

// Name reports the name of this instance (WithName).
func (s *Server) Name(context.Context, *mlsclientpb.NameRequest) (*mlsclientpb.NameResponse, error) {
	return &mlsclientpb.NameResponse{Name: s.name}, nil
}

// SupportedCiphersuites lists every cipher suite of package mls.
func (s *Server) SupportedCiphersuites(context.Context, *mlsclientpb.SupportedCiphersuitesRequest) (*mlsclientpb.SupportedCiphersuitesResponse, error) {
	out := make([]uint32, len(mls.CipherSuites))
	for i, cs := range mls.CipherSuites {
		out[i] = uint32(cs)
	}
	return &mlsclientpb.SupportedCiphersuitesResponse{Ciphersuites: out}, nil
}

// --- becoming a member ------------------------------------------------------

// CreateGroup creates a one-member group.
func (s *Server) CreateGroup(_ context.Context, req *mlsclientpb.CreateGroupRequest) (*mlsclientpb.CreateGroupResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, mlsError("create group", err)
	}
	priv, _, cred, err := s.newSigner(cs, req.Identity)
	if err != nil {
		return nil, mlsError("create group", err)
	}
	g, err := mls.CreateGroup(cs, req.GroupId, priv, cred, s.groupOpts(req.EncryptHandshake, nil)...)
	if err != nil {
		return nil, mlsError("create group", err)
	}
	id := s.st.add(&groupState{g: g, encrypt: req.EncryptHandshake, identity: cred.Identity})
	return &mlsclientpb.CreateGroupResponse{StateId: id}, nil
}

// CreateKeyPackage creates a KeyPackage and a transaction that joins with
// it (JoinGroup, HandleBranch).
func (s *Server) CreateKeyPackage(_ context.Context, req *mlsclientpb.CreateKeyPackageRequest) (*mlsclientpb.CreateKeyPackageResponse, error) {
	cs, err := suite(req.CipherSuite)
	if err != nil {
		return nil, mlsError("create key package", err)
	}
	b, enc, err := s.newKeyPackage(cs, req.Identity)
	if err != nil {
		return nil, err
	}
	id := s.st.add(&txState{bundle: b, identity: b.KeyPackage.LeafNode.Credential.Identity})
	return &mlsclientpb.CreateKeyPackageResponse{
		TransactionId:  id,
		KeyPackage:     enc,
		InitPriv:       b.InitPriv,
		EncryptionPriv: b.EncryptionPriv,
		SignaturePriv:  b.SignaturePriv,
	}, nil
}

// JoinGroup joins from a Welcome with the KeyPackage of a transaction.
func (s *Server) JoinGroup(_ context.Context, req *mlsclientpb.JoinGroupRequest) (*mlsclientpb.JoinGroupResponse, error) {
	tx, err := lookup[*txState](&s.st, req.TransactionId, "join group")
	if err != nil {
		return nil, err
	}
	welcome, err := asMLSMessage(req.Welcome, mls.WireFormatWelcome)
	if err != nil {
		return nil, mlsError("join group", err)
	}
	tx.Lock()
	defer tx.Unlock()
	g, err := mls.JoinFromWelcome(welcome, tx.bundle, req.RatchetTree, s.groupOpts(req.EncryptHandshake, tx.psks)...)
	if err != nil {
		return nil, mlsError("join group", err)
	}
	id := s.st.add(&groupState{g: g, encrypt: req.EncryptHandshake, identity: tx.identity})
	return &mlsclientpb.JoinGroupResponse{StateId: id, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// ExternalJoin joins with an external Commit (§12.4.3.2).
func (s *Server) ExternalJoin(_ context.Context, req *mlsclientpb.ExternalJoinRequest) (*mlsclientpb.ExternalJoinResponse, error) {
	giMsg, gi, err := parseGroupInfo(req.GroupInfo)
	if err != nil {
		return nil, mlsError("external join", err)
	}
	priv, _, cred, err := s.newSigner(gi.GroupContext.CipherSuite, req.Identity)
	if err != nil {
		return nil, mlsError("external join", err)
	}
	psks := map[string][]byte{}
	eo := mls.ExternalJoinOptions{RatchetTree: req.RatchetTree, RemovePrior: req.RemovePrior}
	for _, p := range req.Psks {
		psks[string(p.PskId)] = p.PskSecret
		eo.PSKs = append(eo.PSKs, p.PskId)
	}
	g, commit, err := mls.JoinExternal(giMsg, priv, cred, eo, s.groupOpts(req.EncryptHandshake, psks)...)
	if err != nil {
		return nil, mlsError("external join", err)
	}
	id := s.st.add(&groupState{g: g, encrypt: req.EncryptHandshake, identity: cred.Identity})
	return &mlsclientpb.ExternalJoinResponse{StateId: id, Commit: commit, EpochAuthenticator: g.EpochAuthenticator()}, nil
}

// --- operations on a group --------------------------------------------------

// withGroup runs f with the locked state of a group.
func withGroup[T any](s *Server, id uint32, op string, f func(*groupState) (T, error)) (T, error) {
	var zero T
	st, err := lookup[*groupState](&s.st, id, op)
	if err != nil {
		return zero, err
	}
	st.Lock()
	defer st.Unlock()
	return f(st)
}

// GroupInfo returns a signed GroupInfo with external_pub, and the ratchet
// tree either inside it or separately (external_tree).
func (s *Server) GroupInfo(_ context.Context, req *mlsclientpb.GroupInfoRequest) (*mlsclientpb.GroupInfoResponse, error) {
	return withGroup(s, req.StateId, "group info", func(st *groupState) (*mlsclientpb.GroupInfoResponse, error) {
		gi, err := st.g.GroupInfo(mls.GroupInfoOptions{RatchetTree: !req.ExternalTree, ExternalPub: true})
		if err != nil {
			return nil, mlsError("group info", err)
		}
		resp := &mlsclientpb.GroupInfoResponse{GroupInfo: gi}
		if req.ExternalTree {
			if resp.RatchetTree, err = st.g.RatchetTree(); err != nil {
				return nil, mlsError("ratchet tree", err)
			}
		}
		return resp, nil
	})
}

// StateAuth returns the epoch authenticator (§8.7).
func (s *Server) StateAuth(_ context.Context, req *mlsclientpb.StateAuthRequest) (*mlsclientpb.StateAuthResponse, error) {
	return withGroup(s, req.StateId, "state auth", func(st *groupState) (*mlsclientpb.StateAuthResponse, error) {
		return &mlsclientpb.StateAuthResponse{StateAuthSecret: st.g.EpochAuthenticator()}, nil
	})
}

// Export runs the exporter (§8.5).
func (s *Server) Export(_ context.Context, req *mlsclientpb.ExportRequest) (*mlsclientpb.ExportResponse, error) {
	return withGroup(s, req.StateId, "export", func(st *groupState) (*mlsclientpb.ExportResponse, error) {
		if req.KeyLength > math.MaxUint16 {
			return nil, invalidArg("export: key_length %d exceeds %d", req.KeyLength, math.MaxUint16)
		}
		v, err := st.g.Export(req.Label, req.Context, int(req.KeyLength))
		if err != nil {
			return nil, mlsError("export", err)
		}
		return &mlsclientpb.ExportResponse{ExportedSecret: v}, nil
	})
}

// Protect encrypts application data.
func (s *Server) Protect(_ context.Context, req *mlsclientpb.ProtectRequest) (*mlsclientpb.ProtectResponse, error) {
	return withGroup(s, req.StateId, "protect", func(st *groupState) (*mlsclientpb.ProtectResponse, error) {
		ct, err := st.g.Protect(req.Plaintext, req.AuthenticatedData)
		if err != nil {
			return nil, mlsError("protect", err)
		}
		return &mlsclientpb.ProtectResponse{Ciphertext: ct}, nil
	})
}

// Unprotect decrypts an application message (of this or a recent epoch).
func (s *Server) Unprotect(_ context.Context, req *mlsclientpb.UnprotectRequest) (*mlsclientpb.UnprotectResponse, error) {
	return withGroup(s, req.StateId, "unprotect", func(st *groupState) (*mlsclientpb.UnprotectResponse, error) {
		// Check the content type before Process: a handshake message
		// passed here must not change the group.
		if ct, err := contentType(req.Ciphertext); err != nil {
			return nil, mlsError("unprotect", err)
		} else if ct != mls.ContentTypeApplication {
			return nil, invalidArg("unprotect: the message carries a %v, not application data", ct)
		}
		r, err := st.g.Process(req.Ciphertext)
		if err != nil {
			return nil, mlsError("unprotect", err)
		}
		return &mlsclientpb.UnprotectResponse{AuthenticatedData: r.AuthenticatedData, Plaintext: r.ApplicationData}, nil
	})
}

// StorePSK stores an external PSK in a group, a pending transaction or a
// reinit state.
func (s *Server) StorePSK(_ context.Context, req *mlsclientpb.StorePSKRequest) (*mlsclientpb.StorePSKResponse, error) {
	it, ok := s.st.get(req.StateOrTransactionId)
	if !ok {
		return nil, errorf(codes.NotFound, "store psk: no state with id %d", req.StateOrTransactionId)
	}
	it.Lock()
	defer it.Unlock()
	switch t := it.(type) {
	case *groupState:
		t.g.StoreExternalPSK(req.PskId, req.PskSecret)
	case *txState:
		if t.psks == nil {
			t.psks = map[string][]byte{}
		}
		t.psks[string(req.PskId)] = append([]byte(nil), req.PskSecret...)
	case *reinitState:
		if t.psks == nil {
			t.psks = map[string][]byte{}
		}
		t.psks[string(req.PskId)] = append([]byte(nil), req.PskSecret...)
	default:
		return nil, invalidArg("store psk: id %d is a %s", req.StateOrTransactionId, it.kind())
	}
	return &mlsclientpb.StorePSKResponse{}, nil
}

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

// --- commits ----------------------------------------------------------------

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

// --- cleanup --------------------------------------------------------------------

// Free forgets a state of any kind. Freeing an unknown id is not an error
// (the runner frees every id it saw, some of which may be the same state).
func (s *Server) Free(_ context.Context, req *mlsclientpb.FreeRequest) (*mlsclientpb.FreeResponse, error) {
	s.st.remove(req.StateId)
	return &mlsclientpb.FreeResponse{}, nil
}
