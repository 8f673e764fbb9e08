package poller

import (
	"io"
	"strings"
	"testing"
)

// BenchmarkTLSHandshake is a full TLS handshake (no resumption), one echoed
// byte and a close, per op, on each TLS engine. Client and server share the
// process, so ns/op and allocs/op count both; the difference between the
// engines is the server's.
//
//	go test ./poller -run '^$' -bench TLSHandshake -benchmem
func BenchmarkTLSHandshake(b *testing.B) {
	for _, e := range engines {
		if !strings.HasSuffix(e.name, "tls") {
			continue
		}
		b.Run(e.name, func(b *testing.B) {
			h := &benchHandler{data: echo}
			p := e.start(b, h, Options{})
			addr := p.Addr().String()
			got := make([]byte, 1)
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				c := e.dial(b, addr)
				if _, err := c.Write([]byte{'x'}); err != nil {
					b.Fatal(err)
				}
				if _, err := io.ReadFull(c, got); err != nil {
					b.Fatal(err)
				}
				c.Close()
			}
		})
	}
}
