package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/mls"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// Tests of the command line (-name, -padding, -v) through serve, the
// function main runs: a real listener on 127.0.0.1 and a gRPC client.

// lockedBuffer is a log sink read while gRPC handlers write to it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) lines() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return strings.Split(strings.TrimSpace(b.buf.String()), "\n")
}

// lineWith returns the one log line containing every part.
func (b *lockedBuffer) lineWith(t *testing.T, parts ...string) string {
	t.Helper()
	var found []string
	for _, l := range b.lines() {
		ok := true
		for _, p := range parts {
			ok = ok && strings.Contains(l, p)
		}
		if ok {
			found = append(found, l)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d log lines contain %q, want 1; log:\n%s", len(found), parts, strings.Join(b.lines(), "\n"))
	}
	return found[0]
}

// startCommand runs serve with args (plus -port 0) until the test ends
// and returns a client connected to it and its log.
func startCommand(t *testing.T, args ...string) (mlsclientpb.MLSClientClient, *lockedBuffer) {
	t.Helper()
	logs := new(lockedBuffer)
	ctx, cancel := context.WithCancel(context.Background())
	addrc := make(chan net.Addr, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, append([]string{"-port", "0"}, args...), logs, func(a net.Addr) { addrc <- a })
	}()
	var addr net.Addr
	select {
	case addr = <-addrc:
	case err := <-done:
		t.Fatalf("serve %q: %v", args, err)
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not return after its context ended")
		}
	})
	conn, err := grpc.NewClient(addr.String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return mlsclientpb.NewMLSClientClient(conn), logs
}

func TestFlagName(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, DefaultName},
		{[]string{"-name", "canopy-b"}, "canopy-b"},
	} {
		c, _ := startCommand(t, tc.args...)
		r, err := c.Name(t.Context(), &mlsclientpb.NameRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Name != tc.want {
			t.Errorf("serve %q: Name = %q, want %q", tc.args, r.Name, tc.want)
		}
	}
}

func TestFlagErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-padding", "block"},
		{"-port", "70000"},
		{"extra"},
	} {
		err := serve(t.Context(), args, new(lockedBuffer), nil)
		if !errors.As(err, new(*usageError)) {
			t.Errorf("serve %q: %v, want a usage error", args, err)
		}
	}
}

// TestLogFailedRPC: a failed RPC leaves one line naming the method, the
// request's ids, the code and the whole error chain; without -v a
// successful RPC leaves none, with -v it does.
func TestLogFailedRPC(t *testing.T) {
	c, logs := startCommand(t)
	ctx := t.Context()
	if _, err := c.Name(ctx, &mlsclientpb.NameRequest{}); err != nil {
		t.Fatal(err)
	}
	_, err := c.StateAuth(ctx, &mlsclientpb.StateAuthRequest{StateId: 99})
	wantCode(t, err, codes.NotFound, "state auth: no state with id 99")
	logs.lineWith(t, "level=WARN", `msg="rpc failed"`, "method=StateAuth", "state_id=99", "code=NotFound",
		`err="state auth: no state with id 99"`)

	// A failure deep in package mls: the line carries every cause.
	kp, err := c.CreateKeyPackage(ctx, &mlsclientpb.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.JoinGroup(ctx, &mlsclientpb.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: []byte{0, 1, 0, 3}})
	wantCode(t, err, codes.InvalidArgument, "join group: malformed mls_welcome: as an MLSMessage: ")
	line := logs.lineWith(t, "method=JoinGroup", "transaction_id="+itoa(kp.TransactionId))
	for _, want := range []string{"code=InvalidArgument", "as an MLSMessage: mls: ", "; as a bare mls_welcome: mls: "} {
		if !strings.Contains(line, want) {
			t.Errorf("log line %q lacks %q", line, want)
		}
	}
	if strings.Contains(strings.Join(logs.lines(), "\n"), "method=Name") ||
		strings.Contains(strings.Join(logs.lines(), "\n"), "method=CreateGroup") {
		t.Errorf("successful RPCs logged without -v:\n%s", strings.Join(logs.lines(), "\n"))
	}

	c, logs = startCommand(t, "-v")
	g, err := c.CreateGroup(ctx, &mlsclientpb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	logs.lineWith(t, "level=DEBUG", "msg=rpc", "method=CreateGroup", "resp.state_id="+itoa(g.StateId))
	if _, err := c.StateAuth(ctx, &mlsclientpb.StateAuthRequest{StateId: g.StateId}); err != nil {
		t.Fatal(err)
	}
	logs.lineWith(t, "level=DEBUG", "method=StateAuth", "state_id="+itoa(g.StateId))
}

func itoa(v uint32) string { return strconv.FormatUint(uint64(v), 10) }

// TestExternalPubErrors: a GroupInfo whose external_pub is missing and
// one whose external_pub lacks its length prefix (the ts-mls 1.6.4 bug,
// §12.4.3.2 and §5.1.1) fail with different errors, the second carrying
// the decoder's cause.
func TestExternalPubErrors(t *testing.T) {
	ctx := t.Context()
	s := NewServer(nil)
	// Suite 2 (P-256): the HPKE public key is an uncompressed point, 0x04
	// first, so without its prefix it reads as a 4-byte vector followed by
	// trailing bytes, whatever the key.
	g, err := s.CreateGroup(ctx, &mlsclientpb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 2, Identity: []byte("alice")})
	if err != nil {
		t.Fatal(err)
	}
	gi, err := s.GroupInfo(ctx, &mlsclientpb.GroupInfoRequest{StateId: g.StateId})
	if err != nil {
		t.Fatal(err)
	}
	withExternalPub := func(edit func(exts []mls.Extension) []mls.Extension) []byte {
		t.Helper()
		var m mls.MLSMessage
		if err := m.Unmarshal(bytes.Clone(gi.GroupInfo)); err != nil {
			t.Fatal(err)
		}
		m.GroupInfo.Extensions = edit(m.GroupInfo.Extensions)
		out, err := m.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	unprefixed := withExternalPub(func(exts []mls.Extension) []mls.Extension {
		for i, e := range exts {
			if e.Type == mls.ExtensionExternalPub {
				var ep mls.ExternalPub
				if err := ep.Unmarshal(e.Data); err != nil {
					t.Fatal(err)
				}
				exts[i].Data = ep.ExternalPub
			}
		}
		return exts
	})
	missing := withExternalPub(func(exts []mls.Extension) []mls.Extension {
		var out []mls.Extension
		for _, e := range exts {
			if e.Type != mls.ExtensionExternalPub {
				out = append(out, e)
			}
		}
		return out
	})

	_, err = s.ExternalJoin(ctx, &mlsclientpb.ExternalJoinRequest{GroupInfo: unprefixed, Identity: []byte("bob")})
	wantCode(t, err, codes.InvalidArgument, "external join: mls: invalid group info: malformed external_pub extension: mls: malformed encoding: ")
	if !strings.Contains(err.Error(), "trailing bytes after ExternalPub") || !errors.Is(err, mls.ErrMalformed) || !errors.Is(err, mls.ErrInvalidGroupInfo) {
		t.Errorf("unprefixed external_pub: %v", err)
	}
	_, err = s.ExternalJoin(ctx, &mlsclientpb.ExternalJoinRequest{GroupInfo: missing, Identity: []byte("bob")})
	wantCode(t, err, codes.InvalidArgument, "external join: mls: invalid group info: no external_pub extension")
	if errors.Is(err, mls.ErrMalformed) {
		t.Errorf("missing external_pub reported as malformed: %v", err)
	}
}

// TestFlagPadding: with -padding none the PrivateMessages a server sends
// (application, proposal, commit) are exactly as long as their content;
// with the default they are padded.
func TestFlagPadding(t *testing.T) {
	// Suite 1: Ed25519 signatures (64 bytes), AES-128-GCM tags (16
	// bytes), SHA-256 confirmation tags and PSK nonces (32 bytes).
	const sigLen, tagLen, hashLen = 64, 16, 32
	data := []byte("hello")
	// Unpadded PrivateMessageContent lengths (§6.3.1): content, then
	// FramedContentAuthData (signature<V>, and for a commit
	// confirmation_tag<V>). A 64-byte vector needs a 2-byte length
	// (§2.1.2: one byte holds up to 63).
	auth := 2 + sigLen
	appLen := 1 + len(data) + auth
	remove, _ := (&mls.Proposal{Type: mls.ProposalTypeRemove, Remove: &mls.Remove{Removed: 1}}).Marshal()
	pskID := []byte("psk-id")
	pskProp := &mls.Proposal{Type: mls.ProposalTypePSK, PreSharedKey: &mls.PreSharedKey{PSK: mls.PreSharedKeyID{
		Type: mls.PSKTypeExternal, PSKID: pskID, Nonce: make([]byte, hashLen)}}}
	commit, err := (&mls.Commit{Proposals: []mls.ProposalOrRef{{Type: mls.ProposalOrRefProposal, Proposal: pskProp}}}).Marshal()
	if err != nil {
		t.Fatal(err)
	}
	proposalLen := len(remove) + auth
	commitLen := len(commit) + auth + 1 + hashLen

	for _, tc := range []struct {
		args   []string
		padded bool
	}{
		{[]string{"-padding", "none"}, false},
		{nil, true},
	} {
		c, _ := startCommand(t, tc.args...)
		ctx := t.Context()
		alice, bob := twoMembers(t, c)

		ct := func(msg []byte) int {
			t.Helper()
			var m mls.MLSMessage
			if err := m.Unmarshal(msg); err != nil {
				t.Fatal(err)
			}
			if m.WireFormat != mls.WireFormatPrivateMessage {
				t.Fatalf("a %v, want a PrivateMessage", m.WireFormat)
			}
			return len(m.PrivateMessage.Ciphertext) - tagLen
		}
		check := func(what string, got, unpadded int) {
			t.Helper()
			switch {
			case !tc.padded && got != unpadded:
				t.Errorf("serve %q: %s content is %d bytes, want %d (unpadded)", tc.args, what, got, unpadded)
			case tc.padded && got <= unpadded && what == "application":
				t.Errorf("serve %q: %s content is %d bytes, want padding beyond %d", tc.args, what, got, unpadded)
			case got < unpadded:
				t.Errorf("serve %q: %s content is %d bytes, less than its %d bytes of content", tc.args, what, got, unpadded)
			}
		}

		p, err := c.Protect(ctx, &mlsclientpb.ProtectRequest{StateId: alice, Plaintext: data})
		if err != nil {
			t.Fatal(err)
		}
		check("application", ct(p.Ciphertext), appLen)
		u, err := c.Unprotect(ctx, &mlsclientpb.UnprotectRequest{StateId: bob, Ciphertext: p.Ciphertext})
		if err != nil || !bytes.Equal(u.Plaintext, data) {
			t.Fatalf("bob unprotects %q, %v", u.GetPlaintext(), err)
		}

		rp, err := c.RemoveProposal(ctx, &mlsclientpb.RemoveProposalRequest{StateId: bob, RemovedId: []byte("alice")})
		if err != nil {
			t.Fatal(err)
		}
		check("proposal", ct(rp.Proposal), proposalLen)

		if _, err := c.StorePSK(ctx, &mlsclientpb.StorePSKRequest{StateOrTransactionId: alice, PskId: pskID, PskSecret: make([]byte, 32)}); err != nil {
			t.Fatal(err)
		}
		cm, err := c.Commit(ctx, &mlsclientpb.CommitRequest{StateId: alice, ByValue: []*mlsclientpb.ProposalDescription{
			{ProposalType: []byte("externalPSK"), PskId: pskID}}})
		if err != nil {
			t.Fatal(err)
		}
		check("commit", ct(cm.Commit), commitLen)
	}
}

// twoMembers creates a group of alice and bob with encrypted handshakes
// and returns their state ids.
func twoMembers(t *testing.T, c mlsclientpb.MLSClientClient) (uint32, uint32) {
	t.Helper()
	ctx := t.Context()
	g, err := c.CreateGroup(ctx, &mlsclientpb.CreateGroupRequest{GroupId: []byte("g"), CipherSuite: 1, Identity: []byte("alice"), EncryptHandshake: true})
	if err != nil {
		t.Fatal(err)
	}
	kp, err := c.CreateKeyPackage(ctx, &mlsclientpb.CreateKeyPackageRequest{CipherSuite: 1, Identity: []byte("bob")})
	if err != nil {
		t.Fatal(err)
	}
	cm, err := c.Commit(ctx, &mlsclientpb.CommitRequest{StateId: g.StateId, ByValue: []*mlsclientpb.ProposalDescription{
		{ProposalType: []byte("add"), KeyPackage: kp.KeyPackage}}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.HandlePendingCommit(ctx, &mlsclientpb.HandlePendingCommitRequest{StateId: g.StateId}); err != nil {
		t.Fatal(err)
	}
	j, err := c.JoinGroup(ctx, &mlsclientpb.JoinGroupRequest{TransactionId: kp.TransactionId, Welcome: cm.Welcome, EncryptHandshake: true})
	if err != nil {
		t.Fatal(err)
	}
	return g.StateId, j.StateId
}
