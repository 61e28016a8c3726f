package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/canopy-chat/canopy/internal/longtest"
	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

// A driver for the official interop scripts (testdata/configs/*.json, the
// "scripts" of the mls-implementations test runner), written from
// test-config.md and mls_client.proto. Each script is replayed against two
// canopy servers on real TCP listeners, actors alternating between them,
// in both handshake modes. After every step that changes the epoch, every
// member that took part must report the same epoch authenticator (in the
// RPC response and from StateAuth), the same exporter output and a
// consistent state update (StateUpdateHeader), matching the proposals the
// script committed; every unprotect must return what was protected; at the
// end of a script one member's message must decrypt at every other member.

var (
	interopSuite    = flag.Uint("interop.suite", 1, "cipher suite the interop scripts run with")
	interopMaxSteps = flag.Int("interop.maxsteps", 0, "run only the first N steps of each script (0: the run's default, see maxScriptSteps)")
)

// --- harness ----------------------------------------------------------------

// actor is one participant of a script: a client on one of the servers
// with at most one group state and one pending transaction.
type actor struct {
	name   string
	client mlsclientpb.MLSClientClient
	server int

	state    uint32 // 0: none
	tx       uint32 // 0: none
	signer   uint32 // external signer id
	sigIndex uint32 // its index in external_senders
	reinit   uint32
	reinitKP []byte
}

// stepOutput is what a step produced, for later steps to refer to.
type stepOutput struct {
	keyPackage []byte
	proposal   []byte
	kind       string // proposal kind: add, update, remove, psk, gce, reinit
	sender     string // the member that sent the proposal, if a member
	ciphertext []byte
	authData   []byte
	plaintext  []byte
	pskID      []byte
	pskSecret  []byte
	reinitCS   uint32
	reinitGID  []byte
	reinitExts []*mlsclientpb.Extension
}

type run struct {
	ctx     context.Context
	clients []mlsclientpb.MLSClientClient
	cs      uint32
	encrypt bool

	actors  map[string]*actor
	out     []stepOutput
	groupID []byte
	group   []string // current members of the script's group
	signers uint32   // external senders added to the current group
	ids     map[int][]uint32

	// omitSignerIndex sends ExternalSignerProposal without signer_index,
	// as the official runner does: the server must find the signer in the
	// group's external_senders extension.
	omitSignerIndex bool
}

func newRun(ctx context.Context, clients []mlsclientpb.MLSClientClient, cs uint32, encrypt bool, steps []scriptStep) *run {
	r := &run{ctx: ctx, clients: clients, cs: cs, encrypt: encrypt, actors: map[string]*actor{},
		out: make([]stepOutput, len(steps)), ids: map[int][]uint32{}}
	for i, n := range actorsInOrder(steps) {
		r.actors[n] = &actor{name: n, server: i % len(clients), client: clients[i%len(clients)]}
	}
	return r
}

func randomBytes(n int) []byte {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		panic(err)
	}
	return b
}

// otherSuite is the cipher suite a ReInit changes to: another suite,
// with another signature scheme where possible (1 -> 2 -> 3 ... -> 7 -> 1).
func otherSuite(cs uint32) uint32 { return cs%7 + 1 }

func (r *run) actor(name string) (*actor, error) {
	a, ok := r.actors[name]
	if !ok || name == "" {
		return nil, fmt.Errorf("unknown actor %q", name)
	}
	return a, nil
}

func (r *run) member(name string) (*actor, error) {
	a, err := r.actor(name)
	if err != nil {
		return nil, err
	}
	if a.state == 0 {
		return nil, fmt.Errorf("actor %s has no group state", name)
	}
	return a, nil
}

func (r *run) noteID(a *actor, id uint32) uint32 {
	r.ids[a.server] = append(r.ids[a.server], id)
	return id
}

func (r *run) output(i int, what string) (*stepOutput, error) {
	if i < 0 || i >= len(r.out) {
		return nil, fmt.Errorf("%s refers to step %d, out of range", what, i)
	}
	return &r.out[i], nil
}

func (r *run) proposalAt(i int) ([]byte, error) {
	o, err := r.output(i, "byReference")
	if err != nil {
		return nil, err
	}
	if o.proposal == nil {
		return nil, fmt.Errorf("step %d produced no proposal", i)
	}
	return o.proposal, nil
}

func (r *run) keyPackageAt(i *int) ([]byte, error) {
	if i == nil {
		return nil, errors.New("no keyPackage index")
	}
	o, err := r.output(*i, "keyPackage")
	if err != nil {
		return nil, err
	}
	if o.keyPackage == nil {
		return nil, fmt.Errorf("step %d produced no key package", *i)
	}
	return o.keyPackage, nil
}

func (r *run) pskAt(i *int) (*stepOutput, error) {
	if i == nil {
		return nil, errors.New("no pskID index")
	}
	o, err := r.output(*i, "pskID")
	if err != nil {
		return nil, err
	}
	if o.pskID == nil {
		return nil, fmt.Errorf("step %d installed no PSK", *i)
	}
	return o, nil
}

func convertScriptExtensions(in []scriptExtension) []*mlsclientpb.Extension {
	out := make([]*mlsclientpb.Extension, len(in))
	for i, e := range in {
		out[i] = &mlsclientpb.Extension{ExtensionType: e.Type, ExtensionData: e.Data}
	}
	return out
}

// describe converts a script proposal description; kind is the proposal
// kind for the state-update expectations.
func (r *run) describe(d *scriptDescription, out *stepOutput) (*mlsclientpb.ProposalDescription, string, error) {
	pd := &mlsclientpb.ProposalDescription{ProposalType: []byte(d.ProposalType)}
	switch d.ProposalType {
	case "add":
		kp, err := r.keyPackageAt(d.KeyPackage)
		if err != nil {
			return nil, "", err
		}
		pd.KeyPackage = kp
		return pd, "add", nil
	case "remove":
		if d.Removed == "" {
			return nil, "", errors.New("remove without removed")
		}
		pd.RemovedId = []byte(d.Removed)
		return pd, "remove", nil
	case "externalPSK":
		o, err := r.pskAt(d.PskID)
		if err != nil {
			return nil, "", err
		}
		pd.PskId = o.pskID
		return pd, "psk", nil
	case "resumptionPSK":
		if d.EpochID == nil {
			return nil, "", errors.New("resumptionPSK without epochID")
		}
		pd.EpochId = *d.EpochID
		return pd, "psk", nil
	case "groupContextExtensions":
		pd.Extensions = convertScriptExtensions(d.Extensions)
		return pd, "gce", nil
	case "reinit":
		pd.GroupId = r.groupID
		if d.ChangeGroupID {
			pd.GroupId = randomBytes(16)
		}
		pd.CipherSuite = r.cs
		if d.ChangeCipherSuite {
			pd.CipherSuite = otherSuite(r.cs)
		}
		pd.Extensions = convertScriptExtensions(d.Extensions)
		if out != nil {
			out.reinitCS, out.reinitGID, out.reinitExts = pd.CipherSuite, pd.GroupId, pd.Extensions
		}
		return pd, "reinit", nil
	}
	return nil, "", fmt.Errorf("unsupported proposal type %q", d.ProposalType)
}

// --- state updates ----------------------------------------------------------

type stateUpdate map[string]string

func parseStateUpdate(md metadata.MD) (stateUpdate, error) {
	v := md.Get(StateUpdateHeader)
	if len(v) != 1 {
		return nil, fmt.Errorf("%d %s headers", len(v), StateUpdateHeader)
	}
	u := stateUpdate{}
	for _, kv := range strings.Split(v[0], ";") {
		k, val, ok := strings.Cut(kv, "=")
		if !ok {
			return nil, fmt.Errorf("malformed state update %q", v[0])
		}
		u[k] = val
	}
	return u, nil
}

func (u stateUpdate) count(k string) int {
	if u[k] == "" {
		return 0
	}
	return len(strings.Split(u[k], ","))
}

func (u stateUpdate) String() string {
	keys := make([]string, 0, len(u))
	for k := range u {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for _, k := range keys {
		v := u[k]
		if len(v) > 40 {
			v = v[:40] + "..."
		}
		fmt.Fprintf(&b, "%s=%s ", k, v)
	}
	return b.String()
}

// expectation of a Commit, from the proposals it covers.
type expectation struct {
	add, update, remove, psk int
	gce, reinit              bool
}

func (e *expectation) note(kind string) {
	switch kind {
	case "add":
		e.add++
	case "update":
		e.update++
	case "remove":
		e.remove++
	case "psk":
		e.psk++
	case "gce":
		e.gce = true
	case "reinit":
		e.reinit = true
	}
}

func (e *expectation) check(u stateUpdate) error {
	ext := "0"
	if e.gce {
		ext = "1"
	}
	switch {
	case u.count("added") != e.add:
		return fmt.Errorf("state update has %d adds, the commit covers %d: %v", u.count("added"), e.add, u)
	case u.count("updated") != e.update:
		return fmt.Errorf("state update has %d updates, the commit covers %d: %v", u.count("updated"), e.update, u)
	case u.count("removed") != e.remove:
		return fmt.Errorf("state update has %d removes, the commit covers %d: %v", u.count("removed"), e.remove, u)
	case u.count("psks") != e.psk:
		return fmt.Errorf("state update has %d PSKs, the commit covers %d: %v", u.count("psks"), e.psk, u)
	case u["extensions"] != ext:
		return fmt.Errorf("state update extensions=%s, expected %s", u["extensions"], ext)
	case (u["reinit"] != "") != e.reinit:
		return fmt.Errorf("state update reinit=%q, expected a ReInit: %v", u["reinit"], e.reinit)
	}
	return nil
}

// agreement collects what the members of an epoch report.
type agreement struct {
	auth    []byte
	authBy  string
	update  stateUpdate
	updBy   string
	members []string
}

func (g *agreement) addAuth(name string, auth []byte) error {
	if len(auth) == 0 {
		return fmt.Errorf("%s reported an empty epoch authenticator", name)
	}
	if g.auth == nil {
		g.auth, g.authBy = auth, name
	} else if !bytes.Equal(g.auth, auth) {
		return fmt.Errorf("epoch authenticators differ: %s %x, %s %x", g.authBy, g.auth, name, auth)
	}
	if !slices.Contains(g.members, name) {
		g.members = append(g.members, name)
	}
	return nil
}

// handleCommit has member m (named n) process a Commit (with the
// proposals sent by reference before it) and adds its epoch authenticator
// and state update to the agreement.
func (g *agreement) handleCommit(r *run, n string, m *actor, byRef [][]byte, commit []byte) error {
	var md metadata.MD
	hr, err := m.client.HandleCommit(r.ctx, &mlsclientpb.HandleCommitRequest{StateId: m.state, Proposal: byRef, Commit: commit}, grpc.Header(&md))
	if err != nil {
		return fmt.Errorf("%s: HandleCommit: %w", n, err)
	}
	if hr.StateId != m.state {
		m.state = r.noteID(m, hr.StateId)
	}
	if err := g.addAuth(n, hr.EpochAuthenticator); err != nil {
		return err
	}
	return g.addUpdate(n, md)
}

func (g *agreement) addUpdate(name string, md metadata.MD) error {
	u, err := parseStateUpdate(md)
	if err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	if g.update == nil {
		g.update, g.updBy = u, name
		return nil
	}
	for _, k := range []string{"epoch", "added", "updated", "removed", "psks", "extensions", "reinit"} {
		if g.update[k] != u[k] {
			return fmt.Errorf("state updates differ in %s: %s %v, %s %v", k, g.updBy, g.update, name, u)
		}
	}
	return nil
}

// verify checks that every member has the epoch authenticator they
// reported (StateAuth) and that their exporters agree.
func (r *run) verify(g *agreement, step int) error {
	var exp []byte
	label := fmt.Sprintf("canopy interop step %d", step)
	for _, n := range g.members {
		a, err := r.member(n)
		if err != nil {
			return err
		}
		sa, err := a.client.StateAuth(r.ctx, &mlsclientpb.StateAuthRequest{StateId: a.state})
		if err != nil {
			return fmt.Errorf("%s: StateAuth: %w", n, err)
		}
		if !bytes.Equal(sa.StateAuthSecret, g.auth) {
			return fmt.Errorf("%s: StateAuth %x differs from the epoch authenticator %x", n, sa.StateAuthSecret, g.auth)
		}
		ex, err := a.client.Export(r.ctx, &mlsclientpb.ExportRequest{StateId: a.state, Label: label, Context: []byte{byte(step)}, KeyLength: 32})
		if err != nil {
			return fmt.Errorf("%s: Export: %w", n, err)
		}
		if len(ex.ExportedSecret) != 32 {
			return fmt.Errorf("%s: Export returned %d bytes", n, len(ex.ExportedSecret))
		}
		if exp == nil {
			exp = ex.ExportedSecret
		} else if !bytes.Equal(exp, ex.ExportedSecret) {
			return fmt.Errorf("%s: exporter output differs from %s's", n, g.members[0])
		}
	}
	r.group = slices.Clone(g.members)
	return nil
}

// --- the test -------------------------------------------------------------------

// rpcTimeout bounds every RPC (as the official runner does, with 120 s)
// rather than whole scripts, so that a hang is caught without making long
// scripts on a loaded machine fail.
func rpcTimeout(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	return invoker(ctx, method, req, reply, cc, opts...)
}

// startServers starts n interop servers on 127.0.0.1 and returns clients
// connected to them over TCP.
func startServers(t testing.TB, n int) []mlsclientpb.MLSClientClient {
	t.Helper()
	var clients []mlsclientpb.MLSClientClient
	for range n {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		gs, _ := NewServer(nil).Serve(lis)
		t.Cleanup(gs.Stop)
		conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
			grpc.WithUnaryInterceptor(rpcTimeout))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		clients = append(clients, mlsclientpb.NewMLSClientClient(conn))
	}
	return clients
}

// maxScriptSteps is how many steps of each script TestInteropScripts runs
// (0: all). Only deep_random (1670 steps, every action type within its
// first 150; its cost grows faster than its length as its group grows) is
// longer: the default run replays its first 300 steps, -short its first
// 150, the long run (CANOPY_LONG=1) all of it; -interop.maxsteps overrides.
func maxScriptSteps() int {
	switch {
	case *interopMaxSteps > 0:
		return *interopMaxSteps
	case longtest.Enabled():
		return 0
	case testing.Short():
		return 150
	}
	return 300
}

func TestInteropScripts(t *testing.T) {
	configs, err := loadConfigs(filepath.Join("testdata", "configs"))
	if err != nil {
		t.Fatal(err)
	}
	cs := uint32(*interopSuite)
	maxSteps := maxScriptSteps()
	clients := startServers(t, 2)
	for _, c := range clients {
		sr, err := c.SupportedCiphersuites(context.Background(), &mlsclientpb.SupportedCiphersuitesRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(sr.Ciphersuites, cs) {
			t.Fatalf("cipher suite %d not supported: %v", cs, sr.Ciphersuites)
		}
	}
	for _, cf := range configs {
		t.Run(cf.name, func(t *testing.T) {
			for _, sc := range cf.scripts {
				t.Run(sc.name, func(t *testing.T) {
					for _, mode := range []struct {
						name    string
						encrypt bool
					}{{"public", false}, {"private", true}} {
						t.Run(mode.name, func(t *testing.T) {
							t.Parallel()
							run := sc
							if maxSteps > 0 && len(run.steps) > maxSteps {
								run.steps = run.steps[:maxSteps]
								t.Logf("running the first %d of %d steps", maxSteps, len(sc.steps))
							}
							step, err := runScript(t.Context(), clients, cs, mode.encrypt, run)
							if err != nil {
								if step >= 0 {
									t.Fatalf("step %d (%s): %v", step, sc.steps[step].Action, err)
								}
								t.Fatal(err)
							}
						})
					}
				})
			}
		})
	}
}
