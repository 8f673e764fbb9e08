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
