package consumer

import (
	"errors"
	"io"
	"net"
	"os"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// reader is the inbound state of the current connection. Only the cycle
// goroutine touches it.
type reader struct {
	buf  []byte // fixed read buffer; buf[r:w] is unread
	r, w int
	opts frame.ParseOptions
	asm  frame.Assembler
	max  int64

	// msg holds the fragments of the message in progress, or the payload of
	// a data frame too large for buf; nil when neither is in progress.
	msg *buffer
	// stream > 0 while the payload of a large data frame is read straight
	// into msg: the bytes still to come.
	stream int64
	// begun is set once the frame at r, which fits buf but has not all
	// arrived, went through asm.Begin; fed is how many of its payload bytes
	// asm.Payload has checked (text is validated as it arrives).
	begun bool
	fed   int

	dec *compress.Decompressor
	v2  bool // binary messages carry a request envelope

	// Heartbeat.
	headerHB  time.Duration // announced in the upgrade response
	textHB    time.Duration // announced by PROVIDER_HEARTBEAT|ms; 0 if not
	firstData bool          // no data message seen yet on this connection
	late      bool          // the last Read began after the cutoff deadline
	deadline  time.Time     // the heartbeat deadline currently armed; zero if none
	grace     bool          // one extra read allowed after a late deadline

	// Close handshake.
	gotClose  bool
	recvCode  frame.CloseCode
	recvWhy   string
	failed    bool // this side failed the connection (protocol violation)
	failCode  frame.CloseCode
	failWhy   string
	lostCause error
}

func (rd *reader) reset(cfg *config, s *session) {
	if cap(rd.buf) != cfg.ReadBufferSize {
		rd.buf = make([]byte, cfg.ReadBufferSize)
	}
	rd.buf = rd.buf[:cap(rd.buf)]
	rd.r, rd.w = 0, 0
	rd.max = int64(cfg.MaxPayloadLength)
	wire := int64(cfg.MaxPayloadLength)
	if s.deflate {
		// A compressed message may be larger on the wire than inflated
		// (deflate's worst case for incompressible data, zlib's
		// deflateBound): MaxPayloadLength holds the inflated size, checked while
		// inflating, and deliver checks an uncompressed message.
		wire += wire/8 + wire/64 + 64
	}
	rd.opts = frame.ParseOptions{Role: frame.RoleClient, AllowRSV1: s.deflate, MaxPayload: wire}
	rd.asm.Reset()
	rd.asm.SetMaxPayload(wire)
	rd.begun, rd.fed = false, 0
	rd.release()
	rd.dec = s.dec
	rd.v2 = s.v2
	rd.headerHB = s.interval
	rd.textHB = 0
	rd.firstData = true
	rd.deadline = time.Time{}
	if s.interval > 0 {
		rd.deadline = time.Now().Add(2 * s.interval)
	}
	rd.grace = false
	rd.gotClose, rd.recvCode, rd.recvWhy = false, 0, ""
	rd.failed, rd.failCode, rd.failWhy = false, 0, ""
	rd.lostCause = nil
}

// release gives the pooled message buffer back.
func (rd *reader) release() {
	putBuffer(rd.msg)
	rd.msg = nil
	rd.stream = 0
	rd.dec = nil
}

// cutoff returns the heartbeat cutoff in force, or 0.
func (rd *reader) cutoff() time.Duration {
	if rd.textHB > 0 {
		return 2 * rd.textHB
	}
	return 2 * rd.headerHB
}

// errStop ends the frame loop once a close frame has been handled.
var errStop = errors.New("stop")

// readLoop reads and handles frames until the connection ends, and returns
// the code and reason of the disconnect event.
func (c *Consumer) readLoop(nc net.Conn) (frame.CloseCode, string) {
	rd := &c.rd
	err := c.frames(nc)
	if err != errStop {
		var ce *frame.CloseError
		if errors.As(err, &ce) {
			c.fail(ce)
		} else if err != nil {
			rd.lostCause = err
		}
	}
	// From here on the connection is known lost or closing: sends fail at
	// once and Connected reports false, while the close handshake finishes
	// and the handlers catch up.
	c.wmu.Lock()
	c.dead = true
	werr := c.werr
	c.wmu.Unlock()
	c.connected.Store(false)
	if werr != nil && (rd.lostCause == nil || errors.Is(rd.lostCause, net.ErrClosed)) {
		// A send failed and closed the connection under the reader: the
		// write error is the cause, not the closed socket.
		rd.lostCause = werr
	}
	if rd.gotClose || rd.failed || c.closing() {
		c.drain(nc)
	}
	switch {
	case rd.gotClose:
		return rd.recvCode, rd.recvWhy
	case rd.failed:
		return rd.failCode, rd.failWhy
	}
	c.wmu.Lock()
	code, why := c.sentCode, c.sentWhy
	c.wmu.Unlock()
	if code != 0 {
		return code, why // our close handshake timed out or TCP ended first
	}
	if c.isClosed.Load() {
		return frame.CloseAbnormal, "destroyed"
	}
	if rd.lostCause != nil {
		if errors.Is(rd.lostCause, ErrHeartbeatCutoff) {
			c.reportError(rd.lostCause)
			return frame.CloseAbnormal, rd.lostCause.Error()
		}
		c.debug("network-cluster consumer: connection lost", "err", rd.lostCause)
		return frame.CloseAbnormal, rd.lostCause.Error()
	}
	return frame.CloseAbnormal, ""
}

func (c *Consumer) closing() bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.closeSent
}

// fail is RFC 6455's "Fail the WebSocket Connection": send a close frame
// with the code and drop the connection after a bounded wait.
func (c *Consumer) fail(ce *frame.CloseError) {
	rd := &c.rd
	rd.failed, rd.failCode, rd.failWhy = true, ce.Code, ce.Reason
	c.reportError(ce)
	c.disp.wait(c.cfg.CloseTimeout) // as for a close frame received
	c.sendClose(ce.Code, ce.Reason)
}

// drain discards input until the Provider closes TCP or the close deadline
// passes (set when the close frame went out).
func (c *Consumer) drain(nc net.Conn) {
	if !c.closing() {
		// We received a close but could not answer it (the connection is
		// already unusable): nothing to wait for.
		return
	}
	rd := &c.rd
	for i := 0; i < 1<<20; i++ { // bounded by the deadline; the count is a backstop
		if _, err := nc.Read(rd.buf); err != nil {
			return
		}
	}
}

// frames is the frame loop; it returns errStop after a close frame, a
// *frame.CloseError for a protocol violation, or the read error.
func (c *Consumer) frames(nc net.Conn) error {
	rd := &c.rd
	for {
		if rd.stream > 0 {
			if err := c.streamPayload(nc); err != nil {
				return err
			}
			continue
		}
		want := frame.MaxHeaderSize // bytes the next step needs from rd.r
		if rd.w > rd.r {
			h, n, need, err := frame.ParseHeader(rd.buf[rd.r:rd.w], rd.opts)
			if err != nil {
				return err
			}
			if need == 0 {
				total := int64(n) + h.Length
				if total <= int64(rd.w-rd.r) {
					p := rd.buf[rd.r+n : rd.r+int(total)]
					rd.r += int(total)
					if err := c.handleFrame(h, p); err != nil {
						return err
					}
					continue
				}
				if total > int64(len(rd.buf)) {
					// A data frame larger than the read buffer (control
					// frames always fit): read its payload into msg.
					if err := rd.asm.Begin(h); err != nil {
						return err
					}
					rd.r += n
					rd.msg = grow(rd.msg, int(h.Length))
					rd.stream = h.Length
					continue
				}
				// The frame fits the buffer but has not all arrived:
				// check what has (a text frame fails at its first
				// invalid byte, not at its end).
				if !rd.begun {
					if err := rd.asm.Begin(h); err != nil {
						return err
					}
					rd.begun, rd.fed = true, 0
				}
				if got := rd.w - rd.r - n; got > rd.fed {
					if err := rd.asm.Payload(rd.buf[rd.r+n+rd.fed : rd.r+n+got]); err != nil {
						return err
					}
					rd.fed = got
				}
				want = int(total)
			} else {
				want = rd.w - rd.r + need
			}
		}
		if rd.r == rd.w {
			rd.r, rd.w = 0, 0
		} else if rd.r+want > len(rd.buf) {
			rd.w = copy(rd.buf, rd.buf[rd.r:rd.w])
			rd.r = 0
		}
		n, err := c.read(nc, rd.buf[rd.w:])
		rd.w += n
		if err != nil && n == 0 {
			return err
		}
	}
}

// read reads from nc, turning a heartbeat deadline into ErrHeartbeatCutoff.
// A deadline that expired while a handler ran (so the connection was not
// being read) gets one more short read, since pings may be waiting in the
// socket buffer.
func (c *Consumer) read(nc net.Conn, b []byte) (int, error) {
	rd := &c.rd
	for {
		var start time.Time
		if !rd.deadline.IsZero() {
			start = time.Now()
		}
		n, err := nc.Read(b)
		if n > 0 || err == nil {
			rd.grace = false
			return n, nil
		}
		if !errors.Is(err, os.ErrDeadlineExceeded) || rd.deadline.IsZero() || c.closing() {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return 0, err
		}
		if !rd.grace && !start.Before(rd.deadline) {
			rd.grace = true
			d := min(rd.cutoff(), 100*time.Millisecond)
			rd.deadline = time.Now().Add(d)
			c.armCutoff(d)
			continue
		}
		return 0, ErrHeartbeatCutoff
	}
}

// heartbeat records a ping and re-arms the cutoff.
func (c *Consumer) heartbeat() time.Duration {
	rd := &c.rd
	now := time.Now()
	c.lastHB.Store(now.UnixNano())
	d := rd.cutoff()
	if d > 0 {
		rd.deadline = now.Add(d)
	}
	return d
}

// streamPayload reads part of a large data frame's payload into msg.
func (c *Consumer) streamPayload(nc net.Conn) error {
	rd := &c.rd
	m := rd.msg
	start := len(m.b)
	if rd.r < rd.w {
		k := int(min(rd.stream, int64(rd.w-rd.r)))
		m.b = append(m.b, rd.buf[rd.r:rd.r+k]...)
		rd.r += k
	} else {
		n, err := c.read(nc, m.b[start:start+int(rd.stream)])
		if err != nil {
			return err
		}
		m.b = m.b[:start+n]
	}
	rd.stream -= int64(len(m.b) - start)
	if err := rd.asm.Payload(m.b[start:]); err != nil {
		return err
	}
	if rd.stream > 0 {
		return nil
	}
	done, op, compressed, err := rd.asm.End()
	if err != nil || !done {
		return err
	}
	return c.deliver(op, compressed, m.b)
}

// handleFrame handles one complete frame whose payload p lies in the read
// buffer.
func (c *Consumer) handleFrame(h frame.Header, p []byte) error {
	rd := &c.rd
	fed := 0
	if rd.begun {
		// Begun while the frame was arriving; its first fed bytes are
		// checked.
		fed = rd.fed
		rd.begun, rd.fed = false, 0
	} else if err := rd.asm.Begin(h); err != nil {
		return err
	}
	switch h.Op {
	case frame.OpPing:
		c.pong(frame.OpPong, p, c.heartbeat())
		return nil
	case frame.OpPong:
		return nil
	case frame.OpClose:
		code, reason, err := frame.ParseClose(p)
		if err != nil {
			return err
		}
		rd.gotClose, rd.recvCode, rd.recvWhy = true, code, string(reason)
		// RFC 6455 §5.5.1: answer with a close frame, echoing the code,
		// once the messages read before it have been handled (for at
		// most CloseTimeout), so that their replies go out first.
		c.disp.wait(c.cfg.CloseTimeout)
		c.sendClose(code, string(reason))
		return errStop
	}
	if err := rd.asm.Payload(p[fed:]); err != nil {
		return err
	}
	done, op, compressed, err := rd.asm.End()
	if err != nil {
		return err
	}
	if !done || (rd.msg != nil && len(rd.msg.b) > 0) {
		rd.msg = grow(rd.msg, len(p))
		rd.msg.b = append(rd.msg.b, p...)
		if !done {
			return nil
		}
		p = rd.msg.b
	}
	return c.deliver(op, compressed, p)
}

// deliver inflates a compressed message, swallows the text heartbeat, and
// queues the message for OnMessage on the dispatcher. It releases msg
// afterwards unless the queued message took it over.
func (c *Consumer) deliver(op frame.Opcode, compressed bool, data []byte) error {
	rd := &c.rd
	var out *buffer
	defer func() {
		putBuffer(out)
		if rd.msg != nil {
			putBuffer(rd.msg)
			rd.msg = nil
		}
	}()
	if !compressed && int64(len(data)) > rd.max {
		return &frame.CloseError{Code: frame.CloseTooBig, Reason: "message too big"}
	}
	if compressed {
		if rd.dec == nil {
			return &frame.CloseError{Code: frame.CloseProtocolError, Reason: "compressed message without permessage-deflate"}
		}
		out = getBuffer(min(max(4*len(data), 4<<10), int(rd.max)))
		res, err := rd.dec.Decompress(out.b[:0], data, int(rd.max))
		if res != nil {
			out.b = res
		}
		if err != nil {
			if errors.Is(err, compress.ErrTooBig) {
				return &frame.CloseError{Code: frame.CloseTooBig, Reason: "message too big"}
			}
			return &frame.CloseError{Code: frame.CloseInvalidPayload, Reason: "invalid compressed data"}
		}
		data = res
		if err := rd.asm.ValidateText(data); err != nil {
			return err
		}
		if err := rd.asm.EndText(); err != nil {
			return err
		}
	}
	first := rd.firstData
	rd.firstData = false
	if op == frame.OpText {
		if first && rd.headerHB == 0 {
			if d, ok := proto.ParseTextHeartbeat(data); ok {
				rd.textHB = d
				c.interval.Store(int64(d))
				c.armCutoff(c.heartbeat())
				return nil
			}
		}
		if rd.textHB > 0 && string(data) == proto.TextPing {
			c.pong(frame.OpText, textPong, c.heartbeat())
			return nil
		}
	}
	it := item{binary: op == frame.OpBinary}
	if op == frame.OpBinary && rd.v2 {
		var ok bool
		var err error
		if it, ok, err = c.onEnvelope(data); err != nil || !ok {
			return err
		}
	} else {
		c.stats.messagesIn.Add(1)
		if c.cfg.OnMessage == nil || c.destroyed.Load() {
			return nil
		}
	}
	// Hand the message to the dispatcher, which runs its handler off the
	// read loop. The item owns a buffer holding the payload: the inflated
	// one, the pooled one the message was assembled in, or a copy of the
	// bytes in the read buffer (which the reader reuses at once).
	it.size = int64(len(data))
	switch {
	case len(data) == 0:
	case out != nil:
		it.buf, out = out, nil
	case rd.msg != nil && len(rd.msg.b) == len(data) && &rd.msg.b[0] == &data[0]:
		it.buf, rd.msg = rd.msg, nil
	default:
		it.buf = c.disp.buffer(len(data))
		it.buf.b = append(it.buf.b, data...)
	}
	c.disp.enqueue(it, nil)
	return nil
}

// runMessage is the dispatcher's handler for a message item; the payload
// starts at it.off (after a v2 envelope header).
func (c *Consumer) runMessage(it *item, data []byte) {
	if f := c.cfg.OnMessage; f != nil {
		f(Message{Binary: it.binary, Data: data[it.off:]})
	}
}

var textPong = []byte(proto.TextPong)
