package proto

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

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

func TestParseEnvelope(t *testing.T) {
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

// FuzzParseEnvelope: any input is parsed or refused with ErrEnvelope,
// never a panic; what is accepted survives a round trip through the
// encoders.
func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte{KindMessage, 'x'})
	f.Add(AppendHeader(nil, KindRequest, FlagText|FlagRedelivered, 5))
	f.Add(binary.AppendUvarint([]byte{KindReply}, 1<<62))
	f.Add(AppendError(nil, 3, 1500, "busy"))
	f.Add(AppendControl(nil, 4, ControlSubscribe, "topic"))
	f.Add(AppendControl(nil, 4, ControlUnsubscribe, "é"))
	f.Add([]byte{0xff, 0xff})
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
