package poller

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestCloseRacesWrites hammers the "no write after close" guarantee. Several
// workers open connections concurrently (so closed descriptor numbers are
// reused at once by new connections); each connection announces a tag byte,
// and the server writes that tag from several goroutines while another
// goroutine closes the connection (or the client closes it). A write that
// reached a descriptor after its connection closed would land in another
// client's stream, whose check of every byte against its own tag would
// catch it; a write into freed buffers would panic or trip the race
// detector. Every write after Close must fail with ErrClosed.
func TestCloseRacesWrites(t *testing.T) {
	const workers, iterations, writers, writes = 6, 50, 4, 100
	for _, e := range engines {
		t.Run(e.name, func(t *testing.T) {
			checkLeaks(t)
			var byTag [256]chan *Conn
			for i := range byTag {
				byTag[i] = make(chan *Conn, 1)
			}
			type state struct{ tagged bool }
			h := &testHandler{tb: t}
			h.open = func(c *Conn) { c.SetContext(&state{}) }
			h.data = func(c *Conn, in []byte) int {
				if s := c.Context().(*state); !s.tagged {
					s.tagged = true
					byTag[in[0]] <- c
				}
				return len(in)
			}
			p := e.start(t, h, Options{MaxBuffered: 64 << 10})
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for it := 0; it < iterations; it++ {
						if err := raceOne(e, p.Addr().String(), byte(1+w*40+it%40), it, writers, writes, &byTag); err != nil {
							t.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
		})
	}
}

func raceOne(e engineCase, addr string, tag byte, it, writers, writes int, byTag *[256]chan *Conn) error {
	var c net.Conn
	var err error
	if strings.HasSuffix(e.name, "-tls") {
		c, err = tlsDial(addr)
	} else {
		c, err = net.DialTimeout("tcp", addr, waitLimit)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	if _, err := c.Write([]byte{tag}); err != nil {
		return err
	}
	var sc *Conn
	select {
	case sc = <-byTag[tag]:
	case <-time.After(waitLimit):
		return fmt.Errorf("tag %d: no server connection", tag)
	}
	payload := make([]byte, 700)
	for i := range payload {
		payload[i] = tag
	}
	errs := make(chan error, writers+2)
	var wg sync.WaitGroup
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < writes; i++ {
				err := sc.Write(payload[:1+(i*37+w*11)%len(payload)], nil, i%5 == 0)
				if errors.Is(err, ErrClosed) {
					return
				}
				if err != nil && !errors.Is(err, ErrBackpressure) {
					errs <- fmt.Errorf("write: %v", err)
					return
				}
				sc.Flush()
			}
		}()
	}
	// Close from the server side (two ways) or from the client.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; i < it%13; i++ {
			time.Sleep(time.Duration(i) * 10 * time.Microsecond)
		}
		switch it % 3 {
		case 0:
			sc.Close(nil)
			if err := sc.Write([]byte{tag}, nil, true); !errors.Is(err, ErrClosed) {
				errs <- fmt.Errorf("write after Close: %v", err)
			}
		case 1:
			sc.CloseAfterFlush(waitLimit)
			if err := sc.Write([]byte{tag}, nil, true); !errors.Is(err, ErrClosed) {
				errs <- fmt.Errorf("write after CloseAfterFlush: %v", err)
			}
		case 2:
			c.Close()
		}
	}()
	got, err := readToEOF(c)
	if it%3 == 0 && errors.Is(err, io.ErrUnexpectedEOF) {
		err = nil // TLS: Close dropped the rest of a record the socket had taken part of
	}
	if err != nil && it%3 != 2 {
		errs <- fmt.Errorf("read: %v", err)
	}
	for i, b := range got {
		if b != tag {
			errs <- fmt.Errorf("connection %d received byte %d at %d: another connection's write", tag, b, i)
			break
		}
	}
	c.Close()
	wg.Wait()
	close(errs)
	return <-errs
}
