package compress

import (
	"bytes"
	stdflate "compress/flate"
	"fmt"
	"math/rand/v2"
	"runtime"
	"testing"

	kflate "github.com/klauspost/compress/flate"
)

// benchMsgs returns n different JSON-like messages of size bytes, the same
// for every run.
func benchMsgs(n, size int) [][]byte {
	r := rand.New(rand.NewPCG(42, uint64(size)))
	out := make([][]byte, n)
	for i := range out {
		out[i] = jsonish(r, size)
	}
	return out
}

var compressorPresets = []Preset{
	SharedCompressor, DedicatedCompressor3KB, DedicatedCompressor4KB, DedicatedCompressor8KB,
	DedicatedCompressor16KB, DedicatedCompressor32KB, DedicatedCompressor64KB,
	DedicatedCompressor128KB, DedicatedCompressor256KB,
}

var decompressorPresets = []Preset{
	SharedDecompressor, DedicatedDecompressor512B, DedicatedDecompressor1KB, DedicatedDecompressor2KB,
	DedicatedDecompressor4KB, DedicatedDecompressor8KB, DedicatedDecompressor16KB, DedicatedDecompressor32KB,
}

// serverConfig is the server's configuration for preset p after a
// browser's offer.
func serverConfig(p Preset) Config {
	offers, _ := ParseOffers([]string{offerChrome})
	resp, _ := p.Accept(offers)
	return NewConfig(p, resp, true)
}

// BenchmarkCompress compresses 1 KiB JSON-like messages, as a server with
// each preset does after a browser's offer. ratio = input/output.
func BenchmarkCompress(b *testing.B) {
	msgs := benchMsgs(64, 1024)
	for _, p := range compressorPresets {
		b.Run(p.String(), func(b *testing.B) {
			c := NewCompressor(serverConfig(p))
			defer c.Release()
			dst := make([]byte, 0, 4096)
			var in, out int
			b.ReportAllocs()
			b.SetBytes(1024)
			for i := 0; b.Loop(); i++ {
				m := msgs[i%len(msgs)]
				dst, _ = c.Compress(dst[:0], m)
				in, out = in+len(m), out+len(dst)
			}
			b.ReportMetric(float64(in)/float64(out), "ratio")
		})
	}
}

// BenchmarkDecompress inflates 1 KiB JSON-like messages compressed as the
// negotiated configuration of each decompressor preset allows the peer.
func BenchmarkDecompress(b *testing.B) {
	msgs := benchMsgs(64, 1024)
	for _, p := range decompressorPresets {
		b.Run(p.String(), func(b *testing.B) {
			cfg := serverConfig(p)
			peer := Config{CompressWindowBits: cfg.DecompressWindowBits, CompressContextTakeover: cfg.DecompressContextTakeover}
			// A sequence long enough to run through; with context takeover it
			// is inflated in order and starts over with a new decompressor.
			c := NewCompressor(peer)
			seq := make([][]byte, 1024)
			for i := range seq {
				seq[i], _ = c.Compress(nil, msgs[i%len(msgs)])
			}
			d := NewDecompressor(cfg)
			dst := make([]byte, 0, 4096)
			b.ReportAllocs()
			b.SetBytes(1024)
			for i := 0; b.Loop(); i++ {
				if i%len(seq) == 0 && i > 0 {
					d.Release()
					d = NewDecompressor(cfg)
				}
				var err error
				if dst, err = d.Decompress(dst[:0], seq[i%len(seq)], 1<<20); err != nil {
					b.Fatal(err)
				}
			}
			d.Release()
		})
	}
}

// BenchmarkCompressReference gives reference points on the same messages:
// klauspost's stateless deflate (nothing kept, 32 KiB distances), a
// klauspost Writer reset per message with a 32 KiB dictionary (context
// takeover without keeping a writer: the approach first considered), and a
// standard library Writer kept per connection (~600 KB each).
func BenchmarkCompressReference(b *testing.B) {
	msgs := benchMsgs(64, 1024)
	type sink struct{ bytes.Buffer }
	b.Run("klauspost-stateless", func(b *testing.B) {
		var out bytes.Buffer
		var in, n int
		b.ReportAllocs()
		b.SetBytes(1024)
		for i := 0; b.Loop(); i++ {
			out.Reset()
			m := msgs[i%len(msgs)]
			kflate.StatelessDeflate(&out, m, false, nil)
			in, n = in+len(m), n+out.Len()-4
		}
		b.ReportMetric(float64(in)/float64(n), "ratio")
	})
	b.Run("klauspost-ResetDict-32KB", func(b *testing.B) {
		var out bytes.Buffer
		w, _ := kflate.NewWriter(nil, 1)
		var hist []byte
		var in, n int
		b.ReportAllocs()
		b.SetBytes(1024)
		for i := 0; b.Loop(); i++ {
			out.Reset()
			m := msgs[i%len(msgs)]
			w.ResetDict(&out, hist)
			w.Write(m)
			w.Flush()
			hist = append(hist, m...)
			if len(hist) > 64<<10 {
				hist = append(hist[:0], hist[len(hist)-32<<10:]...)
			}
			in, n = in+len(m), n+out.Len()-4
		}
		b.ReportMetric(float64(in)/float64(n), "ratio")
	})
	for _, level := range []int{1, 6} {
		b.Run(fmt.Sprintf("stdlib-writer-per-conn-level%d", level), func(b *testing.B) {
			var out bytes.Buffer
			w, _ := stdflate.NewWriter(&out, level)
			var in, n int
			b.ReportAllocs()
			b.SetBytes(1024)
			for i := 0; b.Loop(); i++ {
				out.Reset()
				m := msgs[i%len(msgs)]
				w.Write(m)
				w.Flush()
				in, n = in+len(m), n+out.Len()-4
			}
			b.ReportMetric(float64(in)/float64(n), "ratio")
		})
	}
}

// BenchmarkRetainedMemory measures what 1 000 connections keep after one
// 1 KiB message in each direction, per preset (server side, browser
// offer): Retained() of both codecs and the heap growth per connection
// (codec structs included). The iteration count is irrelevant; run with
// -benchtime=1x.
func BenchmarkRetainedMemory(b *testing.B) {
	const conns = 1000
	msg := benchMsgs(1, 1024)[0]
	presets := []Preset{SharedCompressor | SharedDecompressor}
	for i := 1; i < len(compressorPresets); i++ {
		presets = append(presets, compressorPresets[i]|SharedDecompressor)
	}
	for i := 1; i < len(decompressorPresets); i++ {
		presets = append(presets, SharedCompressor|decompressorPresets[i])
	}
	presets = append(presets, DedicatedCompressor|DedicatedDecompressor)
	for _, p := range presets {
		b.Run(p.String(), func(b *testing.B) {
			cfg := serverConfig(p)
			peer := NewCompressor(Config{CompressWindowBits: cfg.DecompressWindowBits, CompressContextTakeover: cfg.DecompressContextTakeover})
			in, _ := peer.Compress(nil, msg)
			for b.Loop() {
				cs := make([]*Compressor, conns)
				ds := make([]*Decompressor, conns)
				var before, after runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&before)
				for i := range conns {
					cs[i], ds[i] = NewCompressor(cfg), NewDecompressor(cfg)
					cs[i].Compress(nil, msg)
					ds[i].Decompress(nil, in, 1<<20)
				}
				runtime.GC()
				runtime.ReadMemStats(&after)
				b.ReportMetric(float64(cs[0].Retained()), "comp-retained-B")
				b.ReportMetric(float64(ds[0].Retained()), "decomp-retained-B")
				b.ReportMetric(float64(int64(after.HeapAlloc)-int64(before.HeapAlloc))/conns, "heap-B/conn")
				runtime.KeepAlive(cs)
				runtime.KeepAlive(ds)
			}
		})
	}
}

// BenchmarkRatioBySize shows how much JSON-like messages of each size
// shrink, with and without context takeover: the basis of
// DefaultThreshold.
func BenchmarkRatioBySize(b *testing.B) {
	for _, size := range []int{32, 64, 128, 256, 512, 1024, 4096} {
		// Distinct messages, more than a 32 KiB window holds, so that
		// context takeover finds only what real traffic would offer.
		msgs := benchMsgs(64+(64<<10)/size, size)
		for _, takeover := range []bool{false, true} {
			b.Run(fmt.Sprintf("%dB/takeover=%v", size, takeover), func(b *testing.B) {
				c := NewCompressor(Config{CompressContextTakeover: takeover})
				dst := make([]byte, 0, 2*size+64)
				var in, out int
				b.SetBytes(int64(size))
				for i := 0; b.Loop(); i++ {
					m := msgs[i%len(msgs)]
					dst, _ = c.Compress(dst[:0], m)
					in, out = in+len(m), out+len(dst)
				}
				b.ReportMetric(float64(in)/float64(out), "ratio")
				b.ReportMetric(float64(in-out)/float64(b.N), "saved-B/msg")
			})
		}
	}
}
