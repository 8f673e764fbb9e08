package proto

import (
	"bytes"
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
		"unknown kind":       {4, 1},
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

// FuzzParseEnvelope: the parser never panics, accepts only what it can
// render again byte for byte, and its slices stay inside the input.
func FuzzParseEnvelope(f *testing.F) {
	f.Add([]byte{0, 1, 2})
	f.Add([]byte{0x11, 5, 'h', 'i'})
	f.Add([]byte{0x21, 0x80, 0x01})
	f.Add(AppendError(nil, 3, 4001, "no"))
	f.Add([]byte{2, 1})
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := ParseEnvelope(b)
		if err != nil {
			return
		}
		var flags byte
		if e.Text {
			flags |= FlagText
		}
		if e.Redelivered {
			flags |= FlagRedelivered
		}
		var out []byte
		if e.Kind == KindError {
			out = AppendError(nil, e.ID, e.Code, string(e.Payload))
		} else {
			out = append(AppendHeader(nil, e.Kind, flags, e.ID), e.Payload...)
		}
		// The id varint may have had a non-minimal encoding: compare
		// parsed forms instead of bytes in that case.
		e2, err := ParseEnvelope(out)
		if err != nil {
			t.Fatalf("re-rendered %x of %x fails: %v", out, b, err)
		}
		if e2.Kind != e.Kind || e2.ID != e.ID || e2.Code != e.Code || e2.Text != e.Text ||
			e2.Redelivered != e.Redelivered || !bytes.Equal(e2.Payload, e.Payload) {
			t.Fatalf("%x → %+v → %x → %+v", b, e, out, e2)
		}
	})
}
