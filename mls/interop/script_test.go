package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
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
