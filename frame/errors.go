package frame

import "errors"

// ErrBackpressure is returned by [Queue] when queueing bytes would take the
// queue over its limit. Nothing was queued.
var ErrBackpressure = errors.New("frame: outbound queue is over its limit (max backpressure)")

// Protocol violations found while parsing. Each is a *CloseError carrying the
// close code RFC 6455 prescribes, so errors.As and [CloseStatus] see the code.
var (
	errCloseOneByte   = &CloseError{Code: CloseProtocolError, Reason: "close frame with a 1-byte payload"}
	errCloseBadCode   = &CloseError{Code: CloseProtocolError, Reason: "invalid close code"}
	errCloseBadReason = &CloseError{Code: CloseInvalidPayload, Reason: "close reason is not valid UTF-8"}
)

// Protocol violations found by [ParseHeader] and [Assembler]. Like the close
// frame errors above they are shared *CloseError values, which callers must
// not modify; match them with [CloseStatus] or errors.Is against a
// CloseError with the code alone.
var (
	errReservedBits          = &CloseError{Code: CloseProtocolError, Reason: "reserved bits set"}
	errReservedOpcode        = &CloseError{Code: CloseProtocolError, Reason: "reserved opcode"}
	errFragmentedControl     = &CloseError{Code: CloseProtocolError, Reason: "fragmented control frame"}
	errControlTooLong        = &CloseError{Code: CloseProtocolError, Reason: "control frame payload over 125 bytes"}
	errLengthTopBit          = &CloseError{Code: CloseProtocolError, Reason: "payload length with the most significant bit set"}
	errUnmaskedFromClient    = &CloseError{Code: CloseProtocolError, Reason: "unmasked frame from a client"}
	errMaskedFromServer      = &CloseError{Code: CloseProtocolError, Reason: "masked frame from a server"}
	errRSV1Control           = &CloseError{Code: CloseProtocolError, Reason: "RSV1 set on a control frame"}
	errRSV1Continuation      = &CloseError{Code: CloseProtocolError, Reason: "RSV1 set on a continuation frame"}
	errContinuationNoMessage = &CloseError{Code: CloseProtocolError, Reason: "continuation frame with no message in progress"}
	errDataMidMessage        = &CloseError{Code: CloseProtocolError, Reason: "new data message while a fragmented message is in progress"}
	errMalformedHeader       = &CloseError{Code: CloseProtocolError, Reason: "malformed frame header"}
	errFrameTooBig           = &CloseError{Code: CloseTooBig, Reason: "frame payload over the limit"}
	errMessageTooBig         = &CloseError{Code: CloseTooBig, Reason: "message payload over the limit"}
	errInvalidUTF8           = &CloseError{Code: CloseInvalidPayload, Reason: "text is not valid UTF-8"}
)
