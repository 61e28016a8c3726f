package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"strings"
	"testing"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Direct tests of the server: error codes and messages, and the
// behaviours the scripts do not reach.

func wantCode(t *testing.T, err error, code codes.Code, substr string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", code)
	}
	st, ok := status.FromError(err)
	if !ok {
		t.Fatalf("not a status error: %v", err)
	}
	if st.Code() != code || !strings.Contains(st.Message(), substr) {
		t.Fatalf("got %v %q, want %v containing %q", st.Code(), st.Message(), code, substr)
	}
}

func TestServerErrors(t *testing.T) {
	ctx := context.Background()
	s := NewServer(nil)

	if n, _ := s.Name(ctx, &mlsclientpb.NameRequest{}); n.Name != DefaultName {
		t.Fatalf("Name = %q", n.Name)
	}
	sc, _ := s.SupportedCiphersuites(ctx, &mlsclientpb.SupportedCiphersuitesRequest{})
	if len(sc.Ciphersuites) != len(mls.CipherSuites) {
		t.Fatalf("SupportedCiphersuites = %v", sc.Ciphersuites)
	}

	_, err := s.CreateGroup(ctx, &mlsclientpb.CreateGroupRequest{CipherSuite: 0x1234, Identity: []byte("a")})
	wantCode(t, err, codes.Unimplemented, "cipher suite 0x1234")
	_, err = s.StateAuth(ctx, &mlsclientpb.StateAuthRequest{StateId: 99})
	wantCode(t, err, codes.NotFound, "no state with id 99")

	g, err := s.CreateGroup(ctx, &mlsclientpb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := s.CreateKeyPackage(ctx, &mlsclientpb.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.StateAuth(ctx, &mlsclientpb.StateAuthRequest{StateId: kp.TransactionId})
	wantCode(t, err, codes.InvalidArgument, "is a transaction, not a group state")
	_, err = s.HandlePendingCommit(ctx, &mlsclientpb.HandlePendingCommitRequest{StateId: g.StateId})
	wantCode(t, err, codes.FailedPrecondition, "no pending commit")
	_, err = s.RemoveProposal(ctx, &mlsclientpb.RemoveProposalRequest{StateId: g.StateId, RemovedId: []byte("nobody")})
	wantCode(t, err, codes.NotFound, `no member with identity "nobody"`)
	_, err = s.AddProposal(ctx, &mlsclientpb.AddProposalRequest{StateId: g.StateId, KeyPackage: []byte{1, 2, 3}})
	wantCode(t, err, codes.InvalidArgument, "add proposal: key package")
	_, err = s.Commit(ctx, &mlsclientpb.CommitRequest{StateId: g.StateId,
		ByValue: []*mlsclientpb.ProposalDescription{{ProposalType: []byte("reinit")}}})
	wantCode(t, err, codes.InvalidArgument, "only valid for external signers")
	_, err = s.Commit(ctx, &mlsclientpb.CommitRequest{StateId: g.StateId,
		ByValue: []*mlsclientpb.ProposalDescription{{ProposalType: []byte("appAck")}}})
	wantCode(t, err, codes.InvalidArgument, `unknown proposal type "appAck"`)
	_, err = s.ReInitCommit(ctx, &mlsclientpb.CommitRequest{StateId: g.StateId})
	wantCode(t, err, codes.FailedPrecondition, "carries no ReInit")

	// A Commit passed to Unprotect is refused without touching the group.
	before, _ := s.StateAuth(ctx, &mlsclientpb.StateAuthRequest{StateId: g.StateId})
	c, err := s.Commit(ctx, &mlsclientpb.CommitRequest{StateId: g.StateId, ByValue: []*mlsclientpb.ProposalDescription{
		{ProposalType: []byte("add"), KeyPackage: kp.KeyPackage}}})
	if err != nil {
		t.Fatal(err)
	}
	_, err = s.Unprotect(ctx, &mlsclientpb.UnprotectRequest{StateId: g.StateId, Ciphertext: c.Commit})
	wantCode(t, err, codes.InvalidArgument, "not application data")
	after, _ := s.StateAuth(ctx, &mlsclientpb.StateAuthRequest{StateId: g.StateId})
	if !bytes.Equal(before.StateAuthSecret, after.StateAuthSecret) {
		t.Fatal("Unprotect of a Commit changed the group")
	}
	if _, err := s.HandlePendingCommit(ctx, &mlsclientpb.HandlePendingCommitRequest{StateId: g.StateId}); err != nil {
		t.Fatal(err)
	}
	j, err := s.JoinGroup(ctx, &mlsclientpb.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: c.Welcome})
	if err != nil {
		t.Fatal(err)
	}
	// Processing a Commit twice fails cleanly.
	_, err = s.HandleCommit(ctx, &mlsclientpb.HandleCommitRequest{StateId: j.StateId, Commit: c.Commit})
	wantCode(t, err, codes.FailedPrecondition, "handle commit")

	// Free is idempotent and covers every kind of state.
	for _, id := range []uint32{g.StateId, kp.TransactionId, j.StateId, g.StateId, 12345} {
		if _, err := s.Free(ctx, &mlsclientpb.FreeRequest{StateId: id}); err != nil {
			t.Fatal(err)
		}
	}
	if n := s.st.len(); n != 0 {
		t.Fatalf("%d states left after Free", n)
	}
}

func TestExternalSenderEncoding(t *testing.T) {
	_, pub, err := mls.CipherSuite(1).GenerateSignatureKeyPair(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	for _, id := range [][]byte{[]byte("ds"), bytes.Repeat([]byte("x"), 100), bytes.Repeat([]byte("y"), 20000)} {
		es := mls.ExternalSender{SignatureKey: pub, Credential: mls.NewBasicCredential(id)}
		enc, err := marshalExternalSender(es)
		if err != nil {
			t.Fatal(err)
		}
		got, err := unmarshalExternalSender(enc)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got.SignatureKey, pub) || !got.Credential.Equal(&es.Credential) {
			t.Fatalf("round trip of %d-byte identity changed the ExternalSender", len(id))
		}
		exts, err := withExternalSender([]mls.Extension{{Type: 3, Data: []byte{0, 0, 0}}}, es)
		if err != nil {
			t.Fatal(err)
		}
		if i, ok, err := externalSenderIndex(exts, pub); err != nil || !ok || i != 0 {
			t.Fatalf("externalSenderIndex = %d, %v, %v", i, ok, err)
		}
	}
	if _, err := unmarshalExternalSender([]byte{0xff}); err == nil {
		t.Fatal("malformed ExternalSender accepted")
	}
}

// TestInteropExtraScripts runs scripts beyond the official ones through the
// same driver.
func TestInteropExtraScripts(t *testing.T) {
	clients := startServers(t, 2)
	for _, tc := range []struct {
		name, json string
		opts       []func(*run)
	}{
		{
			// The official runner sends no signer_index: the server finds
			// the second signer in external_senders by its key.
			name: "second_external_signer_without_index",
			json: `[
				{"action": "createGroup", "actor": "alice", "members": ["bob"]},
				{"action": "addExternalSigner", "actor": "alice", "signer": "ds1"},
				{"action": "fullCommit", "actor": "alice", "byReference": [1], "members": ["bob"]},
				{"action": "addExternalSigner", "actor": "bob", "signer": "ds2"},
				{"action": "fullCommit", "actor": "alice", "byReference": [3], "members": ["bob"]},
				{"action": "createKeyPackage", "actor": "charlie"},
				{"action": "externalSignerProposal", "actor": "ds2", "member": "bob",
				 "description": {"proposalType": "add", "keyPackage": 5}},
				{"action": "externalSignerProposal", "actor": "ds1", "member": "alice",
				 "description": {"proposalType": "groupContextExtensions", "extensions": []}},
				{"action": "fullCommit", "actor": "bob", "byReference": [6, 7], "members": ["alice"], "joiners": ["charlie"]},
				{"action": "protect", "actor": "charlie", "authenticatedData": "ad", "plaintext": "hi"},
				{"action": "unprotect", "actor": "alice", "ciphertext": 9},
				{"action": "unprotect", "actor": "bob", "ciphertext": 9}
			]`,
			opts: []func(*run){func(r *run) { r.omitSignerIndex = true }},
		},
		{
			// Removes by reference from several members, an update and a
			// branch of the result.
			name: "remove_update_branch",
			json: `[
				{"action": "createGroup", "actor": "alice", "members": ["bob", "charlie", "diana"]},
				{"action": "updateProposal", "actor": "charlie"},
				{"action": "removeProposal", "actor": "bob", "removed": "diana"},
				{"action": "fullCommit", "actor": "alice", "byReference": [1, 2], "members": ["bob", "charlie"]},
				{"action": "branch", "actor": "charlie", "members": ["alice", "bob"], "force_path": true}
			]`,
		},
	} {
		var steps []scriptStep
		if err := unmarshalSteps([]byte(tc.json), &steps); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		for _, mode := range []struct {
			name    string
			encrypt bool
		}{{"public", false}, {"private", true}} {
			t.Run(tc.name+"/"+mode.name, func(t *testing.T) {
				step, err := runScript(t.Context(), clients, 1, mode.encrypt, script{name: tc.name, steps: steps}, tc.opts...)
				if err != nil {
					t.Fatalf("step %d: %v", step, err)
				}
			})
		}
	}
}
