package provider

import (
	"context"

	"github.com/networkcluster/networkcluster/internal/proto"
)

// RequestRedelivered is Request with the request flagged redelivered
// (consumer.Request.Redelivered reports it): the work was given before to
// another connection that may have done it. Dispatchers other than Queue
// use it when they retry a job elsewhere, such as the cluster-wide queue
// of package cluster.
func (c *Connection) RequestRedelivered(ctx context.Context, binary bool, data []byte) (Message, error) {
	return c.request(ctx, binary, data, proto.FlagRedelivered, 0, nil)
}
