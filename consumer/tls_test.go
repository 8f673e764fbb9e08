package consumer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"math/big"
	"net"
	"testing"
	"time"
)

// selfSigned returns a server TLS config for 127.0.0.1 and a client config
// that trusts it.
func selfSigned(t testing.TB) (server, client *tls.Config) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "network-cluster test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}},
		&tls.Config{RootCAs: pool}
}

func TestTLS(t *testing.T) {
	srvTLS, cliTLS := selfSigned(t)
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
