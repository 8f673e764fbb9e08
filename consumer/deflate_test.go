package consumer

import (
	"bytes"
	"compress/flate"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/httphead"
	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
)

// The test server's permessage-deflate is gobwas/ws/wsflate over the
// standard library's compress/flate: an implementation independent of the
// compress package. Context takeover is covered by the Node interop tests.

const sharedPreset = compress.SharedCompressor | compress.SharedDecompressor

func TestDeflateEcho(t *testing.T) {
	s := newTestServer(t, srvOpts{deflate: true})
	c, ev := newConsumer(t, s.port, func(o *Options) { o.Compressor = sharedPreset })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	small := "tiny"                                                  // below the threshold: sent uncompressed
	json := strings.Repeat(`{"job":"resize","args":[640,480]},`, 40) // ~1.4 kB: compressed
	big := bytes.Repeat([]byte("compressible binary payload "), 40000)
	for _, send := range []func() error{
		func() error { return c.Send(small) },
		func() error { return c.Send(json) },
		func() error { return c.SendBinary(big) },
	} {
		if err := send(); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, 10*time.Second, "3 echoes", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 3 })
	_, _, _, errs, msgs := ev.snapshot()
	if string(msgs[0].Data) != small || string(msgs[1].Data) != json || !bytes.Equal(msgs[2].Data, big) || !msgs[2].Binary {
		t.Fatalf("echoes differ: %d/%d/%d bytes", len(msgs[0].Data), len(msgs[1].Data), len(msgs[2].Data))
	}
	if n := s.compressed.Load(); n != 2 {
		t.Fatalf("the server received %d compressed messages, want 2 (the small one goes out plain)", n)
	}
	if len(errs) != 0 {
		t.Fatalf("errors %v", errs)
	}
}

func TestDeflateDeclined(t *testing.T) {
	s := newTestServer(t, srvOpts{})
	c, ev := newConsumer(t, s.port, func(o *Options) { o.Compressor = compress.DedicatedCompressor | compress.DedicatedDecompressor })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	msg := strings.Repeat("x", 5000)
	if err := c.Send(msg); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the echo", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 1 })
	if s.compressed.Load() != 0 {
		t.Fatal("compressed a message on a connection without permessage-deflate")
	}
}

func TestDeflateBadResponse(t *testing.T) {
	// The server answers with client_max_window_bits, which the shared
	// preset did not offer: the Consumer must fail the connection (RFC 7692
	// §7.1.2.2) and retry per the policy.
	s := newTestServer(t, srvOpts{negotiate: func(o httphead.Option) (httphead.Option, error) {
		resp := httphead.Option{Name: o.Name}
		resp.Parameters.Set([]byte("client_max_window_bits"), []byte("10"))
		return resp, nil
	}})
	c, ev := newConsumer(t, s.port, func(o *Options) {
		o.Compressor = sharedPreset
		o.Reconnect = Reconnect{Interval: 5 * time.Millisecond, MaxAttempts: 2}
	})
	err := c.Connect(ctxT(t, 5*time.Second))
	if !errors.Is(err, ErrGaveUp) || !errors.Is(err, compress.ErrNegotiation) {
		t.Fatalf("Connect = %v, want ErrGaveUp wrapping compress.ErrNegotiation", err)
	}
	if o, _, _, _, _ := ev.snapshot(); o != 0 {
		t.Fatalf("%d opens", o)
	}
	waitFor(t, 5*time.Second, "the close frames", func() bool { return len(s.closeCodes()) == 2 })
	if s.closeCodes()[0] != 1010 {
		t.Fatalf("close codes %v, want 1010", s.closeCodes())
	}
}

// deflateRaw compresses p as a permessage-deflate payload (stdlib flate,
// sync flush, tail stripped).
func deflateRaw(t testing.TB, p []byte) []byte {
	var b bytes.Buffer
	w, _ := flate.NewWriter(&b, flate.BestCompression)
	w.Write(p)
	w.Flush()
	out := b.Bytes()
	if !bytes.HasSuffix(out, []byte{0, 0, 0xff, 0xff}) {
		t.Fatal("no sync marker")
	}
	return out[:len(out)-4]
}

func TestDeflateViolations(t *testing.T) {
	bomb := deflateRaw(t, make([]byte, 10<<20)) // 10 MiB of zeros in ~10 kB
	cases := []struct {
		name  string
		frame []byte
		code  frame.CloseCode
	}{
		{"inflates over MaxPayloadLength", rawFrame(true, 4, 2, false, bomb), frame.CloseTooBig},
		{"corrupt deflate", rawFrame(true, 4, 2, false, []byte{0xff, 0xff, 0xff, 0x00}), frame.CloseInvalidPayload},
		{"inflated text not UTF-8", rawFrame(true, 4, 1, false, deflateRaw(t, []byte("ok\xff"))), frame.CloseInvalidPayload},
		{"inflated text cut mid-character", rawFrame(true, 4, 1, false, deflateRaw(t, []byte("ok\xc3"))), frame.CloseInvalidPayload},
		{"RSV1 on a continuation", append(rawFrame(false, 4, 1, false, deflateRaw(t, []byte("a"))), rawFrame(true, 4, 0, false, nil)...), frame.CloseProtocolError},
		{"RSV1 on a ping", rawFrame(true, 4, 9, false, nil), frame.CloseProtocolError},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, srvOpts{deflate: true, onOpen: func(sc *srvConn) { _ = sc.writeRaw(tc.frame) }})
			c, ev := newConsumer(t, s.port, func(o *Options) {
				o.Compressor = sharedPreset
				o.MaxPayloadLength = 1 << 20
				o.Reconnect.Interval = time.Hour
			})
			if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the disconnect", func() bool { _, d, _, _, _ := ev.snapshot(); return len(d) == 1 })
			_, disc, _, _, msgs := ev.snapshot()
			if disc[0].code != int(tc.code) || len(msgs) != 0 {
				t.Fatalf("disconnect %v, %d messages; want code %d", disc[0], len(msgs), tc.code)
			}
			waitFor(t, 5*time.Second, "the close frame", func() bool { return len(s.closeCodes()) == 1 })
			if got := s.closeCodes()[0]; int(got) != int(tc.code) {
				t.Fatalf("server got close %d", got)
			}
		})
	}
}

func TestDeflateFragmented(t *testing.T) {
	// A compressed message in three fragments (RSV1 on the first only),
	// with a ping between them.
	text := strings.Repeat("fragmented and compressed ", 200)
	z := deflateRaw(t, []byte(text))
	third := len(z) / 3
	var b []byte
	b = append(b, rawFrame(false, 4, 1, false, z[:third])...)
	b = append(b, rawFrame(true, 0, 9, false, nil)...)
	b = append(b, rawFrame(false, 0, 0, false, z[third:2*third])...)
	b = append(b, rawFrame(true, 0, 0, false, z[2*third:])...)
	s := newTestServer(t, srvOpts{deflate: true, onOpen: func(sc *srvConn) { _ = sc.writeRaw(b) }})
	c, ev := newConsumer(t, s.port, func(o *Options) { o.Compressor = sharedPreset })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the message", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 1 })
	if _, _, _, _, m := ev.snapshot(); string(m[0].Data) != text {
		t.Fatalf("got %.40q…", m[0].Data)
	}
}

func TestDeflateAllocatesNothing(t *testing.T) {
	if raceEnabled {
		t.Skip("the codecs borrow pooled state, which the race detector makes lossy")
	}
	s := newRawServer(t, true, true) // echoes the compressed bytes as they are
	got := make(chan int, 1)
	c, _ := newConsumer(t, s.port, func(o *Options) {
		o.Compressor = compress.DedicatedCompressor4KB | compress.SharedDecompressor
		o.OnMessage = func(m Message) { got <- len(m.Data) }
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	msg := []byte(strings.Repeat(`{"id":12345,"op":"compute","payload":"abcdefgh"},`, 20))
	n := testing.AllocsPerRun(100, func() {
		if err := c.SendText(msg); err != nil {
			t.Fatal(err)
		}
		if n := <-got; n != len(msg) {
			t.Fatalf("echo of %d bytes", n)
		}
	})
	if n != 0 {
		t.Errorf("compressed round trip: %v allocations, want 0", n)
	}
}

func BenchmarkDeflateEcho(b *testing.B) {
	s := newRawServer(b, true, true)
	got := make(chan struct{}, 1)
	c, _ := newConsumer(b, s.port, func(o *Options) {
		o.Compressor = compress.DedicatedCompressor4KB | compress.SharedDecompressor
		o.OnMessage = func(Message) { got <- struct{}{} }
	})
	if err := c.Connect(ctxT(b, 5*time.Second)); err != nil {
		b.Fatal(err)
	}
	msg := []byte(strings.Repeat(`{"id":12345,"op":"compute","payload":"abcdefgh"},`, 20))
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.SendText(msg); err != nil {
			b.Fatal(err)
		}
		<-got
	}
}
