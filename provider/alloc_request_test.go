package provider

import (
	"context"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// openV2 starts a Provider and returns its side of one connection that
// negotiated requests, and the raw client, which keeps reading so that the
// Provider's queue drains.
func openV2(t testing.TB, o Options) (*Provider, *Connection, *wstest.Client) {
	t.Helper()
	p, e, addr := start(t, o)
	cl := dial(t, addr, "/connect", "Sec-WebSocket-Protocol: "+proto.SubprotocolV2)
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	conn := e.opened[0]
	if !conn.SupportsRequests() {
		t.Fatal("v2 not negotiated")
	}
	return p, conn, cl
}

func drain(cl *wstest.Client) {
	go func() {
		for {
			if _, _, err := cl.ReadFrame(); err != nil {
				return
			}
		}
	}()
}

// TestAllocsRequestResponder guards the responder's path: receiving a
// request, delivering it and sending the acknowledgement (no OnRequest), or
// plain binary messages on a v2 connection, allocates nothing; with an
// OnRequest, only the *Request handed to it.
func TestAllocsRequestResponder(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	for _, tc := range []struct {
		name  string
		o     Options
		max   float64
		kind  byte
		flags byte
	}{
		{"auto-ack", Options{OnMessage: func(*Connection, Message) {}}, 0, proto.KindRequest, proto.FlagText},
		{"plain binary", Options{OnMessage: func(*Connection, Message) {}}, 0, proto.KindMessage, 0},
		{"OnRequest", Options{OnRequest: func(c *Connection, r *Request) { _ = r.Reply(true, r.Message().Data) }}, 1, proto.KindRequest, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, conn, cl := openV2(t, tc.o)
			drain(cl)
			var id uint64
			in := make([]byte, 0, 256)
			payload := make([]byte, 0, 64)
			key := [4]byte{1, 2, 3, 4}
			allocs := testing.AllocsPerRun(1000, func() {
				id++
				payload = append(proto.AppendHeader(payload[:0], tc.kind, tc.flags, id), "a request payload"...)
				in = frame.AppendHeader(in[:0], frame.Header{Fin: true, Op: frame.OpBinary, Masked: true, Mask: key, Length: int64(len(payload))})
				start := len(in)
				in = append(in, payload...)
				frame.Mask(in[start:], key, 0)
				if n := conn.onFrames(in); n != len(in) {
					t.Fatalf("consumed %d of %d", n, len(in))
				}
			})
			if allocs > tc.max {
				t.Errorf("%.1f allocations per request (at most %v)", allocs, tc.max)
			}
		})
	}
}

// TestAllocsRequestRoundTrip guards the requester's path, with our
// Consumer as the other side in this process (its receive and send paths
// allocate nothing): a Request and its reply cost the reply's copy (plus a
// pooled waiter on a pool miss), both ways.
func TestAllocsRequestRoundTrip(t *testing.T) {
	if raceEnabled {
		t.Skip("the race detector allocates")
	}
	p, e, _ := start(t, Options{Heartbeat: Heartbeat{Mode: HeartbeatOff}, OnMessage: func(*Connection, Message) {}})
	c, err := consumer.New(consumer.Options{Host: "127.0.0.1", Port: p.Port(), OnMessage: func(consumer.Message) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Destroy()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	e.wait(t, "open", func(e *events) bool { return len(e.opened) == 1 })
	conn := e.opened[0]
	msg := []byte("a request")
	for name, f := range map[string]func() error{
		"consumer to provider": func() error { _, err := c.Request(ctx, true, msg); return err },
		"provider to consumer": func() error { _, err := conn.Request(ctx, true, msg); return err },
	} {
		allocs := testing.AllocsPerRun(1000, func() {
			if err := f(); err != nil {
				t.Fatal(err)
			}
		})
		t.Logf("%s: %.2f allocations per round trip", name, allocs)
		if allocs > 2 {
			t.Errorf("%s: %.1f allocations per request round trip (at most 2)", name, allocs)
		}
	}
}
