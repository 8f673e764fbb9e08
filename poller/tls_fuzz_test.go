package poller

import (
	"encoding/binary"
	"testing"
)

// FuzzTLSRecordScan: the record framing count of the TLS transport
// (scanLocked) finds every record of a stream of TLS records, whatever the
// chunks the stream arrives in.
func FuzzTLSRecordScan(f *testing.F) {
	f.Add([]byte{0, 5, 200}, []byte{3, 1})
	f.Add([]byte{1, 0, 0, 16}, []byte{5, 5, 5, 5})
	f.Fuzz(func(t *testing.T, lengths, cuts []byte) {
		// A stream of records whose body lengths come from lengths.
		var stream []byte
		for i, l := range lengths {
			body := int(l) * 67 % 17000
			hdr := []byte{23, 3, 3, 0, 0}
			binary.BigEndian.PutUint16(hdr[3:], uint16(body))
			stream = append(stream, hdr...)
			stream = append(stream, make([]byte, body)...)
			if i > 40 {
				break
			}
		}
		var l tlsLayer
		rest := stream
		off := 0
		for i := 0; len(rest) > 0; i++ {
			n := len(rest)
			if len(cuts) > 0 {
				n = min(n, 1+int(cuts[i%len(cuts)])*37%9000)
			}
			l.scanLocked(rest[:n])
			rest = rest[n:]
			off += n
			if want := recordsIn(stream[:off]); l.complete != want {
				t.Fatalf("after %d bytes: %d complete records counted, want %d", off, l.complete, want)
			}
		}
		if want := int64(min(len(lengths), 42)); len(stream) > 0 && l.complete != want {
			t.Fatalf("%d records counted, want %d", l.complete, want)
		}
	})
}

// recordsIn counts the complete records at the start of b.
func recordsIn(b []byte) int64 {
	var n int64
	for len(b) >= 5 {
		body := int(binary.BigEndian.Uint16(b[3:5]))
		if len(b) < 5+body {
			break
		}
		b = b[5+body:]
		n++
	}
	return n
}
