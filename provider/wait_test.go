package provider

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/wstest"
)

// TestWaitLen: WaitLen returns once enough connections are open, with the
// context's error when it ends first, and ErrClosed when the Provider
// closes first.
func TestWaitLen(t *testing.T) {
	p, _, addr := start(t, Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := p.WaitLen(ctx, 0); err != nil {
		t.Fatalf("WaitLen(0) = %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- p.WaitLen(ctx, 3) }()
	for i := 0; i < 3; i++ {
		select {
		case err := <-done:
			t.Fatalf("WaitLen(3) returned %v with %d connections", err, p.Len())
		default:
		}
		dial(t, addr, "/connect")
	}
	if err := <-done; err != nil || p.Len() < 3 {
		t.Fatalf("WaitLen(3) = %v with Len %d", err, p.Len())
	}

	short, cancelShort := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancelShort()
	if err := p.WaitLen(short, 4); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitLen past its deadline = %v", err)
	}

	go func() { done <- p.WaitLen(ctx, 10) }()
	p.Close()
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Fatalf("WaitLen across Close = %v, want ErrClosed", err)
	}
}

// TestWaitLenMounted: WaitLen counts connections that came through the
// Provider's http.Handler too.
func TestWaitLenMounted(t *testing.T) {
	p, _ := newMounted(t, Options{})
	srv := newHTTPServer(t, p)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.WaitLen(ctx, 2) }()
	for i := 0; i < 2; i++ {
		c, err := wstest.Dial(srv, "/ws", nil, nil)
		if err != nil || c.Resp.StatusCode != 101 {
			t.Fatalf("upgrade: %v", err)
		}
		defer c.Close()
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
