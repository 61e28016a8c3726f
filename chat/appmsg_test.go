package chat

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func TestAppMessageRoundTrip(t *testing.T) {
	at := time.UnixMilli(1_700_000_000_123)
	cases := []appMessage{
		{Kind: appText, ID: []byte("0123456789abcdef"), SentAt: at, Body: []byte("hello, world")},
		{Kind: appEdit, ID: []byte{1}, SentAt: at, ReplyTo: []byte{9, 9}, Body: []byte("fixed")},
		{Kind: appDelete, ID: []byte{2}, SentAt: at, ReplyTo: []byte{9}},
		{Kind: appReceipt, ID: []byte{3}, SentAt: at, Body: encodeIDList([][]byte{{1, 2}, {3}})},
		{Kind: 999, ID: []byte{4}, SentAt: at, Body: []byte{0xff, 0xfe},
			Extensions: []appExtension{{Type: 1, Data: []byte("x")}, {Type: 7}}},
	}
	for _, m := range cases {
		b, err := m.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", m, err)
		}
		got, err := parseAppMessage(b)
		if err != nil {
			t.Fatalf("parse: %v", err)
		}
		if got.Kind != m.Kind || !bytes.Equal(got.ID, m.ID) || !got.SentAt.Equal(m.SentAt) ||
			!bytes.Equal(got.ReplyTo, m.ReplyTo) || !bytes.Equal(got.Body, m.Body) || len(got.Extensions) != len(m.Extensions) {
			t.Fatalf("round trip: got %+v, want %+v", got, m)
		}
		b2, _ := got.Marshal()
		if !bytes.Equal(b, b2) {
			t.Fatal("re-encoding differs")
		}
	}
}

func TestAppMessageRejects(t *testing.T) {
	good := appMessage{Kind: appText, ID: []byte{1}, SentAt: time.UnixMilli(5), Body: []byte("hi")}
	b, err := good.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	bad := map[string][]byte{
		"empty":     {},
		"truncated": b[:len(b)-1],
		"trailing":  append(append([]byte{}, b...), 0),
		"bad utf8":  mustMarshalRaw(t, appText, []byte{1}, []byte{0xff}),
		"no id":     mustMarshalRaw(t, appText, nil, []byte("x")),
	}
	for name, in := range bad {
		if _, err := parseAppMessage(in); !errors.Is(err, errAppMalformed) {
			t.Errorf("%s: err = %v, want errAppMalformed", name, err)
		}
	}
	v2 := append([]byte{2}, b[1:]...)
	if _, err := parseAppMessage(v2); !errors.Is(err, errAppVersion) {
		t.Errorf("version 2: err = %v", err)
	}
	// Extensions out of order.
	m := good
	m.Extensions = []appExtension{{Type: 2}, {Type: 1}}
	if _, err := m.Marshal(); err == nil {
		t.Error("Marshal accepted descending extension types")
	}
}

// mustMarshalRaw encodes a payload without Marshal's checks.
func mustMarshalRaw(t *testing.T, kind appKind, id, body []byte) []byte {
	t.Helper()
	var b []byte
	b = append(b, appVersion, byte(kind>>8), byte(kind), byte(len(id)))
	b = append(b, id...)
	b = append(b, 0, 0, 0, 0, 0, 0, 0, 1, 0)
	b = append(b, byte(len(body)>>24), byte(len(body)>>16), byte(len(body)>>8), byte(len(body)))
	b = append(b, body...)
	return append(b, 0, 0)
}

func FuzzAppMessage(f *testing.F) {
	m := appMessage{Kind: appText, ID: []byte("id"), SentAt: time.UnixMilli(1), Body: []byte("seed")}
	b, _ := m.Marshal()
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := parseAppMessage(data)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed message does not marshal: %v", err)
		}
		if !bytes.Equal(out, data) {
			t.Fatalf("not canonical:\n in  %x\n out %x", data, out)
		}
		if m.Kind == appReceipt {
			_, _ = parseIDList(m.Body)
		}
	})
}
