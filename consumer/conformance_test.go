package consumer

// Conformance cases of our own after the sections of Autobahn|Testsuite in
// its fuzzingserver mode (the suite is the server, the Consumer the client
// under test): framing (1), pings and pongs (2), reserved bits (3), opcodes
// (4), fragmentation (5), UTF-8 (6), closing (7), limits and large messages
// (9), auto-fragmentation (10) and permessage-deflate (12, 13) for every
// preset; the tables of sections 1 to 10 are shared with the Provider's
// cases (internal/wstest/conformance). Each case names the Autobahn case
// it follows (our own cases say "-") and the RFC section that decides what
// the Consumer must do. A raw
// test server (conformance_runner_test.go) upgrades the connection itself
// and sends exactly the frames of each case; the Consumer's OnMessage sends
// every message back (or, for the large messages of section 9, a digest of
// it), so the server sees what was delivered, in order.

import (
	"errors"
	"fmt"
	"io"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/testdeflate"
	tv "github.com/networkcluster/networkcluster/internal/testvectors"
	cf "github.com/networkcluster/networkcluster/internal/wstest/conformance"
)

// TestConformance runs sections 1 to 7 and 10 against Consumers of one
// test server.
func TestConformance(t *testing.T) {
	srv := cfListen(t)
	sections := []struct {
		name  string
		cases []cf.Case
	}{
		{"1 framing", cf.Section1(cf.Server)},
		{"2 pings and pongs", cf.Section2(cf.Server)},
		{"3 reserved bits", cf.Section3(cf.Server)},
		{"4 opcodes", cf.Section4(cf.Server)},
		{"5 fragmentation", cf.Section5(cf.Server)},
		{"6 UTF-8", append(cfSection6Strict(), cfSection6Stream()...)},
		{"7 close", cf.Section7(cf.Server)},
		{"10 auto-fragmentation", cfSection10()},
	}
	for _, sec := range sections {
		t.Run(sec.name, func(t *testing.T) { cfRun(t, srv, cfEcho, nil, sec.cases) })
	}
}

// TestConformanceEarlyFrames: frames that arrive in the same packet as the
// upgrade response are not lost (RFC 6455 §4.1: the server may send data
// as soon as it has sent its response).
func TestConformanceEarlyFrames(t *testing.T) {
	srv := cfListen(t)
	_, rec, connected := cfStartConsumer(t, srv, cfEcho, nil)
	s := cfAccept(t, srv, rec)
	s.Where = "[-, RFC 6455 §4.1]"
	// The frames go in the same write as the response.
	s.upgradeWith(append(cf.Server.F(true, frame.OpText, "early"), cf.Server.F(true, frame.OpPing, "bird")...))
	if err := <-connected; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	s.Run(cf.Steps(cf.Want(cf.EvText("early"), cf.EvPong("bird"))))
}

// TestConformanceConsumerClose: the Consumer starts the closing handshake
// with Close (RFC 6455 §7.1.2): close 1000, nothing after it, it waits for
// the server's close and for the server to close TCP first (§7.1.1), and
// it reports 1000.
func TestConformanceConsumerClose(t *testing.T) {
	srv := cfListen(t)
	closed := make(chan cfDisc, 1)
	c, s := cfConnect(t, srv, cfEcho, func(o *Options) {
		o.OnClose = func(code frame.CloseCode, reason string) { closed <- cfDisc{code, reason} }
		o.CloseTimeout = 5 * time.Second
	})
	s.Where = "[-, RFC 6455 §7.1.2]"
	s.WriteStep(cf.Send(cf.Server.F(true, frame.OpText, "hi")))
	if got, err := s.Next(); err != nil || !cf.EvText("hi").Match(got) {
		s.Fatalf("echo: %v, %v", got, err)
	}
	done := make(chan struct{})
	go func() { c.Close(); close(done) }()
	got, err := s.Next()
	if err != nil || got.Kind != cf.KindClose || got.Codes[0] != frame.CloseNormal {
		s.Fatalf("got %v, %v; want close 1000", got, err)
	}
	select {
	case <-done:
		s.Fatalf("Close returned before the server answered")
	default:
	}
	s.Answer()
	s.finish()
	<-done
	if ev := <-closed; ev.code != frame.CloseNormal {
		t.Fatalf("OnClose %v", ev)
	}
}

// cfSection6Strict is section 6 with 6.4.3 and 6.4.4 held to Autobahn's
// STRICT verdict: the Consumer checks a frame that fits its read buffer as
// its bytes arrive, so it fails the connection at the piece holding the bad
// byte, before the rest of the frame is written (the shared table accepts a
// failure at the frame's end, rated NON-STRICT).
func cfSection6Strict() []cf.Case {
	const rfc = "RFC 6455 §8.1"
	inval := frame.CloseInvalidPayload
	f := cf.Server.F(true, frame.OpText, tv.Kosme+"\xf4\x90\x80\x80edited")
	bad := cf.Server.HeaderSize(len(tv.Kosme)+4+6) + len(tv.Kosme) // the offset of the bad bytes
	st3 := cf.Each(f[:bad], f[bad:bad+4]).Expect(cf.EvClose(inval))
	st3.Trail = [][]byte{f[bad+4:]}
	st4 := cf.Each(f[:bad], f[bad:bad+1], f[bad+1:bad+2]).Expect(cf.EvClose(inval))
	st4.Trail = [][]byte{f[bad+2:]}
	var cs []cf.Case
	for _, c := range cf.Section6(cf.Server) {
		if c.AB != "6.4.3" && c.AB != "6.4.4" {
			cs = append(cs, c)
		}
	}
	return append(cs,
		cf.Case{AB: "6.4.3", RFC: rfc, Name: "one frame written in 3 pieces: failed at the 2nd, which holds the bad bytes (STRICT)", Steps: cf.Steps(st3)},
		cf.Case{AB: "6.4.4", RFC: rfc, Name: "one frame written in 4 pieces: failed at the 3rd, 0x90 after a lone 0xf4 (STRICT)", Steps: cf.Steps(st4)},
	)
}

// cfSection6Stream: the Consumer reads a frame larger than its read buffer
// in pieces and checks each piece as it arrives, so it fails fast inside
// one frame too (Autobahn's 6.4.3 and 6.4.4 rate this STRICT).
func cfSection6Stream() []cf.Case {
	const rfc = "RFC 6455 §8.1"
	inval := frame.CloseInvalidPayload
	// A 64 KiB text frame whose byte 6000 is invalid; 8000 bytes are sent,
	// the rest only once the Consumer has failed the connection.
	bad := tv.Text(64 << 10)
	bad[6000] = 0xff
	f := cf.Server.FB(true, frame.OpText, bad)
	st := cf.Send(f[:8000]).Expect(cf.EvClose(inval))
	for off := 8000; off < len(f); off += 16 << 10 {
		st.Trail = append(st.Trail, f[off:min(off+16<<10, len(f))])
	}
	split := tv.Text(64 << 10)
	copy(split[5000:], "\xf4\x90\x80\x80") // U+110000, inside one frame
	g := cf.Server.FB(true, frame.OpText, split)
	n := frame.HeaderSize(int64(len(split)), false)
	// The first piece ends with 0xf4 (valid so far), the second is 0x90.
	st2 := cf.Each(g[:n+5001], g[n+5001:n+5002]).Expect(cf.EvClose(inval))
	st2.Trail = [][]byte{g[n+5002:]}
	return []cf.Case{
		{AB: "6.4.3", RFC: rfc, Name: "fail fast inside a 64 KiB frame: the rest of the frame is not needed", Steps: cf.Steps(st)},
		{AB: "6.4.4", RFC: rfc, Name: "fail fast inside a 64 KiB frame at the byte that breaks a character", Steps: cf.Steps(st2)},
	}
}

// cfSection10 is section 10 and the Consumer's own large send: one frame,
// written in pieces.
func cfSection10() []cf.Case {
	p := tv.Binary(1<<20, 11)
	return append(cf.Section10(cf.Server), cf.Case{AB: "-", RFC: "RFC 6455 §5.4", Name: "binary of 1 MiB in fragments of 4096, echoed as one large frame",
		Steps: cf.Steps(cf.Send(cf.Server.Fragments(frame.OpBinary, 0, p, 4096)...).Expect(cf.EvBin(p)))})
}

// --- section 9: limits and large messages ---

// TestConformanceLimits follows section 9: a Consumer with its default
// 16 MiB limit gets the messages of cf.Section9 and answers each with a
// digest. The limit is checked on a Consumer whose MaxPayloadLength is 1 MiB
// (RFC 6455 §10.4: a larger message fails the connection with 1009,
// §7.4.1).
func TestConformanceLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("large messages")
	}
	srv := cfListen(t)
	digest := func(_ frame.Opcode, p []byte) cf.Event { return cf.EvText(cfDigestOf(p)) }
	t.Run("16 MiB", func(t *testing.T) { cfRun(t, srv, cfDigest, nil, cf.Section9(cf.Server, digest)) })
	const max = 1 << 20
	t.Run("limit", func(t *testing.T) {
		cfRun(t, srv, cfDigest, func(o *Options) { o.MaxPayloadLength = max }, cf.LimitCases(cf.Server, max, "MaxPayloadLength", digest))
	})
}

// --- sections 12, 13: permessage-deflate ---

// cfResponses are the responses a server may give to offer, after the
// server sides of Autobahn's section 13 (accept as offered; ask for no
// client context; ask for a client window of 8 or 15 bits; both) and ours
// (no server context, or a smaller server window, without being asked).
func cfResponses(offer compress.Params) []struct {
	ab   string
	resp compress.Params
} {
	base := compress.Params{ServerNoContextTakeover: offer.ServerNoContextTakeover, ServerMaxWindowBits: offer.ServerMaxWindowBits}
	type r = struct {
		ab   string
		resp compress.Params
	}
	out := []r{{"13.1", base}}
	noCtx := base
	noCtx.ClientNoContextTakeover = true
	out = append(out, r{"13.2", noCtx})
	if offer.ClientMaxWindowBits != 0 {
		b8, b15 := base, base
		b8.ClientMaxWindowBits = 8
		b15.ClientMaxWindowBits = 15
		if offer.ClientMaxWindowBits > 0 {
			b15.ClientMaxWindowBits = offer.ClientMaxWindowBits
		}
		n8, n15 := b8, b15
		n8.ClientNoContextTakeover, n15.ClientNoContextTakeover = true, true
		out = append(out, r{"13.3", b8}, r{"13.4", b15}, r{"13.5", n8}, r{"13.6", n15})
	}
	sctx := base
	sctx.ServerNoContextTakeover = true
	small := base
	small.ServerMaxWindowBits = 9
	if base.ServerMaxWindowBits > 0 && base.ServerMaxWindowBits < 9 {
		small.ServerMaxWindowBits = base.ServerMaxWindowBits
	}
	return append(out, r{"-", sctx}, r{"-", small})
}

// cfDeflate is the server's side of a permessage-deflate connection.
type cfDeflate struct {
	offer compress.Params
	resp  compress.Params
	comp  *compress.Compressor
	in    *cf.Inflater // inflates the Consumer's messages, holding it to its window
}

// cfDeflateConnect connects a Consumer with preset p, answers its offer
// with resp and sets up the server's codec.
func cfDeflateConnect(t *testing.T, srv *cfServer, p compress.Preset, resp compress.Params, mod func(o *Options)) (*Consumer, *cfSession, *cfDeflate) {
	t.Helper()
	c, s := cfConnect(t, srv, cfEcho, func(o *Options) {
		o.Compressor = p
		o.CompressionThreshold = 1
		if mod != nil {
			mod(o)
		}
	}, "Sec-WebSocket-Extensions: "+resp.String())
	offers, err := compress.ParseOffers(s.req.Header.Values("Sec-WebSocket-Extensions"))
	if err != nil || len(offers) != 1 || offers[0].Err != nil {
		t.Fatalf("the Consumer's offer %q: %v %v", s.req.Header.Values("Sec-WebSocket-Extensions"), offers, err)
	}
	d := &cfDeflate{offer: offers[0], resp: resp}
	bits := 15
	if resp.ServerMaxWindowBits > 0 {
		bits = resp.ServerMaxWindowBits
	}
	d.comp = compress.NewCompressor(compress.Config{CompressWindowBits: bits, CompressContextTakeover: !resp.ServerNoContextTakeover, CompressMemLevel: 8})
	t.Cleanup(d.comp.Release)
	inBits := 15
	if resp.ClientMaxWindowBits > 0 {
		inBits = resp.ClientMaxWindowBits
	}
	// The Consumer keeps to the response and to its own offer's hint.
	d.in = cf.Server.Inflater(inBits, !resp.ClientNoContextTakeover && !d.offer.ClientNoContextTakeover, 64<<20)
	s.deflate, s.Inflate = true, d.in.Inflate
	return c, s, d
}

// frames returns the frames of a compressed message in fragments of frag
// bytes of compressed payload (0: one frame), RSV1 on the first.
func (d *cfDeflate) frames(op frame.Opcode, msg []byte, frag int) [][]byte {
	return cf.Server.Compressed(d.comp, op, msg, frag)
}

// cfDeflateEcho sends msgs compressed (in fragments of frag bytes) and
// checks the compressed echoes.
func cfDeflateEcho(s *cfSession, d *cfDeflate, op frame.Opcode, msgs [][]byte, frag int) {
	s.T.Helper()
	for i, m := range msgs {
		want := cf.Echo(op, m)
		s.WriteStep(cf.Send(d.frames(op, m, frag)...))
		got, err := s.Next()
		if err != nil {
			s.Fatalf("message %d: %v", i+1, err)
		}
		if !want.Match(got) {
			s.Fatalf("message %d: got %v, want %v", i+1, got, want)
		}
		if len(m) > 0 && !got.Compressed {
			s.Fatalf("message %d: echo of %d bytes not compressed with CompressionThreshold 1", i+1, len(m))
		}
	}
}

// TestConformanceDeflate follows sections 12 and 13 with the roles of
// Autobahn's fuzzingserver: for every preset of the Consumer, the server
// answers its offer in each way Autobahn's server does (and two more),
// then sends compressed messages, whole and auto-fragmented, which the
// Consumer inflates and sends back compressed. Under the first response
// the kinds and sizes of section 12 (16 B to 128 KiB) rotate over the
// presets.
func TestConformanceDeflate(t *testing.T) {
	kinds := []struct {
		kind string
		op   frame.Opcode
	}{{"json", frame.OpText}, {"html", frame.OpText}, {"text", frame.OpText}, {"bitmap", frame.OpBinary}, {"random", frame.OpBinary}}
	corpus := map[string][]byte{}
	for _, k := range kinds {
		corpus[k.kind] = tv.Corpus(k.kind, 192<<10)
	}
	sizes12 := []struct{ size, frag int }{
		{16, 0}, {64, 0}, {256, 0}, {1024, 0}, {4096, 0}, {8192, 0}, {16384, 0}, {32768, 0}, {65536, 0}, {131072, 0},
		{8192, 256}, {16384, 256}, {32768, 256}, {65536, 256}, {131072, 256}, {131072, 1024}, {131072, 4096}, {131072, 32768},
	}
	sizes13 := []struct{ size, frag int }{{16, 0}, {300, 0}, {4096, 256}}
	srv := cfListen(t)
	for pi, p := range cf.Presets() {
		t.Run(p.String(), func(t *testing.T) {
			for ri, r := range cfResponses(p.Offer()) {
				t.Run(fmt.Sprintf("%s response %q", r.ab, r.resp.String()), func(t *testing.T) {
					_, s, d := cfDeflateConnect(t, srv, p, r.resp, nil)
					for j, sz := range sizes13 {
						s.Where = fmt.Sprintf("[%s.%d, RFC 7692 §7.1]", r.ab, j+1)
						cfDeflateEcho(s, d, frame.OpText, tv.Slices(corpus["json"], sz.size, 2, true), sz.frag)
					}
					if ri == 0 {
						// Section 12: one kind of data per size and preset.
						for j, sz := range sizes12 {
							if sz.size > 4096 && (j+pi)%4 != 0 && j != 9 {
								continue
							}
							k := kinds[(j+pi)%len(kinds)]
							s.Where = fmt.Sprintf("[12.%d.%d %s, RFC 7692 §6, §7.2]", (j+pi)%len(kinds)+1, j+1, k.kind)
							cfDeflateEcho(s, d, k.op, tv.Slices(corpus[k.kind], sz.size, 2, k.op == frame.OpText), sz.frag)
						}
					}
					s.Where = "[" + r.ab + ", RFC 6455 §7.1]"
					s.finish()
				})
			}
		})
	}
}

// TestConformanceDeflateResponses: a response the Consumer cannot accept
// fails the connection before it opens (RFC 6455 §4.1, §9.1; RFC 7692 §5,
// §7.1): it sends a close frame and never reports the connection open.
func TestConformanceDeflateResponses(t *testing.T) {
	srv := cfListen(t)
	pre := compress.DedicatedCompressor4KB | compress.DedicatedDecompressor4KB // offers client_max_window_bits=9; server_max_window_bits=12
	shared := compress.SharedCompressor | compress.SharedDecompressor          // offers server_no_context_takeover; client_no_context_takeover
	cases := []struct {
		rfc, name string
		preset    compress.Preset
		header    string
	}{
		{"RFC 6455 §9.1", "an extension that was not offered", pre, "x-foo"},
		{"RFC 6455 §4.1", "permessage-deflate when nothing was offered", compress.Disabled, "permessage-deflate"},
		{"RFC 7692 §5", "two permessage-deflate elements", pre, "permessage-deflate; server_max_window_bits=12, permessage-deflate; server_max_window_bits=12"},
		{"RFC 7692 §5", "an unknown parameter", pre, "permessage-deflate; server_max_window_bits=12; foo"},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits above the offered 12", pre, "permessage-deflate; server_max_window_bits=13"},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits missing though offered", pre, "permessage-deflate"},
		{"RFC 7692 §7.1.2.1", "server_max_window_bits=7", pre, "permessage-deflate; server_max_window_bits=7"},
		{"RFC 7692 §7.1.2.2", "client_max_window_bits above the offered 9", pre, "permessage-deflate; server_max_window_bits=12; client_max_window_bits=10"},
		{"RFC 7692 §7.1.2.2", "client_max_window_bits without a value", pre, "permessage-deflate; server_max_window_bits=12; client_max_window_bits"},
		{"RFC 7692 §7.1.2.2", "client_max_window_bits that was not offered", shared, "permessage-deflate; server_no_context_takeover; client_max_window_bits=10"},
		{"RFC 7692 §7.1.1.1", "server_no_context_takeover missing though offered", shared, "permessage-deflate"},
		{"RFC 7692 §7.1.1.1", "server_no_context_takeover with a value", shared, "permessage-deflate; server_no_context_takeover=1"},
		{"RFC 7692 §7", "a duplicate parameter", shared, "permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, rec, connected := cfStartConsumer(t, srv, cfEcho, func(o *Options) { o.Compressor = c.preset })
			s := cfAccept(t, srv, rec)
			s.Where = "[-, " + c.rfc + "]"
			s.upgrade("Sec-WebSocket-Extensions: " + c.header)
			// The connection is not established yet, so failing it may
			// mean closing TCP without a close frame (RFC 6455 §4.1,
			// §7.1.7); a close frame, if any, carries 1010 or 1002.
			got, err := s.Next()
			switch {
			case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
			case err != nil:
				s.Fatalf("waiting for the Consumer to fail the connection: %v", err)
			case !cf.EvClose(frame.CloseMandatoryExtension, frame.CloseProtocolError).Match(got):
				s.Fatalf("got %v, want close 1010 or 1002, or TCP closed", got)
			}
			select {
			case err := <-connected:
				s.Fatalf("Connect returned %v for a connection that must not open", err)
			default:
			}
			rec.mu.Lock()
			opens := rec.opens
			rec.mu.Unlock()
			if opens != 0 {
				s.Fatalf("OnOpen ran")
			}
		})
	}
}

// TestConformanceDeflateErrors: what a Consumer with permessage-deflate
// must refuse, and the examples of RFC 7692 §7.2.3 byte for byte.
func TestConformanceDeflateErrors(t *testing.T) {
	srv := cfListen(t)
	const max = 64 << 10
	hello := []byte{0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}
	history := tv.Binary(2000, 9)
	rsv1 := func(fin bool, op frame.Opcode, payload ...byte) []byte {
		r := byte(4)
		if op == frame.OpContinuation {
			r = 0
		}
		return cf.Server.Frame(fin, op, r, payload)
	}
	// A Consumer that keeps the server's context, in a 512-byte window.
	pre := compress.DedicatedCompressor4KB | compress.DedicatedDecompressor512B
	resp := compress.Params{ServerMaxWindowBits: 9, ClientMaxWindowBits: 9}
	bad, inval := frame.CloseProtocolError, frame.CloseInvalidPayload
	helloEv := cf.EvText("Hello")
	cases := []struct {
		rfc, name string
		build     func(d *cfDeflate) []cf.Step
	}{
		{"RFC 7692 §7.2.3.1", "one compressed block", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(rsv1(true, frame.OpText, hello...)).Expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.1", "one compressed block in 2 fragments", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(rsv1(false, frame.OpText, hello[:3]...), rsv1(true, frame.OpContinuation, hello[3:]...)).Expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.2", "second message refers to the first (context takeover)", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(rsv1(true, frame.OpText, hello...)).Expect(helloEv), cf.Send(rsv1(true, frame.OpText, 0xf2, 0x00, 0x11, 0x00, 0x00)).Expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.3", "stored block", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(rsv1(true, frame.OpText, 0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00)).Expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.4", "block with BFINAL set", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(rsv1(true, frame.OpText, 0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00)).Expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.5", "two blocks", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(rsv1(true, frame.OpText, 0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00)).Expect(helloEv))
		}},
		{"RFC 7692 §7.2.3.3, §7.2.1", "empty message as an empty stored block", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(rsv1(true, frame.OpBinary, 0x00)).Expect(cf.EvBin([]byte{})))
		}},
		{"RFC 7692 §6", "uncompressed message on a compressed connection", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(cf.Server.F(true, frame.OpText, "plain")).Expect(cf.EvText("plain")))
		}},
		{"RFC 7692 §6.1", "RSV1 on a continuation frame", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(cf.Server.Frame(false, frame.OpText, 4, hello[:3]), cf.Server.Frame(true, frame.OpContinuation, 4, hello[3:])).Expect(cf.EvClose(bad)))
		}},
		{"RFC 7692 §6.1, RFC 6455 §5.5", "RSV1 on a ping", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(cf.Server.Frame(true, frame.OpPing, 4, nil)).Expect(cf.EvClose(bad)))
		}},
		{"RFC 6455 §5.2", "RSV2 on a compressed frame", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(cf.Server.Frame(true, frame.OpText, 6, hello)).Expect(cf.EvClose(bad)))
		}},
		{"RFC 7692 §7.2.2", "corrupt deflate data (block type 3)", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(cf.Server.Frame(true, frame.OpBinary, 4, []byte{0xff, 0xff, 0xff})).Expect(cf.EvClose(inval)))
		}},
		{"RFC 7692 §7.2.3.4", "data after a final block", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(cf.Server.Frame(true, frame.OpText, 4, append([]byte{0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00}, hello...))).Expect(cf.EvClose(inval)))
		}},
		{"RFC 6455 §8.1, RFC 7692 §6", "compressed text that inflates to invalid UTF-8", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(d.frames(frame.OpText, []byte(tv.KosmeBad), 0)...).Expect(cf.EvClose(inval)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "compression bomb: 1 MiB of zeros in a few hundred bytes", func(d *cfDeflate) []cf.Step {
			return cf.Steps(cf.Send(cf.Server.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(9, nil, make([]byte, 1<<20)))).Expect(cf.EvClose(frame.CloseTooBig)))
		}},
		{"RFC 6455 §7.4.1, §10.4", "inflates to exactly the limit", func(d *cfDeflate) []cf.Step {
			z := make([]byte, max)
			return cf.Steps(cf.Send(cf.Server.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(9, nil, z))).Expect(cf.EvBin(z)))
		}},
		{"RFC 7692 §7.1.2.1", "back-reference beyond the server window the Consumer asked for", func(d *cfDeflate) []cf.Step {
			// 2000 bytes stored, then their first 200 bytes as a
			// back-reference 2000 bytes long: beyond 512.
			return cf.Steps(
				cf.Send(cf.Server.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(0, nil, history))).Expect(cf.EvBin(history)),
				cf.Send(cf.Server.Frame(true, frame.OpBinary, 4, testdeflate.Deflate(9, history, history[:200]))).Expect(cf.EvClose(inval)))
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, s, d := cfDeflateConnect(t, srv, pre, resp, func(o *Options) { o.MaxPayloadLength = max })
			s.Where = "[-, " + c.rfc + "]"
			s.Run(c.build(d))
		})
	}
}
