package consumer

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// MaxPayloadLength bounds a message after decompression: an incompressible
// message of exactly MaxPayloadLength bytes, which deflate makes a few bytes
// larger on the wire, is delivered. An uncompressed message over MaxPayloadLength
// on the same connection still fails with 1009.
func TestDeflateIncompressibleAtMaxPayload(t *testing.T) {
	const max = 4096
	rnd := rand.New(rand.NewPCG(1, 2))
	random := make([]byte, max)
	for i := range random {
		random[i] = byte(rnd.Uint32())
	}
	s := newTestServer(t, srvOpts{deflate: true})
	c, ev := newConsumer(t, s.port, func(o *Options) {
		o.Compressor = sharedPreset
		o.MaxPayloadLength = max
		o.Reconnect.Interval = time.Hour
	})
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.SendBinary(random); err != nil { // echoed compressed: more than max bytes on the wire
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the echo or a disconnect", func() bool {
		_, d, _, _, m := ev.snapshot()
		return len(m) == 1 || len(d) > 0
	})
	_, disc, _, errs, msgs := ev.snapshot()
	if len(disc) != 0 || len(msgs) != 1 || !bytes.Equal(msgs[0].Data, random) {
		t.Fatalf("disconnects %v, errors %v, %d messages: a %d-byte message must be delivered with MaxPayloadLength %d", disc, errs, len(msgs), max, max)
	}

	// Over the limit uncompressed, on the same connection: 1009.
	sc := s.conn()[0]
	sc.wmu.Lock()
	err := ws.WriteFrame(sc.nc, ws.NewFrame(ws.OpBinary, true, append(random, 'x')))
	sc.wmu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the disconnect", func() bool { _, d, _, _, _ := ev.snapshot(); return len(d) == 1 })
	if _, disc, _, _, msgs := ev.snapshot(); disc[0].code != 1009 || len(msgs) != 1 {
		t.Fatalf("disconnect %v, %d messages; want 1009 and no delivery", disc[0], len(msgs))
	}
}
