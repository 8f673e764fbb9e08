package compress

import "errors"

// Sentinel errors. Every error this package returns wraps one of them, so
// callers match with errors.Is.
var (
	// ErrInvalidPreset: a Preset with unknown bits or an invalid combination,
	// or a name ParsePreset does not know.
	ErrInvalidPreset = errors.New("compress: invalid preset")

	// ErrInvalidHeader: a Sec-WebSocket-Extensions value that breaks the
	// grammar of RFC 6455 §9.1. A server answers such a handshake with
	// 400 Bad Request (RFC 6455 §4.2.1); a client fails the connection.
	ErrInvalidHeader = errors.New("compress: malformed Sec-WebSocket-Extensions header")

	// ErrInvalidParams: a permessage-deflate element with an unknown or
	// duplicate parameter or an invalid value (RFC 7692 §5). The server
	// declines such an offer; a client fails the connection on such a
	// response.
	ErrInvalidParams = errors.New("compress: invalid permessage-deflate parameters")

	// ErrNegotiation: the server's response does not accept the client's
	// offer as RFC 7692 §7.1 requires (a window larger than allowed, a
	// parameter the offer did not permit, more than one permessage-deflate
	// element, an extension that was not offered). The client must fail the
	// WebSocket connection.
	ErrNegotiation = errors.New("compress: permessage-deflate response does not match the offer")

	// ErrTooBig: the inflated message would exceed the caller's limit.
	// The caller closes the connection with 1009 (message too big).
	ErrTooBig = errors.New("compress: inflated message exceeds the limit")

	// ErrCorrupt: the payload is not valid DEFLATE data (or refers to
	// history the negotiated window does not hold). The caller closes the
	// connection with 1007 (invalid frame payload data).
	ErrCorrupt = errors.New("compress: invalid deflate data")

	// ErrReleased: a Compressor or Decompressor was used after Release.
	ErrReleased = errors.New("compress: codec used after Release")
)
