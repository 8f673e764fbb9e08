package compress

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"io"
	"math/rand/v2"
	"testing"
)

// jsonish returns a JSON-like message of exactly n bytes, like the job and
// status messages a cluster exchanges.
func jsonish(r *rand.Rand, n int) []byte {
	var b bytes.Buffer
	b.WriteByte('[')
	status := [...]string{"queued", "running", "done", "failed"}
	for b.Len() < n {
		fmt.Fprintf(&b, `{"id":%d,"worker":"node-%02d","status":"%s","progress":%d.%02d,"ts":17000%05d,"tags":["t%d","batch"]},`,
			r.IntN(1000000), r.IntN(64), status[r.IntN(len(status))], r.IntN(100), r.IntN(100), r.IntN(100000), r.IntN(9))
	}
	return b.Bytes()[:n]
}

func randomBytes(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// corpus returns messages of many kinds and sizes, seeded.
func corpus(seed uint64) [][]byte {
	r := rand.New(rand.NewPCG(seed, 1))
	period := func(p, n int) []byte { // a random block of p bytes, repeated
		blk := randomBytes(r, p)
		out := make([]byte, 0, n)
		for len(out) < n {
			out = append(out, blk...)
		}
		return out[:n]
	}
	return [][]byte{
		{},
		{'x'},
		[]byte("Hello"),
		[]byte("Hello"),
		jsonish(r, 100),
		jsonish(r, 1024),
		jsonish(r, 1024),
		bytes.Repeat([]byte{0}, 5000),
		randomBytes(r, 3000),
		period(300, 10000),  // period below every window
		period(700, 20000),  // above 9 bits
		period(5000, 40000), // above 12 bits
		period(20000, 70000),
		jsonish(r, 100000),
		append(jsonish(r, 30000), randomBytes(r, 40000)...), // > 64 KiB: table positions wrap
		jsonish(r, 300),
	}
}

// stdInflateStream inflates a sequence of permessage-deflate payloads as
// one continuous DEFLATE stream with the standard library, which is how a
// peer with context takeover and a 32 KiB window sees them.
func stdInflateStream(t testing.TB, payloads [][]byte) [][]byte {
	t.Helper()
	var stream bytes.Buffer
	for _, p := range payloads {
		stream.Write(p)
		stream.Write([]byte{0, 0, 0xff, 0xff})
	}
	stream.Write([]byte{1, 0, 0, 0xff, 0xff}) // end the stream
	all, err := io.ReadAll(stdflate.NewReader(&stream))
	if err != nil {
		t.Fatalf("compress/flate: %v", err)
	}
	return [][]byte{all}
}

// stdDeflate compresses msgs with the standard library as a peer would:
// one writer (context takeover) or one per message, flushed, with the
// trailing 00 00 ff ff removed.
func stdDeflate(t testing.TB, msgs [][]byte, level int, takeover bool) [][]byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := stdflate.NewWriter(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for _, m := range msgs {
		if !takeover {
			w.Reset(&buf)
		}
		buf.Reset()
		w.Write(m)
		w.Flush()
		p := bytes.Clone(buf.Bytes())
		if !bytes.HasSuffix(p, []byte{0, 0, 0xff, 0xff}) {
			t.Fatalf("flush did not end with the empty stored block: % x", p[max(0, len(p)-8):])
		}
		out = append(out, p[:len(p)-4])
	}
	return out
}
