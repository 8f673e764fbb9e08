package cluster

import (
	"bytes"
	"errors"
	"maps"
	"slices"
	"testing"
)

func TestEnvelopeRoundTrip(t *testing.T) {
	for _, k := range []kind{kindBroadcast, kindPublish, kindPresence, kindHeartbeat} {
		b := appendEnvelope(nil, k, flagBinary, 1<<40, "topic", []byte("payload"))
		if len(b) != envelopeSize(k, 1<<40, "topic", 7) {
			t.Fatalf("kind %d: size %d vs %d", k, len(b), envelopeSize(k, 1<<40, "topic", 7))
		}
		e, err := parseEnvelope(b)
		if err != nil || e.kind != k || !e.binary() || e.seq != 1<<40 || string(e.payload) != "payload" {
			t.Fatalf("kind %d: %+v %v", k, e, err)
		}
		if (k == kindPublish) != (string(e.topic) == "topic") {
			t.Fatalf("kind %d: topic %q", k, e.topic)
		}
	}
	for _, bad := range [][]byte{nil, {1, 1, 0}, {2, 1, 0, 0}, {1, 0, 0, 0}, {1, 99, 0, 0}, {1, 1, 0x80, 0}, {1, 1, 0, 0x80}, {1, 2, 0, 1, 5, 'a'}} {
		if _, err := parseEnvelope(bad); !errors.Is(err, ErrBadEnvelope) {
			t.Fatalf("%v: %v", bad, err)
		}
	}
	var b []byte
	in := []delta{
		{op: opOpen, id: "c1", params: map[string]string{"worker": "w"}},
		{op: opOpenReq, id: "c2"},
		{op: opSub, id: "c1", topic: "T"},
		{op: opUnsub, id: "c1", topic: "T"},
		{op: opClose, id: "c1"},
	}
	for i := range in {
		b = appendDelta(b, &in[i])
	}
	var out []delta
	if err := parseDeltas(b, func(d *delta) { out = append(out, *d) }); err != nil || len(out) != 5 {
		t.Fatalf("%v %v", out, err)
	}
	for i := range in {
		if in[i].op != out[i].op || in[i].id != out[i].id || in[i].topic != out[i].topic || !maps.Equal(in[i].params, out[i].params) {
			t.Fatalf("delta %d: %+v vs %+v", i, in[i], out[i])
		}
	}
	b = appendEntry(nil, "c1", entryRequests, map[string]string{"a": "b"}, []string{"T", "U"})
	n := 0
	if err := parseEntries(b, true, func(id string, flags byte, params map[string]string, topics []string) {
		n++
		if id != "c1" || flags != entryRequests || params["a"] != "b" || !slices.Equal(topics, []string{"T", "U"}) {
			t.Fatalf("%q %v %v", id, params, topics)
		}
	}); err != nil || n != 1 {
		t.Fatal(err, n)
	}
	if c, s, err := parseBeat(appendBeat(nil, 7, 1234567890123)); err != nil || c != 7 || s != 1234567890123 {
		t.Fatal(c, s, err)
	}
}

// FuzzEnvelope: no input makes the envelope parsers panic, and a parsed
// envelope re-encodes to the same bytes.
func FuzzEnvelope(f *testing.F) {
	f.Add(appendEnvelope(nil, kindPublish, flagBinary, 7, "T", []byte("x")))
	f.Add(appendEnvelope(nil, kindPresence, 0, 1, "", appendDelta(nil, &delta{op: opOpen, id: "c", params: map[string]string{"k": "v"}})))
	f.Add(appendEnvelope(nil, kindSnapshot, flagMore|flagEntryFlags, 3, "", appendEntry(nil, "c", entryRequests, nil, []string{"T"})))
	f.Add(appendEnvelope(nil, kindPresence, 0, 1, "", appendDelta(nil, &delta{op: opOpenReq, id: "c"})))
	f.Add(appendEnvelope(nil, kindRequest, flagRedelivered, 0, "", append(appendString(nil, "id"), 5, 'd')))
	f.Add(appendEnvelope(nil, kindHeartbeat, 0, 2, "", appendBeat(nil, 3, 4)))
	f.Add(appendEnvelope(nil, kindSend, 0, 0, "", append(appendString(nil, "id"), "data"...)))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := parseEnvelope(b)
		if err != nil {
			return
		}
		re := appendEnvelope(nil, e.kind, e.flags, e.seq, string(e.topic), e.payload)
		if e.kind == kindPublish || len(b) == len(re) {
			// Non-minimal uvarints parse too; compare where the encoding is canonical.
			if len(b) == len(re) && !bytes.Equal(b, re) {
				t.Fatalf("re-encoded %x as %x", b, re)
			}
		}
		_ = parseDeltas(e.payload, func(*delta) {})
		_ = parseEntries(e.payload, e.flags&flagEntryFlags != 0, func(string, byte, map[string]string, []string) {})
		_, _, _ = parseBeat(e.payload)
		_, _, _ = parseDirected(e.payload)
	})
}
