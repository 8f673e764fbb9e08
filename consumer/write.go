package consumer

import (
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"time"
	"unicode/utf8"
	"unsafe"

	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// maxWriteChunk is the largest buffer one frame is encoded into: a larger
// frame is masked and written in pieces of this size, so a send never holds
// more than this much extra memory.
const maxWriteChunk = 64 << 10

// smallWrite is the size of the buffer each Consumer keeps (from its first
// send on) for frames up to that size.
const smallWrite = 2 << 10

// Send sends msg as a text message. It returns nil once the whole frame has
// been handed to the kernel, [ErrNotConnected] or [ErrClosed] when there is
// no open connection (also once the connection is known lost or closing),
// [ErrInvalidUTF8] for a message that is not UTF-8, or the write error (the
// connection is then dropped and reconnected). msg is not retained.
//
// A nil error says only that the kernel took the bytes: it does not say that
// the Provider received them. If the connection is lost right after (the
// Provider crashes, the network drops), the message is lost with it, and
// Send cannot know. To know that the Provider has a message, send it with
// [Consumer.Request]: its reply is the acknowledgement, and with
// Options.Resend it survives a reconnect.
//
// Send is safe for concurrent use; concurrent messages never interleave. It
// allocates nothing in steady state.
func (c *Consumer) Send(msg string) error {
	return c.SendText(unsafe.Slice(unsafe.StringData(msg), len(msg))) // read only
}

// SendText sends p as a text message, like [Consumer.Send]. p is not
// modified and not retained after SendText returns.
func (c *Consumer) SendText(p []byte) error {
	if !utf8.Valid(p) {
		return ErrInvalidUTF8
	}
	return c.send(frame.OpText, p)
}

// SendBinary sends p as a binary message, like [Consumer.Send]. p is not
// modified and not retained after SendBinary returns.
func (c *Consumer) SendBinary(p []byte) error {
	return c.send(frame.OpBinary, p)
}

func (c *Consumer) send(op frame.Opcode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wc == nil || c.closeSent || c.dead {
		if c.isClosed.Load() {
			return ErrClosed
		}
		return ErrNotConnected
	}
	var env []byte
	if op == frame.OpBinary && c.v2.Load() {
		env = envPlain
	}
	if err := c.writeDataLocked(op, env, p); err != nil {
		return err
	}
	c.stats.messagesOut.Add(1)
	return nil
}

// envPlain is the envelope of a plain binary message on a v2 connection.
var envPlain = []byte{proto.KindMessage}

// writeDataLocked writes one data message whose payload is env (a v2
// envelope header, or empty) followed by p, compressed when negotiated and
// above the threshold. c.wmu must be held and the connection open.
func (c *Consumer) writeDataLocked(op frame.Opcode, env, p []byte) error {
	if len(env) > 0 {
		j := getBuffer(len(env) + len(p))
		j.b = append(append(j.b, env...), p...)
		defer putBuffer(j)
		p = j.b
	}
	if c.comp != nil && len(p) >= c.cfg.CompressionThreshold {
		b := getBuffer(len(p) + 64)
		out, err := c.comp.Compress(b.b[:0], p)
		if err != nil {
			putBuffer(b)
			return fmt.Errorf("consumer: compress: %w", err)
		}
		b.b = out
		err = c.writeFrameLocked(op, true, out, c.cfg.WriteTimeout)
		putBuffer(b)
		return err
	}
	return c.writeFrameLocked(op, false, p, c.cfg.WriteTimeout)
}

// writeFrameLocked masks and writes one final frame. c.wmu must be held and
// c.wc set. On a write error the connection is closed (the reader then sees
// the loss) and the error is returned.
func (c *Consumer) writeFrameLocked(op frame.Opcode, rsv1 bool, payload []byte, timeout time.Duration) error {
	var key [4]byte
	binary.LittleEndian.PutUint32(key[:], uint32(c.rng.Uint64()))
	h := frame.Header{Fin: true, Op: op, Masked: true, Mask: key, Length: int64(len(payload))}
	if rsv1 {
		h.Rsv = 4
	}
	size := frame.HeaderSize(h.Length, true) + len(payload)
	var b *buffer
	var buf []byte
	if size <= smallWrite {
		// Small frames, the common case, use the Consumer's own buffer:
		// no pool round trip (which the race detector makes lossy).
		if c.wsmall == nil {
			c.wsmall = make([]byte, 0, smallWrite)
		}
		buf = frame.AppendHeader(c.wsmall[:0], h)
	} else {
		b = getBuffer(min(size, maxWriteChunk))
		buf = frame.AppendHeader(b.b[:0], h)
	}
	pos, off := 0, 0
	var err error
	for {
		k := min(len(payload)-off, cap(buf)-len(buf))
		start := len(buf)
		buf = append(buf, payload[off:off+k]...)
		pos = frame.Mask(buf[start:], key, pos)
		off += k
		if err = c.writeAllLocked(buf, timeout); err != nil || off == len(payload) {
			break
		}
		buf = buf[:0]
	}
	if b != nil {
		b.b = buf
		putBuffer(b)
	}
	if err != nil {
		// Part of a frame may have gone out: the stream is unusable.
		if !c.closeSent && c.werr == nil {
			c.werr = err
		}
		c.closeSent = true
		_ = c.wc.Close()
		return fmt.Errorf("consumer: send: %w", err)
	}
	return nil
}

// tlsPiece is the most bytes handed to a TLS connection per write deadline:
// one TLS record. crypto/tls cannot resume a write that timed out, so the
// no-progress timeout is applied per record instead.
const tlsPiece = 16 << 10

// writeAllLocked writes b with timeout as a no-progress timeout: the
// deadline is re-armed for each write, and a write that timed out after
// the kernel took some bytes goes on with the rest. So a send fails only
// when no byte moved for timeout, however long the whole frame takes.
// c.wmu must be held.
func (c *Consumer) writeAllLocked(b []byte, timeout time.Duration) error {
	_, isTLS := c.wc.(*tls.Conn)
	for len(b) > 0 {
		p := b
		if isTLS && len(p) > tlsPiece {
			p = p[:tlsPiece]
		}
		if timeout > 0 {
			_ = c.wc.SetWriteDeadline(time.Now().Add(timeout))
		}
		n, err := c.wc.Write(p)
		b = b[n:]
		if err != nil {
			if n > 0 && !isTLS && errors.Is(err, os.ErrDeadlineExceeded) {
				continue // progress within the timeout: not stalled
			}
			return err
		}
	}
	return nil
}

// sendClose starts the close handshake with code and reason unless a close
// frame already went out, and bounds the wait for the Provider's answer with
// a read deadline. It reports whether it sent the frame.
func (c *Consumer) sendClose(code frame.CloseCode, reason string) bool {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.sendCloseLocked(code, reason)
}

func (c *Consumer) sendCloseLocked(code frame.CloseCode, reason string) bool {
	if c.wc == nil || c.closeSent {
		return false
	}
	var arr [frame.MaxControlPayload]byte
	payload := arr[:0]
	if code != frame.CloseNoStatus {
		payload = frame.AppendClose(payload, code, reason)
	}
	timeout := min(c.cfg.WriteTimeout, c.cfg.CloseTimeout)
	_ = c.writeFrameLocked(frame.OpClose, false, payload, timeout)
	c.closeSent = true
	c.sentCode, c.sentWhy = code, reason
	_ = c.wc.SetReadDeadline(time.Now().Add(c.cfg.CloseTimeout))
	return true
}

// sendControl writes a pong (or the text PONG) and, for a heartbeat, re-arms
// the cutoff. It is called by the reader.
func (c *Consumer) pong(op frame.Opcode, payload []byte, rearm time.Duration) {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.wc == nil || c.closeSent {
		return
	}
	if rearm > 0 {
		_ = c.wc.SetReadDeadline(time.Now().Add(rearm))
	}
	_ = c.writeFrameLocked(op, false, payload, c.cfg.WriteTimeout)
}

// armCutoff sets the read deadline to now + d unless the close handshake has
// started (its own deadline then stands).
func (c *Consumer) armCutoff(d time.Duration) {
	c.wmu.Lock()
	if c.wc != nil && !c.closeSent {
		_ = c.wc.SetReadDeadline(time.Now().Add(d))
	}
	c.wmu.Unlock()
}
