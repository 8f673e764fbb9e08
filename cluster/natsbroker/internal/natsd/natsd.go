// Package natsd runs an embedded nats-server as a process of its own, for
// the multi-process tests (a child that can be SIGKILLed and restarted on
// the same port). It is only linked into tests.
package natsd

import (
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// ListenLine starts the line Main prints once clients can connect, as
// nats-server logs it: "Listening for client connections on HOST:PORT".
const ListenLine = "Listening for client connections on "

// Main runs a nats-server on 127.0.0.1 until SIGINT or SIGTERM. Flags: -p
// PORT (-1, the default: a random free port), -max_payload BYTES.
func Main(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("natsd", flag.ContinueOnError)
	port := fs.Int("p", -1, "client port (-1: random)")
	maxPayload := fs.Int("max_payload", 0, "max payload in bytes (0: 1 MiB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: *port, MaxPayload: int32(*maxPayload), NoLog: true, NoSigs: true})
	if err != nil {
		return err
	}
	go s.Start()
	if !s.ReadyForConnections(10 * time.Second) {
		return fmt.Errorf("natsd: not ready")
	}
	fmt.Fprintf(stdout, "%s%s\n", ListenLine, s.Addr().(*net.TCPAddr).String())
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	s.Shutdown()
	s.WaitForShutdown()
	return nil
}
