package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/networkcluster/networkcluster/cluster"
	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

// Two Providers on one in-process hub form a cluster: each sees the other,
// and a Send to an id that no node holds is refused.
func Example() {
	hub := cluster.NewMemHub(0)
	var nodes []*cluster.Node
	for _, id := range []string{"east", "west"} {
		p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
		if err != nil {
			panic(err)
		}
		n, err := cluster.New(p, cluster.Options{Broker: hub.Broker(), NodeID: id, Heartbeat: 20 * time.Millisecond, NodeTimeout: time.Second})
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
	for i := 0; i < 500 && (len(nodes[0].Nodes()) < 2 || !nodes[0].Nodes()[1].Synced); i++ {
		time.Sleep(10 * time.Millisecond)
	}
	for _, ni := range nodes[0].Nodes() {
		fmt.Println(ni.ID, ni.Self, ni.Up)
	}
	if _, err := nodes[0].Broadcast(false, []byte("to every connection of the cluster")); err != nil {
		fmt.Println(err)
	}
	err := nodes[0].Send(context.Background(), "no-such-id", false, []byte("hi"))
	fmt.Println(errors.Is(err, cluster.ErrUnknownConnection))
	// Output:
	// east true true
	// west false true
	// true
}

// A job submitted on node "east" runs on a worker connected to node
// "west": the queue picks it from presence and sends the job through west.
func ExampleNode_NewQueue() {
	hub := cluster.NewMemHub(0)
	var nodes []*cluster.Node
	var addrs []string
	for _, id := range []string{"east", "west"} {
		p, err := provider.New(provider.Options{Addr: "127.0.0.1:0"})
		if err != nil {
			panic(err)
		}
		n, err := cluster.New(p, cluster.Options{Broker: hub.Broker(), NodeID: id, Heartbeat: 20 * time.Millisecond, NodeTimeout: time.Second})
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
		addrs = append(addrs, p.Addr().String())
	}
	// A worker on west.
	host, port, _ := net.SplitHostPort(addrs[1])
	portN, _ := strconv.Atoi(port)
	w, err := consumer.New(consumer.Options{Host: host, Port: portN, OnRequest: func(r *consumer.Request) {
		r.Reply(false, []byte("rendered "+string(r.Message().Data)))
	}})
	if err != nil {
		panic(err)
	}
	if err := w.Connect(context.Background()); err != nil {
		panic(err)
	}
	defer w.Close()

	q, err := nodes[0].NewQueue(cluster.QueueOptions{MaxInFlight: 2, AttemptTimeout: 10 * time.Second})
	if err != nil {
		panic(err)
	}
	defer q.Close(context.Background())
	for i := 0; i < 500 && q.Stats().Workers == 0; i++ {
		time.Sleep(10 * time.Millisecond) // until west's presence arrives
	}
	res, err := q.Submit(context.Background(), false, []byte("page 1"))
	fmt.Println(string(res.Data), err)
	// Output:
	// rendered page 1 <nil>
}
