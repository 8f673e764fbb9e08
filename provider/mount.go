package provider

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/networkcluster/networkcluster/poller"
)

// ErrNotHijackable is passed to Options.OnError when the http.ResponseWriter
// given to the Provider's Handler cannot hand over its connection (an
// HTTP/2 stream, or a middleware's writer that hides http.Hijacker and has
// no Unwrap method); the request is answered 500.
var ErrNotHijackable = errors.New("provider: the http.ResponseWriter cannot be hijacked")

// serveListener serves Options.Listener: a plain TCP listener on the event
// loop, anything else (and every listener under TLS) with a goroutine per
// connection.
func (p *Provider) serveListener(po poller.Options) (*poller.Poller, error) {
	ln := p.o.Listener
	if p.tlsConfig != nil && p.o.TLS.GoroutinePerConn {
		return poller.Serve(ln, handler{p}, po) // po.TLS: Serve wraps ln
	}
	return poller.ListenOn(ln, handler{p}, po) // TLS on the event loop for a TCP listener
}

// Handler returns an http.Handler that upgrades WebSocket requests into
// connections of this Provider, so that the Provider can share a port and
// a mux with other handlers and sit behind their middleware (auth, logging,
// CORS). The Provider answers whatever path the handler is mounted on; the
// Handshake given to Auth.Handler still names Options.Path. Required
// parameters, Auth.Handler, compression, limits and callbacks apply as for
// a connection accepted by Start, and the Options.Path check is left to the
// mux. GET and HEAD /alive are not served by the handler.
//
// The handler answers with net/http only what it refuses before taking the
// connection over: 405 for a method other than GET, 426 without an Upgrade
// header, 505 for HTTP/2 (WebSocket over HTTP/2 is not supported), 503 once
// Shutdown or Close began. It then hijacks the connection and hands the
// request to the Provider, which writes the upgrade response (or a refusal,
// such as 403 from Auth) on the raw connection: a middleware that logs the
// status sees none for those.
//
// Where the connection goes: a plain TCP connection ([*net.TCPConn], from
// an http.Server without TLS) joins the Provider's event loop on Linux, and
// once upgraded costs what a connection accepted by Start costs (no
// goroutine while idle). A TLS connection (an http.Server with TLS), or any
// connection on another system, is served by a reader goroutine of its own,
// as TLS connections are with TLS.GoroutinePerConn. The README gives the measured cost of
// each path.
//
// The handler may be used with or without Start. Without Start, the first
// request sets the Provider running (its event loop, timer and heartbeat),
// and Start then returns ErrAlreadyStarted: to serve a port of its own as
// well, call Start first. Close and Shutdown close the hijacked connections
// like the others; net/http's Server.Shutdown does not wait for them.
func (p *Provider) Handler() http.Handler { return mountHandler{p} }

type mountHandler struct{ p *Provider }

func (h mountHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := h.p
	switch {
	case p.closing.Load():
		p.stats.rejected[RejectBusy].Add(1)
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	case r.ProtoMajor != 1:
		p.stats.rejected[RejectBadRequest].Add(1)
		http.Error(w, "WebSocket needs HTTP/1.1 on this endpoint", http.StatusHTTPVersionNotSupported)
		return
	case r.Method != http.MethodGet:
		p.stats.rejected[RejectMethod].Add(1)
		w.Header().Set("Allow", "GET")
		http.Error(w, "method not allowed: use GET", http.StatusMethodNotAllowed)
		return
	case len(r.Header.Values("Upgrade")) == 0:
		p.stats.rejected[RejectUpgrade].Add(1)
		w.Header().Set("Upgrade", "websocket")
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "this endpoint speaks WebSocket only", http.StatusUpgradeRequired)
		return
	}
	pl, err := p.mountPoller()
	if err != nil {
		p.report(err)
		http.Error(w, "server unavailable", http.StatusServiceUnavailable)
		return
	}
	head := p.requestHead(r)
	conn, brw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		p.report(fmt.Errorf("%w: %w", ErrNotHijackable, err))
		http.Error(w, "cannot upgrade this connection", http.StatusInternalServerError)
		return
	}
	// What the server read past the request head: frames the Consumer sent
	// right behind its request.
	if n := brw.Reader.Buffered(); n > 0 {
		b, _ := brw.Reader.Peek(n)
		head = append(head, b...)
	}
	_ = pl.Adopt(conn, head) // only fails once the Provider is closed: conn is closed
}

// mountPoller returns the Provider's poller, creating one without a
// listener (and starting the timer) when the Provider was not started.
func (p *Provider) mountPoller() (*poller.Poller, error) {
	p.lifeMu.Lock()
	defer p.lifeMu.Unlock()
	if p.closing.Load() {
		return nil, ErrServerClosed
	}
	if p.pl != nil {
		return p.pl, nil
	}
	pl, err := poller.New(handler{p}, p.pollerOptions())
	if err != nil {
		return nil, fmt.Errorf("provider: starting for Handler: %w", err)
	}
	p.pl = pl
	p.started.Store(true)
	p.wg.Add(1)
	go p.timerLoop()
	p.log.Debug("provider serving through its http.Handler", "path", p.o.Path)
	return pl, nil
}

// requestHead writes r back as the HTTP/1.x request head the Provider's
// handshake reads, with Options.Path as its target (the mux chose the
// path). Header values holding a line break (possible only from a
// middleware) are left out.
func (p *Provider) requestHead(r *http.Request) []byte {
	b := make([]byte, 0, 512)
	b = append(b, "GET "...)
	b = append(b, p.o.Path...)
	if r.URL.RawQuery != "" {
		b = append(b, '?')
		b = append(b, r.URL.RawQuery...)
	}
	b = append(b, " HTTP/1."...)
	b = strconv.AppendInt(b, int64(r.ProtoMinor), 10)
	b = append(b, "\r\nHost: "...)
	b = append(b, r.Host...)
	b = append(b, "\r\n"...)
	for k, vs := range r.Header {
		if k == "Host" {
			continue
		}
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				continue
			}
			b = append(b, k...)
			b = append(b, ": "...)
			b = append(b, v...)
			b = append(b, "\r\n"...)
		}
	}
	return append(b, "\r\n"...)
}
