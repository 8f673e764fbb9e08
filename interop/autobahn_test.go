package interop

import (
	"crypto/rand"
	"encoding/json"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// Debian's python3-autobahn: its client against our Provider
// (python/ab_client.py), our Consumer against its server
// (python/ab_server.py), and raw-frame checks built on its client
// (python/ab_raw.py, rawframes_test.go).

// abExt is the permessage-deflate configuration autobahn reports in use.
type abExt struct {
	ServerNoContextTakeover bool `json:"server_no_context_takeover"`
	ClientNoContextTakeover bool `json:"client_no_context_takeover"`
	ServerMaxWindowBits     int  `json:"server_max_window_bits"`
	ClientMaxWindowBits     int  `json:"client_max_window_bits"`
}

func TestAutobahnClient(t *testing.T) {
	requireAutobahn(t)
	t.Parallel()
	type mode struct {
		name     string
		preset   compress.Preset
		offer    string // --offer of ab_client.py
		fragment int
		resp     string // expected normalized response; "" none
	}
	// The default offer keeps context takeover both ways:
	// "permessage-deflate; client_max_window_bits".
	var modes []mode
	for _, pc := range presetFamilies {
		modes = append(modes, mode{name: pc.name, preset: pc.preset, offer: "{}", resp: pc.resp})
	}
	ded := compress.DedicatedCompressor | compress.DedicatedDecompressor
	small := compress.DedicatedCompressor4KB | compress.DedicatedDecompressor512B
	modes = append(modes,
		mode{name: "DEDICATED|DEDICATED/fragmented by autobahn", preset: ded, offer: "{}", fragment: 3000, resp: "permessage-deflate"},
		mode{name: "DEDICATED_4KB|DECOMPRESSOR_512B/fragmented by autobahn", preset: small, offer: "{}", fragment: 700,
			resp: "permessage-deflate; client_max_window_bits=9; server_max_window_bits=9"},
		mode{name: "DEDICATED|DEDICATED/offer server_max_window_bits=10", preset: ded, offer: `{"request_max_window_bits":10}`,
			resp: "permessage-deflate; server_max_window_bits=10"},
		mode{name: "DEDICATED|DEDICATED/offer server_no_context_takeover, accepts client_no_context_takeover", preset: ded,
			offer: `{"request_no_context_takeover":true,"accept_no_context_takeover":true}`,
			resp:  "permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
		mode{name: "DEDICATED_4KB|DECOMPRESSOR_512B/offer without client_max_window_bits", preset: small,
			offer: `{"accept_max_window_bits":false}`,
			resp:  "permessage-deflate; client_no_context_takeover; server_max_window_bits=9"},
		mode{name: "DEDICATED|DEDICATED/no offer", preset: ded, offer: "none"},
	)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			prov, ev := startProvider(t, func(o *provider.Options) { o.Compressor = m.preset })
			sn := newSniffer(t, prov.Addr().String())
			args := []string{filepath.Join("python", "ab_client.py"), "--url", wsURL(sn.Addr()), "--offer", m.offer, "--messages", "100"}
			if m.fragment > 0 {
				args = append(args, "--fragment", itoa(m.fragment))
			}
			p := spawn(t, python, args...)
			err := p.waitExit(3 * time.Minute)
			peerCases(t, "python3-autobahn client", p)
			if err != nil {
				t.Errorf("ab_client.py: %v", err)
			}
			if t.Failed() {
				t.Logf("ab_client.py output:\n%s\nprovider: %s", strings.Join(p.output(), "\n"), ev)
			}
			conns := sn.snapshot()
			if len(conns) != 1 {
				t.Fatalf("%d connections through the sniffer", len(conns))
			}
			c := conns[0]
			if got := normExt(headerValue(c.Down.Head, "Sec-WebSocket-Extensions")); got != m.resp {
				t.Errorf("response extensions %q, want %q (offer %q)", got, m.resp, headerValue(c.Up.Head, "Sec-WebSocket-Extensions"))
			}
			t.Logf("offer %q, response %q, autobahn uses %s", headerValue(c.Up.Head, "Sec-WebSocket-Extensions"),
				headerValue(c.Down.Head, "Sec-WebSocket-Extensions"), strings.TrimPrefix(p.wait("EXT ", 0), "EXT "))
			t.Logf("wire: autobahn→provider %d messages (%d compressed, %d fragmented), provider→autobahn %d messages (%d compressed)",
				c.Up.Messages, c.Up.Compressed, c.Up.Fragmented, c.Down.Messages, c.Down.Compressed)
			if m.resp != "" && (c.Up.Compressed == 0 || c.Down.Compressed == 0) {
				t.Errorf("compression negotiated but not used both ways: up %d, down %d", c.Up.Compressed, c.Down.Compressed)
			}
			if m.resp == "" && (c.Up.Compressed != 0 || c.Down.Compressed != 0) {
				t.Errorf("RSV1 frames without permessage-deflate: up %d, down %d", c.Up.Compressed, c.Down.Compressed)
			}
			if m.fragment > 0 && c.Up.Fragmented == 0 {
				t.Errorf("no fragmented message from autobahn")
			}
			if ext := strings.TrimPrefix(p.wait("EXT ", 0), "EXT "); m.resp != "" {
				var e abExt
				if err := json.Unmarshal([]byte(ext), &e); err != nil {
					t.Errorf("EXT %q: %v", ext, err)
				}
			}
		})
	}
}

func TestAutobahnServer(t *testing.T) {
	requireAutobahn(t)
	t.Parallel()
	type mode struct {
		name     string
		preset   compress.Preset
		deflate  string // --deflate of ab_server.py
		fragment int
		ext      bool // permessage-deflate negotiated
	}
	ded := compress.DedicatedCompressor | compress.DedicatedDecompressor
	modes := []mode{
		{name: "DISABLED", preset: compress.Disabled, deflate: "on"},
		{name: "SHARED_COMPRESSOR", preset: compress.SharedCompressor, deflate: "on", ext: true},
		{name: "SHARED_COMPRESSOR|SHARED_DECOMPRESSOR", preset: compress.SharedCompressor | compress.SharedDecompressor, deflate: "on", ext: true},
		{name: "DEDICATED_COMPRESSOR|DEDICATED_DECOMPRESSOR", preset: ded, deflate: "on", ext: true},
		{name: "DEDICATED_COMPRESSOR_4KB|DEDICATED_DECOMPRESSOR_512B", preset: compress.DedicatedCompressor4KB | compress.DedicatedDecompressor512B, deflate: "on", ext: true},
		{name: "DEDICATED_COMPRESSOR_16KB|SHARED_DECOMPRESSOR", preset: compress.DedicatedCompressor16KB | compress.SharedDecompressor, deflate: "on", ext: true},
		{name: "DEDICATED|DEDICATED/server fragments at 1000 bytes", preset: ded, deflate: "on", fragment: 1000, ext: true},
		{name: "DEDICATED|DEDICATED/server asks client_max_window_bits=10, client_no_context_takeover", preset: ded,
			deflate: `{"request_max_window_bits":10,"request_no_context_takeover":true}`, ext: true},
		{name: "DEDICATED|DEDICATED/server compresses with window 9, no context", preset: ded,
			deflate: `{"window_bits":9,"no_context_takeover":true}`, ext: true},
		{name: "DEDICATED|DEDICATED/server without deflate", preset: ded, deflate: "off"},
	}
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			track(t, "python3-autobahn server")
			args := []string{filepath.Join("python", "ab_server.py"), "--deflate", m.deflate}
			if m.fragment > 0 {
				args = append(args, "--fragment", itoa(m.fragment))
			}
			p := startPeer(t, python, args...)
			sn := newSniffer(t, "127.0.0.1:"+itoa(p.port))
			_, port := splitPort(t, sn.Addr())
			c, r := newConsumer(t, port, func(o *consumer.Options) {
				o.Compressor = m.preset
				o.Parameters = map[string]string{"key": "SECRET", "worker": "7"}
			})
			t.Cleanup(func() { r.dumpOnFailure(t, p) })

			if l := p.wait("OPEN ", 5*time.Second); l != "OPEN /connect?key=SECRET&worker=7" {
				t.Errorf("request %q", l)
			}
			if err := c.Send("cmd:ext"); err != nil {
				t.Fatal(err)
			}
			ext := strings.TrimPrefix(string(r.next(t).Data), "ext:")
			if (ext != "{}") != m.ext {
				t.Fatalf("extension in use %s, want negotiated=%v", ext, m.ext)
			}

			// Single messages, then 200 pipelined.
			big := make([]byte, 1<<20)
			_, _ = rand.Read(big)
			singles := []consumer.Message{
				{Data: []byte("héllo")}, {Data: []byte{}}, {Data: []byte(strings.Repeat("a", 2000))},
				{Binary: true, Data: patterned(256)}, {Binary: true, Data: big},
				{Data: []byte(strings.Repeat("réseau ", 40000))},
			}
			for _, msg := range singles {
				send(t, c, msg)
				r.expect(t, msg.Binary, msg.Data)
			}
			var many []consumer.Message
			for i := range 200 {
				n := (i * 997) % 20000
				switch i % 3 {
				case 0:
					many = append(many, consumer.Message{Data: textOf(n)})
				case 1:
					b := make([]byte, n)
					_, _ = rand.Read(b)
					many = append(many, consumer.Message{Binary: true, Data: b})
				default:
					many = append(many, consumer.Message{Binary: true, Data: patterned(n)})
				}
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for _, msg := range many {
					if err := sendErr(c, msg); err != nil {
						t.Error(err)
						return
					}
				}
			}()
			for _, msg := range many {
				r.expect(t, msg.Binary, msg.Data)
			}
			<-done

			// Large messages from the server, a ping, a close with a code.
			if err := c.Send("cmd:big:1500000"); err != nil {
				t.Fatal(err)
			}
			r.expect(t, true, patterned(1500000))
			if err := c.Send("cmd:bigtext:200000"); err != nil {
				t.Fatal(err)
			}
			r.expect(t, false, textOf(200000))
			if err := c.Send("cmd:ping:beat"); err != nil {
				t.Fatal(err)
			}
			p.wait("PONG beat", 5*time.Second)
			if err := c.Send("cmd:close:4001:bye"); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 10*time.Second, "the disconnect", func() bool { return len(r.disconnects()) == 1 })
			if d := r.disconnects()[0]; d != (closeEv{4001, "bye"}) {
				t.Fatalf("disconnect %v", d)
			}
			waitFor(t, 10*time.Second, "the reconnect", func() bool { return p.count("OPEN ") == 2 && c.Connected() })
			if err := c.Close(); err != nil {
				t.Fatal(err)
			}
			l := p.wait("CLOSE ", 5*time.Second)
			waitFor(t, 5*time.Second, "both closes", func() bool { return p.count("CLOSE ") == 2 })
			if cl := p.matching("CLOSE "); cl[0] != "CLOSE True 4001 bye" || !strings.HasPrefix(cl[1], "CLOSE True 1000") {
				t.Errorf("autobahn saw %q (first %q)", cl, l)
			}

			up, down := sn.total()
			t.Logf("wire: consumer→autobahn %d messages (%d compressed), autobahn→consumer %d messages (%d compressed, %d fragmented)",
				up.Messages, up.Compressed, down.Messages, down.Compressed, down.Fragmented)
			if m.ext && (up.Compressed == 0 || down.Compressed == 0) {
				t.Errorf("compression negotiated but not used both ways: up %d, down %d", up.Compressed, down.Compressed)
			}
			if !m.ext && (up.Compressed != 0 || down.Compressed != 0) {
				t.Errorf("RSV1 frames without permessage-deflate: up %d, down %d", up.Compressed, down.Compressed)
			}
			if m.fragment > 0 && down.Fragmented == 0 {
				t.Errorf("autobahn sent no fragmented message")
			}
		})
	}
}

func send(t *testing.T, c *consumer.Consumer, m consumer.Message) {
	t.Helper()
	if err := sendErr(c, m); err != nil {
		t.Fatal(err)
	}
}

func sendErr(c *consumer.Consumer, m consumer.Message) error {
	if m.Binary {
		return c.SendBinary(m.Data)
	}
	return c.SendText(m.Data)
}

func splitPort(t *testing.T, addr string) (string, int) {
	t.Helper()
	h, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatal(err)
	}
	return h, n
}
