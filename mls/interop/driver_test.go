package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
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

// --- script format ----------------------------------------------------------

type scriptExtension struct {
	Type uint32 `json:"extension_type"`
	Data []byte `json:"extension_data"` // base64
}

type scriptDescription struct {
	ProposalType      string            `json:"proposalType"`
	KeyPackage        *int              `json:"keyPackage"`
	Removed           string            `json:"removed"`
	PskID             *int              `json:"pskID"`
	EpochID           *uint64           `json:"epochID"`
	Extensions        []scriptExtension `json:"extensions"`
	ChangeGroupID     bool              `json:"changeGroupID"`
	ChangeCipherSuite bool              `json:"changeCipherSuite"`
}

// scriptStep is one action; field names follow the config files (JSON
// matching is case-insensitive, so changeCiphersuite/changeCipherSuite
// are one field).
type scriptStep struct {
	Action string `json:"action"`
	Actor  string `json:"actor"`

	Members []string `json:"members"`
	Joiners []string `json:"joiners"`
	Joiner  string   `json:"joiner"`
	Clients []string `json:"clients"`
	Member  string   `json:"member"`
	Signer  string   `json:"signer"`

	KeyPackage  *int                `json:"keyPackage"`
	Removed     string              `json:"removed"`
	PskID       *int                `json:"pskID"`
	EpochID     *uint64             `json:"epochID"`
	Extensions  []scriptExtension   `json:"extensions"`
	ByReference []int               `json:"byReference"`
	ByValue     []scriptDescription `json:"byValue"`
	Description *scriptDescription  `json:"description"`

	ForcePath         bool `json:"forcePath"`
	ForcePathSnake    bool `json:"force_path"`
	ExternalTree      bool `json:"externalTree"`
	ExternalTreeSnake bool `json:"external_tree"`

	AuthenticatedData string `json:"authenticatedData"`
	Plaintext         string `json:"plaintext"`
	Ciphertext        *int   `json:"ciphertext"`

	RemovePrior bool  `json:"removePrior"`
	Psks        []int `json:"psks"`

	Proposer               string `json:"proposer"`
	Committer              string `json:"committer"`
	Welcomer               string `json:"welcomer"`
	ChangeCiphersuite      bool   `json:"changeCiphersuite"`
	ChangeGroupID          bool   `json:"changeGroupID"`
	ExternalReinitProposal *int   `json:"externalReinitProposal"`
}

func (s *scriptStep) forcePath() bool    { return s.ForcePath || s.ForcePathSnake }
func (s *scriptStep) externalTree() bool { return s.ExternalTree || s.ExternalTreeSnake }

type script struct {
	name  string
	steps []scriptStep
}

type configFile struct {
	name    string
	scripts []script
}

// loadConfigs parses every config file strictly: an unknown key is an
// error, so that a feature the driver does not know cannot pass silently.
func loadConfigs(dir string) ([]configFile, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	if len(paths) == 0 {
		return nil, fmt.Errorf("no config files in %s", dir)
	}
	slices.Sort(paths)
	var out []configFile
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var raw struct {
			Scripts map[string]json.RawMessage `json:"scripts"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&raw); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		if len(raw.Scripts) == 0 {
			return nil, fmt.Errorf("%s: no scripts", p)
		}
		cf := configFile{name: strings.TrimSuffix(filepath.Base(p), ".json")}
		names := make([]string, 0, len(raw.Scripts))
		for n := range raw.Scripts {
			names = append(names, n)
		}
		slices.Sort(names)
		for _, n := range names {
			sc := script{name: n}
			if err := unmarshalSteps(raw.Scripts[n], &sc.steps); err != nil {
				return nil, fmt.Errorf("%s: script %s: %w", p, n, err)
			}
			if len(sc.steps) == 0 {
				return nil, fmt.Errorf("%s: script %s is empty", p, n)
			}
			cf.scripts = append(cf.scripts, sc)
		}
		out = append(out, cf)
	}
	return out, nil
}

// unmarshalSteps parses a script, rejecting unknown keys.
func unmarshalSteps(data []byte, out *[]scriptStep) error {
	var raw []json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		return err
	}
	for i, rs := range raw {
		var st scriptStep
		d := json.NewDecoder(bytes.NewReader(rs))
		d.DisallowUnknownFields()
		if err := d.Decode(&st); err != nil {
			return fmt.Errorf("step %d: %w", i, err)
		}
		*out = append(*out, st)
	}
	return nil
}

// actorsInOrder lists the script's actors in order of first appearance.
func actorsInOrder(steps []scriptStep) []string {
	var out []string
	seen := map[string]bool{}
	add := func(names ...string) {
		for _, n := range names {
			if n != "" && !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, s := range steps {
		add(s.Actor, s.Proposer, s.Committer, s.Welcomer, s.Joiner, s.Signer, s.Member, s.Removed)
		add(s.Members...)
		add(s.Joiners...)
		add(s.Clients...)
		for _, d := range s.ByValue {
			add(d.Removed)
		}
		if s.Description != nil {
			add(s.Description.Removed)
		}
	}
	return out
}

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

// --- actions ------------------------------------------------------------------

func (r *run) step(i int, s *scriptStep) error {
	switch s.Action {
	case "createGroup":
		return r.createGroup(i, s)
	case "createKeyPackage":
		a, err := r.actor(s.Actor)
		if err != nil {
			return err
		}
		kp, err := r.createKeyPackage(a)
		r.out[i].keyPackage = kp
		return err
	case "addProposal", "removeProposal", "updateProposal", "externalPSKProposal", "resumptionPSKProposal",
		"groupContextExtensionsProposal":
		return r.proposal(i, s)
	case "installExternalPSK":
		return r.installExternalPSK(i, s)
	case "fullCommit":
		a, err := r.member(s.Actor)
		if err != nil {
			return err
		}
		return r.fullCommit(i, a, s.ByReference, s.ByValue, s.Members, s.Joiners, s.forcePath(), s.externalTree())
	case "protect":
		a, err := r.member(s.Actor)
		if err != nil {
			return err
		}
		resp, err := a.client.Protect(r.ctx, &mlsclientpb.ProtectRequest{StateId: a.state,
			AuthenticatedData: []byte(s.AuthenticatedData), Plaintext: []byte(s.Plaintext)})
		if err != nil {
			return err
		}
		r.out[i].ciphertext, r.out[i].authData, r.out[i].plaintext = resp.Ciphertext, []byte(s.AuthenticatedData), []byte(s.Plaintext)
		return nil
	case "unprotect":
		a, err := r.member(s.Actor)
		if err != nil {
			return err
		}
		if s.Ciphertext == nil {
			return errors.New("unprotect without ciphertext")
		}
		o, err := r.output(*s.Ciphertext, "ciphertext")
		if err != nil {
			return err
		}
		if o.ciphertext == nil {
			return fmt.Errorf("step %d produced no ciphertext", *s.Ciphertext)
		}
		resp, err := a.client.Unprotect(r.ctx, &mlsclientpb.UnprotectRequest{StateId: a.state, Ciphertext: o.ciphertext})
		if err != nil {
			return err
		}
		if !bytes.Equal(resp.Plaintext, o.plaintext) || !bytes.Equal(resp.AuthenticatedData, o.authData) {
			return fmt.Errorf("unprotect returned (%q, %q), protected (%q, %q)", resp.AuthenticatedData, resp.Plaintext, o.authData, o.plaintext)
		}
		return nil
	case "externalJoin":
		return r.externalJoin(i, s)
	case "newMemberAddProposal":
		return r.newMemberAddProposal(i, s)
	case "addExternalSigner":
		return r.addExternalSigner(i, s)
	case "externalSignerProposal":
		return r.externalSignerProposal(i, s)
	case "reinit":
		return r.reinit(i, s)
	case "branch":
		return r.branch(i, s)
	}
	return fmt.Errorf("unsupported action %q", s.Action)
}

func (r *run) createKeyPackage(a *actor) ([]byte, error) {
	resp, err := a.client.CreateKeyPackage(r.ctx, &mlsclientpb.CreateKeyPackageRequest{CipherSuite: r.cs, Identity: []byte(a.name)})
	if err != nil {
		return nil, fmt.Errorf("%s: CreateKeyPackage: %w", a.name, err)
	}
	if resp.TransactionId == 0 || len(resp.KeyPackage) == 0 {
		return nil, fmt.Errorf("%s: CreateKeyPackage returned no transaction or key package", a.name)
	}
	a.tx = r.noteID(a, resp.TransactionId)
	return resp.KeyPackage, nil
}

func (r *run) createGroup(i int, s *scriptStep) error {
	a, err := r.actor(s.Actor)
	if err != nil {
		return err
	}
	r.groupID = randomBytes(16)
	resp, err := a.client.CreateGroup(r.ctx, &mlsclientpb.CreateGroupRequest{GroupId: r.groupID, CipherSuite: r.cs,
		EncryptHandshake: r.encrypt, Identity: []byte(a.name)})
	if err != nil {
		return err
	}
	a.state = r.noteID(a, resp.StateId)
	r.signers = 0
	r.group = []string{a.name}
	if len(s.Members) == 0 {
		return nil
	}
	// The members join with one Commit adding them all by value.
	var adds []scriptDescription
	for _, m := range s.Members {
		ma, err := r.actor(m)
		if err != nil {
			return err
		}
		kp, err := r.createKeyPackage(ma)
		if err != nil {
			return err
		}
		r.out = append(r.out, stepOutput{keyPackage: kp})
		idx := len(r.out) - 1
		adds = append(adds, scriptDescription{ProposalType: "add", KeyPackage: &idx})
	}
	return r.fullCommit(i, a, nil, adds, nil, s.Members, false, false)
}

func (r *run) proposal(i int, s *scriptStep) error {
	a, err := r.member(s.Actor)
	if err != nil {
		return err
	}
	var resp *mlsclientpb.ProposalResponse
	kind := ""
	switch s.Action {
	case "addProposal":
		kp, err2 := r.keyPackageAt(s.KeyPackage)
		if err2 != nil {
			return err2
		}
		kind = "add"
		resp, err = a.client.AddProposal(r.ctx, &mlsclientpb.AddProposalRequest{StateId: a.state, KeyPackage: kp})
	case "removeProposal":
		kind = "remove"
		resp, err = a.client.RemoveProposal(r.ctx, &mlsclientpb.RemoveProposalRequest{StateId: a.state, RemovedId: []byte(s.Removed)})
	case "updateProposal":
		kind = "update"
		resp, err = a.client.UpdateProposal(r.ctx, &mlsclientpb.UpdateProposalRequest{StateId: a.state})
	case "externalPSKProposal":
		o, err2 := r.pskAt(s.PskID)
		if err2 != nil {
			return err2
		}
		kind = "psk"
		resp, err = a.client.ExternalPSKProposal(r.ctx, &mlsclientpb.ExternalPSKProposalRequest{StateId: a.state, PskId: o.pskID})
	case "resumptionPSKProposal":
		if s.EpochID == nil {
			return errors.New("resumptionPSKProposal without epochID")
		}
		kind = "psk"
		resp, err = a.client.ResumptionPSKProposal(r.ctx, &mlsclientpb.ResumptionPSKProposalRequest{StateId: a.state, EpochId: *s.EpochID})
	case "groupContextExtensionsProposal":
		kind = "gce"
		resp, err = a.client.GroupContextExtensionsProposal(r.ctx, &mlsclientpb.GroupContextExtensionsProposalRequest{
			StateId: a.state, Extensions: convertScriptExtensions(s.Extensions)})
	}
	if err != nil {
		return err
	}
	if len(resp.Proposal) == 0 {
		return errors.New("empty proposal")
	}
	r.out[i].proposal, r.out[i].kind, r.out[i].sender = resp.Proposal, kind, a.name
	return nil
}

func (r *run) installExternalPSK(i int, s *scriptStep) error {
	o := &r.out[i]
	o.pskID, o.pskSecret = randomBytes(16), randomBytes(32)
	for _, n := range s.Clients {
		a, err := r.actor(n)
		if err != nil {
			return err
		}
		id := a.state
		if id == 0 {
			id = a.tx
		}
		if id == 0 {
			return fmt.Errorf("%s has neither a group state nor a transaction", n)
		}
		if _, err := a.client.StorePSK(r.ctx, &mlsclientpb.StorePSKRequest{StateOrTransactionId: id, PskId: o.pskID, PskSecret: o.pskSecret}); err != nil {
			return fmt.Errorf("%s: StorePSK: %w", n, err)
		}
	}
	return nil
}

// fullCommit: the committer commits, members process it, joiners join.
func (r *run) fullCommit(i int, c *actor, byRef []int, byValue []scriptDescription, members, joiners []string, forcePath, externalTree bool) error {
	var exp expectation
	req := &mlsclientpb.CommitRequest{StateId: c.state, ForcePath: forcePath, ExternalTree: externalTree}
	for _, j := range byRef {
		p, err := r.proposalAt(j)
		if err != nil {
			return err
		}
		req.ByReference = append(req.ByReference, p)
		if r.out[j].kind == "update" && r.out[j].sender == c.name {
			continue // a committer's own Update is replaced by its UpdatePath (§12.2)
		}
		exp.note(r.out[j].kind)
	}
	for k := range byValue {
		d, kind, err := r.describe(&byValue[k], nil)
		if err != nil {
			return err
		}
		req.ByValue = append(req.ByValue, d)
		exp.note(kind)
	}
	resp, err := c.client.Commit(r.ctx, req)
	if err != nil {
		return fmt.Errorf("%s: Commit: %w", c.name, err)
	}
	if len(joiners) > 0 && len(resp.Welcome) == 0 {
		return fmt.Errorf("%s: Commit adding %d members returned no Welcome", c.name, len(joiners))
	}
	if externalTree && len(joiners) > 0 && len(resp.RatchetTree) == 0 {
		return fmt.Errorf("%s: Commit with external_tree returned no ratchet tree", c.name)
	}
	if !externalTree && len(resp.RatchetTree) != 0 {
		return fmt.Errorf("%s: Commit without external_tree returned a ratchet tree", c.name)
	}

	var g agreement
	var md metadata.MD
	hc, err := c.client.HandlePendingCommit(r.ctx, &mlsclientpb.HandlePendingCommitRequest{StateId: c.state}, grpc.Header(&md))
	if err != nil {
		return fmt.Errorf("%s: HandlePendingCommit: %w", c.name, err)
	}
	if err := g.addAuth(c.name, hc.EpochAuthenticator); err != nil {
		return err
	}
	if err := g.addUpdate(c.name, md); err != nil {
		return err
	}
	if err := exp.check(g.update); err != nil {
		return fmt.Errorf("%s: %w", c.name, err)
	}
	if len(joiners) > exp.add {
		return fmt.Errorf("the commit adds %d members but the script names %d joiners", exp.add, len(joiners))
	}
	for _, n := range members {
		if n == c.name {
			continue
		}
		m, err := r.member(n)
		if err != nil {
			return err
		}
		if err := g.handleCommit(r, n, m, req.ByReference, resp.Commit); err != nil {
			return err
		}
	}
	for _, n := range joiners {
		j, err := r.actor(n)
		if err != nil {
			return err
		}
		if j.tx == 0 {
			return fmt.Errorf("joiner %s has no key package", n)
		}
		jr, err := j.client.JoinGroup(r.ctx, &mlsclientpb.JoinGroupRequest{TransactionId: j.tx, Welcome: resp.Welcome,
			EncryptHandshake: r.encrypt, Identity: []byte(n), RatchetTree: resp.RatchetTree})
		if err != nil {
			return fmt.Errorf("%s: JoinGroup: %w", n, err)
		}
		j.state = r.noteID(j, jr.StateId)
		if err := g.addAuth(n, jr.EpochAuthenticator); err != nil {
			return err
		}
	}
	return r.verify(&g, i)
}

func (r *run) groupInfo(a *actor, externalTree bool) (*mlsclientpb.GroupInfoResponse, error) {
	gi, err := a.client.GroupInfo(r.ctx, &mlsclientpb.GroupInfoRequest{StateId: a.state, ExternalTree: externalTree})
	if err != nil {
		return nil, fmt.Errorf("%s: GroupInfo: %w", a.name, err)
	}
	if externalTree && len(gi.RatchetTree) == 0 {
		return nil, fmt.Errorf("%s: GroupInfo with external_tree returned no ratchet tree", a.name)
	}
	return gi, nil
}

func (r *run) externalJoin(i int, s *scriptStep) error {
	a, err := r.member(s.Actor)
	if err != nil {
		return err
	}
	j, err := r.actor(s.Joiner)
	if err != nil {
		return err
	}
	gi, err := r.groupInfo(a, s.externalTree())
	if err != nil {
		return err
	}
	req := &mlsclientpb.ExternalJoinRequest{GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, EncryptHandshake: r.encrypt,
		Identity: []byte(j.name), RemovePrior: s.RemovePrior}
	exp := expectation{add: 1}
	if s.RemovePrior {
		exp.remove = 1
	}
	for _, k := range s.Psks {
		o, err := r.pskAt(&k)
		if err != nil {
			return err
		}
		req.Psks = append(req.Psks, &mlsclientpb.PreSharedKey{PskId: o.pskID, PskSecret: o.pskSecret})
		exp.psk++
	}
	jr, err := j.client.ExternalJoin(r.ctx, req)
	if err != nil {
		return fmt.Errorf("%s: ExternalJoin: %w", j.name, err)
	}
	j.state = r.noteID(j, jr.StateId)
	var g agreement
	if err := g.addAuth(j.name, jr.EpochAuthenticator); err != nil {
		return err
	}
	for _, n := range append([]string{a.name}, s.Members...) {
		if n == j.name {
			continue
		}
		m, err := r.member(n)
		if err != nil {
			return err
		}
		if err := g.handleCommit(r, n, m, nil, jr.Commit); err != nil {
			return err
		}
	}
	if g.update != nil {
		if err := exp.check(g.update); err != nil {
			return err
		}
	}
	return r.verify(&g, i)
}

func (r *run) newMemberAddProposal(i int, s *scriptStep) error {
	a, err := r.member(s.Actor)
	if err != nil {
		return err
	}
	j, err := r.actor(s.Joiner)
	if err != nil {
		return err
	}
	gi, err := r.groupInfo(a, false)
	if err != nil {
		return err
	}
	resp, err := j.client.NewMemberAddProposal(r.ctx, &mlsclientpb.NewMemberAddProposalRequest{GroupInfo: gi.GroupInfo, Identity: []byte(j.name)})
	if err != nil {
		return fmt.Errorf("%s: NewMemberAddProposal: %w", j.name, err)
	}
	j.tx = r.noteID(j, resp.TransactionId)
	r.out[i].proposal, r.out[i].kind = resp.Proposal, "add"
	return nil
}

func (r *run) addExternalSigner(i int, s *scriptStep) error {
	a, err := r.member(s.Actor)
	if err != nil {
		return err
	}
	sg, err := r.actor(s.Signer)
	if err != nil {
		return err
	}
	cr, err := sg.client.CreateExternalSigner(r.ctx, &mlsclientpb.CreateExternalSignerRequest{CipherSuite: r.cs, Identity: []byte(sg.name)})
	if err != nil {
		return fmt.Errorf("%s: CreateExternalSigner: %w", sg.name, err)
	}
	sg.signer, sg.sigIndex = r.noteID(sg, cr.SignerId), r.signers
	r.signers++
	resp, err := a.client.AddExternalSigner(r.ctx, &mlsclientpb.AddExternalSignerRequest{StateId: a.state, ExternalSender: cr.ExternalSender})
	if err != nil {
		return fmt.Errorf("%s: AddExternalSigner: %w", a.name, err)
	}
	r.out[i].proposal, r.out[i].kind = resp.Proposal, "gce"
	return nil
}

func (r *run) externalSignerProposal(i int, s *scriptStep) error {
	sg, err := r.actor(s.Actor)
	if err != nil {
		return err
	}
	if sg.signer == 0 {
		return fmt.Errorf("%s is not an external signer", sg.name)
	}
	m, err := r.member(s.Member)
	if err != nil {
		return err
	}
	if s.Description == nil {
		return errors.New("externalSignerProposal without description")
	}
	d, kind, err := r.describe(s.Description, &r.out[i])
	if err != nil {
		return err
	}
	// Like the official runner: the GroupInfo without the tree, which
	// comes separately.
	gi, err := r.groupInfo(m, true)
	if err != nil {
		return err
	}
	req := &mlsclientpb.ExternalSignerProposalRequest{SignerId: sg.signer, SignerIndex: sg.sigIndex,
		GroupInfo: gi.GroupInfo, RatchetTree: gi.RatchetTree, Description: d}
	if r.omitSignerIndex {
		req.SignerIndex = 0
	}
	resp, err := sg.client.ExternalSignerProposal(r.ctx, req)
	if err != nil {
		return fmt.Errorf("%s: ExternalSignerProposal: %w", sg.name, err)
	}
	r.out[i].proposal, r.out[i].kind = resp.Proposal, kind
	return nil
}

func uniqueNames(names ...string) []string {
	var out []string
	for _, n := range names {
		if n != "" && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// reinit: a ReInit proposal (by a member or an external signer) is
// committed; every member handles the Commit and makes a KeyPackage for
// the new group; the welcomer creates it and the others join.
func (r *run) reinit(i int, s *scriptStep) error {
	c, err := r.member(s.Committer)
	if err != nil {
		return err
	}
	var proposal []byte
	newCS, newGID := r.cs, r.groupID
	if s.ExternalReinitProposal != nil {
		o, err := r.output(*s.ExternalReinitProposal, "externalReinitProposal")
		if err != nil {
			return err
		}
		if o.kind != "reinit" {
			return fmt.Errorf("step %d is not a ReInit proposal", *s.ExternalReinitProposal)
		}
		proposal, newCS, newGID = o.proposal, o.reinitCS, o.reinitGID
	} else {
		p, err := r.member(s.Proposer)
		if err != nil {
			return err
		}
		if s.ChangeCiphersuite {
			newCS = otherSuite(r.cs)
		}
		if s.ChangeGroupID {
			newGID = randomBytes(16)
		}
		resp, err := p.client.ReInitProposal(r.ctx, &mlsclientpb.ReInitProposalRequest{StateId: p.state, CipherSuite: newCS,
			GroupId: newGID, Extensions: convertScriptExtensions(s.Extensions)})
		if err != nil {
			return fmt.Errorf("%s: ReInitProposal: %w", p.name, err)
		}
		proposal = resp.Proposal
	}
	others := uniqueNames(append([]string{s.Proposer, s.Welcomer}, s.Members...)...)
	others = slices.DeleteFunc(others, func(n string) bool { return n == c.name })
	all := append([]string{c.name}, others...)

	cr, err := c.client.ReInitCommit(r.ctx, &mlsclientpb.CommitRequest{StateId: c.state, ByReference: [][]byte{proposal}})
	if err != nil {
		return fmt.Errorf("%s: ReInitCommit: %w", c.name, err)
	}
	var g agreement
	var md metadata.MD
	hr, err := c.client.HandlePendingReInitCommit(r.ctx, &mlsclientpb.HandlePendingCommitRequest{StateId: c.state}, grpc.Header(&md))
	if err != nil {
		return fmt.Errorf("%s: HandlePendingReInitCommit: %w", c.name, err)
	}
	c.reinit, c.reinitKP = r.noteID(c, hr.ReinitId), hr.KeyPackage
	if err := g.addAuth(c.name, hr.EpochAuthenticator); err != nil {
		return err
	}
	if err := g.addUpdate(c.name, md); err != nil {
		return err
	}
	if err := (&expectation{reinit: true}).check(g.update); err != nil {
		return err
	}
	for _, n := range others {
		m, err := r.member(n)
		if err != nil {
			return err
		}
		var md metadata.MD
		hr, err := m.client.HandleReInitCommit(r.ctx, &mlsclientpb.HandleCommitRequest{StateId: m.state, Proposal: [][]byte{proposal},
			Commit: cr.Commit}, grpc.Header(&md))
		if err != nil {
			return fmt.Errorf("%s: HandleReInitCommit: %w", n, err)
		}
		m.reinit, m.reinitKP = r.noteID(m, hr.ReinitId), hr.KeyPackage
		if err := g.addAuth(n, hr.EpochAuthenticator); err != nil {
			return err
		}
		if err := g.addUpdate(n, md); err != nil {
			return err
		}
	}
	if err := r.verify(&g, i); err != nil {
		return err
	}

	// The new group.
	w, err := r.actor(s.Welcomer)
	if err != nil {
		return err
	}
	if !slices.Contains(all, w.name) {
		return fmt.Errorf("welcomer %s is not a member", w.name)
	}
	var kps [][]byte
	for _, n := range all {
		if n != w.name {
			kps = append(kps, r.actors[n].reinitKP)
		}
	}
	wr, err := w.client.ReInitWelcome(r.ctx, &mlsclientpb.ReInitWelcomeRequest{ReinitId: w.reinit, KeyPackage: kps,
		ForcePath: s.forcePath(), ExternalTree: s.externalTree()})
	if err != nil {
		return fmt.Errorf("%s: ReInitWelcome: %w", w.name, err)
	}
	if len(wr.Welcome) == 0 || (s.externalTree() && len(wr.RatchetTree) == 0) {
		return fmt.Errorf("%s: ReInitWelcome returned no Welcome or no ratchet tree", w.name)
	}
	var ng agreement
	w.state = r.noteID(w, wr.StateId)
	if err := ng.addAuth(w.name, wr.EpochAuthenticator); err != nil {
		return err
	}
	for _, n := range all {
		if n == w.name {
			continue
		}
		m := r.actors[n]
		jr, err := m.client.HandleReInitWelcome(r.ctx, &mlsclientpb.HandleReInitWelcomeRequest{ReinitId: m.reinit, Welcome: wr.Welcome,
			RatchetTree: wr.RatchetTree})
		if err != nil {
			return fmt.Errorf("%s: HandleReInitWelcome: %w", n, err)
		}
		m.state = r.noteID(m, jr.StateId)
		if err := ng.addAuth(n, jr.EpochAuthenticator); err != nil {
			return err
		}
	}
	r.cs, r.groupID, r.signers = newCS, newGID, 0
	return r.verify(&ng, i)
}

// branch: the actor creates a subgroup with new KeyPackages of members.
func (r *run) branch(i int, s *scriptStep) error {
	a, err := r.member(s.Actor)
	if err != nil {
		return err
	}
	req := &mlsclientpb.CreateBranchRequest{StateId: a.state, GroupId: randomBytes(16), Extensions: convertScriptExtensions(s.Extensions),
		ForcePath: s.forcePath(), ExternalTree: s.externalTree()}
	for _, n := range s.Members {
		m, err := r.member(n)
		if err != nil {
			return err
		}
		kp, err := r.createKeyPackage(m)
		if err != nil {
			return err
		}
		req.KeyPackages = append(req.KeyPackages, kp)
	}
	br, err := a.client.CreateBranch(r.ctx, req)
	if err != nil {
		return fmt.Errorf("%s: CreateBranch: %w", a.name, err)
	}
	if len(s.Members) > 0 && (len(br.Welcome) == 0 || (s.externalTree() && len(br.RatchetTree) == 0)) {
		return fmt.Errorf("%s: CreateBranch returned no Welcome or no ratchet tree", a.name)
	}
	var g agreement
	a.state = r.noteID(a, br.StateId)
	if err := g.addAuth(a.name, br.EpochAuthenticator); err != nil {
		return err
	}
	for _, n := range s.Members {
		m := r.actors[n]
		hr, err := m.client.HandleBranch(r.ctx, &mlsclientpb.HandleBranchRequest{StateId: m.state, TransactionId: m.tx,
			Welcome: br.Welcome, RatchetTree: br.RatchetTree})
		if err != nil {
			return fmt.Errorf("%s: HandleBranch: %w", n, err)
		}
		m.state = r.noteID(m, hr.StateId)
		if err := g.addAuth(n, hr.EpochAuthenticator); err != nil {
			return err
		}
	}
	r.groupID, r.signers = req.GroupId, 0
	return r.verify(&g, i)
}

// finalCheck: one member's application message decrypts at every other
// member of the final group (test-scenarios.md, "Verify group state").
func (r *run) finalCheck() error {
	if len(r.group) < 2 {
		return nil
	}
	sender, err := r.member(r.group[0])
	if err != nil {
		return err
	}
	pt, ad := []byte("final check from "+sender.name), []byte("ad")
	p, err := sender.client.Protect(r.ctx, &mlsclientpb.ProtectRequest{StateId: sender.state, Plaintext: pt, AuthenticatedData: ad})
	if err != nil {
		return fmt.Errorf("%s: Protect: %w", sender.name, err)
	}
	for _, n := range r.group[1:] {
		m, err := r.member(n)
		if err != nil {
			return err
		}
		u, err := m.client.Unprotect(r.ctx, &mlsclientpb.UnprotectRequest{StateId: m.state, Ciphertext: p.Ciphertext})
		if err != nil {
			return fmt.Errorf("%s: Unprotect: %w", n, err)
		}
		if !bytes.Equal(u.Plaintext, pt) || !bytes.Equal(u.AuthenticatedData, ad) {
			return fmt.Errorf("%s: Unprotect returned %q", n, u.Plaintext)
		}
	}
	return nil
}

// free releases every id the script created.
func (r *run) free() error {
	var errs []error
	for srv, ids := range r.ids {
		for _, id := range ids {
			if _, err := r.clients[srv].Free(r.ctx, &mlsclientpb.FreeRequest{StateId: id}); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// runScript replays one script; it returns the index of the failing step
// (-1 when the failure is not a step's) and the error.
func runScript(ctx context.Context, clients []mlsclientpb.MLSClientClient, cs uint32, encrypt bool, sc script, opts ...func(*run)) (int, error) {
	r := newRun(ctx, clients, cs, encrypt, sc.steps)
	for _, o := range opts {
		o(r)
	}
	for i := range sc.steps {
		if err := r.step(i, &sc.steps[i]); err != nil {
			return i, err
		}
	}
	if err := r.finalCheck(); err != nil {
		return -1, fmt.Errorf("final check: %w", err)
	}
	return -1, r.free()
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
