package frame

import (
	"testing"
)

// The per-message paths allocate nothing. Each guard runs the path many
// times and requires an average of zero allocations.

func allocs(t *testing.T, name string, f func()) {
	t.Helper()
	if n := testing.AllocsPerRun(200, f); n != 0 {
		t.Errorf("%s: %v allocations per run, want 0", name, n)
	}
}

func TestZeroAllocParse(t *testing.T) {
	frames := [][]byte{
		{0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d},
		{0x82, 0xfe, 0x01, 0x00, 1, 2, 3, 4},
		{0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4},
		{0x81},
		{0x83, 0x80}, // an error is a shared value, not an allocation
	}
	var sink int
	allocs(t, "ParseHeader", func() {
		for _, b := range frames {
			h, n, need, _ := ParseHeader(b, server)
			sink += n + need + int(h.Length)
		}
	})
	_ = sink
}

func TestZeroAllocMaskAndValidate(t *testing.T) {
	p := []byte("The quick brown fox jumps over the lazy dog. Κόσμε €𝄞")
	key := [4]byte{1, 2, 3, 4}
	allocs(t, "Mask", func() { Mask(p, key, 1); Mask(p, key, 1) })
	allocs(t, "ValidUTF8", func() { ValidUTF8(p) })
	var v UTF8
	allocs(t, "UTF8.Write", func() {
		v.Reset()
		v.Write(p[:50])
		v.Write(p[50:])
		v.Complete()
	})
}

func TestZeroAllocEncode(t *testing.T) {
	payload := make([]byte, 300)
	buf := make([]byte, 0, 1024)
	key := [4]byte{1, 2, 3, 4}
	allocs(t, "AppendHeader", func() {
		buf = AppendHeader(buf[:0], Header{Fin: true, Op: OpText, Masked: true, Mask: key, Length: 1 << 40})
	})
	allocs(t, "AppendFrame", func() { buf = AppendFrame(buf[:0], true, OpBinary, false, payload) })
	allocs(t, "AppendMaskedFrame", func() { buf = AppendMaskedFrame(buf[:0], true, OpBinary, true, payload, key) })
	allocs(t, "AppendCloseFrame", func() { buf = AppendCloseFrame(buf[:0], CloseGoingAway, "shutting down") })
	allocs(t, "control frames", func() {
		buf = append(buf[:0], PingFrame()...)
		buf = append(buf, PongFrame()...)
		buf = append(buf, CloseFrame(CloseNormal)...)
		buf = append(buf, CloseFrame(CloseNoStatus)...)
	})
	f := NewFrame(OpText, payload, false)
	allocs(t, "Frame.Bytes", func() { buf = append(buf[:0], f.Bytes()...) })
}

func TestZeroAllocAssembler(t *testing.T) {
	var a Assembler
	a.SetMaxPayload(1 << 20)
	text := []byte("fragmented €")
	ping := Header{Fin: true, Op: OpPing}
	allocs(t, "Assembler", func() {
		a.Begin(Header{Op: OpText, Length: 10})
		a.Payload(text[:10])
		a.End()
		a.Begin(ping)
		a.End()
		a.Begin(Header{Fin: true, Op: OpContinuation, Length: int64(len(text) - 10)})
		a.Payload(text[10:])
		if done, _, _, err := a.End(); !done || err != nil {
			panic("message not done")
		}
		a.Begin(Header{Fin: true, Op: OpText, Length: 1})
		a.Payload([]byte{0xff}) // the error is a shared value
		a.Reset()
	})
}

func TestZeroAllocQueue(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool drops items at random under the race detector")
	}
	var q Queue
	q.SetLimit(1 << 20)
	hdr := AppendHeader(nil, Header{Fin: true, Op: OpText, Length: 100})
	payload := make([]byte, 100)
	shared := NewFrame(OpBinary, payload, false).Bytes()
	bufs := make([][]byte, 0, 64)
	cycle := func() {
		for range 10 {
			q.Append(hdr, payload, false)
			q.AppendShared(shared, false)
		}
		q.AppendShared(PingFrame(), true)
		if b, err := q.Reserve(8, false); err == nil {
			copy(b, "reserved")
		}
		for q.Len() > 0 {
			bufs = q.Buffers(bufs[:0], 8)
			n := 0
			for _, b := range bufs {
				n += len(b)
			}
			q.Advance(min(n, 1000)) // partial writes
		}
	}
	cycle() // warm the pools
	allocs(t, "Queue append/Buffers/Advance", cycle)
}
