package poller_test

import (
	"context"
	"fmt"
	"io"
	"net"

	"github.com/networkcluster/networkcluster/poller"
)

// lines is a Handler that answers each newline-terminated line with its
// length: it consumes whole lines only and leaves a partial line pending.
type lines struct{ closed chan error }

func (lines) OnOpen(c *poller.Conn) { c.SetMaxPending(1 << 10) } // lines up to 1 KiB

func (lines) OnData(c *poller.Conn, in []byte) int {
	n := 0
	for i, b := range in {
		if b == '\n' {
			// Writes made here are flushed together when OnData returns.
			c.Write(fmt.Appendf(nil, "%d\n", i-n), nil, false)
			n = i + 1
		}
	}
	return n
}

func (h lines) OnClose(c *poller.Conn, err error) { h.closed <- err }

func Example() {
	h := lines{closed: make(chan error, 1)}
	p, err := poller.Listen(context.Background(), "tcp", "127.0.0.1:0", h, poller.Options{})
	if err != nil {
		panic(err)
	}
	defer p.Close()

	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		panic(err)
	}
	c.Write([]byte("hello\nwor"))  // a line and a half
	c.Write([]byte("ld, again\n")) // the rest is joined to the pending half
	buf := make([]byte, 5)
	io.ReadFull(c, buf)
	fmt.Printf("%q\n", buf)
	c.Close()
	fmt.Println("OnClose:", <-h.closed)
	// Output:
	// "5\n12\n"
	// OnClose: EOF
}

// A broadcast: encode once, queue the same bytes on every connection
// (WriteShared does not copy), then flush each. A connection over its
// outbound limit refuses the message with ErrBackpressure instead of
// slowing the others down.
func ExampleConn_WriteShared() {
	conns := make(chan *poller.Conn, 3)
	h := handlerFuncs{open: func(c *poller.Conn) { conns <- c }}
	p, err := poller.Listen(context.Background(), "tcp", "127.0.0.1:0", h, poller.Options{MaxBuffered: 1 << 20})
	if err != nil {
		panic(err)
	}
	defer p.Close()
	var clients []net.Conn
	for i := 0; i < 3; i++ {
		c, err := net.Dial("tcp", p.Addr().String())
		if err != nil {
			panic(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	msg := []byte("news for everyone\n") // must stay unmodified until written
	for i := 0; i < 3; i++ {
		c := <-conns
		if err := c.WriteShared(msg, false); err != nil {
			fmt.Println(err)
		}
		c.Flush()
	}
	for _, c := range clients {
		buf := make([]byte, len(msg))
		io.ReadFull(c, buf)
		fmt.Print(string(buf))
	}
	// Output:
	// news for everyone
	// news for everyone
	// news for everyone
}

// Serve runs the same Handler over any net.Listener, for example a TLS
// one (tls.NewListener), with a goroutine per connection.
func ExampleServe() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	h := lines{closed: make(chan error, 1)}
	p, err := poller.Serve(ln, h, poller.Options{}) // or tls.NewListener(ln, config)
	if err != nil {
		panic(err)
	}
	c, err := net.Dial("tcp", p.Addr().String())
	if err != nil {
		panic(err)
	}
	defer c.Close()
	c.Write([]byte("over TLS or not\n"))
	buf := make([]byte, 3)
	io.ReadFull(c, buf)
	fmt.Printf("%q\n", buf)
	p.Close() // closes the connection: OnClose gets ErrPollerClosed
	fmt.Println("OnClose:", <-h.closed)
	// Output:
	// "15\n"
	// OnClose: poller: poller closed
}

type handlerFuncs struct {
	open func(*poller.Conn)
}

func (h handlerFuncs) OnOpen(c *poller.Conn)              { h.open(c) }
func (handlerFuncs) OnData(c *poller.Conn, in []byte) int { return len(in) }
func (handlerFuncs) OnClose(c *poller.Conn, err error)    {}
