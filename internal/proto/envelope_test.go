package proto

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		kind, flags byte
		id          uint64
		payload     string
	}{
		{KindMessage, 0, 0, "plain"},
		{KindRequest, FlagText, 1, "hello"},
		{KindRequest, FlagRedelivered, 300, "\x00\xff"},
		{KindRequest, FlagText | FlagRedelivered, 1<<63 - 1, ""},
		{KindReply, 0, 7, "bin"},
		{KindReply, FlagText, 7, "text"},
	} {
		b := append(AppendHeader(nil, tc.kind, tc.flags, tc.id), tc.payload...)
		e, err := ParseEnvelope(b)
		if err != nil {
			t.Fatalf("%+v: %v", tc, err)
		}
		if e.Kind != tc.kind || e.Text != (tc.flags&FlagText != 0) || e.Redelivered != (tc.flags&FlagRedelivered != 0) ||
			(tc.kind != KindMessage && e.ID != tc.id) || string(e.Payload) != tc.payload {
			t.Fatalf("%+v: parsed %+v", tc, e)
		}
	}
	long := string(bytes.Repeat([]byte("é"), 100))
	e, err := ParseEnvelope(AppendError(nil, 9, 4001, long))
	if err != nil || e.Kind != KindError || e.ID != 9 || e.Code != 4001 || len(e.Payload) > MaxReason || !utf8.Valid(e.Payload) {
		t.Fatalf("error envelope: %+v, %v", e, err)
	}
}

func TestEnvelopeRejects(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":              nil,
		"unknown kind":       {5, 1},
		"control, no op":     {4, 1},
		"kind 15":            {15, 1},
		"reserved flag 0x40": {0x41, 1},
		"reserved flag 0x80": {0x81, 1},
		"flags on message":   {0x10},
		"redelivered reply":  {0x22, 1},
		"text error":         {0x13, 1, 1},
		"no id":              {1},
		"id zero":            {2, 0},
		"id 2^63":            {1, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01},
		"varint overflow":    {1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
		"error no code":      {3, 1},
		"error code > 65535": {3, 1, 0x80, 0x80, 0x04},
		"error bad reason":   {3, 1, 1, 0xff},
		"error long reason":  append([]byte{3, 1, 1}, bytes.Repeat([]byte("a"), MaxReason+1)...),
	} {
		if _, err := ParseEnvelope(b); err == nil {
			t.Errorf("%s: accepted %x", name, b)
		}
	}
}

func TestSessionID(t *testing.T) {
	a, b := NewSessionID(), NewSessionID()
	if !ValidSessionID(a) || !ValidSessionID(b) || a == b {
		t.Fatalf("%q %q", a, b)
	}
	for _, bad := range []string{"", "abc", a[:25], a + "A", "aaaaaaaaaaaaaaaaaaaaaaaaaa", "AAAAAAAAAAAAAAAAAAAAAAAAA1"} {
		if ValidSessionID(bad) {
			t.Errorf("%q accepted", bad)
		}
	}
}

// encode renders e in the canonical form.
func encode(e Envelope) []byte {
	var flags byte
	if e.Text {
		flags |= FlagText
	}
	if e.Redelivered {
		flags |= FlagRedelivered
	}
	switch e.Kind {
	case KindError:
		return AppendError(nil, e.ID, e.Code, string(e.Payload))
	case KindControl:
		return AppendControl(nil, e.ID, e.Op, string(e.Payload))
	}
	return append(AppendHeader(nil, e.Kind, flags, e.ID), e.Payload...)
}

func TestEnvelopeControl(t *testing.T) {
	long := strings.Repeat("t", MaxTopic)
	good := []Envelope{
		{Kind: KindMessage, Payload: []byte("plain")},
		{Kind: KindRequest, ID: 1, Text: true, Payload: []byte("job")},
		{Kind: KindRequest, ID: 300, Redelivered: true, Payload: []byte{0, 1}},
		{Kind: KindReply, ID: 1 << 40, Payload: []byte{}},
		{Kind: KindError, ID: 7, Code: CodeRefused, Payload: []byte("no")},
		{Kind: KindControl, ID: 9, Op: ControlSubscribe, Payload: []byte("render")},
		{Kind: KindControl, ID: 10, Op: ControlUnsubscribe, Payload: []byte(long)},
	}
	for _, want := range good {
		b := encode(want)
		got, err := ParseEnvelope(b)
		if err != nil {
			t.Fatalf("%x: %v", b, err)
		}
		if got.Kind != want.Kind || got.ID != want.ID || got.Op != want.Op || got.Code != want.Code ||
			got.Text != want.Text || got.Redelivered != want.Redelivered || !bytes.Equal(got.Payload, want.Payload) {
			t.Fatalf("%x: got %+v, want %+v", b, got, want)
		}
	}
	bad := map[string][]byte{
		"empty":                   {},
		"control with flags":      append([]byte{KindControl | FlagText}, 1, ControlSubscribe, 't'),
		"control, no op":          {KindControl, 1},
		"control, unknown op":     {KindControl, 1, 3, 't'},
		"control, empty topic":    {KindControl, 1, ControlSubscribe},
		"control, topic too long": AppendControl(nil, 1, ControlSubscribe, long+"x"),
		"control, topic not UTF8": {KindControl, 1, ControlSubscribe, 0xff},
		"control, id 0":           {KindControl, 0, ControlSubscribe, 't'},
		"redelivered reply":       {KindReply | FlagRedelivered, 1},
		"id 0":                    {KindRequest, 0},
		"truncated id":            {KindRequest, 0x80},
	}
	for kind := byte(5); kind < 16; kind++ {
		bad["kind "+string('0'+kind)] = []byte{kind, 1, 1, 't'}
	}
	for name, b := range bad {
		if _, err := ParseEnvelope(b); err != ErrEnvelope {
			t.Errorf("%s (%x): %v, want ErrEnvelope", name, b, err)
		}
	}
}

// FuzzParseEnvelope: the parser never panics, refuses with ErrEnvelope,
// and what it accepts survives a round trip through the encoders (the id
// varint may have had a non-minimal encoding: parsed forms are compared,
// not bytes).
func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte{KindMessage, 'x'})
	f.Add(AppendHeader(nil, KindRequest, FlagText|FlagRedelivered, 5))
	f.Add(binary.AppendUvarint([]byte{KindReply}, 1<<62))
	f.Add(AppendError(nil, 3, 1500, "busy"))
	f.Add(AppendControl(nil, 4, ControlSubscribe, "topic"))
	f.Add(AppendControl(nil, 4, ControlUnsubscribe, "é"))
	f.Add([]byte{0xff, 0xff})
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{0x11, 5, 'h', 'i'})
	f.Add([]byte{0x21, 0x80, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			if err != ErrEnvelope {
				t.Fatalf("error %v", err)
			}
			return
		}
		if e.Kind > KindControl || e.Kind != KindMessage && e.ID == 0 {
			t.Fatalf("accepted %+v", e)
		}
		again, err := ParseEnvelope(encode(e))
		if err != nil {
			t.Fatalf("re-encoded %+v: %v", e, err)
		}
		if again.Kind != e.Kind || again.ID != e.ID || again.Op != e.Op || again.Code != e.Code ||
			again.Text != e.Text || again.Redelivered != e.Redelivered || !bytes.Equal(again.Payload, e.Payload) {
			t.Fatalf("round trip %+v -> %+v", e, again)
		}
	})
}
