package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
)

// The harness client: a lean RFC 6455 client on package frame (and
// package compress for permessage-deflate), one goroutine per connection,
// used unchanged against every server so that the figures compare servers,
// not clients. Against the raw TCP mirror (rawtcp) it skips the handshake
// and reads its own masked frames back.
//
// Why not package consumer: the harness also needs the raw mode, a chosen
// source address per connection (to spread over 127.0.0.x) and per-byte
// wire counters, and it must not add reconnects, timers or jitter to what
// it measures. The client costs one goroutine, a 4 KiB read buffer and a
// ChaCha8 state per connection.

// Text heartbeat of the Node network-cluster 1.0.4 wire protocol, which
// `loadtest serve --text-heartbeat` speaks (the harness may import only the
// library's public packages, so the strings are repeated here).
const (
	textPing            = "PING"
	textPong            = "PONG"
	textHeartbeatPrefix = "PROVIDER_HEARTBEAT|"
)

// clientOptions is shared, read-only, by every connection of a run.
type clientOptions struct {
	// Addr is the host:port to dial.
	Addr string
	// Host is the Host header; RequestURI the path and query of the upgrade.
	Host, RequestURI string
	// TLS, when set, makes the connection wss.
	TLS *tls.Config
	// Raw: the server is a raw TCP mirror; no handshake, frames come back
	// masked.
	Raw bool
	// Preset is the permessage-deflate preset offered (Disabled: none).
	Preset compress.Preset
	// CompressThreshold: smaller outbound messages are sent uncompressed.
	CompressThreshold int
	// DialTimeout bounds TCP connect, TLS and the upgrade.
	DialTimeout time.Duration
	// MaxPayload bounds an inbound message.
	MaxPayload int64
	// ReadBuffer is the fixed read buffer of a connection.
	ReadBuffer int
	// Protocols are offered as subprotocols (request scenario: the
	// network-cluster request protocol).
	Protocols []string
}

// wsConn is one client connection. The read side (next) belongs to one
// goroutine; the write methods are safe for concurrent use with it and
// with each other.
type wsConn struct {
	nc  net.Conn
	opt *clientOptions

	// Read side, owned by the reading goroutine.
	rbuf     []byte
	r, w     int
	popt     frame.ParseOptions
	asm      frame.Assembler
	msg      []byte // a fragmented message being assembled
	big      []byte // a frame larger than rbuf
	inflated []byte
	dec      *compress.Decompressor

	// Write side, guarded by wmu.
	wmu       sync.Mutex
	wbuf      []byte // frames queued and not yet written
	zbuf      []byte
	rng       *mrand.ChaCha8
	comp      *compress.Compressor
	closeSent bool

	// Extensions is the server's Sec-WebSocket-Extensions answer ("" if
	// none). Set once by the handshake.
	Extensions string
	// Protocol is the subprotocol the server selected ("" if none).
	Protocol string

	bytesIn, bytesOut atomic.Int64
	closed            atomic.Bool
}

// errConnClosed is returned by writes after close.
var errConnClosed = errors.New("loadtest: connection closed")

// dialConn opens one connection from source address src (nil: the
// kernel's choice) and runs the upgrade handshake. rcvbuf > 0 sets the
// socket's receive buffer (SO_RCVBUF) before connect, which also fixes the
// TCP window it advertises.
func dialConn(ctx context.Context, o *clientOptions, src net.IP, rcvbuf int) (*wsConn, error) {
	d := net.Dialer{Timeout: o.DialTimeout}
	if src != nil {
		d.LocalAddr = &net.TCPAddr{IP: src}
	}
	if src != nil || rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			return dialControl(rc, src != nil, rcvbuf)
		}
	}
	nc, err := d.DialContext(ctx, "tcp", o.Addr)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(o.DialTimeout)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = nc.SetDeadline(deadline)
	if o.TLS != nil {
		tc := tls.Client(nc, o.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%w: TLS: %v", ErrHandshake, err)
		}
		nc = tc
	}
	c := newConn(nc, o)
	if !o.Raw {
		if err := c.handshake(); err != nil {
			nc.Close()
			return nil, err
		}
	}
	_ = nc.SetDeadline(time.Time{})
	return c, nil
}

func newConn(nc net.Conn, o *clientOptions) *wsConn {
	var seed [32]byte
	_, _ = rand.Read(seed[:])
	c := &wsConn{
		nc:   nc,
		opt:  o,
		rbuf: make([]byte, o.ReadBuffer),
		rng:  mrand.NewChaCha8(seed),
	}
	c.popt = frame.ParseOptions{Role: frame.RoleClient, MaxPayload: o.MaxPayload}
	if o.Raw {
		// The mirror returns our own masked frames.
		c.popt.Role = frame.RoleServer
	}
	c.asm.SetMaxPayload(o.MaxPayload)
	return c
}

// handshake sends the upgrade request and reads the response; bytes after
// the response head stay buffered as the start of the frame stream.
func (c *wsConn) handshake() error {
	var kb [16]byte
	binary.LittleEndian.PutUint64(kb[:], c.rng.Uint64())
	binary.LittleEndian.PutUint64(kb[8:], c.rng.Uint64())
	key := base64.StdEncoding.EncodeToString(kb[:])
	var offer compress.Params
	offered := c.opt.Preset.Enabled()
	ext := ""
	if offered {
		offer = c.opt.Preset.Offer()
		ext = offer.String()
	}
	c.wbuf = appendRequest(c.wbuf[:0], c.opt.Host, c.opt.RequestURI, key, ext, c.opt.Protocols...)
	err := c.writeRaw(c.wbuf)
	c.wbuf = c.wbuf[:0]
	if err != nil {
		return fmt.Errorf("%w: writing the request: %v", ErrHandshake, err)
	}
	for {
		resp, complete, err := parseResponse(c.rbuf[:c.w])
		if err != nil {
			return err
		}
		if complete {
			exts, err := checkUpgrade(&resp, key, offered, c.opt.Protocols...)
			if err != nil {
				return err
			}
			c.Protocol = resp.get("sec-websocket-protocol")
			if err := c.negotiate(offer, exts); err != nil {
				return err
			}
			c.r = resp.n
			return nil
		}
		if c.w == len(c.rbuf) {
			if len(c.rbuf) >= maxResponseHead {
				return fmt.Errorf("%w: response head over %d bytes", ErrHandshake, maxResponseHead)
			}
			nb := make([]byte, maxResponseHead)
			copy(nb, c.rbuf[:c.w])
			c.rbuf = nb
		}
		n, err := c.nc.Read(c.rbuf[c.w:])
		c.w += n
		c.bytesIn.Add(int64(n))
		if err != nil {
			return fmt.Errorf("%w: reading the response: %v", ErrHandshake, err)
		}
	}
}

// negotiate sets up permessage-deflate from the server's answer.
func (c *wsConn) negotiate(offer compress.Params, exts []string) error {
	if len(exts) == 0 {
		return nil
	}
	resp, ok, err := compress.ParseResponse(exts)
	if err == nil && ok {
		err = c.opt.Preset.CheckResponse(offer, resp)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrHandshake, err)
	}
	if !ok {
		return nil
	}
	cfg := compress.NewConfig(c.opt.Preset, resp, false)
	c.comp = compress.NewCompressor(cfg)
	c.dec = compress.NewDecompressor(cfg)
	c.popt.AllowRSV1 = true
	c.Extensions = strings.Join(exts, ", ")
	return nil
}

// Deflate reports whether permessage-deflate was negotiated.
func (c *wsConn) Deflate() bool { return c.dec != nil }

// fill reads until at least n bytes are buffered after c.r (n ≤ len(rbuf)).
// Frames queued by queue go out first: the reader never blocks on data
// the server is waiting for.
func (c *wsConn) fill(n int) error {
	if err := c.flush(); err != nil {
		return err
	}
	if c.r+n > len(c.rbuf) {
		c.w = copy(c.rbuf, c.rbuf[c.r:c.w])
		c.r = 0
	}
	for c.w-c.r < n {
		m, err := c.nc.Read(c.rbuf[c.w:])
		c.w += m
		c.bytesIn.Add(int64(m))
		if err != nil && c.w-c.r < n {
			return err
		}
	}
	return nil
}

// next returns the next data message. Control frames and the text
// heartbeat are answered on the way. The payload is valid until the next
// call. A close frame from the server is answered and returned as a
// *frame.CloseError; a protocol violation closes with the right code and
// returns an error wrapping ErrProtocol; I/O errors are returned as is.
func (c *wsConn) next() (op frame.Opcode, payload []byte, err error) {
	if !c.asm.InMessage() {
		c.msg = c.msg[:0]
	}
	for {
		h, n, need, err := frame.ParseHeader(c.rbuf[c.r:c.w], c.popt)
		if err != nil {
			return 0, nil, c.fail(err)
		}
		if need > 0 {
			if err := c.fill(c.w - c.r + need); err != nil {
				return 0, nil, err
			}
			continue
		}
		if err := c.asm.Begin(h); err != nil {
			return 0, nil, c.fail(err)
		}
		c.r += n
		size := int(h.Length)
		switch {
		case c.w-c.r >= size:
		case size <= len(c.rbuf):
			if err := c.fill(size); err != nil {
				return 0, nil, err
			}
		default:
			if cap(c.big) < size {
				c.big = make([]byte, size)
			}
			c.big = c.big[:size]
			k := copy(c.big, c.rbuf[c.r:c.w])
			c.r, c.w = 0, 0
			if err := c.flush(); err != nil {
				return 0, nil, err
			}
			m, err := io.ReadFull(c.nc, c.big[k:])
			c.bytesIn.Add(int64(m))
			if err != nil {
				return 0, nil, err
			}
		}
		var p []byte
		if size <= len(c.rbuf) {
			p = c.rbuf[c.r : c.r+size]
			c.r += size
		} else {
			p = c.big
		}
		if h.Masked {
			frame.Mask(p, h.Mask, 0)
		}
		if h.Op.IsControl() {
			if err := c.control(h.Op, p); err != nil {
				return 0, nil, err
			}
			continue
		}
		if err := c.asm.Payload(p); err != nil {
			return 0, nil, c.fail(err)
		}
		done, mop, compressed, err := c.asm.End()
		if err != nil {
			return 0, nil, c.fail(err)
		}
		if !done || len(c.msg) > 0 {
			c.msg = append(c.msg, p...)
			if !done {
				continue
			}
			p = c.msg
		}
		if compressed {
			if c.dec == nil {
				return 0, nil, c.fail(&frame.CloseError{Code: frame.CloseProtocolError, Reason: "RSV1 without permessage-deflate"})
			}
			c.inflated, err = c.dec.Decompress(c.inflated[:0], p, int(c.opt.MaxPayload))
			if err != nil {
				code := frame.CloseInvalidPayload
				if errors.Is(err, compress.ErrTooBig) {
					code = frame.CloseTooBig
				}
				return 0, nil, c.fail(&frame.CloseError{Code: code, Reason: "inflate"})
			}
			p = c.inflated
			if err := c.asm.ValidateText(p); err != nil {
				return 0, nil, c.fail(err)
			}
			if err := c.asm.EndText(); err != nil {
				return 0, nil, c.fail(err)
			}
		}
		if mop == frame.OpText && !c.opt.Raw {
			if string(p) == textPing {
				if err := c.write(frame.OpText, []byte(textPong)); err != nil {
					return 0, nil, err
				}
				continue
			}
			if len(p) > len(textHeartbeatPrefix) && string(p[:len(textHeartbeatPrefix)]) == textHeartbeatPrefix {
				continue
			}
		}
		return mop, p, nil
	}
}

// control answers a control frame.
func (c *wsConn) control(op frame.Opcode, p []byte) error {
	switch op {
	case frame.OpPing:
		return c.writeControl(frame.OpPong, p)
	case frame.OpClose:
		code, reason, err := frame.ParseClose(p)
		if err != nil {
			return c.fail(err)
		}
		ce := &frame.CloseError{Code: code, Reason: string(reason)}
		// Echo the status code (RFC 6455 §5.5.1), then drop the TCP
		// connection: the server closes first.
		var body []byte
		if code != frame.CloseNoStatus {
			body = frame.AppendClose(nil, code, "")
		}
		_ = c.writeControl(frame.OpClose, body)
		c.Close()
		return ce
	}
	return nil // pong: nothing to do
}

// fail closes the connection with the close code of a protocol error.
func (c *wsConn) fail(err error) error {
	code := frame.CloseStatus(err)
	if code == 0 {
		code = frame.CloseProtocolError
	}
	_ = c.writeControl(frame.OpClose, frame.AppendClose(nil, code, ""))
	c.Close()
	return fmt.Errorf("%w: %w", ErrProtocol, err)
}

// write sends one data message, compressed when negotiated and at least
// CompressThreshold bytes long, after any queued ones. p is not retained.
// It does not allocate once the connection's buffers have grown to the
// message size.
func (c *wsConn) write(op frame.Opcode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if err := c.queueLocked(op, p); err != nil {
		return err
	}
	return c.flushLocked()
}

// queue encodes a data message for the next write, flush or blocking read
// (which flushes first), so that the replies to a batch of messages read at
// once go out in one write. p is not retained.
func (c *wsConn) queue(op frame.Opcode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.queueLocked(op, p)
}

// flush writes the queued frames.
func (c *wsConn) flush() error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	return c.flushLocked()
}

func (c *wsConn) flushLocked() error {
	if len(c.wbuf) == 0 {
		return nil
	}
	err := c.writeRaw(c.wbuf)
	c.wbuf = c.wbuf[:0]
	return err
}

func (c *wsConn) queueLocked(op frame.Opcode, p []byte) error {
	if c.closeSent {
		return errConnClosed
	}
	rsv1 := false
	if c.comp != nil && len(p) >= c.opt.CompressThreshold {
		var err error
		if c.zbuf, err = c.comp.Compress(c.zbuf[:0], p); err != nil {
			return err
		}
		p, rsv1 = c.zbuf, true
	}
	c.wbuf = frame.AppendMaskedFrame(c.wbuf, true, op, rsv1, p, c.maskKey())
	return nil
}

// writeControl sends a control frame; a close frame is the last frame.
func (c *wsConn) writeControl(op frame.Opcode, p []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeSent {
		return errConnClosed
	}
	if op == frame.OpClose {
		c.closeSent = true
		// A server that stopped reading must not hold us up.
		_ = c.nc.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	}
	c.wbuf = frame.AppendMaskedFrame(c.wbuf, true, op, false, p, c.maskKey())
	return c.flushLocked()
}

// maskKey draws a fresh masking key (RFC 6455 §5.3); the caller holds wmu.
func (c *wsConn) maskKey() (k [4]byte) {
	binary.LittleEndian.PutUint32(k[:], uint32(c.rng.Uint64()))
	return k
}

func (c *wsConn) writeRaw(b []byte) error {
	n, err := c.nc.Write(b)
	c.bytesOut.Add(int64(n))
	return err
}

// CloseNormal sends a close frame 1000 (unless one went out) and closes the
// TCP connection without waiting for the answer: the harness tears down
// thousands of connections at once.
func (c *wsConn) CloseNormal() {
	if !c.opt.Raw {
		_ = c.writeControl(frame.OpClose, frame.AppendClose(nil, frame.CloseNormal, ""))
	}
	c.Close()
}

// Close closes the TCP connection, which ends a blocked next or write. It
// is safe to call more than once and concurrently.
func (c *wsConn) Close() {
	if c.closed.CompareAndSwap(false, true) {
		_ = c.nc.Close()
		c.wmu.Lock()
		c.closeSent = true
		if c.comp != nil {
			c.comp.Release()
		}
		c.wmu.Unlock()
	}
}

// releaseRead releases the read side's decompressor; the reading goroutine
// calls it when it is done.
func (c *wsConn) releaseRead() {
	if c.dec != nil {
		c.dec.Release()
	}
}
