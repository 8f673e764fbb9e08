// Command loadtest is the load test harness of network-cluster: it sizes a
// cluster before it is deployed, and holds the library's figures against
// other Go WebSocket servers.
//
//	go run ./loadtest                 the default suite against an embedded Provider (~1 min)
//	loadtest suite [flags]            the same, with flags
//	loadtest serve [flags]            a Provider speaking the harness protocol
//	loadtest run --target URL ...     one scenario against a running server
//	loadtest compare [flags]          the suite against our Provider and the peer servers
//	loadtest cluster [flags]          3 Providers joined by NATS (cluster/natsbroker) vs one
//
// Every server speaks the harness protocol of loadtest/peers/PROTOCOL.md:
// it echoes each message, broadcasts a binary message that starts with
// "NCBCAST:" to every connection, and answers "NCSTATS:" with its stats.
// The harness runs servers as separate processes, so that their CPU time,
// memory and goroutines are measured apart from the client's; it reads
// them from /proc (Linux).
//
// Scenarios: connect (upgrades/s), idle (server memory and goroutines per
// connection), echo (messages/s, server CPU per message, round-trip
// latency with K messages in flight per connection), broadcast
// (deliveries/s and delivery latency to N receivers, then with a share of
// receivers that stop reading), compress (bytes on the wire, CPU and
// memory per connection for a permessage-deflate preset), request and jobs
// (requests and provider.Queue jobs per second, with lost and redelivered
// counts).
//
// Output: progress on stderr, a table on stdout, the full result as JSON
// (--json) and a latency plot as SVG (--svg; its path is printed).
//
// The client only targets 127.0.0.0/8 unless --allow-remote is given.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := realMain(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

const usage = `usage: loadtest [command] [flags]

commands:
  suite     the default suite against an embedded Provider (the default command; about a minute)
  serve     a Provider speaking the harness protocol; prints the URL for run --target
  run       one scenario against a running WebSocket server (run --target URL)
  compare   the suite against our Provider and the peer servers of loadtest/peers
  cluster   1 nats-server and 3 ncnode (cluster/natsbroker) against a single Provider
  help      this list

loadtest <command> -h lists the flags of a command.
`

// realMain runs the command in args and returns the exit status: 0, 1 for
// a failure, 2 for bad usage.
func realMain(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	cmd := "suite"
	if len(args) > 0 {
		switch args[0] {
		case "-h", "-help", "--help":
			fmt.Fprint(stdout, usage)
			return 0
		}
	}
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		cmd, args = args[0], args[1:]
	}
	var err error
	switch cmd {
	case "serve":
		err = cmdServe(ctx, args, stdout, stderr)
	case "run":
		err = cmdRun(ctx, args, stdout, stderr)
	case "suite":
		err = cmdSuite(ctx, args, stdout, stderr, false)
	case "compare":
		err = cmdSuite(ctx, args, stdout, stderr, true)
	case "cluster":
		err = cmdCluster(ctx, args, stdout, stderr)
	case "help":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprint(stderr, usage)
		fmt.Fprintf(stderr, "loadtest: unknown command %q\n", cmd)
		return 2
	}
	if err == nil {
		return 0
	}
	if errors.Is(err, errHelp) {
		return 0
	}
	// The sentinels already say "loadtest:".
	fmt.Fprintln(stderr, "loadtest:", strings.TrimPrefix(err.Error(), "loadtest: "))
	if errors.Is(err, ErrUsage) {
		return 2
	}
	return 1
}
