package proto

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"errors"
	"unicode/utf8"
)

// Subprotocol tokens. A Consumer that speaks requests offers both, v1 first
// ("network-cluster.v1, network-cluster.v2"): a server that echoes the first
// offered token (the Node 1.0.4 Provider) or selects the first one (a ws
// server without handleProtocols) then lands on v1, plain messages; only a
// Provider of this library selects v2.
const (
	SubprotocolV1 = "network-cluster.v1"
	SubprotocolV2 = "network-cluster.v2"
)

// SessionHeader is the upgrade request header in which a Consumer that
// resends unanswered requests after a reconnect names its session: 26
// base32 characters (128 random bits), the same on every connection of one
// Consumer. The Provider keys its de-duplication of resent requests on it.
const SessionHeader = "X-Network-Cluster-Session"

// Envelope kinds: the low four bits of the first byte of every binary frame
// on a v2 connection.
const (
	KindMessage byte = 0 // a plain binary message: the rest is its payload
	KindRequest byte = 1 // id uvarint, payload
	KindReply   byte = 2 // id uvarint, payload
	KindError   byte = 3 // id uvarint, code uvarint, reason
	KindControl byte = 4 // id uvarint, op byte, topic (Consumer to Provider only)
)

// Control operations (the byte after the id of a KindControl envelope).
// The Consumer asks to join or leave a topic; the Provider answers with a
// reply (KindReply, empty payload: done) or an error reply (KindError:
// CodeRefused when its authorization refuses a subscribe). An unsubscribe
// is always answered with a reply. Control envelopes carry no flags, and
// the topic is 1 to MaxTopic bytes of UTF-8.
const (
	ControlSubscribe   byte = 1
	ControlUnsubscribe byte = 2
)

// MaxTopic is the longest topic name in a control envelope, in bytes.
const MaxTopic = 1024

// Envelope flags: the high four bits of the first byte.
const (
	FlagText        byte = 0x10 // the payload is text (kinds 1 and 2)
	FlagRedelivered byte = 0x20 // a resend after a reconnect (kind 1)

	flagsAllowed = FlagText | FlagRedelivered
)

// MaxEnvelopeHeader is the largest envelope header: the kind byte and a
// 64-bit id as uvarint.
const MaxEnvelopeHeader = 1 + binary.MaxVarintLen64

// MaxReason is the longest error reason, in bytes (as for a close frame).
const MaxReason = 123

// Error codes the library itself answers with; applications use codes from
// MinAppCode on.
const (
	CodeNoHandler     = 1    // nothing on the other side handles requests
	CodePanic         = 2    // the handler panicked
	CodeShuttingDown  = 3    // the responder is shutting down
	CodeRefused       = 4    // the responder refused the request (a subscribe it does not authorize)
	MinAppCode        = 1000 // the lowest code an application may send
	maxCode           = 1<<16 - 1
	maxEnvelopeIDBits = 63
)

// ErrEnvelope is returned by ParseEnvelope for a binary frame that is not a
// valid envelope; a receiver fails the connection with close code 1002.
var ErrEnvelope = errors.New("malformed network-cluster envelope")

// Envelope is a parsed binary frame of a v2 connection. Its byte slices
// alias the parsed buffer.
type Envelope struct {
	Kind        byte
	Text        bool   // the payload is text (requests and replies)
	Redelivered bool   // a request resent after a reconnect
	ID          uint64 // request id (kinds 1-3), at least 1
	Code        uint16 // error code (kind 3)
	Op          byte   // control operation (kind 4)
	Payload     []byte // message, request or reply payload; error reason (kind 3); topic (kind 4)
}

// ParseEnvelope parses a binary frame of a v2 connection. It does not check
// that a text payload is UTF-8: the receiver does, with close code 1007.
func ParseEnvelope(b []byte) (Envelope, error) {
	if len(b) == 0 {
		return Envelope{}, ErrEnvelope
	}
	e := Envelope{Kind: b[0] & 0x0f}
	flags := b[0] &^ 0x0f
	if flags&^flagsAllowed != 0 {
		return Envelope{}, ErrEnvelope
	}
	e.Text = flags&FlagText != 0
	e.Redelivered = flags&FlagRedelivered != 0
	b = b[1:]
	switch e.Kind {
	case KindMessage:
		if flags != 0 {
			return Envelope{}, ErrEnvelope
		}
		e.Payload = b
		return e, nil
	case KindRequest, KindReply, KindError:
	case KindControl:
		if flags != 0 {
			return Envelope{}, ErrEnvelope
		}
	default:
		return Envelope{}, ErrEnvelope
	}
	if e.Redelivered && e.Kind != KindRequest || e.Text && e.Kind == KindError {
		return Envelope{}, ErrEnvelope
	}
	id, n := binary.Uvarint(b)
	if n <= 0 || id == 0 || id>>maxEnvelopeIDBits != 0 {
		return Envelope{}, ErrEnvelope
	}
	e.ID = id
	b = b[n:]
	if e.Kind == KindError {
		code, n := binary.Uvarint(b)
		if n <= 0 || code > maxCode {
			return Envelope{}, ErrEnvelope
		}
		e.Code = uint16(code)
		b = b[n:]
		if len(b) > MaxReason || !utf8.Valid(b) {
			return Envelope{}, ErrEnvelope
		}
	}
	if e.Kind == KindControl {
		if len(b) < 2 || b[0] != ControlSubscribe && b[0] != ControlUnsubscribe {
			return Envelope{}, ErrEnvelope
		}
		e.Op, b = b[0], b[1:]
		if !ValidTopic(b) {
			return Envelope{}, ErrEnvelope
		}
	}
	e.Payload = b
	return e, nil
}

// AppendHeader appends the envelope header of kind with the flags and id
// (id is ignored for KindMessage) to dst.
func AppendHeader(dst []byte, kind, flags byte, id uint64) []byte {
	dst = append(dst, kind|flags)
	if kind == KindMessage {
		return dst
	}
	return binary.AppendUvarint(dst, id)
}

// AppendError appends a whole error reply (kind 3) to dst. A reason over
// MaxReason bytes is cut at a rune boundary; it must be UTF-8.
func AppendError(dst []byte, id uint64, code uint16, reason string) []byte {
	dst = AppendHeader(dst, KindError, 0, id)
	dst = binary.AppendUvarint(dst, uint64(code))
	return append(dst, TrimReason(reason)...)
}

// AppendControl appends a whole control envelope (kind 4) to dst.
func AppendControl(dst []byte, id uint64, op byte, topic string) []byte {
	dst = AppendHeader(dst, KindControl, 0, id)
	dst = append(dst, op)
	return append(dst, topic...)
}

// ValidTopic reports whether topic may travel in a control envelope: 1 to
// MaxTopic bytes of UTF-8.
func ValidTopic[T string | []byte](topic T) bool {
	return len(topic) > 0 && len(topic) <= MaxTopic && utf8.Valid([]byte(topic))
}

// TrimReason cuts reason to at most MaxReason bytes at a rune boundary.
func TrimReason(reason string) string {
	if len(reason) <= MaxReason {
		return reason
	}
	i := MaxReason
	for i > 0 && !utf8.RuneStart(reason[i]) {
		i--
	}
	return reason[:i]
}

// sessionEncoding is base32 without padding, upper case (RFC 4648).
var sessionEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewSessionID returns a new random session id for SessionHeader: 128 bits
// from crypto/rand as 26 base32 characters.
func NewSessionID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand panics rather than return an error)
	return sessionEncoding.EncodeToString(b[:])
}

// ValidSessionID reports whether s has the form NewSessionID returns.
func ValidSessionID(s string) bool {
	if len(s) != 26 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= 'A' && c <= 'Z' || c >= '2' && c <= '7') {
			return false
		}
	}
	return true
}
