package provider_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
	"github.com/networkcluster/networkcluster/internal/wstest"
	"github.com/networkcluster/networkcluster/provider"
)

// A Consumer joins the topics AuthorizeSubscribe allows, is refused the
// others with code 4, and leaves with Unsubscribe; Publish follows.
func TestConsumerSubscribe(t *testing.T) {
	var got atomic.Int32
	po := provider.Options{AuthorizeSubscribe: func(c *provider.Connection, topic string) bool {
		return strings.HasPrefix(topic, "jobs.")
	}}
	co := consumer.Options{OnMessage: func(m consumer.Message) { got.Add(1) }}
	x := newPair(t, po, co)
	ctx := ctxT(t)
	if err := x.c.Subscribe(ctx, "jobs.render"); err != nil {
		t.Fatal(err)
	}
	if !x.conn.Subscribed("jobs.render") || x.p.Subscribers("jobs.render") != 1 {
		t.Fatal("not subscribed on the Provider once Subscribe returned")
	}
	err := x.c.Subscribe(ctx, "admin")
	var re *consumer.RemoteError
	if !errors.As(err, &re) || re.Code != 4 {
		t.Fatalf("refused subscribe: %v", err)
	}
	if x.conn.Subscribed("admin") {
		t.Fatal("refused topic subscribed")
	}
	if got := x.c.Topics(); fmt.Sprint(got) != "[jobs.render]" {
		t.Fatalf("Topics %v", got)
	}
	if _, err := x.p.Publish("jobs.render", false, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the publish", func() bool { return got.Load() == 1 })
	if err := x.c.Unsubscribe(ctx, "jobs.render"); err != nil {
		t.Fatal(err)
	}
	if x.conn.Subscribed("jobs.render") || len(x.c.Topics()) != 0 {
		t.Fatal("still subscribed after Unsubscribe")
	}
	for _, bad := range []string{"", strings.Repeat("x", proto.MaxTopic+1), "\xff"} {
		if err := x.c.Subscribe(ctx, bad); !errors.Is(err, consumer.ErrInvalidTopic) {
			t.Fatalf("topic %q: %v", bad, err)
		}
	}
}

// Without AuthorizeSubscribe every subscribe is refused; a panicking one
// refuses with code 2 and keeps the connection.
func TestConsumerSubscribeRefusedByDefault(t *testing.T) {
	x := newPair(t, provider.Options{}, consumer.Options{})
	var re *consumer.RemoteError
	if err := x.c.Subscribe(ctxT(t), "t"); !errors.As(err, &re) || re.Code != 4 {
		t.Fatalf("subscribe: %v", err)
	}
	y := newPair(t, provider.Options{AuthorizeSubscribe: func(*provider.Connection, string) bool { panic("boom") }}, consumer.Options{})
	if err := y.c.Subscribe(ctxT(t), "t"); !errors.As(err, &re) || re.Code != 2 {
		t.Fatalf("subscribe: %v", err)
	}
	if _, err := y.c.Request(ctxT(t), false, []byte("still open")); err != nil {
		t.Fatal(err)
	}
}

// After a reconnect the Consumer is subscribed again on its new
// connection, and a topic Queue hands it jobs there.
func TestConsumerResubscribeAfterReconnect(t *testing.T) {
	p := startProvider(t, provider.Options{AuthorizeSubscribe: func(*provider.Connection, string) bool { return true }})
	px := newProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port())))
	c, err := consumer.New(consumer.Options{Host: "127.0.0.1", Port: px.port(), OnRequest: echoJob,
		Reconnect: consumer.Reconnect{Interval: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Destroy)
	ctx := ctxT(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	q := newQueue(t, p, provider.QueueOptions{Topic: "work"})
	if err := c.Subscribe(ctx, "work"); err != nil {
		t.Fatal(err)
	}
	if s := q.Stats(); s.Workers != 1 {
		t.Fatalf("workers %d", s.Workers)
	}
	if _, err := q.Submit(ctx, false, []byte("one")); err != nil {
		t.Fatal(err)
	}
	px.cut()
	waitFor(t, "the reconnect and resubscribe", func() bool {
		return c.Stats().Opens == 2 && p.Subscribers("work") == 1
	})
	if m, err := q.Submit(ctx, false, []byte("two")); err != nil || string(m.Data) != "done:two" {
		t.Fatalf("job after the reconnect: %+v %v", m, err)
	}
	if got := c.Topics(); fmt.Sprint(got) != "[work]" {
		t.Fatalf("Topics %v", got)
	}
	// Unsubscribe while disconnected: nothing to tell, not renewed.
	c.Destroy()
	if err := c.Unsubscribe(ctx, "work"); err != nil && !errors.Is(err, consumer.ErrClosed) {
		t.Fatal(err)
	}
}

// Subscribe needs an open v2 connection.
func TestConsumerSubscribeNotSupported(t *testing.T) {
	x := newPair(t, provider.Options{Protocol: provider.ProtocolPlain}, consumer.Options{})
	if err := x.c.Subscribe(ctxT(t), "t"); !errors.Is(err, consumer.ErrNotSupported) {
		t.Fatalf("subscribe on v1: %v", err)
	}
	c, err := consumer.New(consumer.Options{Host: "127.0.0.1", Port: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Subscribe(context.Background(), "t"); !errors.Is(err, consumer.ErrNotConnected) {
		t.Fatalf("subscribe before Connect: %v", err)
	}
}

// Malformed control envelopes fail the connection with 1002; a good one
// from a raw client is answered with a reply or an error reply.
func TestControlEnvelopeWire(t *testing.T) {
	p := startProvider(t, provider.Options{AuthorizeSubscribe: func(_ *provider.Connection, topic string) bool { return topic == "ok" }})
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port()))
	dial := func(t *testing.T) *wstest.Client {
		cl, err := wstest.Dial(addr, "/connect", []string{"Sec-WebSocket-Protocol: " + proto.SubprotocolV2}, nil)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cl.Close() })
		return cl
	}
	for _, tc := range []struct {
		name    string
		payload []byte
	}{
		{"no op", []byte{proto.KindControl, 1}},
		{"unknown op", []byte{proto.KindControl, 1, 9, 't'}},
		{"empty topic", []byte{proto.KindControl, 1, proto.ControlSubscribe}},
		{"topic not UTF-8", []byte{proto.KindControl, 1, proto.ControlSubscribe, 0xff}},
		{"flags", []byte{proto.KindControl | proto.FlagText, 1, proto.ControlSubscribe, 't'}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl := dial(t)
			if err := cl.WriteFrame(true, frame.OpBinary, tc.payload); err != nil {
				t.Fatal(err)
			}
			if code, _, err := cl.ExpectClose(); err != nil || code != frame.CloseProtocolError {
				t.Fatalf("close %v, %v", code, err)
			}
		})
	}
	cl := dial(t)
	for _, tc := range []struct {
		env  []byte
		want []byte
	}{
		{proto.AppendControl(nil, 5, proto.ControlSubscribe, "ok"), []byte{proto.KindReply, 5}},
		{proto.AppendControl(nil, 6, proto.ControlSubscribe, "no"), proto.AppendError(nil, 6, proto.CodeRefused, "subscribe refused")},
		{proto.AppendControl(nil, 7, proto.ControlUnsubscribe, "ok"), []byte{proto.KindReply, 7}},
	} {
		if err := cl.WriteFrame(true, frame.OpBinary, tc.env); err != nil {
			t.Fatal(err)
		}
		op, data, err := cl.ReadMessage()
		if err != nil || op != frame.OpBinary || string(data) != string(tc.want) {
			t.Fatalf("answer %v %x %v, want %x", op, data, err, tc.want)
		}
	}
}

// A Subscribe whose ctx ends before the answer leaves the Consumer
// unsubscribed: a late acceptance is undone.
func TestConsumerSubscribeAbandoned(t *testing.T) {
	var authorized atomic.Int32
	po := provider.Options{AuthorizeSubscribe: func(*provider.Connection, string) bool {
		time.Sleep(200 * time.Millisecond) // slower than the caller's ctx
		authorized.Add(1)
		return true
	}}
	x := newPair(t, po, consumer.Options{})
	ctx, cancel := context.WithTimeout(ctxT(t), 20*time.Millisecond)
	defer cancel()
	if err := x.c.Subscribe(ctx, "t"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("subscribe: %v", err)
	}
	waitFor(t, "the late acceptance", func() bool { return authorized.Load() == 1 })
	// The acceptance and the undo follow within microseconds: a broken
	// undo leaves the connection subscribed and the wait below times out.
	time.Sleep(50 * time.Millisecond)
	waitFor(t, "the undo", func() bool { return !x.conn.Subscribed("t") })
	if len(x.c.Topics()) != 0 {
		t.Fatalf("Topics %v", x.c.Topics())
	}
}
