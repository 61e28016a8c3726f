package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"testing"

	"github.com/canopy-chat/canopy/chat"
)

// TestHeadlessJSONDirectGroup: the headless stream's group event says a
// conversation is direct and with whom, and leaves both out otherwise.
func TestHeadlessJSONDirectGroup(t *testing.T) {
	line, err := eventJSON(chat.GroupEvent{Group: chat.GroupView{ID: "ab", Name: "bob", Direct: true, Peer: "bob"}})
	if err != nil || !bytes.Contains(line, []byte(`"direct":true`)) || !bytes.Contains(line, []byte(`"peer":"bob"`)) {
		t.Fatalf("group JSON %s, %v", line, err)
	}
	line, err = eventJSON(chat.GroupEvent{Group: chat.GroupView{ID: "cd", Name: "pals"}})
	if err != nil || bytes.Contains(line, []byte(`"direct"`)) || bytes.Contains(line, []byte(`"peer"`)) {
		t.Fatalf("group JSON %s, %v", line, err)
	}
}

// TestHeadlessJSONResult: a result line carries the outcome of its input
// line, with the error text when the command failed.
func TestHeadlessJSONResult(t *testing.T) {
	var got struct {
		Type  string `json:"type"`
		Line  int    `json:"line"`
		OK    bool   `json:"ok"`
		Error string `json:"error"`
	}
	b, err := resultJSON(3, "/kick", chat.Result{}, errors.New("usage: /kick NICK"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &got); err != nil || got.Type != "result" || got.Line != 3 || got.OK || got.Error != "usage: /kick NICK" {
		t.Fatalf("result JSON %s: %+v, %v", b, got, err)
	}
}
