package provider

import (
	"bytes"
	"encoding/base64"
	"strings"
	"testing"
)

// FuzzCheckHeaderFields checks the header-field rules of the upgrade
// request against a plain restatement: a head it accepts has no control
// character but tab in any header line, and at most one Sec-WebSocket-Key,
// which decodes (strict base64) to 16 bytes.
func FuzzCheckHeaderFields(f *testing.F) {
	f.Add([]byte("GET /connect HTTP/1.1\r\nHost: x\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"))
	f.Add([]byte("GET / HTTP/1.1\r\nX: a\x00b\r\nSec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n"))
	f.Fuzz(func(t *testing.T, req []byte) {
		if !checkHeaderFields(req) {
			return
		}
		_, rest, _ := bytes.Cut(req, []byte("\r\n"))
		keys := 0
		for _, line := range strings.Split(string(rest), "\r\n") {
			if line == "" {
				break // the end of the head
			}
			name, value, _ := strings.Cut(line, ":")
			for _, c := range []byte(value) {
				if (c < 0x20 && c != '\t') || c == 0x7f {
					t.Fatalf("accepted a control character in %q", line)
				}
			}
			if strings.EqualFold(name, "Sec-WebSocket-Key") {
				keys++
				k, err := base64.StdEncoding.Strict().DecodeString(strings.Trim(value, " \t"))
				if err != nil || len(k) != 16 {
					t.Fatalf("accepted the key %q", value)
				}
			}
		}
		if keys > 1 {
			t.Fatalf("accepted %d keys", keys)
		}
	})
}
