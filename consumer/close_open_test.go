package consumer

import (
	"net"
	"net/http"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// deafHeartbeatServer completes the upgrade announcing a heartbeat interval,
// then neither reads nor writes: a close handshake with it can only end by
// the Consumer's CloseTimeout.
func deafHeartbeatServer(t *testing.T, interval time.Duration) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, nc)
			mu.Unlock()
			u := ws.Upgrader{OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
				return ws.HandshakeHeaderHTTP(http.Header{proto.HeartbeatHeader: {proto.FormatInterval(interval)}}), nil
			}}
			_, _ = u.Upgrade(nc)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln.Addr().(*net.TCPAddr).Port
}

// Close called just as a connection opens must still bound the wait for
// the Provider's close frame by CloseTimeout: the heartbeat read deadline
// armed for the new connection must not replace the close deadline.
func TestCloseAsConnectionOpensKeepsCloseTimeout(t *testing.T) {
	// A 1 h interval: a Close that waits for the 2 h cutoff instead of the
	// 10 ms CloseTimeout does not return within the test's bound.
	port := deafHeartbeatServer(t, time.Hour)
	for i := 0; i < 100; i++ {
		// A large read buffer widens the window between the connection
		// being installed and its heartbeat deadline being armed.
		c, err := New(Options{Host: "127.0.0.1", Port: port, CloseTimeout: 10 * time.Millisecond, ReadBufferSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		closed := make(chan struct{})
		go func() {
			for !c.Connected() {
				runtime.Gosched()
			}
			c.Close()
			close(closed)
		}()
		go c.Connect(ctxT(t, 10*time.Second))
		select {
		case <-closed:
		case <-time.After(10 * time.Second):
			c.Destroy()
			<-closed
			t.Fatalf("attempt %d: Close did not return within 10 s (CloseTimeout 10 ms)", i)
		}
		c.Destroy()
	}
}
