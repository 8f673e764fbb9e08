package peers

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/gobwas/ws"
)

// sinkConn is a net.Conn that swallows writes; only Write and Close are used.
type sinkConn struct {
	net.Conn
	out bytes.Buffer
}

func (c *sinkConn) Write(p []byte) (int, error) {
	if c.out.Len() < 1<<20 { // keep memory bounded
		c.out.Write(p)
	}
	return len(p), nil
}
func (c *sinkConn) Close() error { return nil }

// FuzzGobwasReadLoop feeds arbitrary client bytes (after the handshake) to the
// gobwas peer's read loop: it must end at the end of input without a panic
// and without allocating on declared lengths.
func FuzzGobwasReadLoop(f *testing.F) {
	mask := func(fr ws.Frame) []byte { return ws.MustCompileFrame(ws.MaskFrameInPlace(fr)) }
	f.Add(mask(ws.NewTextFrame([]byte("hello"))))
	f.Add(mask(ws.NewBinaryFrame([]byte(StatsQuery))))
	f.Add(mask(ws.NewBinaryFrame([]byte(BroadcastPrefix + "x"))))
	f.Add(append(mask(ws.NewFrame(ws.OpText, false, []byte("a"))), mask(ws.NewPingFrame([]byte("p")))...))
	f.Add(mask(ws.NewCloseFrame(ws.NewCloseFrameBody(ws.StatusNormalClosure, ""))))
	f.Add([]byte{0x82, 0xff, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		s := &gobwasServer{reg: newRegistry[*gobwasConn]()}
		sc := &sinkConn{}
		c := &gobwasConn{nc: sc}
		if !s.reg.add(c) {
			t.Fatal("add")
		}
		s.readLoop(c, bytes.NewReader(data))
		s.reg.remove(c)
	})
}

func FuzzParseStats(f *testing.F) {
	f.Add(statsAnswer([]byte(StatsQuery), 3))
	f.Add([]byte(StatsQuery + `{"goroutines":-1}`))
	f.Add([]byte("nope"))
	f.Fuzz(func(t *testing.T, p []byte) {
		st, err := ParseStats(p)
		if err != nil {
			return
		}
		back, err := ParseStats(append([]byte(StatsQuery), mustJSON(t, st)...))
		if err != nil || back != st {
			t.Fatalf("round trip %+v -> %+v, %v", st, back, err)
		}
	})
}

func FuzzParseVmRSS(f *testing.F) {
	f.Add("Name:\tpeer\nVmRSS:\t   1234 kB\nThreads:\t4\n")
	f.Add("VmRSS: x kB\n")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		n, err := parseVmRSS(strings.NewReader(s))
		if err == nil && n%1024 != 0 {
			t.Fatalf("%d is not a whole number of kB", n)
		}
	})
}

func TestParseVmRSS(t *testing.T) {
	n, err := parseVmRSS(strings.NewReader("Name:\tpeer\nVmRSS:\t   1234 kB\n"))
	if err != nil || n != 1234*1024 {
		t.Fatalf("got %d, %v", n, err)
	}
	if _, err := parseVmRSS(strings.NewReader("Name:\tpeer\n")); err == nil {
		t.Fatal("no error without a VmRSS line")
	}
	if n, err := readSelfRSS(); err != nil || n == 0 {
		t.Fatalf("readSelfRSS: %d, %v", n, err)
	}
}

func mustJSON(t *testing.T, st Stats) []byte {
	t.Helper()
	p := encodeStats(st)
	return p[len(StatsQuery):]
}
