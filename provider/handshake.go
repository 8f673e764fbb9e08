package provider

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/internal/proto"
)

const alivePath = "/alive"

// Canned HTTP responses for requests that never reach the WebSocket
// upgrader. Every one closes the connection.
var (
	respAlive          = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\nOK")
	respAliveHead      = []byte("HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 2\r\nConnection: close\r\n\r\n")
	respBadRequest     = httpResponse(http.StatusBadRequest, "", "malformed HTTP request")
	respNotFound       = httpResponse(http.StatusNotFound, "", "not found")
	respMethod         = httpResponse(http.StatusMethodNotAllowed, "Allow: GET\r\n", "method not allowed: use GET")
	respAliveMethod    = httpResponse(http.StatusMethodNotAllowed, "Allow: GET, HEAD\r\n", "method not allowed: use GET or HEAD")
	respUpgradeNeeded  = httpResponse(http.StatusUpgradeRequired, "Upgrade: websocket\r\nSec-WebSocket-Version: 13\r\n", "this endpoint speaks WebSocket only")
	respTooLarge       = httpResponse(http.StatusRequestHeaderFieldsTooLarge, "", "request header fields too large")
	respTimeout        = httpResponse(http.StatusRequestTimeout, "", "handshake timeout")
	respBusy           = httpResponse(http.StatusServiceUnavailable, "Retry-After: 1\r\n", "too many handshakes in progress")
	respUnavailable    = httpResponse(http.StatusServiceUnavailable, "", "server shutting down")
	errRejectAuth      = ws.RejectConnectionError(ws.RejectionStatus(http.StatusForbidden), ws.RejectionReason("Unauthorized"))
	errRejectBadQuery  = ws.RejectConnectionError(ws.RejectionStatus(http.StatusBadRequest), ws.RejectionReason("malformed query string"))
	errRejectShutdown  = ws.RejectConnectionError(ws.RejectionStatus(http.StatusServiceUnavailable), ws.RejectionReason("server shutting down"))
	errRejectExtension = ws.RejectConnectionError(ws.RejectionStatus(http.StatusBadRequest), ws.RejectionReason("malformed Sec-WebSocket-Extensions"))
)

func httpResponse(code int, header, body string) []byte {
	return []byte("HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"Content-Length: " + strconv.Itoa(len(body)) + "\r\n" +
		"Connection: close\r\n" + header + "\r\n" + body)
}

// RejectReason names why an upgrade request was refused, for Stats.
type RejectReason uint8

// Reasons an upgrade request is refused.
const (
	RejectBadRequest RejectReason = iota // 400: malformed HTTP or WebSocket handshake (505 for HTTP/1.0)
	RejectNotFound                       // 404: another path
	RejectMethod                         // 405: not GET
	RejectUpgrade                        // 426: no WebSocket upgrade, or another version
	RejectTooLarge                       // 431: request over MaxHandshakeSize
	RejectAuth                           // 403: parameters or handler refused
	RejectTimeout                        // 408: not complete within HandshakeTimeout
	RejectBusy                           // 503: too many auth handlers running, or shutting down
	numRejectReasons
)

var rejectNames = [numRejectReasons]string{"bad_request", "not_found", "method", "upgrade", "too_large", "auth", "timeout", "busy"}

// String returns the reason's stats key.
func (r RejectReason) String() string {
	if r < numRejectReasons {
		return rejectNames[r]
	}
	return "reason(" + strconv.Itoa(int(r)) + ")"
}

// findRequestEnd returns the length of the HTTP request head at the start of
// b (through the blank line), or -1 if it is not complete.
func findRequestEnd(b []byte) int {
	if i := bytes.Index(b, crlfcrlf); i >= 0 {
		return i + 4
	}
	return -1
}

var crlfcrlf = []byte("\r\n\r\n")

// requestLine splits "METHOD target HTTP/x.y" off the request head.
func requestLine(req []byte) (method, path, query []byte, ok bool) {
	line, _, found := bytes.Cut(req, []byte("\r\n"))
	if !found {
		return nil, nil, nil, false
	}
	method, rest, ok1 := bytes.Cut(line, []byte(" "))
	target, version, ok2 := bytes.Cut(rest, []byte(" "))
	if !ok1 || !ok2 || len(method) == 0 || len(target) == 0 || !bytes.HasPrefix(version, []byte("HTTP/")) {
		return nil, nil, nil, false
	}
	path, query, _ = bytes.Cut(target, []byte("?"))
	return method, path, query, true
}

// hasUpgradeHeader reports whether the request head carries an Upgrade
// header at all (case-insensitive name). Without one, a GET on the endpoint
// is an ordinary HTTP request and gets 426 Upgrade Required.
func hasUpgradeHeader(req []byte) bool {
	for len(req) > 0 {
		i := bytes.Index(req, []byte("\r\n"))
		if i < 0 {
			return false
		}
		req = req[i+2:]
		if len(req) >= 8 && bytes.EqualFold(req[:8], []byte("upgrade:")) {
			return true
		}
	}
	return false
}

// checkHeaderFields applies what the upgrader does not check to the header
// lines of a request head (after its request line): no field value may
// hold a control character other than horizontal tab (RFC 9110 §5.5: NUL,
// a lone CR or LF, DEL, ...), and Sec-WebSocket-Key must appear exactly
// once (RFC 6455 §11.3.1) as the base64 encoding of 16 bytes (§4.2.1,
// point 5). A missing key is left to the upgrader. It allocates nothing.
func checkHeaderFields(req []byte) bool {
	_, req, _ = bytes.Cut(req, crlf)
	keys := 0
	for len(req) > 0 {
		line, rest, found := bytes.Cut(req, crlf)
		if !found {
			return false
		}
		req = rest
		if len(line) == 0 {
			break // the blank line that ends the head
		}
		name, value, ok := bytes.Cut(line, colon)
		if !ok {
			return false
		}
		for _, b := range value {
			if (b < 0x20 && b != '\t') || b == 0x7f {
				return false
			}
		}
		if bytes.EqualFold(name, secKeyName) {
			keys++
			if keys > 1 || !validKey(bytes.Trim(value, " \t")) {
				return false
			}
		}
	}
	return true
}

var (
	crlf       = []byte("\r\n")
	colon      = []byte(":")
	secKeyName = []byte("Sec-WebSocket-Key")
)

// validKey reports whether k is the base64 encoding (with padding) of 16
// bytes: 22 characters of the alphabet, then "==", the last of the 22 one
// that leaves the unused low bits zero.
func validKey(k []byte) bool {
	if len(k) != 24 || k[22] != '=' || k[23] != '=' {
		return false
	}
	for i, c := range k[:22] {
		v := base64Value(c)
		if v < 0 || (i == 21 && v&0x0f != 0) {
			return false
		}
	}
	return true
}

func base64Value(c byte) int {
	switch {
	case c >= 'A' && c <= 'Z':
		return int(c - 'A')
	case c >= 'a' && c <= 'z':
		return int(c-'a') + 26
	case c >= '0' && c <= '9':
		return int(c-'0') + 52
	case c == '+':
		return 62
	case c == '/':
		return 63
	}
	return -1
}

// handshake is the state of one upgrade in progress. It is pooled; the
// Upgrader's callbacks are bound to it once, when it is created.
type handshake struct {
	p  *Provider
	cn *Connection
	u  ws.Upgrader

	req      []byte // the request head (owned copy when upgraded off the loop)
	off      int    // read offset into req
	resp     []byte // the response being written
	query    []byte // in the upgrader's buffer: valid only during the upgrade
	params   url.Values
	rawQuery string // query, kept when it has parameters
	header   http.Header
	offers   []compress.Params
	extResp  compress.Params
	extOK    bool
	extBad   bool
	ctx      context.Context
	authErr  error
	rejected RejectReason
	v2       bool   // the subprotocol network-cluster.v2 was selected
	session  string // the Consumer's session header (requests resent after a reconnect)
}

var handshakePool sync.Pool

func (p *Provider) getHandshake(cn *Connection) *handshake {
	h, _ := handshakePool.Get().(*handshake)
	if h == nil {
		h = &handshake{}
		h.u = ws.Upgrader{
			ReadBufferSize:  0,
			WriteBufferSize: 0,
			OnRequest:       h.onRequest,
			OnHost:          h.onHost,
			OnHeader:        h.onHeader,
			ExtensionCustom: h.onExtensions,
			OnBeforeUpgrade: h.onBeforeUpgrade,
			Protocol:        h.onProtocol,
		}
	}
	h.p, h.cn = p, cn
	h.rejected = RejectBadRequest
	return h
}

func (p *Provider) putHandshake(h *handshake) {
	h.p, h.cn, h.ctx, h.authErr = nil, nil, nil, nil
	h.req, h.off, h.query, h.params, h.header, h.rawQuery = nil, 0, nil, nil, nil, ""
	h.resp = h.resp[:0]
	if cap(h.resp) > 1024 {
		h.resp = nil
	}
	h.offers = h.offers[:0]
	h.extResp, h.extOK, h.extBad = compress.Params{}, false, false
	h.v2, h.session = false, ""
	handshakePool.Put(h)
}

// Read and Write make the handshake the io.ReadWriter the upgrader works on:
// it reads exactly the request head and writes the response into resp.
func (h *handshake) Read(b []byte) (int, error) {
	if h.off >= len(h.req) {
		return 0, io.EOF
	}
	n := copy(b, h.req[h.off:])
	h.off += n
	return n, nil
}

func (h *handshake) Write(b []byte) (int, error) {
	h.resp = append(h.resp, b...)
	return len(b), nil
}

func (h *handshake) onRequest(uri []byte) error {
	_, q, _ := bytes.Cut(uri, []byte("?"))
	h.query = q
	return nil
}

func (h *handshake) onHost(host []byte) error {
	if h.p.o.Auth.Handler != nil {
		h.headers().Set("Host", string(host))
	}
	return nil
}

func (h *handshake) onHeader(key, value []byte) error {
	if bytes.EqualFold(key, sessionHeader) {
		h.session = string(value)
	}
	if h.p.o.Auth.Handler != nil {
		h.headers().Add(string(key), string(value))
	}
	return nil
}

var sessionHeader = []byte(proto.SessionHeader)

// onProtocol selects the request protocol among the offered subprotocols:
// only network-cluster.v2 (or only v1 under ProtocolPlain), so an offer of
// both selects v2 whatever their order, and anything else selects nothing.
func (h *handshake) onProtocol(p []byte) bool {
	if h.p.o.Protocol == ProtocolPlain {
		return string(p) == proto.SubprotocolV1
	}
	if string(p) == proto.SubprotocolV2 {
		h.v2 = true
		return true
	}
	return false
}

func (h *handshake) headers() http.Header {
	if h.header == nil {
		h.header = make(http.Header, 8)
	}
	return h.header
}

// onExtensions collects the permessage-deflate offers of every
// Sec-WebSocket-Extensions header; the answer is chosen in onBeforeUpgrade
// and written by WriteTo.
func (h *handshake) onExtensions(v []byte, opts []httphead.Option) ([]httphead.Option, bool) {
	if !h.p.o.Compressor.Enabled() {
		return opts, true
	}
	offers, err := compress.ParseOffers([]string{string(v)})
	if err != nil {
		// A header that is not even well-formed is a bad request; an offer
		// with bad parameters is merely declined (ParseOffers marks it).
		h.extBad = true
	}
	h.offers = append(h.offers, offers...)
	return opts, true
}

func (h *handshake) onBeforeUpgrade() (ws.HandshakeHeader, error) {
	p := h.p
	if p.closing.Load() {
		h.rejected = RejectBusy
		return nil, errRejectShutdown
	}
	if h.extBad {
		return nil, errRejectExtension
	}
	params, err := url.ParseQuery(string(h.query))
	if err != nil {
		return nil, errRejectBadQuery
	}
	h.params = params
	if len(params) > 0 {
		h.rawQuery = string(h.query)
	}
	if !p.checkParameters(params) {
		h.rejected = RejectAuth
		return nil, errRejectAuth
	}
	if auth := p.o.Auth.Handler; auth != nil {
		r := &Handshake{
			Method:     http.MethodGet,
			Path:       p.o.Path,
			RawQuery:   string(h.query),
			Header:     h.headers(),
			RemoteAddr: h.cn.pc.RemoteAddr(),
		}
		ok, err := callAuth(h.ctx, auth, r, params)
		if err != nil {
			h.authErr = err
		}
		if !ok || err != nil {
			h.rejected = RejectAuth
			return nil, errRejectAuth
		}
	}
	if p.o.Compressor.Enabled() && len(h.offers) > 0 {
		h.extResp, h.extOK = p.o.Compressor.Accept(h.offers)
	}
	return h, nil
}

// callAuth runs the user's handler, turning a panic into an error so that a
// faulty handler rejects the request instead of killing the process.
func callAuth(ctx context.Context, auth AuthHandler, r *Handshake, params url.Values) (ok bool, err error) {
	defer func() {
		if v := recover(); v != nil {
			ok, err = false, fmt.Errorf("auth handler panicked: %v", v)
		}
	}()
	return auth(ctx, r, params)
}

// WriteTo writes the extra upgrade response headers: the heartbeat interval
// and the permessage-deflate answer. It implements ws.HandshakeHeader.
func (h *handshake) WriteTo(w io.Writer) (int64, error) {
	var buf [256]byte
	b := append(buf[:0], h.p.hbHeader...)
	if h.extOK {
		b = append(b, "Sec-WebSocket-Extensions: "...)
		b = h.extResp.AppendTo(b)
		b = append(b, "\r\n"...)
	}
	n, err := w.Write(b)
	return int64(n), err
}

// checkParameters compares the required parameters with the request's, in
// time independent of where they differ: each value is hashed and the
// digests compared with subtle.ConstantTimeCompare. A missing or repeated
// key never matches.
func (p *Provider) checkParameters(params url.Values) bool {
	ok := 1
	for k, want := range p.authDigests {
		got := params[k]
		var d [sha256.Size]byte
		if len(got) == 1 {
			d = sha256.Sum256([]byte(got[0]))
		} else {
			ok = 0
		}
		ok &= subtle.ConstantTimeCompare(d[:], want[:])
	}
	return ok == 1
}

// upgrade runs the WebSocket upgrade of the request head in h.req and
// leaves the response in h.resp. It reports whether the connection is open.
func (h *handshake) upgrade() bool {
	_, err := h.u.Upgrade(h)
	if err == nil {
		return true
	}
	var rej *ws.ConnectionRejectedError
	if errors.As(err, &rej) {
		switch rej.StatusCode() {
		case http.StatusUpgradeRequired:
			h.rejected = RejectUpgrade
		case http.StatusMethodNotAllowed:
			h.rejected = RejectMethod
		}
	}
	return false
}

// heartbeatHeader renders the interval announcement written in every
// upgrade response when the control-frame heartbeat is on.
func heartbeatHeader(o *Options) []byte {
	if o.Heartbeat.Mode != HeartbeatControlFrames {
		return nil
	}
	return []byte(proto.HeartbeatHeader + ": " + proto.FormatInterval(o.Heartbeat.Interval) + "\r\n")
}
