package poller

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"testing"
)

// rec13Pair returns a server's and a client's record layer that share
// made-up traffic secrets, as after a handshake that negotiated suite.
func rec13Pair(tb testing.TB, suite uint16) (srv, cli *rec13) {
	n := 32
	if suite == tls.TLS_AES_256_GCM_SHA384 {
		n = 48
	}
	random := bytes.Repeat([]byte{7}, 32)
	srv, cli = &rec13{}, &rec13{client: true}
	for _, r := range []*rec13{srv, cli} {
		r.logLine(fmt.Appendf(nil, "CLIENT_TRAFFIC_SECRET_0 %x %x\n", random, bytes.Repeat([]byte{1}, n)))
		r.logLine(fmt.Appendf(nil, "SERVER_TRAFFIC_SECRET_0 %x %x\n", random, bytes.Repeat([]byte{2}, n)))
		if !r.init(tls.VersionTLS13, suite) {
			tb.Fatal("init refused")
		}
	}
	return srv, cli
}

// TestAllocsTLS13Records: sealing a message into a record and opening it,
// both ways, allocates nothing.
func TestAllocsTLS13Records(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are not meaningful under the race detector")
	}
	for _, suite := range []uint16{tls.TLS_AES_128_GCM_SHA256, tls.TLS_AES_256_GCM_SHA384} {
		srv, cli := rec13Pair(t, suite)
		msg := pattern(125, 1)
		buf := make([]byte, sealedLen(64<<10))
		bufs := make([][]byte, 2)
		var err error
		a := testing.AllocsPerRun(2000, func() {
			for _, pair := range [][2]*rec13{{cli, srv}, {srv, cli}} {
				bufs[0], bufs[1] = msg[:50], msg[50:]
				var n, w int
				if n, err = pair[0].sealBufs(buf, bufs, len(msg)); err != nil {
					return
				}
				if _, w, err = pair[1].readRecords(buf[:n]); err != nil {
					return
				}
				if !bytes.Equal(buf[:w], msg) {
					err = fmt.Errorf("got %q", buf[:w])
					return
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if a != 0 {
			t.Errorf("suite %x: %.2f allocations per message both ways, want 0", suite, a)
		}
	}
}

// FuzzTLS13Records: the record layer's reader (readRecords) never panics
// and never delivers a byte that was not sent: a stream of records sealed
// by a client (application data of any size, padding, empty records,
// KeyUpdates, user_canceled) arriving in any chunks is delivered whole;
// with one byte changed, what is delivered is a prefix of it and the
// stream ends with an error; arbitrary bytes end with an error or wait
// for more.
func FuzzTLS13Records(f *testing.F) {
	f.Add([]byte{0, 10, 0, 1, 200, 3, 2, 0, 0}, []byte{7}, uint16(0), false)
	f.Add([]byte{0, 255, 255, 3, 0, 0, 0, 5, 1}, []byte{1, 2}, uint16(9), true)
	f.Add([]byte{23, 3, 3, 0, 17, 1}, []byte{}, uint16(0), true)
	f.Fuzz(func(t *testing.T, ops, cuts []byte, flip uint16, raw bool) {
		srv, cli := rec13Pair(t, tls.TLS_AES_128_GCM_SHA256)
		var stream, want []byte
		if raw {
			stream = ops
		} else {
			useless := 0
			for i := 0; i+2 < len(ops) && i < 3*64; i += 3 {
				kind, size, pad := ops[i]%4, int(ops[i+1])<<6|int(ops[i+2])>>2, int(ops[i+2]&3)*100
				forced := useless == maxUselessRecords
				if forced {
					kind = 0
				}
				var inner []byte
				switch kind {
				case 0: // application data
					size %= maxTLSPlaintext + 1
					if forced && size == 0 {
						size = 1
					}
					content := pattern(size, i)
					want = append(want, content...)
					inner = append(content, recApplicationData)
					if size == 0 {
						useless++
					} else {
						useless = 0
					}
				case 1: // KeyUpdate
					inner = []byte{hsKeyUpdate, 0, 0, 1, byte(size & 1), recHandshake}
					useless++
				case 2: // user_canceled
					inner = []byte{alertLevelWarning, alertUserCanceled, recAlert}
					useless++
				default: // empty application data
					inner = []byte{recApplicationData}
					useless++
				}
				if len(inner)+pad > maxInnerPlaintext {
					pad = 0
				}
				inner = append(inner, make([]byte, pad)...)
				rec := make([]byte, recordHeaderLen+len(inner)+aeadTagLen)
				copy(rec[recordHeaderLen:], inner)
				m := len(inner) + aeadTagLen
				rec[0], rec[1], rec[2], rec[3], rec[4] = recApplicationData, 3, 3, byte(m>>8), byte(m)
				d := &cli.wr
				d.aead.Seal(rec[recordHeaderLen:recordHeaderLen], d.nonceFor(), rec[recordHeaderLen:recordHeaderLen+len(inner)], rec[:recordHeaderLen])
				d.seq++
				stream = append(stream, rec...)
				if kind == 1 {
					if err := cli.update(&cli.wr); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		tampered := !raw && len(stream) > 0 && flip > 0
		if tampered {
			stream[int(flip)%len(stream)] ^= 0x40
		}
		// Deliver in chunks, keeping the unread rest as decrypt13 does.
		var got, pending []byte
		var err error
		rest := stream
		for i := 0; len(rest) > 0 && err == nil; i++ {
			k := len(rest)
			if len(cuts) > 0 {
				k = min(k, 1+int(cuts[i%len(cuts)])*61)
			}
			pending = append(pending, rest[:k]...)
			rest = rest[k:]
			var n, w int
			n, w, err = srv.readRecords(pending)
			if n > len(pending) || w > n {
				t.Fatalf("consumed %d of %d, delivered %d", n, len(pending), w)
			}
			got = append(got, pending[:w]...)
			pending = append(pending[:0], pending[n:]...)
		}
		switch {
		case raw:
		case tampered:
			if !bytes.HasPrefix(want, got) {
				t.Fatalf("tampered stream delivered %d bytes that were not sent", len(got))
			}
			if err == nil && len(pending) == 0 {
				t.Fatal("a tampered stream was read without an error")
			}
		default:
			if err != nil || len(pending) != 0 || !bytes.Equal(got, want) {
				t.Fatalf("delivered %d of %d bytes, %d pending, %v", len(got), len(want), len(pending), err)
			}
		}
	})
}
