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

// TestHeadlessJSONBacklogAndPlacement: the status carries the backlog
// (sending, catching_up) and a message shown out of its sender's order
// says so; in-order messages leave placement out.
func TestHeadlessJSONBacklogAndPlacement(t *testing.T) {
	var st struct {
		Status struct {
			Sending    *int `json:"sending"`
			CatchingUp *int `json:"catching_up"`
		} `json:"status"`
	}
	b, err := eventJSON(chat.StatusEvent{Status: chat.NetStatus{Sending: 40, CatchingUp: 1200}})
	if err != nil || json.Unmarshal(b, &st) != nil || st.Status.Sending == nil || *st.Status.Sending != 40 || *st.Status.CatchingUp != 1200 {
		t.Fatalf("status JSON %s, %v", b, err)
	}
	b, err = eventJSON(chat.StatusEvent{})
	if err != nil || !bytes.Contains(b, []byte(`"sending":0`)) || !bytes.Contains(b, []byte(`"catching_up":0`)) {
		t.Fatalf("caught-up status JSON %s, %v", b, err)
	}
	for p, want := range map[chat.Placement]string{chat.AfterGap: `"placement":"after-gap"`, chat.Late: `"placement":"late"`} {
		b, err := eventJSON(chat.MessageEvent{Message: chat.Message{ID: "01", Body: "hi", Placement: p}})
		if err != nil || !bytes.Contains(b, []byte(want)) {
			t.Fatalf("%v: message JSON %s, %v", p, b, err)
		}
	}
	b, err = eventJSON(chat.MessageEvent{Message: chat.Message{ID: "01", Body: "hi"}})
	if err != nil || bytes.Contains(b, []byte(`placement`)) {
		t.Fatalf("in-order message JSON %s, %v", b, err)
	}
}
