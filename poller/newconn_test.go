package poller

import (
	"strconv"
	"sync"
	"testing"
	"unsafe"
)

// state is what a handler keeps per connection, its Conn inside.
type newConnState struct {
	c    Conn
	seen int // OnData calls, by the handler (one at a time per connection)
}

// Options.NewConn makes every connection's Conn, on every engine: the
// handler is given the Conn inside its own struct (one allocation for
// both), which works as a Conn of the Poller's own does, and SetContext
// still works on it.
func TestNewConn(t *testing.T) {
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			var mu sync.Mutex
			made := map[*Conn]*newConnState{}
			o := Options{NewConn: func() *Conn {
				s := new(newConnState)
				mu.Lock()
				made[&s.c] = s
				mu.Unlock()
				return &s.c
			}}
			stateOf := func(c *Conn) *newConnState {
				mu.Lock()
				defer mu.Unlock()
				return made[c]
			}
			h := &testHandler{tb: t, open: func(c *Conn) {
				if stateOf(c) == nil {
					t.Error("OnOpen got a Conn that NewConn did not make")
				}
				c.SetContext("ctx")
			}, data: func(c *Conn, in []byte) int {
				s := stateOf(c)
				if s == nil || c.Context() != "ctx" {
					t.Errorf("OnData: state %v, context %v", s, c.Context())
					return len(in)
				}
				s.seen++
				return echo(c, in)
			}}
			p := e.start(t, h, o)
			for i := range 3 {
				cc := e.dial(t, p.Addr().String())
				msg := []byte("hello " + strconv.Itoa(i))
				if _, err := cc.Write(msg); err != nil {
					t.Fatal(err)
				}
				readFull(t, cc, make([]byte, len(msg)))
				cc.Close()
			}
			waitFor(t, "all closed", func() bool { return h.closed.Load() == 3 })
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			defer mu.Unlock()
			seen := 0
			for _, s := range made {
				seen += s.seen
			}
			if len(made) < 3 || seen < 3 {
				t.Fatalf("%d Conns made, %d OnData calls on them", len(made), seen)
			}
		})
	}
}

// An idle connection's Conn stays at 120 bytes on 64-bit platforms (the
// Provider's Connection, which embeds it, is sized to its 240-byte size
// class with this in mind).
func TestConnSize(t *testing.T) {
	if unsafe.Sizeof(uintptr(0)) != 8 {
		t.Skip("sizes are for 64-bit platforms")
	}
	if n := unsafe.Sizeof(Conn{}); n > 120 {
		t.Errorf("Conn is %d bytes, more than 120", n)
	}
}
