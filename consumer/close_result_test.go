package consumer

import (
	"errors"
	"net"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gobwas/ws"
)

// Close reports how the close handshake ended: nil when the Provider
// answered, ErrClosed on a later call, and it still waits for OnClose.
func TestCloseReturnsNilAfterCleanHandshake(t *testing.T) {
	s := newTestServer(t, srvOpts{})
	c, ev := newConsumer(t, s.port, nil)
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close after a clean handshake = %v, want nil", err)
	}
	if _, _, closes, _, _ := ev.snapshot(); len(closes) != 1 || closes[0].code != 1000 {
		t.Fatalf("OnClose had not run when Close returned: %v", closes)
	}
	waitFor(t, 5*time.Second, "the server's close", func() bool { return len(s.closeCodes()) == 1 })
	if got := s.closeCodes()[0]; got != 1000 {
		t.Fatalf("server got close code %v", got)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

func TestCloseReturnsErrCloseTimeout(t *testing.T) {
	port := deafHeartbeatServer(t, time.Hour) // never answers the close frame
	const closeTimeout = 50 * time.Millisecond
	c, ev := newConsumer(t, port, func(o *Options) { o.CloseTimeout = closeTimeout })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err := c.Close()
	if !errors.Is(err, ErrCloseTimeout) {
		t.Fatalf("Close with a deaf Provider = %v, want ErrCloseTimeout", err)
	}
	if d := time.Since(start); d < closeTimeout {
		t.Fatalf("Close returned after %v, before CloseTimeout %v", d, closeTimeout)
	}
	if _, _, closes, _, _ := ev.snapshot(); len(closes) != 1 {
		t.Fatalf("OnClose had not run when Close returned: %v", closes)
	}
	if err := c.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("second Close = %v, want ErrClosed", err)
	}
}

// A Provider that ends TCP on the close frame without answering it: Close
// reports the failed handshake, and it is not a timeout.
func TestCloseReportsTCPEndWithoutCloseFrame(t *testing.T) {
	port, _ := rawListener(t, func(nc net.Conn) {
		if _, err := ws.Upgrade(nc); err != nil {
			return
		}
		go func() {
			b := make([]byte, 64)
			_, _ = nc.Read(b) // the Consumer's close frame
			_ = nc.Close()
		}()
	})
	c, _ := newConsumer(t, port, func(o *Options) { o.CloseTimeout = time.Minute })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	err := c.Close()
	if err == nil || errors.Is(err, ErrCloseTimeout) || errors.Is(err, ErrClosed) {
		t.Fatalf("Close when TCP ended without a close frame = %v, want the handshake's error", err)
	}
}

// Without an open connection there is no handshake to fail: nil.
func TestCloseWithoutConnectionReturnsNil(t *testing.T) {
	c, _ := newConsumer(t, freePort(t), nil)
	if err := c.Close(); err != nil {
		t.Fatalf("Close before Connect = %v", err)
	}
	var failed atomic.Int64
	c2, _ := newConsumer(t, freePort(t), func(o *Options) { // nothing listens: it keeps retrying
		o.OnError = func(error) { failed.Add(1) }
	})
	go c2.Connect(ctxT(t, 5*time.Second))
	waitFor(t, 5*time.Second, "a failed attempt", func() bool { return failed.Load() > 0 })
	if err := c2.Close(); err != nil {
		t.Fatalf("Close while reconnecting = %v", err)
	}
	c3, _ := newConsumer(t, freePort(t), nil)
	c3.Destroy()
	if err := c3.Close(); !errors.Is(err, ErrClosed) {
		t.Fatalf("Close after Destroy = %v, want ErrClosed", err)
	}
}
