package main

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// The client side of the RFC 6455 §4 opening handshake, on byte slices so
// that the parser can be fuzzed and the bytes that follow the response (the
// server may send frames in the same packet) stay in the read buffer.

// wsGUID is the fixed GUID of RFC 6455 §1.3.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// maxResponseHead bounds the response head (status line and headers).
const maxResponseHead = 8 << 10

// acceptKey returns the Sec-WebSocket-Accept value the server must send for
// the request key.
func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + wsGUID))
	return base64.StdEncoding.EncodeToString(h[:])
}

// appendRequest appends the upgrade request for requestURI (path and query)
// on host to dst. extensions is the Sec-WebSocket-Extensions offer, or "".
// protocols, if any, are offered as Sec-WebSocket-Protocol.
func appendRequest(dst []byte, host, requestURI, key, extensions string, protocols ...string) []byte {
	dst = append(dst, "GET "...)
	dst = append(dst, requestURI...)
	dst = append(dst, " HTTP/1.1\r\nHost: "...)
	dst = append(dst, host...)
	dst = append(dst, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	dst = append(dst, key...)
	dst = append(dst, "\r\nSec-WebSocket-Version: 13\r\n"...)
	if len(protocols) > 0 {
		dst = append(dst, "Sec-WebSocket-Protocol: "...)
		dst = append(dst, strings.Join(protocols, ", ")...)
		dst = append(dst, "\r\n"...)
	}
	if extensions != "" {
		dst = append(dst, "Sec-WebSocket-Extensions: "...)
		dst = append(dst, extensions...)
		dst = append(dst, "\r\n"...)
	}
	dst = append(dst, "User-Agent: network-cluster-loadtest\r\n\r\n"...)
	return dst
}

// response is a parsed HTTP response head.
type response struct {
	status int
	reason string
	header map[string][]string // keys in lower case
	n      int                 // size of the head, final CRLF CRLF included
}

func (r *response) get(key string) string {
	if v := r.header[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// parseResponse parses the response head at the start of b. It returns
// complete=false (and no error) while b does not yet hold the whole head,
// and an error wrapping ErrHandshake for a malformed or oversized head.
// b is not retained.
func parseResponse(b []byte) (r response, complete bool, err error) {
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		if len(b) >= maxResponseHead {
			return r, false, fmt.Errorf("%w: response head over %d bytes", ErrHandshake, maxResponseHead)
		}
		return r, false, nil
	}
	if end+4 > maxResponseHead {
		return r, false, fmt.Errorf("%w: response head over %d bytes", ErrHandshake, maxResponseHead)
	}
	r.n = end + 4
	lines := strings.Split(string(b[:end]), "\r\n")
	// Status line: HTTP/1.1 SP 3DIGIT SP reason
	sl := lines[0]
	if !strings.HasPrefix(sl, "HTTP/1.") || len(sl) < len("HTTP/1.1 101") || sl[8] != ' ' {
		return r, false, fmt.Errorf("%w: bad status line %q", ErrHandshake, clip(sl))
	}
	code := sl[9:min(len(sl), 12)]
	if len(code) != 3 || (len(sl) > 12 && sl[12] != ' ') {
		return r, false, fmt.Errorf("%w: bad status line %q", ErrHandshake, clip(sl))
	}
	if r.status, err = strconv.Atoi(code); err != nil || code[0] < '1' || code[0] > '5' {
		return r, false, fmt.Errorf("%w: bad status code %q", ErrHandshake, clip(code))
	}
	if len(sl) > 13 {
		r.reason = sl[13:]
	}
	r.header = make(map[string][]string, len(lines)-1)
	for _, l := range lines[1:] {
		name, value, ok := strings.Cut(l, ":")
		if !ok || !isToken(name) {
			return r, false, fmt.Errorf("%w: bad header line %q", ErrHandshake, clip(l))
		}
		value = strings.Trim(value, " \t")
		if strings.ContainsAny(value, "\x00\r\n") {
			return r, false, fmt.Errorf("%w: bad header value in %q", ErrHandshake, clip(l))
		}
		k := strings.ToLower(name)
		r.header[k] = append(r.header[k], value)
	}
	return r, true, nil
}

// checkUpgrade checks a complete response against the request key (RFC 6455
// §4.1, the client's checks 1–6). extensions are returned for the caller to
// negotiate; offered says whether the request offered any.
// protocols are the subprotocols offered: the server may select one of them.
func checkUpgrade(r *response, key string, offered bool, protocols ...string) (extensions []string, err error) {
	if r.status != 101 {
		return nil, &handshakeError{Status: r.status, Reason: r.reason}
	}
	if !strings.EqualFold(r.get("upgrade"), "websocket") {
		return nil, fmt.Errorf("%w: Upgrade header %q", ErrHandshake, clip(r.get("upgrade")))
	}
	if !hasToken(r.header["connection"], "upgrade") {
		return nil, fmt.Errorf("%w: Connection header lacks upgrade", ErrHandshake)
	}
	if got := r.header["sec-websocket-accept"]; len(got) != 1 || got[0] != acceptKey(key) {
		return nil, fmt.Errorf("%w: wrong Sec-WebSocket-Accept", ErrHandshake)
	}
	if sel := r.header["sec-websocket-protocol"]; len(sel) > 0 && (len(sel) > 1 || !slices.Contains(protocols, sel[0])) {
		return nil, fmt.Errorf("%w: subprotocol %q chosen but not offered", ErrHandshake, clip(strings.Join(sel, ", ")))
	}
	ext := r.header["sec-websocket-extensions"]
	if len(ext) > 0 && !offered {
		return nil, fmt.Errorf("%w: extension accepted but none offered", ErrHandshake)
	}
	return ext, nil
}

// handshakeError is a refused upgrade: the server answered with a status
// other than 101. It wraps ErrHandshake.
type handshakeError struct {
	Status int
	Reason string
}

func (e *handshakeError) Error() string {
	return fmt.Sprintf("loadtest: handshake refused: HTTP %d %s", e.Status, e.Reason)
}

func (e *handshakeError) Unwrap() error { return ErrHandshake }

// hasToken reports whether the comma-separated header values hold token,
// compared case-insensitively.
func hasToken(values []string, token string) bool {
	for _, v := range values {
		for t := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.Trim(t, " \t"), token) {
				return true
			}
		}
	}
	return false
}

// isToken reports whether s is an RFC 7230 token (a header name).
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("\"(),/:;<=>?@[\\]{}", c) >= 0 {
			return false
		}
	}
	return true
}

// clip shortens s for an error message.
func clip(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}
