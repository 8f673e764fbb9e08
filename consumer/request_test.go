package consumer

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// v2Server accepts one connection, selects network-cluster.v2, sends
// payload as a binary frame and reports the close code the Consumer sends.
func v2Server(t *testing.T, payload []byte) (port int, closed <-chan frame.CloseCode) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	ch := make(chan frame.CloseCode, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		up := ws.Upgrader{Protocol: func(p []byte) bool { return string(p) == proto.SubprotocolV2 }}
		if _, err := up.Upgrade(nc); err != nil {
			return
		}
		_, _ = nc.Write(frame.AppendFrame(nil, true, frame.OpBinary, false, payload))
		_ = nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		buf := make([]byte, 4096)
		n := 0
		for {
			k, err := nc.Read(buf[n:])
			n += k
			h, hn, need, perr := frame.ParseHeader(buf[:n], frame.ParseOptions{Role: frame.RoleServer})
			if perr == nil && need == 0 && int64(n-hn) >= h.Length {
				p := buf[hn : hn+int(h.Length)]
				frame.Mask(p, h.Mask, 0)
				if h.Op == frame.OpClose {
					code, _, _ := frame.ParseClose(p)
					ch <- code
					return
				}
				n = copy(buf, buf[hn+int(h.Length):n])
				continue
			}
			if err != nil {
				ch <- 0
				return
			}
		}
	}()
	return ln.Addr().(*net.TCPAddr).Port, ch
}

// A malformed envelope from the Provider fails the connection with 1002;
// invalid text in one with 1007.
func TestRequestMalformedEnvelopeFromProvider(t *testing.T) {
	for _, tc := range []struct {
		name    string
		payload []byte
		code    frame.CloseCode
	}{
		{"empty", nil, frame.CloseProtocolError},
		{"unknown kind", []byte{7, 1}, frame.CloseProtocolError},
		{"id zero", []byte{2, 0}, frame.CloseProtocolError},
		{"reserved flag", []byte{0x81, 1}, frame.CloseProtocolError},
		{"invalid text reply", []byte{0x12, 1, 0xc3}, frame.CloseInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			port, closed := v2Server(t, tc.payload)
			c, err := New(Options{Host: "127.0.0.1", Port: port, Reconnect: Reconnect{MaxAttempts: 1}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Destroy()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := c.Connect(ctx); err != nil && !errors.Is(err, ErrGaveUp) {
				t.Fatal(err)
			}
			select {
			case code := <-closed:
				if code != tc.code {
					t.Fatalf("close code %v, want %v", code, tc.code)
				}
			case <-ctx.Done():
				t.Fatal("no close frame")
			}
		})
	}
}

// Options of the request protocol are validated.
func TestRequestOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"negative timeout":  {RequestTimeout: -1},
		"negative pending":  {MaxPendingRequests: -1},
		"protocol":          {Protocol: 9},
		"addr without port": {Addrs: []string{"localhost"}},
		"addr bad port":     {Addrs: []string{"localhost:0"}},
	} {
		if _, err := New(o); !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
	c, err := New(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c.cfg.RequestTimeout != DefaultRequestTimeout || c.cfg.MaxPendingRequests != DefaultMaxPendingRequests {
		t.Fatalf("defaults %v %d", c.cfg.RequestTimeout, c.cfg.MaxPendingRequests)
	}
	if _, err := c.Request(context.Background(), false, []byte("x")); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Request before Connect: %v", err)
	}
	if _, err := c.Request(context.Background(), false, []byte{0xff}); !errors.Is(err, ErrInvalidUTF8) {
		t.Fatalf("invalid text: %v", err)
	}
}
