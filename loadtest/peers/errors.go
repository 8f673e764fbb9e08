package peers

import "errors"

// Sentinel errors returned by this package. They are wrapped with context, so
// test them with errors.Is.
var (
	// ErrUnknownImpl is returned by Start for an Impl that is not one of Impls().
	ErrUnknownImpl = errors.New("peers: unknown implementation")

	// ErrBadConfig is returned by Start for an invalid Config field.
	ErrBadConfig = errors.New("peers: invalid config")

	// ErrNotStats is returned by ParseStats for a payload that is not a stats
	// answer.
	ErrNotStats = errors.New("peers: not a stats answer")
)
