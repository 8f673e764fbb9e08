package peers_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/gobwas/ws"

	"github.com/networkcluster/networkcluster/loadtest/peers"
)

// writeCert writes a self-signed certificate for 127.0.0.1 and its key as
// PEM files and returns their paths and a client configuration trusting it.
func writeCert(t *testing.T) (certFile, keyFile string, client *tls.Config) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

// TestTLS: gorilla and nbio serve wss with the certificate given: a
// crypto/tls client that trusts only it upgrades, echoes and asks for stats.
func TestTLS(t *testing.T) {
	certFile, keyFile, clientCfg := writeCert(t)
	for _, impl := range peers.TLSImpls() {
		t.Run(impl, func(t *testing.T) {
			srv := start(t, peers.Config{Impl: impl, TLSCert: certFile, TLSKey: keyFile})
			ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
			defer cancel()
			nc, br, _, err := ws.Dialer{TLSConfig: clientCfg}.Dial(ctx, "wss://"+srv.Addr()+"/connect")
			if err != nil {
				t.Fatalf("wss dial: %v", err)
			}
			defer nc.Close()
			if _, ok := nc.(*tls.Conn); !ok {
				t.Fatalf("the connection is a %T, not TLS", nc)
			}
			_ = nc.SetDeadline(time.Now().Add(ioTimeout))
			c := &client{t: t, nc: nc, rw: nc}
			if br != nil {
				c.rw = struct {
					io.Reader
					io.Writer
				}{br, nc}
			}
			for i, n := range []int{1, 125, 70_000} {
				msg := payload(n, byte(i))
				c.send(ws.OpBinary, msg)
				if p, op := c.recv(); op != ws.OpBinary || !bytes.Equal(p, msg) {
					t.Fatalf("echo of %d bytes: op %v, %d bytes", n, op, len(p))
				}
			}
			if st := c.stats(); st.Conns != 1 {
				t.Fatalf("stats: %d connections", st.Conns)
			}
		})
	}
	for _, impl := range []string{peers.ImplGobwas, peers.ImplRawTCP} {
		if _, err := peers.Start(peers.Config{Impl: impl, TLSCert: certFile, TLSKey: keyFile}); !errors.Is(err, peers.ErrBadConfig) {
			t.Errorf("%s with TLS: %v, want ErrBadConfig", impl, err)
		}
	}
	if _, err := peers.Start(peers.Config{Impl: peers.ImplGorilla, TLSCert: certFile}); !errors.Is(err, peers.ErrBadConfig) {
		t.Errorf("a certificate without a key: %v, want ErrBadConfig", err)
	}
}
