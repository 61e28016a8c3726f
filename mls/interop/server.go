package main

import (
	"context"
	"crypto/rand"
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

// --- cleanup --------------------------------------------------------------------

// Free forgets a state of any kind. Freeing an unknown id is not an error
// (the runner frees every id it saw, some of which may be the same state).
func (s *Server) Free(_ context.Context, req *mlsclientpb.FreeRequest) (*mlsclientpb.FreeResponse, error) {
	s.st.remove(req.StateId)
	return &mlsclientpb.FreeResponse{}, nil
}
