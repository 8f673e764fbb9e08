package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// oursGoroutines is our Provider serving wss with one goroutine per
// connection (`loadtest serve --tls-goroutines`), the fallback engine: a
// column of its own, for the wss scenarios only.
const oursGoroutines = ours + "-goroutines"

// servesScheme reports whether server s takes part in a scenario over wss
// (tls) or ws: gobwas and the raw TCP mirror have no TLS here, the
// goroutine engine is only measured for wss.
func servesScheme(s string, tls bool) bool {
	switch s {
	case oursGoroutines:
		return tls
	case ours, "gorilla", "nbio":
		return true
	}
	return !tls
}

// tlsFiles is the certificate every wss server of a run presents, and the
// client configuration that trusts it (and nothing else).
type tlsFiles struct {
	cert, key string
	client    *tls.Config
}

// writeTLSFiles writes a fresh self-signed ECDSA P-256 certificate for
// 127.0.0.0/8 and its key into dir.
func writeTLSFiles(dir string) (*tlsFiles, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(time.Now().UnixNano()),
		Subject:      pkix.Name{CommonName: "loadtest"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	for i := 1; i <= 254; i++ { // the sources and targets of a run: 127.0.0.1 … 127.0.0.254
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IPv4(127, 0, 0, byte(i)))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	f := &tlsFiles{cert: filepath.Join(dir, "cert.pem"), key: filepath.Join(dir, "key.pem")}
	if err := os.WriteFile(f.cert, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(f.key, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("loadtest: the generated certificate: %w", err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	f.client = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	return f, nil
}
