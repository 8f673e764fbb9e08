package interop

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/frame"
)

// The Consumer against Node's `ws` v8 server (node/ws-server.js).

type closeEv struct {
	code   frame.CloseCode
	reason string
}

// rec records a Consumer's events.
type rec struct {
	msgs chan consumer.Message // copies

	mu     sync.Mutex
	opens  int
	disc   []closeEv
	closes []closeEv
	errs   []error
}

func (r *rec) disconnects() []closeEv {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]closeEv(nil), r.disc...)
}

func newConsumer(t *testing.T, port int, mod func(*consumer.Options)) (*consumer.Consumer, *rec) {
	t.Helper()
	r := &rec{msgs: make(chan consumer.Message, 64)}
	o := consumer.Options{
		Host:      "127.0.0.1",
		Port:      port,
		Reconnect: consumer.Reconnect{Interval: 20 * time.Millisecond},
		OnOpen:    func() { r.mu.Lock(); r.opens++; r.mu.Unlock() },
		OnMessage: func(m consumer.Message) {
			r.msgs <- consumer.Message{Binary: m.Binary, Data: bytes.Clone(m.Data)}
		},
		OnDisconnect: func(code frame.CloseCode, reason string) {
			r.mu.Lock()
			r.disc = append(r.disc, closeEv{code, reason})
			r.mu.Unlock()
		},
		OnClose: func(code frame.CloseCode, reason string) {
			r.mu.Lock()
			r.closes = append(r.closes, closeEv{code, reason})
			r.mu.Unlock()
		},
		OnError: func(err error) { r.mu.Lock(); r.errs = append(r.errs, err); r.mu.Unlock() },
	}
	if mod != nil {
		mod(&o)
	}
	c, err := consumer.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Destroy)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, r
}

// dumpOnFailure logs the peer's output and the Consumer's events when t
// failed.
func (r *rec) dumpOnFailure(t *testing.T, p *peer) {
	if !t.Failed() {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	t.Logf("peer output:\n%s", strings.Join(p.output(), "\n"))
	t.Logf("consumer: opens %d, disconnects %v, closes %v, errors %v", r.opens, r.disc, r.closes, r.errs)
}

// next returns the next message, failing after 10 s.
func (r *rec) next(t *testing.T) consumer.Message {
	select {
	case m := <-r.msgs:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no message within 10 s")
		return consumer.Message{}
	}
}

func (r *rec) expect(t *testing.T, binary bool, data []byte) {
	t.Helper()
	m := r.next(t)
	if m.Binary != binary || !bytes.Equal(m.Data, data) {
		t.Fatalf("got binary=%v %d bytes %.40q…, want binary=%v %d bytes %.40q…", m.Binary, len(m.Data), m.Data, binary, len(data), data)
	}
}

// wsModes are the configurations the echo test runs in: the Node server's
// permessage-deflate setting and the Consumer's preset.
var wsModes = []struct {
	name    string
	deflate string // --deflate for ws-server.js
	mod     func(*consumer.Options)
	ext     string // substring of the negotiated extensions; "" = none
}{
	{name: "plain", deflate: "off"},
	{name: "plain server, deflate offered", deflate: "off", mod: preset(compress.DedicatedCompressor | compress.DedicatedDecompressor)},
	{name: "deflate shared", deflate: "on", ext: "permessage-deflate", mod: preset(compress.SharedCompressor | compress.SharedDecompressor)},
	{name: "deflate dedicated 32KB windows", deflate: "on", ext: "permessage-deflate", mod: preset(compress.DedicatedCompressor | compress.DedicatedDecompressor)},
	{name: "deflate dedicated small windows", deflate: "on", ext: "server_max_window_bits=10", mod: preset(compress.DedicatedCompressor4KB | compress.DedicatedDecompressor1KB)},
	{name: "deflate server without context takeover", ext: "client_no_context_takeover",
		deflate: `{"threshold":0,"serverNoContextTakeover":true,"clientNoContextTakeover":true}`,
		mod:     preset(compress.DedicatedCompressor | compress.DedicatedDecompressor)},
	{name: "deflate server limits windows", ext: "server_max_window_bits=9",
		deflate: `{"threshold":0,"serverMaxWindowBits":9,"clientMaxWindowBits":9}`,
		mod:     preset(compress.DedicatedCompressor | compress.DedicatedDecompressor)},
}

func preset(p compress.Preset) func(*consumer.Options) {
	return func(o *consumer.Options) { o.Compressor = p }
}

func TestWSEcho(t *testing.T) {
	requireNode(t, "ws")
	for _, mode := range wsModes {
		t.Run(mode.name, func(t *testing.T) {
			p := startNodePeer(t, "ws-server.js", "--deflate", mode.deflate)
			c, r := newConsumer(t, p.port, func(o *consumer.Options) {
				o.Parameters = map[string]string{"key": "SECRET KEY&1", "id": "é"}
				o.Header = map[string][]string{"Authorization": {"Bearer abc"}}
				o.MaxPayloadLength = 4 << 20
				if mode.mod != nil {
					mode.mod(o)
				}
			})
			t.Cleanup(func() { r.dumpOnFailure(t, p) })

			// The handshake carried the parameters and headers.
			if l := p.wait("OPEN ", 5*time.Second); l != "OPEN /connect?id=%C3%A9&key=SECRET+KEY%261" {
				t.Errorf("request line %q", l)
			}
			p.wait("HEADER Authorization: Bearer abc", 5*time.Second)

			// The negotiated extension.
			if err := c.Send("cmd:ext"); err != nil {
				t.Fatal(err)
			}
			m := r.next(t)
			if mode.ext == "" {
				if string(m.Data) != "ext:" || p.count("RESPONSE-EXT") != 0 {
					t.Fatalf("extensions %q negotiated", m.Data)
				}
			} else if l := p.wait("RESPONSE-EXT ", time.Second); string(m.Data) != "ext:permessage-deflate" || !strings.Contains(l, mode.ext) {
				t.Fatalf("extensions %q, response %q, want %q", m.Data, l, mode.ext)
			}

			// Text and binary, small and large, both directions.
			small := [][]byte{[]byte("héllo"), {}, []byte(strings.Repeat("a", 2000))}
			for _, b := range small {
				if err := c.SendText(b); err != nil {
					t.Fatal(err)
				}
				r.expect(t, false, b)
			}
			bin := make([]byte, 256)
			for i := range bin {
				bin[i] = byte(i)
			}
			if err := c.SendBinary(bin); err != nil {
				t.Fatal(err)
			}
			r.expect(t, true, bin)
			big := make([]byte, 1<<20)
			_, _ = rand.Read(big)
			if err := c.SendBinary(big); err != nil {
				t.Fatal(err)
			}
			r.expect(t, true, big)
			bigText := []byte(strings.Repeat("réseau ", 40000)) // 320 000 bytes
			if err := c.SendText(bigText); err != nil {
				t.Fatal(err)
			}
			r.expect(t, false, bigText)

			if err := c.Send("cmd:big:3000000"); err != nil {
				t.Fatal(err)
			}
			m = r.next(t)
			if !m.Binary || len(m.Data) != 3000000 || m.Data[2999999] != byte(2999999%251) {
				t.Fatalf("3 MB message: binary=%v len %d", m.Binary, len(m.Data))
			}
			if err := c.Send("cmd:bigtext:200000"); err != nil {
				t.Fatal(err)
			}
			if m := r.next(t); m.Binary || len(m.Data) != 200000 || !utf8.Valid(m.Data) {
				t.Fatalf("200 kB text: binary=%v len %d", m.Binary, len(m.Data))
			}

			// A fragmented message, and a ping.
			if err := c.Send("cmd:frag"); err != nil {
				t.Fatal(err)
			}
			r.expect(t, false, []byte("fragmentéd"))
			if err := c.Send("cmd:ping:beat"); err != nil {
				t.Fatal(err)
			}
			p.wait("PONG beat", 5*time.Second)

			// The server closes with a code: echoed, reported, reconnected.
			if err := c.Send("cmd:close:4001:bye"); err != nil {
				t.Fatal(err)
			}
			p.wait("CLOSE 4001 bye", 5*time.Second)
			waitFor(t, 5*time.Second, "the disconnect", func() bool { return len(r.disconnects()) == 1 })
			if d := r.disconnects()[0]; d != (closeEv{4001, "bye"}) {
				t.Fatalf("disconnect %v", d)
			}
			waitFor(t, 5*time.Second, "the reconnect", func() bool { return p.count("OPEN ") == 2 && c.Connected() })

			// TCP dropped without a close frame: 1006, reconnected.
			if err := c.Send("cmd:terminate"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "the disconnect", func() bool { return len(r.disconnects()) == 2 })
			if d := r.disconnects()[1]; d.code != frame.CloseAbnormal {
				t.Fatalf("disconnect %v", d)
			}
			waitFor(t, 5*time.Second, "the reconnect", func() bool { return p.count("OPEN ") == 3 && c.Connected() })

			// Invalid UTF-8 from the server: the Consumer fails with 1007.
			if err := c.Send("cmd:badutf8"); err != nil {
				t.Fatal(err)
			}
			p.wait("CLOSE 1007", 5*time.Second)
			waitFor(t, 5*time.Second, "the disconnect", func() bool { return len(r.disconnects()) == 3 })
			if d := r.disconnects()[2]; d.code != frame.CloseInvalidPayload {
				t.Fatalf("disconnect %v", d)
			}
			waitFor(t, 5*time.Second, "the reconnect", func() bool { return p.count("OPEN ") == 4 && c.Connected() })

			// Over MaxPayloadLength (4 MiB): the Consumer fails with 1009.
			if err := c.Send("cmd:big:5000000"); err != nil {
				t.Fatal(err)
			}
			p.wait("CLOSE 1009", 5*time.Second)
			waitFor(t, 5*time.Second, "the reconnect", func() bool { return p.count("OPEN ") == 5 && c.Connected() })

			// Close: the handshake completes with 1000.
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			p.wait("CLOSE 1000", 5*time.Second)
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.closes) != 1 || r.closes[0].code != frame.CloseNormal || r.disc[len(r.disc)-1].code != frame.CloseNormal {
				t.Fatalf("closes %v disconnects %v", r.closes, r.disc)
			}
		})
	}
}

func TestWSHeartbeat(t *testing.T) {
	requireNode(t, "ws")
	for _, tc := range []struct {
		name, flag, pong string
	}{
		{"control frames with the header", "--heartbeat-header", "PONG "},
		{"Node 1.0.4 text form", "--text-heartbeat", "TEXTPONG"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := startNodePeer(t, "ws-server.js", tc.flag, "250")
			c, r := newConsumer(t, p.port, nil)
			waitFor(t, 20*time.Second, "4 heartbeats answered", func() bool { return p.count(tc.pong) >= 4 })
			if c.HeartbeatInterval() != 250*time.Millisecond || c.HeartbeatCutoff() != 500*time.Millisecond {
				t.Fatalf("interval %v cutoff %v", c.HeartbeatInterval(), c.HeartbeatCutoff())
			}
			if time.Since(c.LastHeartbeat()) > 10*time.Second {
				t.Fatalf("LastHeartbeat %v", c.LastHeartbeat())
			}
			if err := c.Send("after the heartbeats"); err != nil {
				t.Fatal(err)
			}
			r.expect(t, false, []byte("after the heartbeats")) // no PING or PROVIDER_HEARTBEAT delivered
			c.Close()
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.errs) != 0 {
				t.Logf("errors (a loaded machine may hit the cutoff): %v", r.errs)
			}
		})
	}
}

// TestWSNotConnected: a Send to a server that went away returns an error.
func TestWSNotConnected(t *testing.T) {
	requireNode(t, "ws")
	p := startNodePeer(t, "ws-server.js")
	c, r := newConsumer(t, p.port, func(o *consumer.Options) {
		o.Reconnect = consumer.Reconnect{Interval: 10 * time.Millisecond, MaxAttempts: 2}
	})
	p.stop()
	waitFor(t, 10*time.Second, "the give-up", func() bool {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.closes) == 1
	})
	if err := c.Send("x"); !errors.Is(err, consumer.ErrNotConnected) {
		t.Fatalf("Send = %v", err)
	}
	if err := c.Ready(context.Background()); !errors.Is(err, consumer.ErrGaveUp) {
		t.Fatalf("Ready = %v", err)
	}
}

// A ws server without handleProtocols selects the first subprotocol
// offered, network-cluster.v1 (as the Node 1.0.4 Provider, which echoes the
// first offer): our Consumer then speaks the plain protocol byte for byte
// (a binary echo comes back unchanged) and refuses requests.
func TestWSNegotiation(t *testing.T) {
	requireNode(t, "ws")
	track(t, "ws")
	p := startNodePeer(t, "ws-server.js")
	c, r := newConsumer(t, p.port, nil)
	t.Cleanup(func() { r.dumpOnFailure(t, p) })
	p.wait("HEADER Sec-WebSocket-Protocol: network-cluster.v1, network-cluster.v2", 5*time.Second)
	if c.SupportsRequests() {
		t.Fatal("requests negotiated with a ws server")
	}
	if _, err := c.Request(context.Background(), true, []byte("job")); !errors.Is(err, consumer.ErrNotSupported) {
		t.Fatalf("Request: %v, want ErrNotSupported", err)
	}
	bin := []byte{0, 1, 2, 0x11, 0xff}
	if err := c.SendBinary(bin); err != nil {
		t.Fatal(err)
	}
	r.expect(t, true, bin)
	if err := c.Send("text"); err != nil {
		t.Fatal(err)
	}
	r.expect(t, false, []byte("text"))
}
