package interop

import (
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// Headless Chromium (Debian's chromium driven by playwright-core,
// node/browser.js) opening WebSockets to the Provider from a page served on
// 127.0.0.1 (web/page.html), once per preset family, in one browser run.

func TestChromium(t *testing.T) {
	requireChromium(t)
	t.Parallel()
	page := httptest.NewServer(http.FileServer(http.Dir("web")))
	t.Cleanup(page.Close)

	type target struct {
		pc   presetCase
		prov *provider.Provider
		ev   *provEvents
		sn   *sniffer
	}
	var targets []target
	args := []string{filepath.Join("node", "browser.js"), "--page", page.URL + "/page.html"}
	for _, pc := range presetFamilies {
		prov, ev := startProvider(t, func(o *provider.Options) { o.Compressor = pc.preset })
		sn := newSniffer(t, prov.Addr().String())
		targets = append(targets, target{pc, prov, ev, sn})
		args = append(args, "--ws", pc.name+"="+wsURL(sn.Addr()))
	}
	p := spawn(t, "node", args...)
	err := p.waitExit(3 * time.Minute)
	peerCases(t, "headless chromium", p)
	if err != nil {
		t.Errorf("browser.js: %v", err)
	}
	t.Logf("%s", strings.Join(p.matching("BROWSER "), ""))
	if t.Failed() {
		t.Logf("browser.js output:\n%s", strings.Join(p.output(), "\n"))
	}
	for _, tg := range targets {
		t.Run(tg.pc.name+"/wire", func(t *testing.T) {
			track(t, "headless chromium")
			conns := tg.sn.snapshot()
			if len(conns) != 2 {
				t.Fatalf("%d connections, want 2", len(conns))
			}
			for i, c := range conns {
				offer := headerValue(c.Up.Head, "Sec-WebSocket-Extensions")
				got := normExt(headerValue(c.Down.Head, "Sec-WebSocket-Extensions"))
				if i == 0 {
					t.Logf("offer %q, response %q, page saw %q", offer, got,
						strings.TrimPrefix(p.wait("INFO "+tg.pc.name+"/extensions ", 0), "INFO "+tg.pc.name+"/extensions "))
				}
				if got != tg.pc.resp {
					t.Errorf("connection %d: response %q, want %q (offer %q)", i, got, tg.pc.resp, offer)
				}
			}
			c := conns[0]
			t.Logf("wire: chromium→provider %d messages (%d compressed), provider→chromium %d messages (%d compressed); close codes %v / %v",
				c.Up.Messages, c.Up.Compressed, c.Down.Messages, c.Down.Compressed, c.Up.CloseCodes, c.Down.CloseCodes)
			if tg.pc.resp != "" && (c.Up.Compressed == 0 || c.Down.Compressed == 0) {
				t.Errorf("compression negotiated but not used both ways: up %d, down %d", c.Up.Compressed, c.Down.Compressed)
			}
			if tg.pc.resp == "" && (c.Up.Compressed != 0 || c.Down.Compressed != 0) {
				t.Errorf("RSV1 frames without permessage-deflate: up %d, down %d", c.Up.Compressed, c.Down.Compressed)
			}
			waitFor(t, 10*time.Second, "both connections closed", func() bool { return len(tg.ev.closed()) == 2 })
			for i, want := range []provider.CloseCode{4000, 4002} {
				if cl := tg.ev.closed(); cl[i].code != want {
					t.Errorf("close %d: %d %q, want %d", i, cl[i].code, cl[i].reason, want)
				}
			}
		})
	}
}
