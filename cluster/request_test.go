package cluster

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// consumerOn connects a real Consumer (which speaks the request protocol)
// to m, answering requests with handle, and returns its connection on m.
func consumerOn(t *testing.T, m *member, handle func(r *consumer.Request)) *provider.Connection {
	t.Helper()
	host, port := splitAddr(t, m.addr)
	c, err := consumer.New(consumer.Options{Host: host, Port: port, OnRequest: handle})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	select {
	case pc := <-m.opened:
		return pc
	case <-time.After(10 * time.Second):
		t.Fatal("not opened")
	}
	return nil
}

func splitAddr(t testing.TB, addr string) (string, int) {
	i := strings.LastIndexByte(addr, ':')
	var port int
	for _, ch := range addr[i+1:] {
		port = port*10 + int(ch-'0')
	}
	return addr[:i], port
}

// Request reaches a Consumer on another node; its reply, its failure, and
// the owner's errors cross back.
func TestNodeRequest(t *testing.T) {
	hub := NewMemHub(0)
	ms := cluster3(t, hub, provider.Options{}, Options{})
	a, b := ms[0], ms[1]
	echo := consumerOn(t, b, func(r *consumer.Request) {
		switch string(r.Message().Data) {
		case "fail":
			r.Fail(4000, "no thanks")
		case "slow":
			go func() { time.Sleep(2 * time.Second); r.Reply(false, []byte("late")) }()
		default:
			r.Reply(true, append([]byte("re:"), r.Message().Data...))
		}
	})
	plain, _ := dialN(t, b, 1, "x=1") // a raw client: no request protocol
	eventually(t, "presence", converged(ms, 2, "", 0))
	var plainID string
	b.n.Range(func(ci ConnInfo) bool {
		if ci.ID != echo.ID() {
			plainID = ci.ID
		}
		return true
	})
	_ = plain
	ctx := context.Background()
	m, err := a.n.Request(ctx, echo.ID(), false, []byte("hi"))
	if err != nil || !m.Binary || string(m.Data) != "re:hi" {
		t.Fatalf("reply %+v %v", m, err)
	}
	_, err = a.n.Request(ctx, echo.ID(), false, []byte("fail"))
	var re *provider.RemoteError
	if !errors.As(err, &re) || re.Code != 4000 || re.Reason != "no thanks" {
		t.Fatalf("fail: %v", err)
	}
	tctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err = a.n.Request(tctx, echo.ID(), false, []byte("slow")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("slow: %v", err)
	}
	if _, err = a.n.Request(ctx, plainID, false, []byte("x")); !errors.Is(err, provider.ErrNotSupported) {
		t.Fatalf("plain client: %v", err)
	}
	if _, err = a.n.Request(ctx, "nope", false, []byte("x")); !errors.Is(err, ErrUnknownConnection) {
		t.Fatalf("unknown: %v", err)
	}
	// Local path.
	if m, err = b.n.Request(ctx, echo.ID(), false, []byte("local")); err != nil || string(m.Data) != "re:local" {
		t.Fatalf("local %+v %v", m, err)
	}
	if s := a.n.Stats(); s.RemoteRequests != 4 || s.RemoteRequestErrors != 3 {
		t.Fatalf("stats %+v", s)
	}
}
