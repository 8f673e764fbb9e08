package cluster

import (
	"context"
	"errors"
	"fmt"
)

// errorStatus encodes the errors of a directed call that have no
// provider-send sentinel; 0 when err is none of them.
func errorStatus(err error) (byte, string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return statusTimeout, err.Error()
	}
	return 0, ""
}

// statusError decodes what errorStatus encoded; nil for other statuses.
func statusError(st byte, owner, connID string, rest []byte) error {
	switch st {
	case statusTimeout:
		return fmt.Errorf("cluster: connection %s on node %s: %w", connID, owner, context.DeadlineExceeded)
	}
	return nil
}
