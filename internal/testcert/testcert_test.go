package testcert

import (
	"crypto/tls"
	"io"
	"testing"
)

// TestHandshake: a client with ClientConfig completes a TLS handshake with
// a server with ServerConfig on 127.0.0.1, and one without it does not;
// the files load as a key pair.
func TestHandshake(t *testing.T) {
	c := New(t)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", c.ServerConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 2 {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			_, _ = io.Copy(io.Discard, conn) // runs the handshake, until the client closes
			conn.Close()
		}
	}()
	dial := func(cfg *tls.Config) error {
		conn, err := tls.Dial("tcp", ln.Addr().String(), cfg)
		if err != nil {
			return err
		}
		return conn.Close()
	}
	if err := dial(c.ClientConfig()); err != nil {
		t.Fatalf("trusting client: %v", err)
	}
	if err := dial(&tls.Config{}); err == nil {
		t.Fatal("a client without the root completed the handshake")
	}
	ln.Close()
	<-done

	certFile, keyFile := c.WriteFiles(t, t.TempDir())
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Fatal(err)
	}
}
