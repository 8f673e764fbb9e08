package provider

import (
	"errors"

	"github.com/networkcluster/networkcluster/frame"
)

// CloseCode is a WebSocket close status code; the constants are those of
// package frame (frame.CloseNormal, frame.CloseGoingAway, ...).
type CloseCode = frame.CloseCode

// CloseError is a close code and reason, returned by sends on a closed
// connection and reported for protocol violations. Test with errors.As.
type CloseError = frame.CloseError

// Sentinel errors. Errors returned by the Provider wrap one of them (test
// with errors.Is) and add detail.
var (
	// ErrInvalidOptions: Options failed validation in New.
	ErrInvalidOptions = errors.New("provider: invalid options")
	// ErrClosed: the Provider or the connection is closed (or closing).
	ErrClosed = errors.New("provider: closed")
	// ErrServerClosed is returned by Start after Close or Shutdown.
	ErrServerClosed = errors.New("provider: server closed")
	// ErrAlreadyStarted: Start was called twice.
	ErrAlreadyStarted = errors.New("provider: already started")
	// ErrBackpressure: the connection's outbound queue is over
	// MaxBackpressure; nothing of the message was queued. It wraps
	// frame.ErrBackpressure.
	ErrBackpressure = frame.ErrBackpressure
	// ErrAuthFailed is passed to OnError when an auth handler returns an
	// error (wrapping it).
	ErrAuthFailed = errors.New("provider: auth handler failed")
	// ErrInvalidUTF8: Send or SendText with text, or Close with a reason,
	// that is not UTF-8.
	ErrInvalidUTF8 = errors.New("provider: text is not valid UTF-8")
	// ErrTLS: the TLS certificate or key could not be loaded.
	ErrTLS = errors.New("provider: TLS")
	// ErrNotSupported is returned by Connection.Request when the
	// connection did not negotiate requests: the Consumer is the Node
	// 1.0.4 package, a browser or a plain WebSocket client, or the Provider
	// runs with ProtocolPlain.
	ErrNotSupported = errors.New("provider: peer does not support requests")
	// ErrDisconnected is wrapped by the error of a Request whose connection
	// ended before the reply: the Consumer may or may not have handled it.
	ErrDisconnected = errors.New("provider: connection ended before the reply")
	// ErrTooManyPending is returned by Connection.Request at
	// Options.MaxPendingRequests unanswered requests on the connection.
	ErrTooManyPending = errors.New("provider: too many pending requests")
	// ErrAlreadyAnswered is returned by a second Reply or Fail.
	ErrAlreadyAnswered = errors.New("provider: request already answered")
	// ErrQueueFull is returned by Queue.Submit and SubmitAsync when
	// QueueOptions.MaxQueued jobs already wait for a worker.
	ErrQueueFull = errors.New("provider: job queue full")
	// ErrQueueClosed is returned by Submit and SubmitAsync after
	// Queue.Close, and is the outcome of the jobs Close gave up on.
	ErrQueueClosed = errors.New("provider: job queue closed")
	// ErrAttemptsExhausted is the cause in a *JobError whose job failed
	// QueueOptions.MaxAttempts times.
	ErrAttemptsExhausted = errors.New("provider: job attempts exhausted")
)
