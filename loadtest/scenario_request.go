package main

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"sync/atomic"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

// The request protocol of network-cluster (subprotocol network-cluster.v2),
// as the harness client speaks it. The harness may import only the
// library's public packages, so the wire constants are repeated here: on a
// v2 connection every binary frame starts with a kind byte (0 plain
// message, 1 request, 2 reply, 3 error reply; flag 0x10 text payload, 0x20
// redelivered), requests and replies continue with the id as a uvarint.
const (
	scRequest = "request"

	protoV1 = "network-cluster.v1"
	protoV2 = "network-cluster.v2"

	kindMessage = 0
	kindRequest = 1
	kindReply   = 2
	kindError   = 3

	// reqTrigger starts, in `loadtest serve`, a loop of requests from the
	// server to the sender (direction p2c): each reply's payload is sent
	// back as the next request. It goes as a plain binary message.
	reqTrigger = "NCREQ:"
)

// Directions of the request scenario.
const (
	dirC2P = "c2p" // the client (Consumer) requests, the server replies
	dirP2C = "p2c" // the server (Provider) requests, the client replies
)

// request: N connections negotiate the request protocol; each keeps K
// requests in flight, closed loop. c2p: the client sends requests and the
// server (`loadtest serve`: OnRequest replies with the payload) answers.
// p2c: the client starts K request loops on the server (reqTrigger); the
// server's Connection.Request goes out, the client replies with the payload
// stamped anew, and the server sends the reply back as its next request, so
// the client measures one full round trip through the server's request
// path per request it receives.
func (e *env) request(ctx context.Context, sc scenarioConfig) (r *result, err error) {
	r = e.newResult(sc, sc.label())
	if sc.Size < len(reqTrigger)+8 {
		return r, fmt.Errorf("%w: request needs --size of at least %d", ErrUsage, len(reqTrigger)+8)
	}
	o := *e.Opts
	o.Protocols = []string{protoV1, protoV2}
	re := *e
	re.Opts = &o
	p2c := sc.Direction == dirP2C

	var (
		sent, recv, bad, errs atomic.Uint64
		notV2                 atomic.Int64
		recording, stop       atomic.Bool
		h                     = &histogram{}
		start, quit           = make(chan struct{}), make(chan struct{})
	)
	serve := func(i int, c *wsConn) {
		if c.Protocol != protoV2 {
			notV2.Add(1)
			return
		}
		out := make([]byte, 0, 1+binary.MaxVarintLen64+sc.Size)
		payload := make([]byte, sc.Size)
		copy(payload, reqTrigger)
		var id uint64
		request := func() error { // c2p
			sent.Add(1)
			id++
			out = binary.AppendUvarint(append(out[:0], kindRequest), id)
			stampBinary(payload[len(reqTrigger):], e.now())
			out = append(out, payload...)
			return c.queue(frame.OpBinary, out)
		}
		select {
		case <-start:
		case <-quit:
			return
		}
		for range sc.Inflight {
			var err error
			if p2c {
				stampBinary(payload[len(reqTrigger):], e.now())
				out = append(append(out[:0], kindMessage), payload...)
				err = c.queue(frame.OpBinary, out)
			} else {
				err = request()
			}
			if err != nil {
				return
			}
		}
		for {
			op, p, err := c.next()
			if err != nil {
				return
			}
			if op != frame.OpBinary || len(p) == 0 {
				continue
			}
			kind := p[0] & 0x0f
			rid, n := binary.Uvarint(p[1:])
			if n <= 0 || (p2c && kind != kindRequest) || (!p2c && kind != kindReply) {
				if kind == kindError {
					errs.Add(1)
				} else if kind != kindMessage {
					bad.Add(1)
				}
				continue
			}
			body := p[1+n:]
			if len(body) != sc.Size {
				bad.Add(1)
				continue
			}
			ts, ok := unstampBinary(body[len(reqTrigger):])
			if !ok {
				bad.Add(1)
				continue
			}
			if recording.Load() {
				h.Record(time.Duration(e.now() - ts))
			}
			recv.Add(1)
			if stop.Load() {
				if p2c {
					// Answer with an error so that the server's loop ends.
					out = binary.AppendUvarint(append(out[:0], kindError), rid)
					out = append(binary.AppendUvarint(out, 4000), "stop"...)
					_ = c.queue(frame.OpBinary, out)
				}
				continue
			}
			if p2c {
				sent.Add(1)
				out = binary.AppendUvarint(append(out[:0], kindReply), rid)
				stampBinary(body[len(reqTrigger):], e.now())
				out = append(out, body...)
				err = c.queue(frame.OpBinary, out)
			} else {
				err = request()
			}
			if err != nil {
				return
			}
		}
	}
	f := re.newFleet(sc.Scenario)
	defer closeFleet(f, &err)
	defer func() {
		stop.Store(true)
		select {
		case <-quit:
		default:
			close(quit)
		}
	}()
	if err := re.openStrict(ctx, f, sc, nil, serve); err != nil {
		return r, err
	}
	if n := notV2.Load(); n > 0 {
		return r, fmt.Errorf("%w: %d connections did not negotiate %s (the server does not speak requests)", ErrScenario, n, protoV2)
	}
	close(start)
	what := fmt.Sprintf("request %s k=%d", sc.Direction, sc.Inflight)
	e.watch(ctx, sc.Warmup, what+" (warm-up)", "req/s", recv.Load)

	p1, ok1 := e.sample()
	c1, _ := readProc(os.Getpid())
	n1, t1 := recv.Load(), time.Now()
	recording.Store(true)
	e.watch(ctx, sc.Duration, what, "req/s", recv.Load)
	recording.Store(false)
	n2, t2 := recv.Load(), time.Now()
	p2, ok2 := e.sample()
	c2, _ := readProc(os.Getpid())
	if err := ctx.Err(); err != nil {
		return r, err
	}
	stop.Store(true)
	if !p2c {
		for i := 0; i < 100 && recv.Load()+bad.Load()+errs.Load() < sent.Load(); i++ {
			time.Sleep(20 * time.Millisecond)
		}
		if lost := int64(sent.Load()) - int64(recv.Load()+bad.Load()+errs.Load()); lost > 0 {
			r.add("lost", "requests unanswered 2 s after the end", "", float64(lost), lower)
			r.note("%d of %d requests sent were not answered", lost, sent.Load())
		}
	}
	msgs := n2 - n1
	if msgs == 0 {
		return r, fmt.Errorf("%w: no reply received in %v", ErrScenario, sc.Duration)
	}
	r.addRate("requests/s", "server CPU/request", msgs, t2.Sub(t1), p1, p2, ok1 && ok2)
	if c2.CPU > 0 {
		r.add("client_cpu_pct", "harness CPU use", "%", cpuUse(c1, c2), "")
	}
	r.setLatency(h, "round trip")
	if b := bad.Load(); b > 0 {
		r.add("bad_replies", "malformed replies", "", float64(b), lower)
	}
	if n := errs.Load(); n > 0 {
		r.add("error_replies", "error replies", "", float64(n), lower)
	}
	return r, nil
}
