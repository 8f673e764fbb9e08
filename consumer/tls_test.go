package consumer

import (
	"crypto/x509"
	"errors"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/internal/testcert"
)

func TestTLS(t *testing.T) {
	cert := testcert.New(t)
	srvTLS, cliTLS := cert.ServerConfig(), cert.ClientConfig()
	s := newTestServer(t, srvOpts{tls: srvTLS, mode: hbHeader, interval: time.Second})
	c, ev := newConsumer(t, s.port, func(o *Options) { o.TLSConfig = cliTLS })
	if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.Send("over TLS"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "the echo", func() bool { _, _, _, _, m := ev.snapshot(); return len(m) == 1 })
	c.Close()

	// Without the root, the handshake fails (and is retried, then given up).
	c2, _ := newConsumer(t, s.port, func(o *Options) {
		o.TLS = true
		o.Reconnect = Reconnect{Interval: time.Millisecond, MaxAttempts: 1}
	})
	var unknown x509.UnknownAuthorityError
	if err := c2.Connect(ctxT(t, 5*time.Second)); !errors.Is(err, ErrGaveUp) || !errors.As(err, &unknown) {
		t.Fatalf("Connect without the root = %v", err)
	}
}
