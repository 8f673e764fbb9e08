// Command fanout broadcasts state updates from one Provider to many
// Consumers, framing (and compressing) each update once, and reports how
// many deliveries per second the fleet received.
//
//	go run ./examples/fanout -consumers 500 -updates 200
package main

import (
	"context"
	"flag"
	"fmt"
	"log"
	"sync"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/consumer"
	"github.com/networkcluster/networkcluster/provider"
)

func main() {
	n := flag.Int("consumers", 200, "number of consumers")
	updates := flag.Int("updates", 100, "number of broadcasts")
	size := flag.Int("size", 1024, "bytes per update")
	flag.Parse()

	p, err := provider.New(provider.Options{
		Addr:       "127.0.0.1:0",
		Compressor: compress.SharedCompressor, // compress each update once for everyone
	})
	if err != nil {
		log.Fatal(err)
	}
	if err := p.Start(); err != nil {
		log.Fatal(err)
	}
	defer p.Close()

	var received atomic.Int64
	var wg sync.WaitGroup
	wg.Add(*n * *updates)
	fleet := make([]*consumer.Consumer, *n)
	for i := range fleet {
		c, err := consumer.New(consumer.Options{
			Host: "127.0.0.1", Port: p.Port(),
			Compressor:     compress.SharedCompressor,
			ReadBufferSize: 512,
			OnMessage: func(m consumer.Message) {
				received.Add(1)
				wg.Done()
			},
		})
		if err != nil {
			log.Fatal(err)
		}
		if err := c.Connect(context.Background()); err != nil {
			log.Fatal(err)
		}
		fleet[i] = c
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.WaitLen(ctx, *n); err != nil {
		log.Fatalf("waiting for %d connections: %v", *n, err)
	}

	state := make([]byte, *size)
	start := time.Now()
	for u := 0; u < *updates; u++ {
		copy(state, fmt.Sprintf(`{"version":%d,"payload":"`, u))
		for i := 40; i < len(state); i++ {
			state[i] = 'a' + byte(i%7)
		}
		if _, err := p.Broadcast(false, state); err != nil {
			log.Fatal(err)
		}
	}
	wg.Wait()
	elapsed := time.Since(start)
	s := p.Stats()
	fmt.Printf("%d deliveries in %v (%.0f/s); %d frames compressed, %d bytes of payload queued\n",
		received.Load(), elapsed.Round(time.Millisecond), float64(received.Load())/elapsed.Seconds(),
		s.FramesCompressed, s.BytesOut)
	for _, c := range fleet {
		c.Close()
	}
}
