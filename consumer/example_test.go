package consumer_test

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/networkcluster/networkcluster/consumer"
)

// A Consumer connects to its Provider, sends a message and handles the
// reply.
func Example() {
	port, stop := startProvider(false)
	defer stop()

	replies := make(chan string, 1)
	c, err := consumer.New(consumer.Options{
		Host:       "127.0.0.1",
		Port:       port,
		Parameters: map[string]string{"key": "SECRET_KEY"},
		OnMessage: func(m consumer.Message) {
			replies <- m.Text() // m.Data is only valid during the call: Text copies it
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		fmt.Println("connect:", err)
		return
	}
	fmt.Println("heartbeat cutoff:", c.HeartbeatCutoff())

	if err := c.Send("CONSUMER_READY"); err != nil {
		fmt.Println("send:", err)
		return
	}
	fmt.Println("reply:", <-replies)
	// Output:
	// heartbeat cutoff: 20s
	// reply: CONSUMER_READY
}

// Connect reports a rejected handshake with its HTTP status. A 403 is final:
// the Consumer does not retry it.
func ExampleConsumer_Connect_rejected() {
	port, stop := startProvider(true)
	defer stop()

	c, err := consumer.New(consumer.Options{
		Host: "127.0.0.1",
		Port: port,
		OnClose: func(code consumer.CloseCode, reason string) {
			fmt.Println("closed:", code)
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer c.Close()

	err = c.Connect(context.Background())
	var he *consumer.HandshakeError
	if errors.As(err, &he) {
		fmt.Println("status:", he.StatusCode, he.Status, "final:", he.Final())
	}
	// Output:
	// closed: 1006 (abnormal closure)
	// status: 403 Forbidden final: true
}

// The reconnect policy: exponential backoff from 500 ms up to 30 s, jitter
// of ±20 % (the default), never giving up.
func ExampleReconnect() {
	c, err := consumer.New(consumer.Options{
		Host: "provider.internal",
		Reconnect: consumer.Reconnect{
			Interval:    500 * time.Millisecond,
			Backoff:     2,
			MaxInterval: 30 * time.Second,
			MaxAttempts: -1,
		},
		OnDisconnect: func(code consumer.CloseCode, reason string) {
			fmt.Println("lost the Provider:", code, reason)
		},
	})
	fmt.Println(c != nil, err)
	// Output: true <nil>
}

// The Node network-cluster 1.0.4 policy instead of the default (which
// retries forever): 10 attempts 1 s apart, then the Consumer gives up and
// Connect returns an error wrapping ErrGaveUp.
func ExampleNodeReconnect() {
	r := consumer.NodeReconnect()
	c, err := consumer.New(consumer.Options{Host: "provider.internal", Reconnect: r})
	fmt.Println(c != nil, err, r.MaxAttempts, r.Interval)
	// Output: true <nil> 10 1s
}

// Binary messages are sent and received alongside text.
func ExampleConsumer_SendBinary() {
	port, stop := startProvider(false)
	defer stop()

	got := make(chan []byte, 1)
	c, _ := consumer.New(consumer.Options{
		Host: "127.0.0.1",
		Port: port,
		OnMessage: func(m consumer.Message) {
			if m.Binary {
				got <- append([]byte(nil), m.Data...) // copy: m.Data is reused
			}
		},
	})
	defer c.Close()
	if err := c.Connect(context.Background()); err != nil {
		fmt.Println(err)
		return
	}
	if err := c.SendBinary([]byte{0xca, 0xfe}); err != nil {
		fmt.Println(err)
		return
	}
	fmt.Printf("% x\n", <-got)
	// Output: ca fe
}
