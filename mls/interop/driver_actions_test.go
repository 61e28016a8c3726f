package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/canopy-chat/canopy/mls/interop/mlsclientpb"
	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
)

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
