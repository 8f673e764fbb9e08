package frame

import (
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"strings"
	"testing"
	"time"
)

// TestOverTCP sends a client's frames through a real loopback socket in
// writes of random sizes, and reads them back the way the event loop does:
// from whatever bytes each read returned, without blocking on a frame.
func TestOverTCP(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()

	// The client side: 200 messages, text and binary, some fragmented, with
	// pings in between, then a close.
	rng := rand.New(rand.NewPCG(5, 6))
	var stream []byte
	var want []event
	key := [4]byte{0x12, 0x34, 0x56, 0x78}
	for i := range 200 {
		n := rng.IntN(3000)
		op, payload := OpBinary, seq(n)
		if i%2 == 0 {
			op, payload = OpText, []byte(strings.Repeat("€a", n/4+1))
		}
		cuts := rng.IntN(4)
		rest := payload
		for c := 0; ; c++ {
			frameOp := op
			if c > 0 {
				frameOp = OpContinuation
			}
			k := len(rest)
			if c < cuts && len(rest) > 0 {
				k = rng.IntN(len(rest)) // text may be cut inside a character
			}
			last := c >= cuts || k == len(rest)
			stream = AppendMaskedFrame(stream, last, frameOp, false, rest[:k], key)
			rest = rest[k:]
			if i%7 == 0 && !last {
				stream = AppendMaskedFrame(stream, true, OpPing, false, []byte("hb"), key)
				want = append(want, event{op: OpPing, control: true, payload: "hb"})
			}
			if last {
				break
			}
		}
		want = append(want, event{op: op, payload: string(payload)})
	}
	closePayload := AppendClose(nil, CloseNormal, "done")
	stream = AppendMaskedFrame(stream, true, OpClose, false, closePayload, key)
	want = append(want, event{op: OpClose, control: true, payload: string(closePayload)})

	go func() {
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		wr := rand.New(rand.NewPCG(7, 8))
		for i := 0; i < len(stream); {
			k := min(len(stream)-i, 1+wr.IntN(700))
			if _, err := c.Write(stream[i : i+k]); err != nil {
				return
			}
			i += k
		}
	}()

	c, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := newStreamReader(ParseOptions{Role: RoleServer, MaxPayload: 1 << 20}, 1<<20)
	buf := make([]byte, 4096)
	for {
		n, err := c.Read(buf)
		if ferr := r.feed(buf[:n]); ferr != nil {
			t.Fatal(ferr)
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if !r.idle() || len(r.events) != len(want) {
		t.Fatalf("got %d events, want %d; idle %v", len(r.events), len(want), r.idle())
	}
	for i := range want {
		if r.events[i] != want[i] {
			t.Fatalf("event %d: got %v %d bytes, want %v %d bytes", i, r.events[i].op, len(r.events[i].payload), want[i].op, len(want[i].payload))
		}
	}
	code, reason, err := ParseClose([]byte(r.events[len(r.events)-1].payload))
	if err != nil || code != CloseNormal || string(reason) != "done" {
		t.Fatalf("close: %d %q %v", code, reason, err)
	}
}
