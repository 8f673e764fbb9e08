package peers_test

import (
	"context"
	"fmt"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"

	"github.com/networkcluster/networkcluster/loadtest/peers"
)

// Start a peer in this process, echo one message and ask for its stats. The
// harness runs the same servers as separate processes through cmd/peer.
func ExampleStart() {
	srv, err := peers.Start(peers.Config{Impl: peers.ImplGobwas})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, _, _, err := ws.Dialer{}.Dial(ctx, "ws://"+srv.Addr().String()+peers.DefaultPath)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer conn.Close()

	_ = wsutil.WriteClientText(conn, []byte("hello"))
	msg, _ := wsutil.ReadServerText(conn)
	fmt.Printf("echo: %s\n", msg)

	_ = wsutil.WriteClientBinary(conn, []byte(peers.StatsQuery))
	answer, _ := wsutil.ReadServerBinary(conn)
	st, err := peers.ParseStats(answer)
	fmt.Println("conns:", st.Conns, err)
	// Output:
	// echo: hello
	// conns: 1 <nil>
}
