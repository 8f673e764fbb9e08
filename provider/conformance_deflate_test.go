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
// of internal/testdeflate, and cf.Inflater holds the Provider to the LZ77
// window it agreed to.

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/testdeflate"
	tv "github.com/networkcluster/networkcluster/internal/testvectors"
	"github.com/networkcluster/networkcluster/internal/wstest"
	cf "github.com/networkcluster/networkcluster/internal/wstest/conformance"
)

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
	in     *cf.Inflater // inflates the Provider's messages, holding it to its window
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
	d := &cfDeflate{offers: offers, resp: resp}
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
	inBits := 15
	if resp.ServerMaxWindowBits > 0 {
		inBits = resp.ServerMaxWindowBits
	}
	d.in = cf.Client.Inflater(inBits, !resp.ServerNoContextTakeover, 1<<20)
	s.Inflate = d.in.Inflate
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
	return cf.Client.Compressed(d.comp, op, msg, frag)
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
	for _, p := range append([]compress.Preset{compress.Disabled}, cf.Presets()...) {
		t.Run(p.String(), func(t *testing.T) {
			_, e, addr := cfEchoProvider(t, Options{Compressor: p})
			for _, c := range cases {
				var extra []string
				for _, h := range c.headers {
					extra = append(extra, "Sec-WebSocket-Extensions: "+h)
				}
				s := cfOpen(t, e, addr, "/connect", extra...)
				s.Where = "[" + c.rfc + ", " + c.name + "]"
				values := s.c.Resp.Header.Values("Sec-WebSocket-Extensions")
				resp, ok, err := compress.ParseResponse(values)
				if err != nil {
					s.Fatalf("response %q: %v", values, err)
				}
				if ok != (c.accept && p.Enabled()) {
					s.Fatalf("accepted=%v (%q), want %v", ok, values, c.accept && p.Enabled())
				}
				if ok {
					offers, _ := compress.ParseOffers(c.headers)
					cfCheckResponse(t, p, offers, resp)
				} else {
					// Declined: RSV1 stays reserved (RFC 6455 §5.2).
					s.Run(cf.Steps(cf.Send(wstest.Frame(true, frame.OpText, 4, []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})).Expect(cf.EvClose(frame.CloseProtocolError))))
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
}{{"json", frame.OpText}, {"html", frame.OpText}, {"text", frame.OpText}, {"bitmap", frame.OpBinary}, {"random", frame.OpBinary}}

// cfDeflateEcho sends msgs compressed (in fragments of frag bytes) and
// checks the compressed echoes.
func cfDeflateEcho(s *cfSession, d *cfDeflate, op frame.Opcode, msgs [][]byte, frag int) {
	s.T.Helper()
	var st []cf.Step
	for _, m := range msgs {
		want := cf.Echo(op, m)
		st = append(st, cf.Send(d.frames(op, m, frag)...).Expect(want))
	}
	for i, step := range st {
		s.WriteStep(step)
		got, err := s.Next()
		if err != nil {
			s.Fatalf("message %d: %v", i+1, err)
		}
		if !step.Want[0].Match(got) {
			s.Fatalf("message %d: got %v, want %v", i+1, got, step.Want[0])
		}
		if !got.Compressed {
			s.Fatalf("message %d: echo not compressed with CompressionThreshold -1", i+1)
		}
	}
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
		corpus[k.kind] = tv.Corpus(k.kind, 192<<10)
	}
	for pi, p := range cf.Presets() {
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
						s.Where = fmt.Sprintf("[12.%d.%d %s, RFC 7692 §6, §7.2]", i+1, j+1, k.kind)
						cfDeflateEcho(s, d, k.op, tv.Slices(corpus[k.kind], sz.size, 2, k.op == frame.OpText), sz.frag)
					}
					s.Where = fmt.Sprintf("[12.%d %s, RFC 6455 §7.1]", i+1, k.kind)
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
	json := tv.Corpus("json", 64<<10)
	sizes := []struct{ size, frag int }{{16, 0}, {300, 0}, {4096, 0}, {16384, 512}}
	for _, p := range cf.Presets() {
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
						s.Where = fmt.Sprintf("[%s.%d (%d), RFC 7692 §7.1]", o.ab, j+1, i)
						cfDeflateEcho(s, d, frame.OpText, tv.Slices(json, sz.size, 2, true), sz.frag)
					}
					s.Where = "[" + o.ab + ", RFC 6455 §7.1]"
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
		if op == frame.OpContinuation {
			r = 0
		}
		return wstest.Frame(fin, op, r, payload)
	}
	cases := []cf.Case{
		{AB: "-", RFC: "RFC 7692 §7.2.3.1", Name: "one compressed block", Steps: cf.Steps(cf.Send(rsv1(true, frame.OpText, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00)).Expect(cf.EvTextB(hello)))},
		{AB: "-", RFC: "RFC 7692 §7.2.3.1", Name: "one compressed block in 2 fragments", Steps: cf.Steps(cf.Send(rsv1(false, frame.OpText, 0xf2, 0x48, 0xcd), rsv1(true, frame.OpContinuation, 0xc9, 0xc9, 0x07, 0x00)).Expect(cf.EvTextB(hello)))},
		{AB: "-", RFC: "RFC 7692 §7.2.3.2", Name: "second message refers to the first (context takeover)", Steps: cf.Steps(
			cf.Send(rsv1(true, frame.OpText, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00)).Expect(cf.EvTextB(hello)),
			cf.Send(rsv1(true, frame.OpText, 0xf2, 0x00, 0x11, 0x00, 0x00)).Expect(cf.EvTextB(hello)))},
		{AB: "-", RFC: "RFC 7692 §7.2.3.3", Name: "stored block", Steps: cf.Steps(cf.Send(rsv1(true, frame.OpText, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00)).Expect(cf.EvTextB(hello)))},
		{AB: "-", RFC: "RFC 7692 §7.2.3.4", Name: "block with BFINAL set", Steps: cf.Steps(cf.Send(rsv1(true, frame.OpText, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00)).Expect(cf.EvTextB(hello)))},
		{AB: "-", RFC: "RFC 7692 §7.2.3.5", Name: "two blocks", Steps: cf.Steps(cf.Send(rsv1(true, frame.OpText, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00)).Expect(cf.EvTextB(hello)))},
		{AB: "-", RFC: "RFC 7692 §7.2.3.3, §7.2.1", Name: "empty message as an empty stored block", Steps: cf.Steps(cf.Send(rsv1(true, frame.OpBinary, 0x00)).Expect(cf.EvBin([]byte{})))},
		{AB: "-", RFC: "RFC 7692 §6", Name: "uncompressed message on a compressed connection", Steps: cf.Steps(cf.Send(cf.Client.F(true, frame.OpText, "plain")).Expect(cf.EvText("plain")))},
	}
	for _, c := range cases {
		t.Run(c.Title()+" "+c.RFC, func(t *testing.T) {
			s, d := cfDeflateOpen(t, e, addr, p, offer)
			if d == nil || d.resp.ClientNoContextTakeover {
				t.Fatalf("want context takeover accepted, got %v", d)
			}
			s.Where = "[" + c.RFC + "]"
			s.Run(c.Steps)
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
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	history := tv.Binary(2000, 9)
	type errCase struct {
		rfc, name string
		build     func(d *cfDeflate) []cf.Step
	}
	cases := []errCase{
		{"RFC 7692 §6.1", "RSV1 on a continuation frame", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(false, frame.OpText, 4, hello[:3]), wstest.Frame(true, frame.OpContinuation, 4, hello[3:])).Expect(cf.EvClose(bad)))
		}},
		{"RFC 7692 §6.1, RFC 6455 §5.5", "RSV1 on a ping", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpPing, 4, nil)).Expect(cf.EvClose(bad)))
		}},
		{"RFC 7692 §6.1", "RSV1 on a close", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpClose, 4, frame.AppendClose(nil, 1000, ""))).Expect(cf.EvClose(bad)))
		}},
		{"RFC 6455 §5.2", "RSV2 on a compressed frame", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpText, 6, hello)).Expect(cf.EvClose(bad)))
		}},
		{"RFC 7692 §7.2.2", "corrupt deflate data (block type 3)", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpBinary, 4, []byte{0xff, 0xff, 0xff})).Expect(cf.EvClose(inval)))
		}},
		{"RFC 7692 §7.2.2", "truncated deflate data", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(6, nil, tv.Corpus("json", 3000))[:200])).Expect(cf.EvClose(inval)))
		}},
		{"RFC 7692 §7.2.3.4", "data after a final block", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpText, 4, []byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00})).Expect(cf.EvClose(inval)))
		}},
		{"RFC 6455 §8.1, RFC 7692 §6", "compressed text that inflates to invalid UTF-8", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(d.frames(frame.OpText, []byte(tv.KosmeBad), 0)...).Expect(cf.EvClose(inval)))
		}},
		{"RFC 6455 §8.1, RFC 7692 §6", "compressed text ending inside a character", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(d.frames(frame.OpText, []byte("abc\xe2\x82"), 0)...).Expect(cf.EvClose(inval)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "compression bomb: 1 MiB of zeros in a few hundred bytes", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(9, nil, make([]byte, 1<<20)))).Expect(cf.EvClose(frame.CloseTooBig)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "inflates to exactly the limit", func(d *cfDeflate) []cf.Step {
			z := make([]byte, max)
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(9, nil, z))).Expect(cf.EvBin(z)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "inflates to the limit + 1", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(wstest.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(9, nil, make([]byte, max+1)))).Expect(cf.EvClose(frame.CloseTooBig)))
		}},
		{"RFC 7692 §7.1.2.2", "back-reference beyond the client window the Provider asked for", func(d *cfDeflate) []cf.Step {
			if d.resp.ClientMaxWindowBits != 9 {
				panic(fmt.Sprintf("want client_max_window_bits=9, got %v", d.resp))
			}
			// 2000 bytes stored, then a message made of their first 200
			// bytes as a back-reference 2000 bytes long: beyond 512.
			return cf.Steps(
				cf.Send(wstest.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(0, nil, history))).Expect(cf.EvBin(history)),
				cf.Send(wstest.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(9, history, history[:200]))).Expect(cf.EvClose(inval)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, d := cfDeflateOpen(t, e, addr, pre, offer)
			if d == nil {
				t.Fatal("declined")
			}
			s.Where = "[-, " + c.rfc + "]"
			s.Run(c.build(d))
		})
	}
}
