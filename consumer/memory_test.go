package consumer

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/gobwas/ws/wsutil"
)

const childServerEnv = "NC_CONSUMER_CHILD_SERVER"

// runChildServer is an echo server with a goroutine per connection, run
// in a child process so that its memory does not count against the
// Consumers measured in this one. It prints its port and exits when its
// standard input closes.
func runChildServer() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.Exit(1)
	}
	fmt.Println(ln.Addr().(*net.TCPAddr).Port)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer nc.Close()
				if _, err := ws.Upgrade(nc); err != nil {
					return
				}
				for {
					msg, op, err := wsutil.ReadClientData(nc)
					if err != nil {
						return
					}
					_ = wsutil.WriteServerMessage(nc, op, msg)
				}
			}()
		}
	}()
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	os.Exit(0)
}

// BenchmarkIdleMemory reports the heap and stack held per idle connected
// Consumer (1 000 of them, after one message each), with the default and
// a 512-byte read buffer. The server runs in a child process.
//
//	go test ./consumer -run '^$' -bench IdleMemory -benchtime 1x
func BenchmarkIdleMemory(b *testing.B) {
	for _, rbs := range []int{DefaultReadBufferSize, 512} {
		b.Run("ReadBufferSize="+strconv.Itoa(rbs), func(b *testing.B) {
			const n = 1000
			cmd := exec.Command(os.Args[0])
			cmd.Env = append(os.Environ(), childServerEnv+"=1")
			stdin, _ := cmd.StdinPipe()
			stdout, _ := cmd.StdoutPipe()
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			defer func() { stdin.Close(); _ = cmd.Wait() }()
			line, err := bufio.NewReader(stdout).ReadString('\n')
			if err != nil {
				b.Fatal(err)
			}
			port, _ := strconv.Atoi(strings.TrimSpace(line))

			got := make(chan struct{}, n)
			measure := func() (heap, stack uint64) {
				runtime.GC()
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				return ms.HeapInuse, ms.StackInuse
			}
			h0, s0 := measure()
			cs := make([]*Consumer, 0, n)
			for i := 0; i < n; i++ {
				c, err := New(Options{Host: "127.0.0.1", Port: port, ReadBufferSize: rbs,
					OnMessage: func(Message) { got <- struct{}{} }})
				if err != nil {
					b.Fatal(err)
				}
				if err := c.Connect(ctxT(b, 10*time.Second)); err != nil {
					b.Fatal(err)
				}
				if err := c.Send("warm up"); err != nil {
					b.Fatal(err)
				}
				<-got
				cs = append(cs, c)
			}
			// Idle: the dispatcher goroutines that ran the warm-up
			// messages' handlers have exited.
			time.Sleep(dispatchLinger + 200*time.Millisecond)
			h1, s1 := measure()
			b.ReportMetric(float64(h1-h0)/n, "heap-B/consumer")
			b.ReportMetric(float64(s1-s0)/n, "stack-B/consumer")
			b.ReportMetric(float64(runtime.NumGoroutine())/n, "goroutines/consumer")
			for _, c := range cs {
				c.Destroy()
			}
		})
	}
}
