package provider

import (
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
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

// A connection the heartbeat closed counts once in HeartbeatKills however
// long it takes to finish closing (here its OnMessage is still running).
func TestHeartbeatKillCountedOnce(t *testing.T) {
	release := make(chan struct{})
	entered := make(chan struct{}, 1)
	o := Options{
		Heartbeat: Heartbeat{Interval: 20 * time.Millisecond, MaxStrikes: 1},
		OnMessage: func(c *Connection, m Message) {
			entered <- struct{}{}
			<-release
		},
	}
	p, e, addr := start(t, o)
	silent := dial(t, addr, "/connect") // never answers a ping
	if err := silent.WriteFrame(true, frame.OpText, []byte("block")); err != nil {
		t.Fatal(err)
	}
	<-entered
	e.wait(t, "the heartbeat kill", func(*events) bool { return p.Stats().HeartbeatKills > 0 })
	time.Sleep(300 * time.Millisecond) // 15 intervals
	close(release)
	e.wait(t, "OnClose", func(e *events) bool { return len(e.closes) == 1 })
	if n := p.Stats().HeartbeatKills; n != 1 {
		t.Fatalf("HeartbeatKills = %d for one connection", n)
	}
}
