package consumer

import (
	"errors"
	"strconv"

	"github.com/networkcluster/networkcluster/frame"
)

// CloseCode is a WebSocket close status code, as the Provider's
// provider.CloseCode; the constants are those of package frame
// (frame.CloseNormal, frame.CloseGoingAway, ...).
type CloseCode = frame.CloseCode

// CloseError is a close code and reason, as the Provider's
// provider.CloseError: a protocol violation by the Provider is reported
// with one (to OnError). Test with errors.As.
type CloseError = frame.CloseError

// Sentinel errors. Every error the package returns wraps one of these, a
// [*HandshakeError], a [*CloseError] or the network error that caused
// it, so that errors.Is and errors.As can tell them apart.
var (
	// ErrInvalidOptions is wrapped by the error [New] returns for an
	// invalid [Options] value.
	ErrInvalidOptions = errors.New("consumer: invalid options")

	// ErrNotConnected is returned by the send methods when no connection is
	// open: before the first connection, once the Consumer knows the
	// connection is lost (even while handlers still run messages read
	// before the loss), between a loss and the reconnect, or while the
	// close handshake runs.
	ErrNotConnected = errors.New("consumer: not connected")

	// ErrClosed is returned by Connect and the send methods once
	// [Consumer.Close] or [Consumer.Destroy] has been called, and by Ready
	// unless the cycle had already failed for good (Ready then returns that
	// error).
	ErrClosed = errors.New("consumer: closed")

	// ErrCloseTimeout is wrapped by the error [Consumer.Close] returns when
	// the Provider did not answer the close frame within
	// Options.CloseTimeout (or did not take it within WriteTimeout): the
	// connection was dropped without a clean close handshake.
	ErrCloseTimeout = errors.New("consumer: no close frame from the Provider within CloseTimeout")

	// ErrGaveUp is wrapped by the error that [Consumer.Connect] and
	// [Consumer.Ready] return once the reconnect policy has used up its
	// attempts; that error also wraps the error of the last attempt.
	ErrGaveUp = errors.New("consumer: gave up reconnecting")

	// ErrInvalidUTF8 is returned by [Consumer.Send] and [Consumer.SendText]
	// for a text message that is not valid UTF-8 (RFC 6455 §5.6): it is not
	// sent, and the connection stays open.
	ErrInvalidUTF8 = errors.New("consumer: text message is not valid UTF-8")

	// ErrHeartbeatCutoff is the cause reported (to OnError and in the
	// disconnect reason) when no heartbeat arrived within the cutoff and
	// the connection was dropped.
	ErrHeartbeatCutoff = errors.New("consumer: no heartbeat within the cutoff")

	// ErrNotSupported is returned by [Consumer.Request] when the
	// connection did not negotiate requests: the Provider is the Node 1.0.4
	// package or another server, or Options.Protocol is ProtocolPlain.
	ErrNotSupported = errors.New("consumer: peer does not support requests")

	// ErrDisconnected is wrapped by the error of a Request whose
	// connection was lost before the reply (without Options.Resend), and
	// by Reply and Fail when the request's connection has ended.
	ErrDisconnected = errors.New("consumer: connection ended before the reply")

	// ErrTooManyPending is returned by [Consumer.Request] at
	// Options.MaxPendingRequests unanswered requests.
	ErrTooManyPending = errors.New("consumer: too many pending requests")

	// ErrAlreadyAnswered is returned by a second Reply or Fail.
	ErrAlreadyAnswered = errors.New("consumer: request already answered")

	// ErrInvalidTopic is returned by [Consumer.Subscribe] and Unsubscribe
	// for a topic that is empty, over 1024 bytes or not UTF-8.
	ErrInvalidTopic = errors.New("consumer: invalid topic")
)

// HandshakeError is returned (wrapped) when the Provider answers the upgrade
// request with an HTTP status other than 101 Switching Protocols. A 403
// Forbidden is final: the Consumer does not retry it. Any other status is
// retried per the reconnect policy.
type HandshakeError struct {
	// StatusCode is the HTTP status code of the response, e.g. 403.
	StatusCode int
	// Status is the reason phrase of the status line, e.g. "Forbidden".
	Status string
	// Body holds up to the first 512 bytes of the response body when the
	// response declared a Content-Length (the Node Provider answers a
	// rejection with "Unauthorized").
	Body string
}

// Error implements error.
func (e *HandshakeError) Error() string {
	s := "consumer: handshake rejected: HTTP " + strconv.Itoa(e.StatusCode)
	if e.Status != "" {
		s += " " + e.Status
	}
	if e.Body != "" {
		s += ": " + strconv.Quote(e.Body)
	}
	return s
}

// Final reports whether the Consumer gives up on this response instead of
// retrying: true for 403 Forbidden.
func (e *HandshakeError) Final() bool { return e.StatusCode == 403 }

// gaveUpError is the terminal error once the attempts are used up.
type gaveUpError struct {
	attempts int
	last     error
}

func (e *gaveUpError) Error() string {
	return ErrGaveUp.Error() + " after " + strconv.Itoa(e.attempts) + " attempts: " + e.last.Error()
}

func (e *gaveUpError) Unwrap() []error { return []error{ErrGaveUp, e.last} }
