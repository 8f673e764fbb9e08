package provider

import (
	"strings"
	"testing"
)

// Upgrade requests that RFC 6455 and RFC 9110 make invalid get 400 and
// never an upgrade.
func TestHandshakeStrictHeaders(t *testing.T) {
	p, e, addr := start(t, Options{})
	req := func(extra ...string) string {
		return "GET /connect HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Version: 13\r\n" + strings.Join(extra, "\r\n") + "\r\n\r\n"
	}
	const good = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=="
	if line, _ := rawHTTP(t, addr, req(good)); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("valid request: %q", line)
	}
	cases := []struct{ name, req string }{
		{"key not base64", req("Sec-WebSocket-Key: not*base64*at*all*here==")},
		{"key of 15 bytes", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j")},
		{"key of 17 bytes", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZXg=")},
		{"key with stray low bits", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZR==")},
		{"key unpadded", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ")},
		{"key repeated", req(good, good)},
		{"key repeated, other case", req(good, "sec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==")},
		{"NUL in a value", req(good, "X-Note: a\x00b")},
		{"NUL in the key", req("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\x00")},
		{"control char in a value", req(good, "X-Note: a\x01b")},
		{"DEL in a value", req(good, "X-Note: a\x7fb")},
		{"lone LF in a value", req(good, "X-Note: a\nb")},
		{"lone CR in a value", req(good, "X-Note: a\rb")},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			line, _ := rawHTTP(t, addr, tc.req)
			if line != "HTTP/1.1 400 Bad Request" {
				t.Fatalf("got %q, want 400", line)
			}
		})
	}
	// A tab inside a value is allowed.
	if line, _ := rawHTTP(t, addr, req(good, "X-Note: a\tb")); line != "HTTP/1.1 101 Switching Protocols" {
		t.Fatalf("tab in a value: %q", line)
	}
	if got, want := p.Stats().Rejected["bad_request"], uint64(len(cases)); got != want {
		t.Fatalf("Rejected[bad_request] = %d, want %d", got, want)
	}
	if n := e.nOpened(); n != 2 {
		t.Fatalf("%d connections opened, want 2", n)
	}
}
