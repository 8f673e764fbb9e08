package consumer

import (
	"net"
	"net/http"
	"runtime"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// deafHeartbeatServer completes the upgrade announcing a heartbeat interval,
// then neither reads nor writes: a close handshake with it can only end by
// the Consumer's CloseTimeout.
func deafHeartbeatServer(t *testing.T, interval time.Duration) int {
	u := ws.Upgrader{OnBeforeUpgrade: func() (ws.HandshakeHeader, error) {
		return ws.HandshakeHeaderHTTP(http.Header{proto.HeartbeatHeader: {proto.FormatInterval(interval)}}), nil
	}}
	port, _ := rawListener(t, func(nc net.Conn) { _, _ = u.Upgrade(nc) })
	return port
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
