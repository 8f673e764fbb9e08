package compress

import (
	"fmt"
	"strconv"
)

// ExtensionName is the registered token of the extension (RFC 7692 §5).
const ExtensionName = "permessage-deflate"

// Parameter names of RFC 7692 §7.1.
const (
	paramServerNoContextTakeover = "server_no_context_takeover"
	paramClientNoContextTakeover = "client_no_context_takeover"
	paramServerMaxWindowBits     = "server_max_window_bits"
	paramClientMaxWindowBits     = "client_max_window_bits"
)

// Params are the negotiation parameters of one permessage-deflate element
// of a Sec-WebSocket-Extensions header: a client's offer or a server's
// response (RFC 7692 §7.1). The zero value is a bare "permessage-deflate".
//
// Window bits: 0 means the parameter is absent; -1 (ClientMaxWindowBits
// only, and only in an offer) means present without a value; otherwise the
// value is 8–15. RFC 7692 allows 8, and this package honours it: its
// compressor can keep to a 256-byte window (zlib cannot, and silently uses
// 9 bits for deflate), so an offer of server_max_window_bits=8 is accepted
// and kept to. This package never asks for 8 itself.
//
// Params is a plain value, safe for concurrent use.
type Params struct {
	ServerNoContextTakeover bool // server_no_context_takeover
	ClientNoContextTakeover bool // client_no_context_takeover
	ServerMaxWindowBits     int  // server_max_window_bits (see window bits above)
	ClientMaxWindowBits     int  // client_max_window_bits (see window bits above)

	// Err is set by ParseOffers and ParseResponse on an element with an
	// unknown or duplicate parameter or an invalid value; it wraps
	// ErrInvalidParams. Accept skips such offers (RFC 7692 §5: the server
	// declines them); a client fails on such a response. AppendTo and
	// String ignore it.
	Err error
}

// String returns the element as it appears in a header, for example
// "permessage-deflate; server_no_context_takeover; client_max_window_bits=10".
func (p Params) String() string { return string(p.AppendTo(nil)) }

// AppendTo appends the element as it appears in a Sec-WebSocket-Extensions
// header to dst and returns the extended slice. Parameters come in a fixed
// order; a window-bits field of -1 is written without a value. It does not
// allocate when dst has room for the result (at most 121 bytes).
func (p Params) AppendTo(dst []byte) []byte {
	dst = append(dst, ExtensionName...)
	if p.ServerNoContextTakeover {
		dst = append(dst, "; "+paramServerNoContextTakeover...)
	}
	if p.ClientNoContextTakeover {
		dst = append(dst, "; "+paramClientNoContextTakeover...)
	}
	if p.ServerMaxWindowBits != 0 {
		dst = append(dst, "; "+paramServerMaxWindowBits...)
		if p.ServerMaxWindowBits > 0 {
			dst = append(dst, '=')
			dst = strconv.AppendInt(dst, int64(p.ServerMaxWindowBits), 10)
		}
	}
	if p.ClientMaxWindowBits != 0 {
		dst = append(dst, "; "+paramClientMaxWindowBits...)
		if p.ClientMaxWindowBits > 0 {
			dst = append(dst, '=')
			dst = strconv.AppendInt(dst, int64(p.ClientMaxWindowBits), 10)
		}
	}
	return dst
}

// ParseOffers parses one or more Sec-WebSocket-Extensions header values
// (each a comma-separated list, RFC 6455 §9.1) and returns the
// permessage-deflate elements in order, the client's preference. Other
// extensions are skipped. An element with an unknown or duplicate parameter
// or an invalid value is returned with Err set (wrapping ErrInvalidParams):
// the server declines that offer and considers the next (RFC 7692 §5).
//
// A value that breaks the header grammar (an unterminated quoted string, a
// missing token, a stray character) returns an error wrapping
// ErrInvalidHeader and no offers; RFC 6455 §4.2.1 has the server answer
// 400 Bad Request. Empty list elements are ignored (RFC 7230 §7). Names
// are case-sensitive, as registered. Values may be tokens or quoted
// strings (RFC 6455 §9.1). The strings are not retained.
func ParseOffers(values []string) (offers []Params, err error) {
	for _, v := range values {
		err := parseExtensions(v, func(name string, params []param) error {
			if name == ExtensionName {
				offers = append(offers, paramsOf(params, true))
			}
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	return offers, nil
}

// ParseResponse parses the Sec-WebSocket-Extensions values of a server's
// handshake response, for a client that offered permessage-deflate and no
// other extension. ok is false when the server did not accept the extension
// (no element). err wraps ErrInvalidHeader for a malformed header,
// ErrNegotiation when the response names another extension or more than
// one permessage-deflate element (RFC 6455 §9.1, RFC 7692 §5), and
// ErrInvalidParams for an element with unknown, duplicate or invalid
// parameters (including client_max_window_bits without a value, which only
// an offer may use). On any error the client must fail the WebSocket
// connection. Check the result against the offer with
// [Preset.CheckResponse].
func ParseResponse(values []string) (resp Params, ok bool, err error) {
	for _, v := range values {
		err = parseExtensions(v, func(name string, params []param) error {
			if name != ExtensionName {
				return fmt.Errorf("%w: server answered with extension %q that was not offered", ErrNegotiation, name)
			}
			if ok {
				return fmt.Errorf("%w: more than one permessage-deflate element", ErrNegotiation)
			}
			ok = true
			resp = paramsOf(params, false)
			return resp.Err
		})
		if err != nil {
			return Params{}, false, err
		}
	}
	return resp, ok, nil
}

type param struct {
	name, value string
	hasValue    bool
}

// paramsOf interprets the parameters of one permessage-deflate element.
// offer selects the rules for an offer (client_max_window_bits may have no
// value) or a response.
func paramsOf(ps []param, offer bool) Params {
	var p Params
	var seen [4]bool
	for _, q := range ps {
		idx := -1
		switch q.name {
		case paramServerNoContextTakeover:
			idx = 0
		case paramClientNoContextTakeover:
			idx = 1
		case paramServerMaxWindowBits:
			idx = 2
		case paramClientMaxWindowBits:
			idx = 3
		default:
			p.Err = fmt.Errorf("%w: unknown parameter %q", ErrInvalidParams, q.name)
			return p
		}
		if seen[idx] {
			p.Err = fmt.Errorf("%w: duplicate parameter %q", ErrInvalidParams, q.name)
			return p
		}
		seen[idx] = true
		switch idx {
		case 0, 1:
			if q.hasValue {
				p.Err = fmt.Errorf("%w: %s takes no value", ErrInvalidParams, q.name)
				return p
			}
			if idx == 0 {
				p.ServerNoContextTakeover = true
			} else {
				p.ClientNoContextTakeover = true
			}
		case 2, 3:
			bits := -1
			if q.hasValue {
				bits = windowBitsValue(q.value)
				if bits < 0 {
					p.Err = fmt.Errorf("%w: %s=%q is not 8..15", ErrInvalidParams, q.name, q.value)
					return p
				}
			} else if idx == 2 || !offer {
				// server_max_window_bits always needs a value; so does
				// client_max_window_bits in a response (RFC 7692 §7.1.2).
				p.Err = fmt.Errorf("%w: %s needs a value", ErrInvalidParams, q.name)
				return p
			}
			if idx == 2 {
				p.ServerMaxWindowBits = bits
			} else {
				p.ClientMaxWindowBits = bits
			}
		}
	}
	return p
}

// windowBitsValue returns the value of a window-bits parameter: "a decimal
// integer value without leading zeroes between 8 to 15" (RFC 7692 §7.1.2),
// or -1.
func windowBitsValue(s string) int {
	switch {
	case len(s) == 1 && (s[0] == '8' || s[0] == '9'):
		return int(s[0] - '0')
	case len(s) == 2 && s[0] == '1' && s[1] >= '0' && s[1] <= '5':
		return 10 + int(s[1]-'0')
	}
	return -1
}

// parseExtensions walks one header value, extension-list = 1#extension
// where extension = token *( OWS ";" OWS token [ "=" ( token /
// quoted-string ) ] ), calling fn for each extension with its parameters.
// The params slice is reused between calls.
func parseExtensions(s string, fn func(name string, params []param) error) error {
	var buf [8]param
	i := 0
	for {
		// Skip OWS and empty list elements.
		for i < len(s) && (s[i] == ' ' || s[i] == '\t' || s[i] == ',') {
			i++
		}
		if i == len(s) {
			return nil
		}
		name, n := scanToken(s, i)
		if n == i {
			return fmt.Errorf("%w: expected an extension name at offset %d of %q", ErrInvalidHeader, i, s)
		}
		i = skipOWS(s, n)
		params := buf[:0]
		for i < len(s) && s[i] == ';' {
			i = skipOWS(s, i+1)
			var q param
			q.name, n = scanToken(s, i)
			if n == i {
				return fmt.Errorf("%w: expected a parameter name at offset %d of %q", ErrInvalidHeader, i, s)
			}
			i = skipOWS(s, n)
			if i < len(s) && s[i] == '=' {
				i = skipOWS(s, i+1)
				q.hasValue = true
				if i < len(s) && s[i] == '"' {
					v, end, ok := quoted(s, i)
					if !ok {
						return fmt.Errorf("%w: bad quoted string at offset %d of %q", ErrInvalidHeader, i, s)
					}
					// RFC 6455 §9.1: the unescaped value must be a token.
					if t, tn := scanToken(v, 0); tn != len(v) || tn == 0 {
						return fmt.Errorf("%w: quoted value %q is not a token", ErrInvalidHeader, v)
					} else {
						q.value = t
					}
					i = end
				} else {
					q.value, n = scanToken(s, i)
					if n == i {
						return fmt.Errorf("%w: expected a value at offset %d of %q", ErrInvalidHeader, i, s)
					}
					i = n
				}
				i = skipOWS(s, i)
			}
			params = append(params, q)
		}
		if i < len(s) && s[i] != ',' {
			return fmt.Errorf("%w: unexpected %q at offset %d of %q", ErrInvalidHeader, s[i], i, s)
		}
		if err := fn(name, params); err != nil {
			return err
		}
	}
}

func skipOWS(s string, i int) int {
	for i < len(s) && (s[i] == ' ' || s[i] == '\t') {
		i++
	}
	return i
}

// scanToken returns the RFC 7230 token starting at s[i] and the index after it.
func scanToken(s string, i int) (string, int) {
	j := i
	for j < len(s) && isTchar(s[j]) {
		j++
	}
	return s[i:j], j
}

func isTchar(c byte) bool {
	switch {
	case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		return true
	}
	switch c {
	case '!', '#', '$', '%', '&', '\'', '*', '+', '-', '.', '^', '_', '`', '|', '~':
		return true
	}
	return false
}

// quoted parses the quoted-string starting at s[i] == '"' (RFC 7230
// §3.2.6) and returns its unescaped content and the index after the
// closing quote. It allocates only when the string holds an escape.
func quoted(s string, i int) (v string, end int, ok bool) {
	var esc []byte
	start := i + 1
	for j := start; j < len(s); j++ {
		c := s[j]
		switch {
		case c == '"':
			if esc != nil {
				return string(esc), j + 1, true
			}
			return s[start:j], j + 1, true
		case c == '\\':
			if j+1 == len(s) || !isQuotedPairChar(s[j+1]) {
				return "", 0, false
			}
			if esc == nil {
				esc = append(esc, s[start:j]...)
			}
			j++
			esc = append(esc, s[j])
		case c == '\t' || c == ' ' || c == 0x21 || (c >= 0x23 && c <= 0x5B) || (c >= 0x5D && c <= 0x7E) || c >= 0x80:
			if esc != nil {
				esc = append(esc, c)
			}
		default:
			return "", 0, false
		}
	}
	return "", 0, false
}

func isQuotedPairChar(c byte) bool { return c == '\t' || (c >= 0x20 && c != 0x7F) }
