package provider_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
	"github.com/networkcluster/networkcluster/internal/wstest"
	"github.com/networkcluster/networkcluster/provider"
)

// pair is a started Provider and a connected Consumer, with the Provider's
// side of the connection.
type pair struct {
	p    *provider.Provider
	c    *consumer.Consumer
	conn *provider.Connection
	addr string
}

// newPair starts a Provider with po and connects one Consumer with co.
func newPair(t testing.TB, po provider.Options, co consumer.Options) *pair {
	t.Helper()
	po.Addr = "127.0.0.1:0"
	opened := make(chan *provider.Connection, 16)
	user := po.OnOpen
	po.OnOpen = func(c *provider.Connection) {
		if user != nil {
			user(c)
		}
		opened <- c
	}
	p, err := provider.New(po)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	co.Host, co.Port = "127.0.0.1", p.Port()
	if co.Reconnect.Interval == 0 {
		co.Reconnect.Interval = 20 * time.Millisecond
	}
	c, err := consumer.New(co)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Destroy() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var conn *provider.Connection
	select {
	case conn = <-opened:
	case <-ctx.Done():
		t.Fatal("no connection opened")
	}
	return &pair{p: p, c: c, conn: conn, addr: net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port()))}
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// Requests both ways, answered synchronously and from another goroutine
// later; the reply's Data stays the caller's after the handler's buffer is
// reused.
func TestRequestReplySyncAndAsync(t *testing.T) {
	reply := func(binary bool, data []byte, async bool, answer func(bool, []byte) error) {
		out := append([]byte("re:"), data...)
		if !async {
			_ = answer(binary, out)
			return
		}
		go func() {
			time.Sleep(50 * time.Millisecond)
			_ = answer(binary, out)
		}()
	}
	po := provider.Options{OnRequest: func(c *provider.Connection, r *provider.Request) {
		m := r.Message()
		reply(m.Binary, m.Data, bytes.HasPrefix(m.Data, []byte("async")), r.Reply)
	}}
	co := consumer.Options{OnRequest: func(r *consumer.Request) {
		m := r.Message()
		reply(m.Binary, m.Data, bytes.HasPrefix(m.Data, []byte("async")), r.Reply)
	}}
	x := newPair(t, po, co)
	ctx := ctxT(t)
	if !x.conn.SupportsRequests() || !x.c.SupportsRequests() {
		t.Fatal("v2 not negotiated between our Provider and Consumer")
	}
	var kept []consumer.Message
	for i, payload := range []string{"sync text", "async text", "sync binary \x00\xff", "async binary \x01"} {
		binary := i >= 2
		m, err := x.c.Request(ctx, binary, []byte(payload))
		if err != nil {
			t.Fatalf("consumer request %q: %v", payload, err)
		}
		if m.Binary != binary || string(m.Data) != "re:"+payload {
			t.Fatalf("consumer request %q: reply %+v", payload, m)
		}
		kept = append(kept, m)
		pm, err := x.conn.Request(ctx, binary, []byte(payload))
		if err != nil {
			t.Fatalf("provider request %q: %v", payload, err)
		}
		if pm.Binary != binary || string(pm.Data) != "re:"+payload {
			t.Fatalf("provider request %q: reply %+v", payload, pm)
		}
	}
	for i, m := range kept { // unchanged by the later traffic
		want := "re:" + []string{"sync text", "async text", "sync binary \x00\xff", "async binary \x01"}[i]
		if string(m.Data) != want {
			t.Fatalf("kept reply %d changed to %q", i, m.Data)
		}
	}
	// The last async answers are counted just after they are written.
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if x.p.Stats().RepliesSent == 4 && x.c.Stats().RepliesSent == 4 {
			break
		}
	}
	ps := x.p.Stats()
	if ps.RequestsSent != 4 || ps.RequestsAnswered != 4 || ps.RequestsReceived != 4 || ps.RepliesSent != 4 || ps.PendingRequests != 0 {
		t.Fatalf("provider stats %+v", ps)
	}
	cs := x.c.Stats()
	if cs.RequestsSent != 4 || cs.RequestsAnswered != 4 || cs.RequestsReceived != 4 || cs.RepliesSent != 4 || cs.PendingRequests != 0 {
		t.Fatalf("consumer stats %+v", cs)
	}
}

// Without OnRequest a request reaches OnMessage and is acknowledged with an
// empty reply once it returns; a panic answers with code 2 and keeps the
// connection.
func TestRequestAutoAckAndPanic(t *testing.T) {
	var got []string
	var mu sync.Mutex
	po := provider.Options{OnMessage: func(c *provider.Connection, m provider.Message) {
		if string(m.Data) == "panic" {
			panic("boom")
		}
		mu.Lock()
		got = append(got, string(m.Data))
		mu.Unlock()
	}}
	co := consumer.Options{OnMessage: func(m consumer.Message) {
		if string(m.Data) == "panic" {
			panic("boom")
		}
		mu.Lock()
		got = append(got, "c:"+string(m.Data))
		mu.Unlock()
	}}
	x := newPair(t, po, co)
	ctx := ctxT(t)
	m, err := x.c.Request(ctx, false, []byte("job 1"))
	if err != nil || len(m.Data) != 0 {
		t.Fatalf("auto-ack: %+v, %v", m, err)
	}
	_, err = x.c.Request(ctx, false, []byte("panic"))
	var re *consumer.RemoteError
	if !errors.As(err, &re) || re.Code != 2 {
		t.Fatalf("panicking handler: %v, want RemoteError code 2", err)
	}
	if _, err := x.c.Request(ctx, true, []byte("job 2")); err != nil {
		t.Fatalf("after the panic: %v", err)
	}
	if _, err := x.conn.Request(ctx, false, []byte("work")); err != nil {
		t.Fatalf("provider → consumer auto-ack: %v", err)
	}
	_, err = x.conn.Request(ctx, false, []byte("panic"))
	var pre *provider.RemoteError
	if !errors.As(err, &pre) || pre.Code != 2 {
		t.Fatalf("consumer panicking handler: %v, want RemoteError code 2", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(got) != "[job 1 job 2 c:work]" {
		t.Fatalf("OnMessage saw %q", got)
	}
}

// Fail gives the requester a *RemoteError with the code and reason; a
// second answer is refused.
func TestRequestFail(t *testing.T) {
	second := make(chan error, 1)
	po := provider.Options{OnRequest: func(c *provider.Connection, r *provider.Request) {
		if err := r.Fail(999, "reserved"); err == nil {
			t.Error("Fail accepted a reserved code")
		}
		_ = r.Fail(4001, "no such job")
		second <- r.Reply(false, nil)
	}}
	x := newPair(t, po, consumer.Options{})
	_, err := x.c.Request(ctxT(t), false, []byte("x"))
	var re *consumer.RemoteError
	if !errors.As(err, &re) || re.Code != 4001 || re.Reason != "no such job" {
		t.Fatalf("got %v", err)
	}
	if err := <-second; !errors.Is(err, provider.ErrAlreadyAnswered) {
		t.Fatalf("second answer: %v", err)
	}
	if s := x.c.Stats(); s.RequestsFailed != 1 {
		t.Fatalf("RequestsFailed %d", s.RequestsFailed)
	}
}

// A request whose ctx ends first returns ctx's error; the late reply is
// dropped, counted, and never reaches OnMessage.
func TestRequestTimeoutLateReply(t *testing.T) {
	var stray atomic.Int32
	po := provider.Options{OnRequest: func(c *provider.Connection, r *provider.Request) {
		go func() {
			time.Sleep(50 * time.Millisecond)
			_ = r.Reply(false, []byte("late"))
		}()
	}}
	co := consumer.Options{
		OnMessage: func(consumer.Message) { stray.Add(1) },
		OnRequest: func(r *consumer.Request) {
			go func() {
				time.Sleep(50 * time.Millisecond)
				_ = r.Reply(false, []byte("late"))
			}()
		},
	}
	po.OnMessage = func(*provider.Connection, provider.Message) { stray.Add(1) }
	x := newPair(t, po, co)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel()
	if _, err := x.c.Request(ctx, false, []byte("q")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("consumer: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 10*time.Millisecond)
	defer cancel2()
	if _, err := x.conn.Request(ctx2, false, []byte("q")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("provider: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for x.c.Stats().LateReplies != 1 || x.p.Stats().LateReplies != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("late replies: consumer %d, provider %d", x.c.Stats().LateReplies, x.p.Stats().LateReplies)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if stray.Load() != 0 {
		t.Fatal("a late reply reached OnMessage")
	}
	if s := x.c.Stats(); s.RequestsTimedOut != 1 || s.PendingRequests != 0 {
		t.Fatalf("consumer stats %+v", s)
	}
	// RequestTimeout applies when ctx has no deadline.
	y := newPair(t, provider.Options{OnRequest: func(*provider.Connection, *provider.Request) {}},
		consumer.Options{RequestTimeout: 20 * time.Millisecond})
	if _, err := y.c.Request(context.Background(), false, []byte("q")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("RequestTimeout: %v", err)
	}
}

// Pending requests fail with ErrDisconnected as soon as the connection is
// lost, not at their timeout, and nothing is left behind.
func TestRequestDisconnect(t *testing.T) {
	before := runtime.NumGoroutine()
	hold := make(chan struct{})
	defer close(hold)
	var seen atomic.Int32
	co := consumer.Options{OnRequest: func(r *consumer.Request) { seen.Add(1) }}
	po := provider.Options{OnRequest: func(c *provider.Connection, r *provider.Request) { seen.Add(1) }}
	x := newPair(t, po, co)
	const n = 100
	errs := make(chan error, 2*n)
	for i := 0; i < n; i++ {
		go func() {
			_, err := x.conn.Request(context.Background(), false, []byte("p→c"))
			errs <- err
		}()
		go func() {
			_, err := x.c.Request(context.Background(), false, []byte("c→p"))
			errs <- err
		}()
	}
	deadline := time.Now().Add(10 * time.Second)
	for seen.Load() < 2*n {
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d requests arrived", seen.Load(), 2*n)
		}
		time.Sleep(5 * time.Millisecond)
	}
	lost := time.Now()
	x.conn.Close(frame.CloseGoingAway, "bye") // both sides lose the connection
	for i := 0; i < 2*n; i++ {
		if err := <-errs; !errors.Is(err, provider.ErrDisconnected) && !errors.Is(err, consumer.ErrDisconnected) {
			t.Fatalf("request %d: %v, want ErrDisconnected", i, err)
		}
	}
	if d := time.Since(lost); d > 5*time.Second { // far below the 10 s RequestTimeout
		t.Fatalf("disconnect reported after %v", d)
	}
	if p := x.p.Stats().PendingRequests; p != 0 {
		t.Fatalf("provider pending %d", p)
	}
	if p := x.c.Stats().PendingRequests; p != 0 {
		t.Fatalf("consumer pending %d", p)
	}
	x.c.Destroy()
	x.p.Close()
	waitGoroutines(t, before)
}

func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// The pending table is bounded on both sides.
func TestRequestTooManyPending(t *testing.T) {
	release := make(chan struct{})
	var reqs []*provider.Request
	var mu sync.Mutex
	po := provider.Options{OnRequest: func(c *provider.Connection, r *provider.Request) {
		mu.Lock()
		reqs = append(reqs, r)
		mu.Unlock()
	}, MaxPendingRequests: 8}
	co := consumer.Options{MaxPendingRequests: 8, OnRequest: func(r *consumer.Request) { <-release }}
	x := newPair(t, po, co)
	ctx := ctxT(t)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(2)
		go func() { defer wg.Done(); _, _ = x.c.Request(ctx, false, []byte("a")) }()
		go func() { defer wg.Done(); _, _ = x.conn.Request(ctx, false, []byte("b")) }()
	}
	deadline := time.Now().Add(10 * time.Second)
	for x.c.Stats().PendingRequests < 8 || x.p.Stats().PendingRequests < 8 {
		if time.Now().After(deadline) {
			t.Fatal("requests not pending")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := x.c.Request(ctx, false, []byte("one more")); !errors.Is(err, consumer.ErrTooManyPending) {
		t.Fatalf("consumer: %v", err)
	}
	if _, err := x.conn.Request(ctx, false, []byte("one more")); !errors.Is(err, provider.ErrTooManyPending) {
		t.Fatalf("provider: %v", err)
	}
	close(release)
	mu.Lock()
	for _, r := range reqs {
		_ = r.Reply(false, nil)
	}
	mu.Unlock()
	wg.Wait()
}

// Sends and requests from one side keep their order; many concurrent
// requests each get their own reply.
func TestRequestOrderAndMatching(t *testing.T) {
	var mu sync.Mutex
	var order []string
	po := provider.Options{
		OnMessage: func(c *provider.Connection, m provider.Message) {
			mu.Lock()
			order = append(order, "msg:"+string(m.Data))
			mu.Unlock()
		},
		OnRequest: func(c *provider.Connection, r *provider.Request) {
			m := r.Message()
			if bytes.HasPrefix(m.Data, []byte("req:")) {
				mu.Lock()
				order = append(order, string(m.Data))
				mu.Unlock()
			}
			_ = r.Reply(m.Binary, m.Data)
		},
	}
	x := newPair(t, po, consumer.Options{MaxPendingRequests: 20000})
	ctx := ctxT(t)
	if err := x.c.Send("1"); err != nil {
		t.Fatal(err)
	}
	if _, err := x.c.Request(ctx, false, []byte("req:2")); err != nil {
		t.Fatal(err)
	}
	if err := x.c.SendBinary([]byte("3")); err != nil {
		t.Fatal(err)
	}
	if _, err := x.c.Request(ctx, true, []byte("req:4")); err != nil {
		t.Fatal(err)
	}
	const n = 10000
	var wg sync.WaitGroup
	var bad atomic.Int32
	sem := make(chan struct{}, 1000)
	for i := 0; i < n; i++ {
		wg.Add(1)
		sem <- struct{}{}
		go func(i int) {
			defer wg.Done()
			defer func() { <-sem }()
			want := strconv.Itoa(i)
			m, err := x.c.Request(ctx, false, []byte(want))
			if err != nil || string(m.Data) != want {
				bad.Add(1)
			}
		}(i)
	}
	wg.Wait()
	if bad.Load() != 0 {
		t.Fatalf("%d of %d requests got a wrong reply or an error", bad.Load(), n)
	}
	mu.Lock()
	defer mu.Unlock()
	if fmt.Sprint(order) != "[msg:1 req:2 msg:3 req:4]" {
		t.Fatalf("order %q", order)
	}
}

// Where either side does not speak v2, the connection is plain and
// requests are refused with ErrNotSupported; plain messages still flow.
func TestRequestNegotiation(t *testing.T) {
	for _, tc := range []struct {
		name string
		pp   provider.ProtocolMode
		cp   consumer.ProtocolMode
		v2   bool
	}{
		{"both auto", provider.ProtocolAuto, consumer.ProtocolAuto, true},
		{"plain consumer", provider.ProtocolAuto, consumer.ProtocolPlain, false},
		{"plain provider", provider.ProtocolPlain, consumer.ProtocolAuto, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := make(chan provider.Message, 4)
			po := provider.Options{Protocol: tc.pp, OnMessage: func(c *provider.Connection, m provider.Message) {
				got <- provider.Message{Binary: m.Binary, Data: bytes.Clone(m.Data)}
			}}
			cgot := make(chan consumer.Message, 4)
			co := consumer.Options{Protocol: tc.cp, OnMessage: func(m consumer.Message) {
				cgot <- consumer.Message{Binary: m.Binary, Data: bytes.Clone(m.Data)}
			}}
			x := newPair(t, po, co)
			if x.conn.SupportsRequests() != tc.v2 || x.c.SupportsRequests() != tc.v2 {
				t.Fatalf("v2: provider %v, consumer %v", x.conn.SupportsRequests(), x.c.SupportsRequests())
			}
			ctx := ctxT(t)
			_, cerr := x.c.Request(ctx, false, []byte("q"))
			_, perr := x.conn.Request(ctx, false, []byte("q"))
			if tc.v2 {
				if cerr != nil || perr != nil {
					t.Fatalf("requests: %v, %v", cerr, perr)
				}
				// Without OnRequest, both requests went to OnMessage.
				if m := <-got; string(m.Data) != "q" {
					t.Fatalf("provider OnMessage got %q", m.Data)
				}
				if m := <-cgot; string(m.Data) != "q" {
					t.Fatalf("consumer OnMessage got %q", m.Data)
				}
			} else if !errors.Is(cerr, consumer.ErrNotSupported) || !errors.Is(perr, provider.ErrNotSupported) {
				t.Fatalf("requests: %v, %v; want ErrNotSupported", cerr, perr)
			}
			// Plain binary and text messages both ways, v2 or not.
			_ = x.c.SendBinary([]byte{0, 1, 2})
			_ = x.c.Send("t")
			_ = x.conn.SendBinary([]byte{3, 4})
			_, _ = x.p.Broadcast(true, []byte{5})
			for _, want := range []string{"\x00\x01\x02", "t"} {
				if m := <-got; string(m.Data) != want {
					t.Fatalf("provider got %q, want %q", m.Data, want)
				}
			}
			for _, want := range []string{"\x03\x04", "\x05"} {
				if m := <-cgot; string(m.Data) != want || !m.Binary {
					t.Fatalf("consumer got %+v, want binary %q", m, want)
				}
			}
		})
	}
}

// A raw client that offers nothing (a browser, the Node 1.0.4 Consumer) is
// plain, byte for byte: its binary frames carry no envelope.
func TestRequestPlainClientUnchanged(t *testing.T) {
	conns := make(chan *provider.Connection, 1)
	p, err := provider.New(provider.Options{Addr: "127.0.0.1:0", OnOpen: func(c *provider.Connection) { conns <- c }})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port()))
	cl, err := wstest.Dial(addr, "/connect", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	if cl.Resp.Header.Get("Sec-WebSocket-Protocol") != "" {
		t.Fatalf("a subprotocol was selected for a client that offered none")
	}
	c := <-conns
	if _, err := c.Request(context.Background(), true, []byte("x")); !errors.Is(err, provider.ErrNotSupported) {
		t.Fatalf("Request: %v", err)
	}
	_ = c.SendBinary([]byte{9, 8})
	op, data, err := cl.ReadMessage()
	if err != nil || op != frame.OpBinary || !bytes.Equal(data, []byte{9, 8}) {
		t.Fatalf("got %v %q %v", op, data, err)
	}
	// Offering both tokens, v1 first, selects v2 all the same.
	cl2, err := wstest.Dial(addr, "/connect", []string{"Sec-WebSocket-Protocol: " + proto.SubprotocolV1 + ", " + proto.SubprotocolV2}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cl2.Close()
	if got := cl2.Resp.Header.Get("Sec-WebSocket-Protocol"); got != proto.SubprotocolV2 {
		t.Fatalf("selected %q", got)
	}
}

// A malformed envelope fails the connection with 1002, invalid text in one
// with 1007.
func TestRequestMalformedEnvelope(t *testing.T) {
	p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port()))
	for _, tc := range []struct {
		name    string
		payload []byte
		code    frame.CloseCode
	}{
		{"empty", nil, frame.CloseProtocolError},
		{"unknown kind", []byte{9, 1}, frame.CloseProtocolError},
		{"reserved flag", []byte{0x41, 1}, frame.CloseProtocolError},
		{"id zero", []byte{1, 0}, frame.CloseProtocolError},
		{"truncated id", []byte{1, 0x80}, frame.CloseProtocolError},
		{"flags on a plain message", []byte{0x10, 'a'}, frame.CloseProtocolError},
		{"invalid text request", []byte{0x11, 1, 0xff}, frame.CloseInvalidPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cl, err := wstest.Dial(addr, "/connect", []string{"Sec-WebSocket-Protocol: " + proto.SubprotocolV2}, nil)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			if err := cl.WriteFrame(true, frame.OpBinary, tc.payload); err != nil {
				t.Fatal(err)
			}
			code, _, err := cl.ExpectClose()
			if err != nil || code != tc.code {
				t.Fatalf("close %v, %v; want %v", code, err, tc.code)
			}
		})
	}
}

// proxy forwards TCP connections to target and can cut them all, so that a
// Consumer loses its connection without either process going away.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn
}

func newProxy(t testing.TB, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	x := &proxy{ln: ln, target: target}
	t.Cleanup(func() { ln.Close(); x.cut() })
	go func() {
		for {
			a, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", target)
			if err != nil {
				a.Close()
				continue
			}
			x.mu.Lock()
			x.conns = append(x.conns, a, b)
			x.mu.Unlock()
			go func() { _, _ = io.Copy(a, b); a.Close() }()
			go func() { _, _ = io.Copy(b, a); b.Close() }()
		}
	}()
	return x
}

func (x *proxy) port() int { return x.ln.Addr().(*net.TCPAddr).Port }

// cut drops every forwarded connection (RST where the kernel can).
func (x *proxy) cut() {
	x.mu.Lock()
	defer x.mu.Unlock()
	for _, c := range x.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	x.conns = nil
}

// With Resend, requests pending when the TCP connection drops are sent
// again on the next connection; the Provider runs each handler once and
// answers the resends from its de-duplication window. With the window off,
// the handler sees the resends, flagged redelivered.
func TestRequestResendDedup(t *testing.T) {
	for _, dedup := range []bool{true, false} {
		t.Run(fmt.Sprintf("dedup=%v", dedup), func(t *testing.T) {
			const n = 200
			release := make(chan struct{})
			var mu sync.Mutex
			runs := map[string]int{}
			redelivered := map[string]int{}
			var started atomic.Int32
			po := provider.Options{Addr: "127.0.0.1:0", OnRequest: func(c *provider.Connection, r *provider.Request) {
				key := string(r.Message().Data)
				mu.Lock()
				runs[key]++
				if r.Redelivered() {
					redelivered[key]++
				}
				first := runs[key] == 1
				mu.Unlock()
				started.Add(1)
				go func() {
					if first {
						<-release
					}
					_ = r.Reply(false, []byte("done:"+key))
				}()
			}}
			if !dedup {
				po.DedupWindow.Requests = -1
			}
			p, err := provider.New(po)
			if err != nil {
				t.Fatal(err)
			}
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			px := newProxy(t, net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port())))
			c, err := consumer.New(consumer.Options{Host: "127.0.0.1", Port: px.port(), Resend: true,
				Reconnect: consumer.Reconnect{Interval: 20 * time.Millisecond}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Destroy()
			ctx := ctxT(t)
			if err := c.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			var wg sync.WaitGroup
			var bad atomic.Int32
			for i := 0; i < n; i++ {
				wg.Add(1)
				go func(key string) {
					defer wg.Done()
					m, err := c.Request(ctx, false, []byte(key))
					if err != nil || string(m.Data) != "done:"+key {
						t.Errorf("request %s: %q, %v", key, m.Data, err)
						bad.Add(1)
					}
				}(strconv.Itoa(i))
			}
			deadline := time.Now().Add(10 * time.Second)
			for started.Load() < n {
				if time.Now().After(deadline) {
					t.Fatalf("only %d handlers started", started.Load())
				}
				time.Sleep(5 * time.Millisecond)
			}
			px.cut() // all 200 pending
			if dedup {
				// Release after the reconnect: some resends wait for their
				// handler, then all get its one reply.
				for c.Stats().Resent < n {
					if time.Now().After(deadline) {
						t.Fatalf("resent %d", c.Stats().Resent)
					}
					time.Sleep(5 * time.Millisecond)
				}
			}
			close(release)
			wg.Wait()
			if bad.Load() > 0 {
				t.FailNow()
			}
			mu.Lock()
			defer mu.Unlock()
			for i := 0; i < n; i++ {
				key := strconv.Itoa(i)
				switch {
				case dedup && (runs[key] != 1 || redelivered[key] != 0):
					t.Fatalf("request %s ran %d times (%d redelivered) with dedup", key, runs[key], redelivered[key])
				case !dedup && (runs[key] != 2 || redelivered[key] != 1):
					t.Fatalf("request %s ran %d times (%d redelivered) without dedup", key, runs[key], redelivered[key])
				}
			}
			if s := c.Stats(); s.Resent != n || s.PendingRequests != 0 {
				t.Fatalf("consumer stats %+v", s)
			}
			if dedup && p.Stats().DedupHits != n {
				t.Fatalf("dedup hits %d", p.Stats().DedupHits)
			}
		})
	}
}

// A Consumer with Addrs moves to the next Provider when it loses one, and
// with Resend its unanswered requests follow it there.
func TestConsumerAddrsFailover(t *testing.T) {
	var ps [2]*provider.Provider
	var ports [2]string
	for i := range ps {
		i := i
		p, err := provider.New(provider.Options{Addr: "127.0.0.1:0", OnRequest: func(c *provider.Connection, r *provider.Request) {
			if i == 0 {
				return // the first Provider never answers
			}
			_ = r.Reply(false, []byte("from "+strconv.Itoa(i)))
		}})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Start(); err != nil {
			t.Fatal(err)
		}
		defer p.Close()
		ps[i], ports[i] = p, net.JoinHostPort("127.0.0.1", strconv.Itoa(p.Port()))
	}
	if _, err := consumer.New(consumer.Options{Addrs: []string{"nohost"}}); !errors.Is(err, consumer.ErrInvalidOptions) {
		t.Fatalf("bad Addrs: %v", err)
	}
	// Dial the first until the random start lands there.
	var c *consumer.Consumer
	ctx := ctxT(t)
	for try := 0; ; try++ {
		var err error
		c, err = consumer.New(consumer.Options{Addrs: ports[:], Resend: true,
			Reconnect: consumer.Reconnect{Interval: 50 * time.Millisecond}})
		if err != nil {
			t.Fatal(err)
		}
		if err := c.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		if c.RemoteAddr() == ports[0] {
			break
		}
		c.Destroy()
		if try > 100 {
			t.Fatal("never started at the first Provider")
		}
	}
	defer c.Destroy()
	res := make(chan error, 1)
	go func() {
		m, err := c.Request(ctx, false, []byte("job"))
		if err == nil && string(m.Data) != "from 1" {
			err = fmt.Errorf("reply %q", m.Data)
		}
		res <- err
	}()
	for ps[0].Stats().RequestsReceived == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	ps[0].Close() // the Provider dies with the request unanswered
	if err := <-res; err != nil {
		t.Fatal(err)
	}
	if c.RemoteAddr() != ports[1] {
		t.Fatalf("now on %s, want %s", c.RemoteAddr(), ports[1])
	}
	if s := ps[1].Stats(); s.RequestsReceived != 1 {
		t.Fatalf("second Provider stats %+v", s)
	}
}

// Options of the request protocol are validated.
func TestRequestOptionsValidated(t *testing.T) {
	for name, o := range map[string]provider.Options{
		"negative timeout":      {RequestTimeout: -1},
		"negative pending":      {MaxPendingRequests: -1},
		"dedup requests":        {DedupWindow: provider.DedupWindow{Requests: -2}},
		"dedup age":             {DedupWindow: provider.DedupWindow{Age: -1}},
		"dedup bytes":           {DedupWindow: provider.DedupWindow{Bytes: -1}},
		"unknown protocol mode": {Protocol: 7},
	} {
		if _, err := provider.New(o); !errors.Is(err, provider.ErrInvalidOptions) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
