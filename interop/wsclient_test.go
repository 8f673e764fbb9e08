package interop

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// Node's `ws` v8 client (node/ws-client.js) against our Provider, with and
// without permessage-deflate, for every preset family.

const wsClientMaxPayload = 1 << 20

// peerCases turns the "CASE <name> ok|FAIL <why>" lines of a peer into
// subtests, so that each case shows in the test output and the summary.
func peerCases(t *testing.T, peerName string, p *peer) {
	t.Helper()
	lines := p.matching("CASE ")
	if len(lines) == 0 {
		t.Fatalf("%s reported no case; output:\n%s", peerName, strings.Join(p.output(), "\n"))
	}
	for _, l := range lines {
		rest := strings.TrimPrefix(l, "CASE ")
		name, verdict := rest, ""
		if i := strings.LastIndex(rest, " ok"); i >= 0 && i == len(rest)-3 {
			name, verdict = rest[:i], "ok"
		} else if i := strings.Index(rest, " FAIL"); i >= 0 {
			name, verdict = rest[:i], rest[i+1:]
		}
		t.Run(name, func(t *testing.T) {
			track(t, peerName)
			if verdict != "ok" {
				t.Errorf("%s: %s", peerName, verdict)
			}
		})
	}
}

func TestNodeWSClient(t *testing.T) {
	requireNode(t, "ws")
	t.Parallel()
	type mode struct {
		name    string
		preset  presetCase
		deflate string // --deflate of ws-client.js
		resp    string // the expected response; defaults to preset.resp
	}
	var modes []mode
	for _, pc := range presetFamilies {
		modes = append(modes, mode{name: pc.name + "/client offers deflate", preset: pc, deflate: "on"})
	}
	modes = append(modes,
		mode{name: "DISABLED/client without deflate", preset: presetFamilies[0], deflate: "off"},
		mode{name: "DEDICATED_COMPRESSOR|DEDICATED_DECOMPRESSOR/client without deflate", preset: presetFamilies[3], deflate: "off", resp: "-"},
		mode{name: "DEDICATED_COMPRESSOR|DEDICATED_DECOMPRESSOR/client asks no context takeover and server window 10",
			preset:  presetFamilies[3],
			deflate: `{"serverNoContextTakeover":true,"clientNoContextTakeover":true,"serverMaxWindowBits":10,"threshold":0}`,
			resp:    "permessage-deflate; client_no_context_takeover; server_max_window_bits=10; server_no_context_takeover"},
		mode{name: "DEDICATED_COMPRESSOR_4KB|DEDICATED_DECOMPRESSOR_512B/client limits its window to 12",
			preset:  presetFamilies[4],
			deflate: `{"clientMaxWindowBits":12,"threshold":0}`,
			resp:    "permessage-deflate; client_max_window_bits=9; server_max_window_bits=9"},
	)
	for _, m := range modes {
		t.Run(m.name, func(t *testing.T) {
			prov, ev := startProvider(t, func(o *provider.Options) {
				o.Compressor = m.preset.preset
				o.MaxPayloadLength = wsClientMaxPayload
				o.Heartbeat.Interval = 100 * time.Millisecond
				o.Heartbeat.MaxStrikes = 50 // a slow -race run never loses the connection
			})
			sn := newSniffer(t, prov.Addr().String())
			p := spawn(t, "node", filepath.Join("node", "ws-client.js"),
				"--url", wsURL(sn.Addr()), "--deflate", m.deflate, "--server-pings",
				"--max-payload", strconv.Itoa(wsClientMaxPayload))
			err := p.waitExit(3 * time.Minute)
			peerCases(t, "node ws@8 client", p)
			if err != nil {
				t.Errorf("ws-client.js: %v", err)
			}
			if t.Failed() {
				t.Logf("ws-client.js output:\n%s\nprovider: %s", strings.Join(p.output(), "\n"), ev)
			}

			want := m.resp
			if want == "" {
				want = m.preset.resp
			}
			if want == "-" {
				want = ""
			}
			conns := sn.snapshot()
			if len(conns) == 0 {
				t.Fatal("no connection went through the sniffer")
			}
			compressedMode := want != ""
			for i, c := range conns {
				got := normExt(headerValue(c.Down.Head, "Sec-WebSocket-Extensions"))
				if got != want {
					t.Errorf("connection %d: response extensions %q, want %q (offer %q)", i, got, want,
						headerValue(c.Up.Head, "Sec-WebSocket-Extensions"))
				}
				if !compressedMode && (c.Up.Compressed != 0 || c.Down.Compressed != 0) {
					t.Errorf("connection %d: RSV1 frames without permessage-deflate: up %d down %d", i, c.Up.Compressed, c.Down.Compressed)
				}
			}
			up, down := sn.total()
			t.Logf("wire: client→provider %d messages (%d compressed, %d fragmented), provider→client %d messages (%d compressed); close codes up %v down %v",
				up.Messages, up.Compressed, up.Fragmented, down.Messages, down.Compressed, up.CloseCodes, down.CloseCodes)
			if compressedMode && (up.Compressed == 0 || down.Compressed == 0) {
				t.Errorf("compression negotiated but not used both ways: up %d, down %d compressed messages", up.Compressed, down.Compressed)
			}
			if st := prov.Stats(); compressedMode != (st.FramesCompressed > 0) {
				t.Errorf("Provider FramesCompressed %d with compression %v", st.FramesCompressed, compressedMode)
			}

			// The close codes the Provider reported: the main connection (4001
			// "bye"), then one connection per closing case, in order.
			closing := []provider.CloseCode{4002, 1000, 1005, 1009, 1009, 1007, 1007, 1007, 1007}
			waitFor(t, 10*time.Second, "every connection closed", func() bool { return len(ev.closed()) == len(ev.opened()) })
			opened := ev.opened()
			if len(opened) < 1+len(closing) {
				t.Fatalf("%d connections opened, want %d", len(opened), 1+len(closing))
			}
			for i, c := range opened[len(opened)-len(closing):] {
				cl, _ := ev.closeOf(c.ID())
				if cl.code != closing[i] {
					t.Errorf("closing case %d: Provider reported %d %q, want %d", i, cl.code, cl.reason, closing[i])
				}
			}
			if len(opened) != 1+len(closing) {
				t.Errorf("the main connection was lost and reopened %d times", len(opened)-1-len(closing))
			} else if cl, _ := ev.closeOf(opened[0].ID()); cl.code != 4001 || cl.reason != "bye" {
				t.Errorf("main connection: Provider reported %d %q, want 4001 \"bye\"", cl.code, cl.reason)
			}
			if s := opened[0].Strikes(); s != 0 {
				t.Logf("strikes %d on the main connection (a slow run)", s)
			}
		})
	}
}
