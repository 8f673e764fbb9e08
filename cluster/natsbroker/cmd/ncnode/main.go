// Command ncnode is `loadtest serve` joined to a cluster over NATS: a
// Provider speaking the load-test harness protocol whose NCBCAST:
// broadcasts go to every connection of the cluster. Start one per machine:
//
//	ncnode --addr :8080 --nats nats://nats-1:4222,nats://nats-2:4222 --node-id web-1
//
// It prints "PEER networkcluster pid=... addr=... node=..." once listening,
// and leaves the cluster gracefully on SIGINT or SIGTERM. Without --nats it
// is a plain Provider (the load test's single-node baseline).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/networkcluster/networkcluster/cluster/natsbroker/internal/ncnode"
)

func main() {
	if err := ncnode.Main(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "ncnode:", err)
		if errors.Is(err, ncnode.ErrUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}
