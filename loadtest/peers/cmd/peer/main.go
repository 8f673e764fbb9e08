// Command peer runs one comparison server for `loadtest compare`:
//
//	peer --impl gorilla|nbio|gobwas|rawtcp [--addr 127.0.0.1:0] [--path /connect]
//	     [--tls-cert cert.pem --tls-key key.pem]   # wss: gorilla and nbio
//
// Once listening it prints exactly one line on stdout,
//
//	PEER <impl> pid=<pid> addr=<host:port>
//
// and serves the harness protocol of loadtest/peers/PROTOCOL.md until SIGINT
// or SIGTERM, then shuts down (close 1001 to every client) and exits 0.
// Diagnostics go to stderr. Exit status 2 means bad flags, 1 a failure.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/lesismal/nbio/logging"

	"github.com/networkcluster/networkcluster/loadtest/peers"
)

// shutdownTimeout bounds the graceful shutdown after a signal.
const shutdownTimeout = 5 * time.Second

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run parses args, starts the peer, prints the PEER line on stdout and serves
// until ctx is done. It returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("peer", flag.ContinueOnError)
	fs.SetOutput(stderr)
	impl := fs.String("impl", "", "implementation: "+strings.Join(peers.Impls(), "|")+" (required)")
	addr := fs.String("addr", peers.DefaultAddr, "TCP address to listen on")
	path := fs.String("path", peers.DefaultPath, "WebSocket path (ignored by rawtcp)")
	gobwasBuf := fs.Int("gobwas-read-buffer", peers.DefaultGobwasReadBuffer,
		"gobwas only: bufio.Reader size per connection, -1 for none")
	tlsCert := fs.String("tls-cert", "", "PEM certificate file: serve wss (gorilla, nbio)")
	tlsKey := fs.String("tls-key", "", "PEM key file (with --tls-cert)")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "peer: unexpected arguments %q\n", fs.Args())
		return 2
	}
	// nbio logs to stdout by default; the harness parses stdout.
	logging.Output = stderr

	srv, err := peers.Start(peers.Config{Impl: *impl, Addr: *addr, Path: *path, GobwasReadBuffer: *gobwasBuf,
		TLSCert: *tlsCert, TLSKey: *tlsKey})
	if err != nil {
		fmt.Fprintln(stderr, "peer:", err)
		if errors.Is(err, peers.ErrUnknownImpl) || errors.Is(err, peers.ErrBadConfig) {
			return 2
		}
		return 1
	}
	fmt.Fprintf(stdout, "PEER %s pid=%d addr=%s\n", srv.Impl(), os.Getpid(), srv.Addr())

	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		fmt.Fprintln(stderr, "peer: shutdown:", err)
		return 1
	}
	return 0
}
