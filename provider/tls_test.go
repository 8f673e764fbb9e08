package provider

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/pbkdf2"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/testcert"
	"github.com/networkcluster/networkcluster/internal/wstest"
)

// encryptPKCS8 wraps a PKCS#8 key as OpenSSL's `openssl pkcs8 -topk8 -v2
// aes-256-cbc` does: PBES2 with PBKDF2-HMAC-SHA256 and AES-256-CBC.
func encryptPKCS8(t testing.TB, keyDER []byte, pass string) []byte {
	t.Helper()
	salt, iv := make([]byte, 16), make([]byte, 16)
	rand.Read(salt)
	rand.Read(iv)
	key, err := pbkdf2.Key(sha256.New, pass, salt, 2048, 32)
	if err != nil {
		t.Fatal(err)
	}
	pad := 16 - len(keyDER)%16
	plain := append(append([]byte{}, keyDER...), make([]byte, pad)...)
	for i := len(keyDER); i < len(plain); i++ {
		plain[i] = byte(pad)
	}
	block, _ := aes.NewCipher(key)
	enc := make([]byte, len(plain))
	cipher.NewCBCEncrypter(block, iv).CryptBlocks(enc, plain)
	mustMarshal := func(v any) []byte {
		b, err := asn1.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	kdf := mustMarshal(struct {
		Salt       []byte
		Iterations int
		KeyLength  int
		PRF        algorithmIdentifier
	}{salt, 2048, 32, algorithmIdentifier{Algorithm: oidHMACSHA256, Parameters: asn1.RawValue{Tag: 5}}})
	params := mustMarshal(pbes2Params{
		KeyDerivationFunc: algorithmIdentifier{Algorithm: oidPBKDF2, Parameters: asn1.RawValue{FullBytes: kdf}},
		EncryptionScheme:  algorithmIdentifier{Algorithm: oidAES256CBC, Parameters: asn1.RawValue{FullBytes: mustMarshal(iv)}},
	})
	der := mustMarshal(encryptedPrivateKeyInfo{
		Algo:          algorithmIdentifier{Algorithm: oidPBES2, Parameters: asn1.RawValue{FullBytes: params}},
		EncryptedData: enc,
	})
	return pem.EncodeToMemory(&pem.Block{Type: "ENCRYPTED PRIVATE KEY", Bytes: der})
}

func TestTLS(t *testing.T) {
	cert := testcert.New(t)
	certPEM, keyDER := cert.CertPEM(), cert.KeyDER
	dir := t.TempDir()
	write := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	certFile := write("cert.pem", certPEM)
	plainKey := write("key.pem", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}))
	encKey := write("key-enc.pem", encryptPKCS8(t, keyDER, "correct horse"))
	// The legacy OpenSSL PEM encryption ("Proc-Type: 4,ENCRYPTED") that
	// TLS.KeyFile also accepts.
	legacyBlock, err := x509.EncryptPEMBlock(rand.Reader, "PRIVATE KEY", keyDER, []byte("correct horse"), x509.PEMCipherAES256) //nolint:staticcheck
	if err != nil {
		t.Fatal(err)
	}
	legacyKey := write("key-legacy.pem", pem.EncodeToMemory(legacyBlock))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)

	for _, tc := range []struct {
		name string
		tls  TLS
	}{
		{"plain key", TLS{CertFile: certFile, KeyFile: plainKey}},
		{"encrypted PKCS#8 key", TLS{CertFile: certFile, KeyFile: encKey, Passphrase: "correct horse"}},
		{"legacy encrypted PEM key", TLS{CertFile: certFile, KeyFile: legacyKey, Passphrase: "correct horse"}},
		{"goroutine per connection", TLS{CertFile: certFile, KeyFile: plainKey, GoroutinePerConn: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tlsOpts := tc.tls
			o := Options{TLS: &tlsOpts}
			mustEcho(&o)
			_, e, addr := start(t, o)
			conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool})
			if err != nil {
				t.Fatal(err)
			}
			c, err := wstest.Handshake(conn, addr, "/connect?key=x", nil, wstest.Frame(true, frame.OpText, 0, []byte("early")))
			if err != nil || c.Resp.StatusCode != 101 {
				t.Fatalf("upgrade over TLS: %v", err)
			}
			defer c.Close()
			if _, data, err := c.ReadMessage(); err != nil || string(data) != "early" {
				t.Fatalf("echo %q %v", data, err)
			}
			c.WriteFrame(true, frame.OpBinary, make([]byte, 20000))
			if _, data, err := c.ReadMessage(); err != nil || len(data) != 20000 {
				t.Fatalf("echo %d %v", len(data), err)
			}
			c.WriteClose(frame.CloseNormal, "")
			if code, _, err := c.ExpectClose(); err != nil || code != frame.CloseNormal {
				t.Fatalf("close %v %v", code, err)
			}
			c.WaitEOF()
			c.Close()
			e.wait(t, "close", func(e *events) bool { return len(e.closes) == 1 })
		})
	}
	_, err = New(Options{TLS: &TLS{CertFile: certFile, KeyFile: encKey, Passphrase: "wrong"}})
	if !errors.Is(err, ErrTLS) {
		t.Fatalf("wrong passphrase: %v", err)
	}
	_, err = New(Options{TLS: &TLS{CertFile: certFile, KeyFile: legacyKey, Passphrase: "wrong"}})
	if !errors.Is(err, ErrTLS) {
		t.Fatalf("wrong passphrase, legacy key: %v", err)
	}
	_, err = New(Options{TLS: &TLS{CertFile: certFile, KeyFile: encKey}})
	if !errors.Is(err, ErrTLS) {
		t.Fatalf("missing passphrase: %v", err)
	}
}

// TestTLSListener: a listener the caller bound (Options.Listener) serves
// wss on the event loop, and with TLS.GoroutinePerConn on the fallback
// engine, the same way.
func TestTLSListener(t *testing.T) {
	cert := testcert.New(t)
	for _, perConn := range []bool{false, true} {
		t.Run(fmt.Sprintf("GoroutinePerConn=%v", perConn), func(t *testing.T) {
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			o := Options{Listener: ln, TLS: &TLS{Config: cert.ServerConfig(), GoroutinePerConn: perConn}}
			mustEcho(&o)
			p, err := New(o)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			if err := p.Start(); err != nil {
				t.Fatal(err)
			}
			addr := ln.Addr().String()
			conn, err := tls.Dial("tcp", addr, cert.ClientConfig())
			if err != nil {
				t.Fatal(err)
			}
			c, err := wstest.Handshake(conn, addr, "/connect", nil, nil)
			if err != nil || c.Resp.StatusCode != 101 {
				t.Fatalf("upgrade over TLS: %v", err)
			}
			defer c.Close()
			echoOnce(t, c, strings.Repeat("y", 30000))
		})
	}
}
