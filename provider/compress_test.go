package provider_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// Broadcasts are compressed once without context and queued on every
// receiver; a receiver whose own compressor keeps context must stay in step
// with its peer's inflater across interleaved broadcasts and direct sends.
func TestBroadcastCompression(t *testing.T) {
	for _, tc := range []struct {
		name     string
		server   compress.Preset
		client   compress.Preset
		perConn  bool // the server compresses sends per connection, with context
		fullOnce bool // every broadcast is compressed once for all
	}{
		{"shared", compress.SharedCompressor, compress.SharedCompressor, false, true},
		{"dedicated", compress.DedicatedCompressor | compress.DedicatedDecompressor,
			compress.DedicatedCompressor | compress.DedicatedDecompressor, true, true},
		{"dedicated 4KB window", compress.DedicatedCompressor4KB | compress.DedicatedDecompressor,
			compress.DedicatedCompressor | compress.DedicatedDecompressor, true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, err := provider.New(provider.Options{Addr: "127.0.0.1:0", Compressor: tc.server})
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			const n, rounds = 3, 40
			got := make([]chan string, n)
			for i := range got {
				ch := make(chan string, 2*rounds)
				got[i] = ch
				w, err := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port(), Compressor: tc.client,
					Parameters: map[string]string{"i": fmt.Sprint(i)},
					OnMessage:  func(m consumer.Message) { ch <- m.Text() }})
				if err != nil {
					t.Fatal(err)
				}
				defer w.Close()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				if err := w.Connect(ctx); err != nil {
					t.Fatal(err)
				}
			}
			for p.Len() < n {
				time.Sleep(time.Millisecond)
			}
			conns := p.Connections()
			for _, c := range conns {
				if !c.Compressed() {
					t.Fatal("permessage-deflate not negotiated")
				}
			}
			before := p.Stats().FramesCompressed
			for r := 0; r < rounds; r++ {
				// Repetitive text, so that compressors refer back into
				// earlier messages when they keep context.
				b := fmt.Sprintf(`{"round":%d,"state":"%s"}`, r, strings.Repeat("broadcast state ", 40))
				if res, err := p.Broadcast(false, []byte(b)); err != nil || res.Sent != n {
					t.Fatalf("broadcast %+v %v", res, err)
				}
				for _, c := range conns {
					d := fmt.Sprintf(`{"round":%d,"to":"%s","job":"%s"}`, r, c.Param("i"), strings.Repeat("direct job ", 40))
					if err := c.Send(d); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i, ch := range got {
				for r := 0; r < rounds; r++ {
					for _, want := range []string{
						fmt.Sprintf(`{"round":%d,"state":"%s"}`, r, strings.Repeat("broadcast state ", 40)),
						fmt.Sprintf(`{"round":%d,"to":"%d","job":"%s"}`, r, i, strings.Repeat("direct job ", 40)),
					} {
						select {
						case m := <-ch:
							if m != want {
								t.Fatalf("consumer %d round %d: got %.60q…, want %.60q…", i, r, m, want)
							}
						case <-time.After(10 * time.Second):
							t.Fatalf("consumer %d round %d: nothing received", i, r)
						}
					}
				}
			}
			compressed := p.Stats().FramesCompressed - before
			// Each direct send is compressed per connection; a broadcast once
			// for all receivers when they take 15-bit windows, else per receiver.
			want := uint64(rounds + n*rounds)
			if !tc.fullOnce {
				want = uint64(n*rounds + n*rounds)
			}
			if compressed != want {
				t.Fatalf("frames compressed %d, want %d", compressed, want)
			}
		})
	}
}
