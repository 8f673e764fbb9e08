package frame

import (
	"encoding/binary"
	"strconv"
	"unicode/utf8"
)

// CloseCode is a WebSocket close status code (RFC 6455 §7.4).
type CloseCode uint16

// Close codes of RFC 6455 §7.4.1 and the IANA registry.
const (
	CloseNormal             CloseCode = 1000 // the purpose of the connection is fulfilled
	CloseGoingAway          CloseCode = 1001 // server going down or browser leaving the page
	CloseProtocolError      CloseCode = 1002 // protocol violation
	CloseUnsupportedData    CloseCode = 1003 // a data type the endpoint cannot accept
	CloseNoStatus           CloseCode = 1005 // reserved: the close frame carried no code; never sent
	CloseAbnormal           CloseCode = 1006 // reserved: closed without a close frame; never sent
	CloseInvalidPayload     CloseCode = 1007 // data inconsistent with the message type (bad UTF-8)
	ClosePolicyViolation    CloseCode = 1008 // a policy was violated
	CloseTooBig             CloseCode = 1009 // a message too big to process
	CloseMandatoryExtension CloseCode = 1010 // client: the server did not negotiate a needed extension
	CloseInternalError      CloseCode = 1011 // server: an unexpected condition
	CloseServiceRestart     CloseCode = 1012 // IANA: service is restarting
	CloseTryAgainLater      CloseCode = 1013 // IANA: temporary condition, try again later
	CloseBadGateway         CloseCode = 1014 // IANA: bad gateway
	CloseTLSHandshake       CloseCode = 1015 // reserved: TLS handshake failure; never sent
)

// MaxControlPayload is the largest payload a control frame may carry
// (RFC 6455 §5.5).
const MaxControlPayload = 125

// MaxCloseReason is the longest close reason that fits in a close frame
// after its 2-byte code.
const MaxCloseReason = MaxControlPayload - 2

// ValidOnWire reports whether c may appear in a close frame (RFC 6455
// §7.4): 1000–1003, 1007–1014 and 3000–4999. Codes 0–999, 1004–1006,
// 1015, 1016–2999 and 5000 and above are invalid on the wire.
func (c CloseCode) ValidOnWire() bool {
	switch {
	case c >= 1000 && c <= 1003:
		return true
	case c >= 1007 && c <= 1014:
		return true
	case c >= 3000 && c <= 4999:
		return true
	}
	return false
}

// String returns the code's number and, for registered codes, its name.
func (c CloseCode) String() string {
	n := strconv.Itoa(int(c))
	if name := closeNames[c]; name != "" {
		return n + " (" + name + ")"
	}
	return n
}

var closeNames = map[CloseCode]string{
	CloseNormal:             "normal closure",
	CloseGoingAway:          "going away",
	CloseProtocolError:      "protocol error",
	CloseUnsupportedData:    "unsupported data",
	CloseNoStatus:           "no status",
	CloseAbnormal:           "abnormal closure",
	CloseInvalidPayload:     "invalid payload data",
	ClosePolicyViolation:    "policy violation",
	CloseTooBig:             "message too big",
	CloseMandatoryExtension: "mandatory extension",
	CloseInternalError:      "internal error",
	CloseServiceRestart:     "service restart",
	CloseTryAgainLater:      "try again later",
	CloseBadGateway:         "bad gateway",
	CloseTLSHandshake:       "TLS handshake",
}

// CloseError is a WebSocket close: the code and reason sent or received in a
// close frame, or the code an endpoint must close with after a protocol
// violation. Test for it with errors.As, or use [CloseStatus].
type CloseError struct {
	Code   CloseCode // the close status code
	Reason string    // the close reason (cut to MaxCloseReason bytes when sent)
}

// Error implements error.
func (e *CloseError) Error() string {
	if e.Reason == "" {
		return "websocket: close " + e.Code.String()
	}
	return "websocket: close " + e.Code.String() + ": " + e.Reason
}

// Is reports whether target is a *CloseError with the same code, so that
// errors.Is(err, &CloseError{Code: CloseTooBig}) matches any reason.
func (e *CloseError) Is(target error) bool {
	t, ok := target.(*CloseError)
	return ok && t.Code == e.Code && (t.Reason == "" || t.Reason == e.Reason)
}

// CloseStatus returns the code of the first *CloseError in err's chain, or
// 0 when there is none.
func CloseStatus(err error) CloseCode {
	for err != nil {
		if ce, ok := err.(*CloseError); ok {
			return ce.Code
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			err = u.Unwrap()
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				if c := CloseStatus(e); c != 0 {
					return c
				}
			}
			return 0
		default:
			return 0
		}
	}
	return 0
}

// ParseClose decodes the payload of a received close frame (RFC 6455
// §5.5.1, §7.4). An empty payload yields [CloseNoStatus]. A 1-byte payload or
// a code that is not [CloseCode.ValidOnWire] is a protocol error (1002); a
// reason that is not UTF-8 is 1007. reason aliases payload.
func ParseClose(payload []byte) (code CloseCode, reason []byte, err error) {
	switch len(payload) {
	case 0:
		return CloseNoStatus, nil, nil
	case 1:
		return 0, nil, errCloseOneByte
	}
	code = CloseCode(binary.BigEndian.Uint16(payload))
	if !code.ValidOnWire() {
		return 0, nil, errCloseBadCode
	}
	reason = payload[2:]
	if !utf8.Valid(reason) {
		return 0, nil, errCloseBadReason
	}
	return code, reason, nil
}

// AppendClose appends a close frame payload (code, then reason) to dst and
// returns the extended slice. A code of 0 appends an empty payload (a close
// without status). The reason is cut to [MaxCloseReason] bytes, at a rune
// boundary so that it stays valid UTF-8.
func AppendClose(dst []byte, code CloseCode, reason string) []byte {
	if code == 0 {
		return dst
	}
	dst = binary.BigEndian.AppendUint16(dst, uint16(code))
	if len(reason) > MaxCloseReason {
		cut := MaxCloseReason
		for cut > 0 && !utf8.RuneStart(reason[cut]) {
			cut--
		}
		reason = reason[:cut]
	}
	return append(dst, reason...)
}
