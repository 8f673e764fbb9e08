package provider

// Conformance cases for permessage-deflate (RFC 7692) after sections 12
// and 13 of Autobahn|Testsuite, for every compressor preset: the
// negotiation (which offers are accepted and how the response keeps to the
// offer and to the preset's memory), compressed messages both ways in
// every size Autobahn sends, whole and auto-fragmented, under each of
// Autobahn's offers and ours, the examples of RFC 7692 §7.2.3, and the
// errors (RSV1 where it may not be, corrupt data, bombs, references beyond
// the window). The client compresses with the compress package (a client
// Config); what the Provider sends is inflated by the independent inflater
// of conformance_inflate_test.go, which also holds the Provider to the
// LZ77 window it agreed to.

import (
	"bytes"
	"compress/flate"
	"fmt"
	"net/http"
	"testing"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// cfPresets are every compressor and decompressor preset, alone and in
// some combinations.
var cfPresets = []compress.Preset{
	compress.SharedCompressor,
	compress.SharedDecompressor,
	compress.SharedCompressor | compress.SharedDecompressor,
	compress.DedicatedCompressor3KB,
	compress.DedicatedCompressor4KB,
	compress.DedicatedCompressor8KB,
	compress.DedicatedCompressor16KB,
	compress.DedicatedCompressor32KB,
	compress.DedicatedCompressor64KB,
	compress.DedicatedCompressor128KB,
	compress.DedicatedCompressor256KB,
	compress.DedicatedDecompressor512B,
	compress.DedicatedDecompressor1KB,
	compress.DedicatedDecompressor2KB,
	compress.DedicatedDecompressor4KB,
	compress.DedicatedDecompressor8KB,
	compress.DedicatedDecompressor16KB,
	compress.DedicatedDecompressor32KB,
	compress.DedicatedCompressor4KB | compress.DedicatedDecompressor,
	compress.DedicatedCompressor | compress.DedicatedDecompressor512B,
	compress.DedicatedCompressor | compress.DedicatedDecompressor,
	compress.SharedCompressor | compress.DedicatedDecompressor4KB,
}

// cfPresetWindows returns the preset's compressor and decompressor windows
// in bits, 0 for a shared half (uWebSockets layout: the low byte is
// windowBits<<4 | memLevel, bits 8–11 the decompressor's window).
func cfPresetWindows(p compress.Preset) (comp, decomp int) {
	if c := int(p & 0xff); c > 1 {
		comp = c >> 4
	}
	if d := int(p>>8) & 0xf; d > 1 {
		decomp = d
	}
	return comp, decomp
}

// The offers of Autobahn's section 13 (its client offers
// client_no_context_takeover and client_max_window_bits by default, and
// asks the server for (no context takeover, max window bits) as below),
// and ours: offers that let the client keep context, and those the
// Consumer makes.
var cfOffers = []struct{ ab, offer string }{
	{"13.1", "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
	{"13.2", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover"},
	{"13.3", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=8"},
	{"13.4", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_max_window_bits=15"},
	{"13.5", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8"},
	{"13.6", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=15"},
	{"13.7", "permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover; server_max_window_bits=8, " +
		"permessage-deflate; client_no_context_takeover; client_max_window_bits; server_no_context_takeover, " +
		"permessage-deflate; client_no_context_takeover; client_max_window_bits"},
	{"-", "permessage-deflate"},
	{"-", "permessage-deflate; client_max_window_bits"},
	{"-", "permessage-deflate; client_max_window_bits=10; server_max_window_bits=12"},
	{"-", (compress.DedicatedCompressor4KB | compress.DedicatedDecompressor4KB).Offer().String()},
	{"-", (compress.SharedCompressor | compress.SharedDecompressor).Offer().String()},
}

// cfDeflate is the client's side of a permessage-deflate connection.
type cfDeflate struct {
	offers []compress.Params
	resp   compress.Params
	comp   *compress.Compressor
	inBits int    // the window the Provider must keep to
	inCtx  bool   // the Provider may refer to earlier messages
	hist   []byte // the last 1<<inBits bytes it sent, with context takeover
	limit  int
}

// cfDeflateOpen opens a connection offering offer and, when the Provider
// accepts, checks the response against the offers and the preset and sets
// up the client's codec. d is nil when the Provider declined.
func cfDeflateOpen(t *testing.T, e *events, addr string, p compress.Preset, offer string) (*cfSession, *cfDeflate) {
	t.Helper()
	s := cfOpen(t, e, addr, "/connect", "Sec-WebSocket-Extensions: "+offer)
	offers, err := compress.ParseOffers([]string{offer})
	if err != nil {
		t.Fatalf("bad test offer %q: %v", offer, err)
	}
	values := s.c.Resp.Header.Values("Sec-WebSocket-Extensions")
	resp, ok, err := compress.ParseResponse(values)
	if err != nil {
		t.Fatalf("response %q: %v", values, err)
	}
	if !ok {
		if cfAcceptable(offers) && p.Enabled() {
			t.Fatalf("preset %v declined the acceptable offer %q", p, offer)
		}
		return s, nil
	}
	if !p.Enabled() {
		t.Fatalf("disabled Provider answered %q", values)
	}
	cfCheckResponse(t, p, offers, resp)
	d := &cfDeflate{offers: offers, resp: resp, limit: 1 << 20}
	// The client keeps to the response and to the hints of its offers: no
	// context when any offer said client_no_context_takeover.
	ctx := !resp.ClientNoContextTakeover
	bits := 15
	if resp.ClientMaxWindowBits > 0 {
		bits = resp.ClientMaxWindowBits
	}
	for _, o := range offers {
		if o.ClientNoContextTakeover {
			ctx = false
		}
		if o.ClientMaxWindowBits > 0 {
			bits = min(bits, o.ClientMaxWindowBits)
		}
	}
	d.comp = compress.NewCompressor(compress.Config{CompressWindowBits: bits, CompressContextTakeover: ctx, CompressMemLevel: 8})
	t.Cleanup(d.comp.Release)
	d.inBits, d.inCtx = 15, !resp.ServerNoContextTakeover
	if resp.ServerMaxWindowBits > 0 {
		d.inBits = resp.ServerMaxWindowBits
	}
	s.infl = d.inflate
	return s, d
}

// cfAcceptable reports whether an offer without errors is among offers.
func cfAcceptable(offers []compress.Params) bool {
	for _, o := range offers {
		if o.Err == nil {
			return true
		}
	}
	return false
}

// cfCheckResponse holds the response to RFC 7692 (it accepts one of the
// offers, §5, §7.1) and to the preset's memory (a shared half keeps no
// context, a dedicated one no more than its window).
func cfCheckResponse(t *testing.T, p compress.Preset, offers []compress.Params, resp compress.Params) {
	t.Helper()
	var first compress.Params
	found := false
	for _, o := range offers {
		if o.Err == nil && p.CheckResponse(o, resp) == nil {
			first, found = o, true
			break
		}
	}
	if !found {
		t.Fatalf("response %q accepts none of the offers %v (RFC 7692 §5, §7.1)", resp, offers)
	}
	// The Provider must be able to inflate what the response allows the
	// client to send: a shared decompressor keeps no history, a dedicated
	// one 1<<dw bytes. (Its own compressor may always use less than it
	// announced; the inflater checks what it really uses.)
	_, dw := cfPresetWindows(p)
	clientCtx := !resp.ClientNoContextTakeover && !first.ClientNoContextTakeover
	switch {
	case dw == 0 && clientCtx:
		t.Errorf("preset %v has a shared decompressor but the response %q lets the client keep context", p, resp)
	case dw > 0 && dw < 15 && clientCtx && (resp.ClientMaxWindowBits == 0 || resp.ClientMaxWindowBits > dw):
		t.Errorf("preset %v inflates with %d bits but the response %q lets the client use more", p, dw, resp)
	}
	if first.ServerMaxWindowBits > 0 && resp.ServerMaxWindowBits > first.ServerMaxWindowBits {
		t.Errorf("server_max_window_bits %d above the offered %d (RFC 7692 §7.1.2.1)", resp.ServerMaxWindowBits, first.ServerMaxWindowBits)
	}
}

// frames returns the frames of a compressed message, split in fragments
// of frag bytes of compressed payload (0: one frame), RSV1 on the first.
func (d *cfDeflate) frames(op frame.Opcode, msg []byte, frag int) [][]byte {
	payload, err := d.comp.Compress(nil, msg)
	if err != nil {
		panic(err)
	}
	return cfFragments(op, 4, payload, frag)
}

// inflate inflates a message from the Provider with the independent
// inflater and holds it to the window it agreed to.
func (d *cfDeflate) inflate(p []byte) ([]byte, error) {
	var hist []byte
	if d.inCtx {
		hist = d.hist
	}
	out, dist, err := cfInflate(hist, p, d.limit)
	if err != nil {
		return nil, err
	}
	if dist > 1<<d.inBits {
		return nil, fmt.Errorf("back-reference of %d bytes beyond the agreed window of %d bits (RFC 7692 §7.1.2.1)", dist, d.inBits)
	}
	if d.inCtx {
		d.hist = append(d.hist, out...)
		if w := 1 << d.inBits; len(d.hist) > w {
			d.hist = append(d.hist[:0], d.hist[len(d.hist)-w:]...)
		}
	}
	return out, nil
}

// TestConformanceDeflateNegotiation: which offers each preset accepts, and
// what it answers (RFC 7692 §5, §7.1; RFC 6455 §9.1).
func TestConformanceDeflateNegotiation(t *testing.T) {
	type neg struct {
		rfc, name string
		headers   []string // Sec-WebSocket-Extensions values, one header each
		accept    bool     // an enabled preset must accept
	}
	cases := []neg{
		{"RFC 7692 §7", "bare offer", []string{"permessage-deflate"}, true},
		{"RFC 7692 §5", "unknown parameter: declined", []string{"permessage-deflate; foo"}, false},
		{"RFC 7692 §5", "unknown parameter with a value: declined", []string{"permessage-deflate; foo=1"}, false},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits=7: declined", []string{"permessage-deflate; server_max_window_bits=7"}, false},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits=16: declined", []string{"permessage-deflate; server_max_window_bits=16"}, false},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits without a value: declined", []string{"permessage-deflate; server_max_window_bits"}, false},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits=010 (leading zero): declined", []string{"permessage-deflate; server_max_window_bits=010"}, false},
		{"RFC 7692 §7.1.2.2", "client_max_window_bits=0: declined", []string{"permessage-deflate; client_max_window_bits=0"}, false},
		{"RFC 7692 §7.1.1.1", "server_no_context_takeover with a value: declined", []string{"permessage-deflate; server_no_context_takeover=1"}, false},
		{"RFC 7692 §7", "duplicate parameter: declined", []string{"permessage-deflate; server_no_context_takeover; server_no_context_takeover"}, false},
		{"RFC 7692 §5", "a bad offer, then a good one: the good one", []string{"permessage-deflate; foo, permessage-deflate"}, true},
		{"RFC 6455 §9.1", "another extension only", []string{"x-webkit-deflate-frame"}, false},
		{"RFC 6455 §9.1", "another extension first", []string{"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits"}, true},
		{"RFC 6455 §9.1", "offers spread over two headers", []string{"x-foo", "permessage-deflate; server_no_context_takeover"}, true},
		{"RFC 6455 §9.1", "quoted value", []string{`permessage-deflate; client_max_window_bits="10"`}, true},
		{"RFC 7230 §7", "empty list elements", []string{", , permessage-deflate ,"}, true},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits=8", []string{"permessage-deflate; server_max_window_bits=8"}, true},
		{"RFC 7692 §7.1.1.2", "client_no_context_takeover hint", []string{"permessage-deflate; client_no_context_takeover"}, true},
	}
	for _, p := range append([]compress.Preset{compress.Disabled}, cfPresets...) {
		t.Run(p.String(), func(t *testing.T) {
			_, e, addr := cfEchoProvider(t, Options{Compressor: p})
			for _, c := range cases {
				var extra []string
				for _, h := range c.headers {
					extra = append(extra, "Sec-WebSocket-Extensions: "+h)
				}
				s := cfOpen(t, e, addr, "/connect", extra...)
				s.where = "[" + c.rfc + ", " + c.name + "]"
				values := s.c.Resp.Header.Values("Sec-WebSocket-Extensions")
				resp, ok, err := compress.ParseResponse(values)
				if err != nil {
					s.fatalf("response %q: %v", values, err)
				}
				if ok != (c.accept && p.Enabled()) {
					s.fatalf("accepted=%v (%q), want %v", ok, values, c.accept && p.Enabled())
				}
				if ok {
					offers, _ := compress.ParseOffers(c.headers)
					cfCheckResponse(t, p, offers, resp)
				} else {
					// Declined: RSV1 stays reserved (RFC 6455 §5.2).
					s.run(cfSteps(cfSend(wstest.Frame(true, cfOpText, 4, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})).expect(evClose(frame.CloseProtocolError))))
					continue
				}
				s.c.Close()
			}
			// A header that breaks the grammar is a bad request (RFC 6455
			// §4.2.1) when the Provider reads offers at all.
			c, err := wstest.Dial(addr, "/connect", []string{`Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits="10`}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			want := http.StatusBadRequest
			if !p.Enabled() {
				want = http.StatusSwitchingProtocols
			}
			if c.Resp.StatusCode != want {
				t.Fatalf("malformed header: status %d, want %d", c.Resp.StatusCode, want)
			}
		})
	}
}

// cfDeflateSizes are Autobahn's section 12 message sizes and auto-fragment
// sizes (of the compressed payload here).
var cfDeflateSizes = []struct{ size, frag int }{
	{16, 0}, {64, 0}, {256, 0}, {1024, 0}, {4096, 0}, {8192, 0}, {16384, 0}, {32768, 0}, {65536, 0}, {131072, 0},
	{8192, 256}, {16384, 256}, {32768, 256}, {65536, 256}, {131072, 256}, {131072, 1024}, {131072, 4096}, {131072, 32768},
}

// cfDeflateKinds are the kinds of data of Autobahn's section 12: text
// (JSON, HTML, prose) and binary (a bitmap, random bytes).
var cfDeflateKinds = []struct {
	kind string
	op   frame.Opcode
}{{"json", cfOpText}, {"html", cfOpText}, {"text", cfOpText}, {"bitmap", cfOpBinary}, {"random", cfOpBinary}}

// cfDeflateEcho sends msgs compressed (in fragments of frag bytes) and
// checks the compressed echoes.
func cfDeflateEcho(s *cfSession, d *cfDeflate, op frame.Opcode, msgs [][]byte, frag int) {
	s.t.Helper()
	var st []cfStep
	for _, m := range msgs {
		want := evBin(m)
		if op == cfOpText {
			want = evTextB(m)
		}
		st = append(st, cfSend(d.frames(op, m, frag)...).expect(want))
	}
	for i, step := range st {
		s.write(step)
		got, err := s.next()
		if err != nil {
			s.fatalf("message %d: %v", i+1, err)
		}
		if !step.want[0].match(got) {
			s.fatalf("message %d: got %v, want %v", i+1, got, step.want[0])
		}
		if !got.compressed {
			s.fatalf("message %d: echo not compressed with CompressionThreshold -1", i+1)
		}
	}
}

// cfSlices cuts n messages of size bytes from data, one after the other
// (wrapping around), as Autobahn's section 12 does; text stays valid UTF-8.
func cfSlices(data []byte, size, n int, text bool) [][]byte {
	var out [][]byte
	pos := 0
	for i := 0; i < n; i++ {
		m := make([]byte, 0, size)
		for text && pos < len(data) && !utf8.RuneStart(data[pos]) {
			pos++ // start at a character
		}
		for len(m) < size {
			if pos == len(data) {
				pos = 0
			}
			k := min(size-len(m), len(data)-pos)
			m = append(m, data[pos:pos+k]...)
			pos += k
		}
		if text {
			m = cfTrimUTF8(m)
			for len(m) < size {
				m = append(m, '.')
			}
		}
		out = append(out, m)
	}
	return out
}

// TestConformanceDeflate12 follows section 12: for every preset, under
// Autobahn's default offer, two messages (the second can refer to the
// first when context is kept) of each size up to 4 KiB for each kind of
// data; the larger sizes, whole and auto-fragmented (8 KiB to 128 KiB),
// rotate over the presets and kinds so that each size meets every kind
// and every preset meets a third of the sizes, 128 KiB among them.
func TestConformanceDeflate12(t *testing.T) {
	corpus := map[string][]byte{}
	for _, k := range cfDeflateKinds {
		corpus[k.kind] = cfCorpus(k.kind, 192<<10)
	}
	for pi, p := range cfPresets {
		t.Run(p.String(), func(t *testing.T) {
			_, e, addr := cfEchoProvider(t, Options{Compressor: p, CompressionThreshold: -1, MaxPayloadLength: 256 << 10})
			for i, k := range cfDeflateKinds {
				t.Run(fmt.Sprintf("12.%d %s", i+1, k.kind), func(t *testing.T) {
					s, d := cfDeflateOpen(t, e, addr, p, cfOffers[0].offer)
					if d == nil {
						t.Fatal("default offer declined")
					}
					for j, sz := range cfDeflateSizes {
						large := sz.size > 4096
						if large && ((j+pi)%3 != 0 || (j+pi)%len(cfDeflateKinds) != i) && !(j == 9 && i == pi%len(cfDeflateKinds)) {
							continue
						}
						s.where = fmt.Sprintf("[12.%d.%d %s, RFC 7692 §6, §7.2]", i+1, j+1, k.kind)
						cfDeflateEcho(s, d, k.op, cfSlices(corpus[k.kind], sz.size, 2, k.op == cfOpText), sz.frag)
					}
					s.where = fmt.Sprintf("[12.%d %s, RFC 6455 §7.1]", i+1, k.kind)
					s.finish()
				})
			}
		})
	}
}

// TestConformanceDeflate13 follows section 13: every preset under each of
// Autobahn's offers and ours, with messages of several sizes, whole and
// auto-fragmented, both ways compressed.
func TestConformanceDeflate13(t *testing.T) {
	json := cfCorpus("json", 64<<10)
	sizes := []struct{ size, frag int }{{16, 0}, {300, 0}, {4096, 0}, {16384, 512}}
	for _, p := range cfPresets {
		t.Run(p.String(), func(t *testing.T) {
			_, e, addr := cfEchoProvider(t, Options{Compressor: p, CompressionThreshold: -1})
			for i, o := range cfOffers {
				name := o.ab
				if name == "-" {
					name = "offer " + o.offer
				}
				t.Run(name, func(t *testing.T) {
					s, d := cfDeflateOpen(t, e, addr, p, o.offer)
					if d == nil {
						t.Fatalf("offer %q declined", o.offer)
					}
					for j, sz := range sizes {
						s.where = fmt.Sprintf("[%s.%d (%d), RFC 7692 §7.1]", o.ab, j+1, i)
						cfDeflateEcho(s, d, cfOpText, cfSlices(json, sz.size, 2, true), sz.frag)
					}
					s.where = "[" + o.ab + ", RFC 6455 §7.1]"
					s.finish()
				})
			}
		})
	}
}

// TestConformanceDeflateRFCExamples sends the examples of RFC 7692 §7.2.3
// byte for byte (masked) to a Provider that keeps the client's context.
func TestConformanceDeflateRFCExamples(t *testing.T) {
	const offer = "permessage-deflate"
	hello := []byte("Hello")
	p := compress.DedicatedCompressor | compress.DedicatedDecompressor
	_, e, addr := cfEchoProvider(t, Options{Compressor: p, CompressionThreshold: -1})
	rsv1 := func(fin bool, op frame.Opcode, payload ...byte) []byte {
		r := byte(4)
		if op == cfOpCont {
			r = 0
		}
		return wstest.Frame(fin, op, r, payload)
	}
	cases := []cfCase{
		{"-", "RFC 7692 §7.2.3.1", "one compressed block", cfSteps(cfSend(rsv1(true, cfOpText, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00)).expect(evTextB(hello))), nil},
		{"-", "RFC 7692 §7.2.3.1", "one compressed block in 2 fragments", cfSteps(cfSend(rsv1(false, cfOpText, 0xf2, 0x48, 0xcd), rsv1(true, cfOpCont, 0xc9, 0xc9, 0x07, 0x00)).expect(evTextB(hello))), nil},
		{"-", "RFC 7692 §7.2.3.2", "second message refers to the first (context takeover)", cfSteps(
			cfSend(rsv1(true, cfOpText, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00)).expect(evTextB(hello)),
			cfSend(rsv1(true, cfOpText, 0xf2, 0x00, 0x11, 0x00, 0x00)).expect(evTextB(hello))), nil},
		{"-", "RFC 7692 §7.2.3.3", "stored block", cfSteps(cfSend(rsv1(true, cfOpText, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00)).expect(evTextB(hello))), nil},
		{"-", "RFC 7692 §7.2.3.4", "block with BFINAL set", cfSteps(cfSend(rsv1(true, cfOpText, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00)).expect(evTextB(hello))), nil},
		{"-", "RFC 7692 §7.2.3.5", "two blocks", cfSteps(cfSend(rsv1(true, cfOpText, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00)).expect(evTextB(hello))), nil},
		{"-", "RFC 7692 §7.2.3.3, §7.2.1", "empty message as an empty stored block", cfSteps(cfSend(rsv1(true, cfOpBinary, 0x00)).expect(evBin([]byte{}))), nil},
		{"-", "RFC 7692 §6", "uncompressed message on a compressed connection", cfSteps(cfSend(cfF(true, cfOpText, "plain")).expect(evText("plain"))), nil},
	}
	for _, c := range cases {
		t.Run(c.title()+" "+c.rfc, func(t *testing.T) {
			s, d := cfDeflateOpen(t, e, addr, p, offer)
			if d == nil || d.resp.ClientNoContextTakeover {
				t.Fatalf("want context takeover accepted, got %v", d)
			}
			s.where = "[" + c.rfc + "]"
			s.run(c.steps)
		})
	}
}

// TestConformanceDeflateErrors: what a compressed connection must refuse.
func TestConformanceDeflateErrors(t *testing.T) {
	const max = 64 << 10
	pre := compress.DedicatedCompressor4KB | compress.DedicatedDecompressor512B
	_, e, addr := cfEchoProvider(t, Options{Compressor: pre, CompressionThreshold: -1, MaxPayloadLength: max})
	const offer = "permessage-deflate; client_max_window_bits"
	bad, inval := frame.CloseProtocolError, frame.CloseInvalidPayload
	deflated := func(level int, dict, msg []byte) []byte {
		var b bytes.Buffer
		w, _ := flate.NewWriterDict(&b, level, dict)
		w.Write(msg)
		w.Flush()
		return bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
	}
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	history := cfBinary(2000, 9)
	type errCase struct {
		rfc, name string
		build     func(d *cfDeflate) []cfStep
	}
	cases := []errCase{
		{"RFC 7692 §6.1", "RSV1 on a continuation frame", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(false, cfOpText, 4, hello[:3]), wstest.Frame(true, cfOpCont, 4, hello[3:])).expect(evClose(bad)))
		}},
		{"RFC 7692 §6.1, RFC 6455 §5.5", "RSV1 on a ping", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpPing, 4, nil)).expect(evClose(bad)))
		}},
		{"RFC 7692 §6.1", "RSV1 on a close", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpClose, 4, frame.AppendClose(nil, 1000, ""))).expect(evClose(bad)))
		}},
		{"RFC 6455 §5.2", "RSV2 on a compressed frame", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpText, 6, hello)).expect(evClose(bad)))
		}},
		{"RFC 7692 §7.2.2", "corrupt deflate data (block type 3)", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpBinary, 4, []byte{0xff, 0xff, 0xff})).expect(evClose(inval)))
		}},
		{"RFC 7692 §7.2.2", "truncated deflate data", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpBinary, 4, deflated(6, nil, cfCorpus("json", 3000))[:200])).expect(evClose(inval)))
		}},
		{"RFC 7692 §7.2.3.4", "data after a final block", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpText, 4, []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})).expect(evClose(inval)))
		}},
		{"RFC 6455 §8.1, RFC 7692 §6", "compressed text that inflates to invalid UTF-8", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(d.frames(cfOpText, []byte(cfKosmeBad), 0)...).expect(evClose(inval)))
		}},
		{"RFC 6455 §8.1, RFC 7692 §6", "compressed text ending inside a character", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(d.frames(cfOpText, []byte("abc\xe2\x82"), 0)...).expect(evClose(inval)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "compression bomb: 1 MiB of zeros in a few hundred bytes", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpBinary, 4, deflated(9, nil, make([]byte, 1<<20)))).expect(evClose(frame.CloseTooBig)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "inflates to exactly the limit", func(d *cfDeflate) []cfStep {
			z := make([]byte, max)
			return cfSteps(cfSend(wstest.Frame(true, cfOpBinary, 4, deflated(9, nil, z))).expect(evBin(z)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "inflates to the limit + 1", func(d *cfDeflate) []cfStep {
			return cfSteps(cfSend(wstest.Frame(true, cfOpBinary, 4, deflated(9, nil, make([]byte, max+1)))).expect(evClose(frame.CloseTooBig)))
		}},
		{"RFC 7692 §7.1.2.2", "back-reference beyond the client window the Provider asked for", func(d *cfDeflate) []cfStep {
			if d.resp.ClientMaxWindowBits != 9 {
				panic(fmt.Sprintf("want client_max_window_bits=9, got %v", d.resp))
			}
			// 2000 bytes stored, then a message made of their first 200
			// bytes as a back-reference 2000 bytes long: beyond 512.
			return cfSteps(
				cfSend(wstest.Frame(true, cfOpBinary, 4, deflated(0, nil, history))).expect(evBin(history)),
				cfSend(wstest.Frame(true, cfOpBinary, 4, deflated(9, history, history[:200]))).expect(evClose(inval)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, d := cfDeflateOpen(t, e, addr, pre, offer)
			if d == nil {
				t.Fatal("declined")
			}
			s.where = "[-, " + c.rfc + "]"
			s.run(c.build(d))
		})
	}
}

// TestConformanceInflater checks the independent inflater against the
// standard library's deflater: every block type, with and without a
// dictionary, and the distances it reports.
func TestConformanceInflater(t *testing.T) {
	for _, kind := range []string{"json", "text", "bitmap", "random"} {
		data := cfCorpus(kind, 100<<10)
		dict := data[:5000]
		for _, level := range []int{flate.NoCompression, flate.BestSpeed, flate.DefaultCompression, flate.HuffmanOnly} {
			for _, d := range [][]byte{nil, dict} {
				var b bytes.Buffer
				w, _ := flate.NewWriterDict(&b, level, d)
				w.Write(data[5000:])
				w.Flush()
				payload := bytes.TrimSuffix(b.Bytes(), []byte{0, 0, 0xff, 0xff})
				out, dist, err := cfInflate(d, payload, 1<<20)
				if err != nil || !bytes.Equal(out, data[5000:]) {
					t.Fatalf("%s level %d dict %v: %v (%d bytes)", kind, level, d != nil, err, len(out))
				}
				if dist > 32768 {
					t.Fatalf("distance %d", dist)
				}
			}
		}
	}
	// RFC 7692 §7.2.3.2: the second "Hello" is a 5-byte reference.
	if out, dist, err := cfInflate([]byte("Hello"), []byte{0xf2, 0x00, 0x11, 0x00, 0x00}, 100); err != nil || string(out) != "Hello" || dist != 5 {
		t.Fatalf("7.2.3.2: %q %d %v", out, dist, err)
	}
	// Without the history the same reference is refused.
	if _, _, err := cfInflate(nil, []byte{0xf2, 0x00, 0x11, 0x00, 0x00}, 100); err == nil {
		t.Fatal("reference into missing history accepted")
	}
	if _, _, err := cfInflate(nil, []byte{0xff, 0xff}, 100); err == nil {
		t.Fatal("block type 3 accepted")
	}
	if _, _, err := cfInflate(nil, bytes.Repeat([]byte{0}, 10), 100); err == nil {
		t.Fatal("garbage accepted")
	}
}
