package main

import (
	"bytes"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

func FuzzParseResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"))
	f.Add([]byte("HTTP/1.1 403 Forbidden\r\n\r\nUnauthorized"))
	f.Add([]byte("HTTP/1.0 101\r\nA:\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, complete, err := parseResponse(b)
		if err != nil {
			if !errors.Is(err, ErrHandshake) {
				t.Fatalf("error %v does not wrap ErrHandshake", err)
			}
			return
		}
		if !complete {
			return
		}
		if r.n < 4 || r.n > len(b) || string(b[r.n-4:r.n]) != "\r\n\r\n" {
			t.Fatalf("head size %d of %d bytes", r.n, len(b))
		}
		if r.status < 100 || r.status > 599 {
			t.Fatalf("status %d", r.status)
		}
		if _, err := checkUpgrade(&r, "k", true); err != nil && !errors.Is(err, ErrHandshake) {
			t.Fatalf("checkUpgrade error %v does not wrap ErrHandshake", err)
		}
	})
}

func FuzzParseProcStat(f *testing.F) {
	f.Add([]byte("1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 7 0 100 1000000 500 184467 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0"))
	f.Add([]byte("1 (init) S"))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseProcStat(b)
		if err != nil {
			if !errors.Is(err, ErrProcFormat) {
				t.Fatalf("error %v does not wrap ErrProcFormat", err)
			}
			return
		}
		if st.cpu < 0 || st.threads < 0 {
			t.Fatalf("negative %+v", st)
		}
	})
}

func TestParseProcStat(t *testing.T) {
	st, err := parseProcStat([]byte("1234 (my (odd) cmd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 7 0 100 1000000 500"))
	if err != nil || st.cpu != 3250*time.Millisecond || st.threads != 7 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := readProc(1 << 30); !errors.Is(err, ErrNoProc) {
		t.Fatalf("readProc of no process: %v", err)
	}
}

func FuzzParseStatusKB(f *testing.F) {
	f.Add([]byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n"), "VmRSS:")
	f.Fuzz(func(t *testing.T, b []byte, key string) {
		v, err := parseStatusKB(b, key)
		if err != nil {
			if !errors.Is(err, ErrProcFormat) {
				t.Fatalf("error %v does not wrap ErrProcFormat", err)
			}
			return
		}
		if v < 0 || v%1024 != 0 {
			t.Fatalf("value %d", v)
		}
	})
}

func TestParseStatusKB(t *testing.T) {
	b := []byte("Name:\tx\nVmHWM:\t  2048 kB\nVmRSS:\t  1024 kB\n")
	if v, err := parseStatusKB(b, "VmRSS:"); err != nil || v != 1024<<10 {
		t.Fatalf("%d %v", v, err)
	}
	if _, err := parseStatusKB(b, "VmSwap:"); !errors.Is(err, ErrProcFormat) {
		t.Fatalf("missing key: %v", err)
	}
}

func FuzzParsePeerLine(f *testing.F) {
	f.Add("PEER gorilla pid=123 addr=127.0.0.1:4567\n")
	f.Add("PEER x pid=-1 addr=[::1]:80")
	f.Fuzz(func(t *testing.T, line string) {
		impl, pid, addr, err := parsePeerLine(line)
		if err != nil {
			return
		}
		if impl == "" || pid <= 0 {
			t.Fatalf("%q %d", impl, pid)
		}
		if _, _, err := net.SplitHostPort(addr); err != nil {
			t.Fatalf("addr %q: %v", addr, err)
		}
	})
}

func FuzzParseStats(f *testing.F) {
	f.Add([]byte(`NCSTATS:{"goroutines":3,"heap_inuse":1,"rss":2,"conns":4,"pid":9}`))
	f.Add([]byte(`NCSTATS:{"goroutines":-3}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		st, err := parseStats(b)
		if err != nil {
			if !errors.Is(err, ErrNoStats) {
				t.Fatalf("error %v does not wrap ErrNoStats", err)
			}
			return
		}
		if st.Goroutines < 0 || st.Conns < 0 {
			t.Fatalf("%+v", st)
		}
	})
}

// noLookup is a resolver for tests: every name is 127.0.0.1 except
// "remote.example", which is a public address.
func noLookup(host string) ([]net.IP, error) {
	if host == "remote.example" {
		return []net.IP{net.IPv4(192, 0, 2, 1)}, nil
	}
	return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}, nil
}

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"ws://127.0.0.1:8080/connect?key=x", "wss://localhost/", "tcp://127.0.0.2:9",
		"ws://10.0.0.1:80/", "ws://[::1]:80/", "http://127.0.0.1/"} {
		f.Add(s, false)
	}
	f.Fuzz(func(t *testing.T, s string, allow bool) {
		tg, err := parseTargetWith(s, allow, noLookup)
		if err != nil {
			if !errors.Is(err, ErrTarget) {
				t.Fatalf("error %v does not wrap ErrTarget", err)
			}
			return
		}
		if !allow && !isLoopback4(tg.IP) {
			t.Fatalf("%q accepted with %v", s, tg.IP)
		}
		if _, _, err := net.SplitHostPort(tg.Addr); err != nil {
			t.Fatalf("addr %q", tg.Addr)
		}
		if tg.Scheme != "tcp" && !strings.HasPrefix(tg.RequestURI, "/") {
			t.Fatalf("request URI %q", tg.RequestURI)
		}
	})
}

func TestParseTarget(t *testing.T) {
	cases := []struct {
		in, addr, uri string
		allow         bool
		bad           bool
	}{
		{in: "ws://127.0.0.1:8080/connect?key=s", addr: "127.0.0.1:8080", uri: "/connect?key=s"},
		{in: "ws://localhost:8080", addr: "127.0.0.1:8080", uri: "/connect"},
		{in: "ws://127.9.9.9:1/p", addr: "127.9.9.9:1", uri: "/p"},
		{in: "wss://127.0.0.1/x", addr: "127.0.0.1:443", uri: "/x"},
		{in: "tcp://127.0.0.1:7", addr: "127.0.0.1:7"},
		{in: "ws://10.1.2.3:80/", bad: true},
		{in: "ws://remote.example:80/", bad: true},
		{in: "ws://remote.example:80/", allow: true, addr: "192.0.2.1:80", uri: "/"},
		{in: "ws://[::1]:80/", bad: true},
		{in: "http://127.0.0.1:80/", bad: true},
		{in: "tcp://127.0.0.1", bad: true},
		{in: "tcp://127.0.0.1:7/path", bad: true},
		{in: "ws://127.0.0.1:0/", bad: true},
		{in: "ws://u:p@127.0.0.1:1/", bad: true},
	}
	for _, c := range cases {
		tg, err := parseTargetWith(c.in, c.allow, noLookup)
		if c.bad {
			if !errors.Is(err, ErrTarget) {
				t.Errorf("%s: err %v, want ErrTarget", c.in, err)
			}
			continue
		}
		if err != nil || tg.Addr != c.addr || (c.uri != "" && tg.RequestURI != c.uri) {
			t.Errorf("%s: %+v %v", c.in, tg, err)
		}
	}
}

// streamConn is a net.Conn over a byte stream, for fuzzing the client's
// frame reader without a socket.
type streamConn struct {
	net.Conn // nil: other methods are not used
	r        io.Reader
	w        bytes.Buffer
}

func (s *streamConn) Read(p []byte) (int, error)       { return s.r.Read(p) }
func (s *streamConn) Write(p []byte) (int, error)      { return s.w.Write(p) }
func (s *streamConn) Close() error                     { return nil }
func (s *streamConn) SetDeadline(time.Time) error      { return nil }
func (s *streamConn) SetReadDeadline(time.Time) error  { return nil }
func (s *streamConn) SetWriteDeadline(time.Time) error { return nil }
func (s *streamConn) reset(b []byte)                   { s.r = bytes.NewReader(b); s.w.Reset() }

// FuzzClientFrames feeds arbitrary server bytes to the client's reader:
// it must return messages or an error, never panic or loop.
func FuzzClientFrames(f *testing.F) {
	f.Add(frame.AppendFrame(nil, true, frame.OpBinary, false, []byte("hello")), false)
	f.Add(append(frame.AppendFrame(nil, false, frame.OpText, false, []byte("he")),
		frame.AppendFrame(nil, true, frame.OpContinuation, false, []byte("llo"))...), false)
	f.Add(frame.AppendFrame(nil, true, frame.OpPing, false, []byte("p")), false)
	f.Add(frame.AppendMaskedFrame(nil, true, frame.OpBinary, false, []byte("raw"), [4]byte{9, 8, 7, 6}), true)
	f.Fuzz(func(t *testing.T, b []byte, raw bool) {
		o := baseClient()
		o.Raw = raw
		o.MaxPayload = 1 << 16
		o.ReadBuffer = 256
		sc := &streamConn{}
		sc.reset(b)
		c := newConn(sc, &o)
		for i := 0; i < len(b)+1; i++ {
			_, p, err := c.next()
			if err != nil {
				return
			}
			if len(p) > 1<<16 {
				t.Fatalf("message of %d bytes over the limit", len(p))
			}
		}
		t.Fatalf("%d messages from %d bytes", len(b)+1, len(b))
	})
}
