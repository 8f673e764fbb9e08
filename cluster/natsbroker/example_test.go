package natsbroker_test

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/networkcluster/networkcluster/cluster"
	"github.com/networkcluster/networkcluster/cluster/natsbroker"
	"github.com/networkcluster/networkcluster/provider"
)

// Two Providers joined by a NATS server (embedded here; in production a
// nats-server process, or two or three routed ones).
func ExampleNew() {
	ns, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: server.RANDOM_PORT, NoLog: true, NoSigs: true})
	if err != nil {
		panic(err)
	}
	go ns.Start()
	defer ns.Shutdown()
	if !ns.ReadyForConnections(5 * time.Second) {
		panic("nats-server not ready")
	}
	var nodes []*cluster.Node
	for _, id := range []string{"east", "west"} {
		p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
		if err != nil {
			panic(err)
		}
		b, err := natsbroker.New(natsbroker.Options{URLs: []string{ns.ClientURL()}, Prefix: "example"})
		if err != nil {
			panic(err)
		}
		n, err := cluster.New(p, cluster.Options{Broker: b, NodeID: id})
		if err != nil {
			panic(err)
		}
		if err := p.Start(); err != nil {
			panic(err)
		}
		if err := n.Start(context.Background()); err != nil {
			panic(err)
		}
		defer n.Shutdown(context.Background())
		nodes = append(nodes, n)
	}
	// Each node hears of the other within a heartbeat (1 s).
	for i := 0; i < 300 && len(nodes[0].Nodes()) < 2; i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for _, ni := range nodes[0].Nodes() {
		fmt.Println(ni.ID, ni.Up)
	}
	if _, err := nodes[0].Publish("jobs", false, []byte("to every subscriber of jobs, on every node")); err != nil {
		fmt.Println(err)
	}
	// Output:
	// east true
	// west true
}
