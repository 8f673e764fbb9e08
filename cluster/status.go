package cluster

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/networkcluster/networkcluster/provider"
)

// errorStatus encodes the errors of a directed call that have no
// provider-send sentinel; 0 when err is none of them.
func errorStatus(err error) (byte, string) {
	var re *provider.RemoteError
	switch {
	case errors.As(err, &re):
		b := binary.AppendUvarint(nil, uint64(re.Code))
		return statusRemoteError, string(b) + re.Reason
	case errors.Is(err, provider.ErrNotSupported):
		return statusNotSupp, err.Error()
	case errors.Is(err, provider.ErrDisconnected):
		return statusDisconn, err.Error()
	case errors.Is(err, provider.ErrTooManyPending):
		return statusTooMany, err.Error()
	case errors.Is(err, context.DeadlineExceeded):
		return statusTimeout, err.Error()
	}
	return 0, ""
}

// statusError decodes what errorStatus encoded; nil for other statuses.
func statusError(st byte, owner, connID string, rest []byte) error {
	switch st {
	case statusRemoteError:
		code, n := binary.Uvarint(rest)
		if n <= 0 || code > 0xffff {
			return fmt.Errorf("%w: remote error from node %s", ErrBadEnvelope, owner)
		}
		return &provider.RemoteError{Code: uint16(code), Reason: string(rest[n:])}
	case statusNotSupp:
		return fmt.Errorf("%w: connection %s on node %s", provider.ErrNotSupported, connID, owner)
	case statusDisconn:
		return fmt.Errorf("%w: connection %s on node %s", provider.ErrDisconnected, connID, owner)
	case statusTooMany:
		return fmt.Errorf("%w: connection %s on node %s", provider.ErrTooManyPending, connID, owner)
	case statusTimeout:
		return fmt.Errorf("cluster: connection %s on node %s: %w", connID, owner, context.DeadlineExceeded)
	}
	return nil
}
