package consumer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/gobwas/httphead"
	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/frame"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// handshakeResult collects what the dialer's callbacks saw during one
// handshake. It is written and read only by the cycle goroutine.
type handshakeResult struct {
	interval time.Duration
	status   string
	body     string
}

// session is one open connection as the handshake left it.
type session struct {
	nc       net.Conn
	interval time.Duration // from proto.HeartbeatHeader; 0 = not announced
	deflate  bool
	v2       bool // the subprotocol network-cluster.v2 was selected
	comp     *compress.Compressor
	dec      *compress.Decompressor
}

func (s *session) release() {
	if s.comp != nil {
		s.comp.Release()
		s.comp = nil
	}
	if s.dec != nil {
		s.dec.Release()
		s.dec = nil
	}
}

var heartbeatHeader = []byte(proto.HeartbeatHeader)

func (c *Consumer) newDialer() ws.Dialer {
	d := ws.Dialer{
		Timeout:   c.cfg.DialTimeout,
		TLSConfig: c.cfg.TLSConfig,
		OnHeader: func(k, v []byte) error {
			if bytes.EqualFold(k, heartbeatHeader) {
				c.hs.interval, _ = proto.ParseInterval(string(v))
			}
			return nil
		},
		OnStatusError: func(status int, reason []byte, resp io.Reader) {
			c.hs.status = string(reason)
			c.hs.body = readBody(resp)
		},
	}
	h := c.cfg.header
	if c.session != "" {
		h = h.Clone()
		h.Set(proto.SessionHeader, c.session)
	}
	if len(h) > 0 {
		d.Header = ws.HandshakeHeaderHTTP(h)
	}
	if c.cfg.Protocol == ProtocolAuto {
		d.Protocols = []string{proto.SubprotocolV1, proto.SubprotocolV2}
	}
	if c.cfg.compress.Enabled() {
		offer := c.cfg.compress.Offer()
		opts, ok := httphead.ParseOptions([]byte(offer.String()), nil)
		if ok {
			d.Extensions = opts
		}
	}
	return d
}

// readBody returns up to 512 bytes of a rejection's body, if the response
// declares a Content-Length (a body without one would be read until the
// Provider closes, so it is skipped).
func readBody(resp io.Reader) string {
	r, err := http.ReadResponse(bufio.NewReader(io.LimitReader(resp, 16<<10)), nil)
	if err != nil || r.ContentLength <= 0 {
		return ""
	}
	defer r.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(r.Body, min(r.ContentLength, 512)))
	return string(b)
}

// dial runs one connection attempt: TCP (and TLS), the upgrade handshake and
// the permessage-deflate negotiation.
func (c *Consumer) dial(ctx context.Context) (*session, error) {
	c.hs = handshakeResult{}
	u := c.cfg.urls[c.addrIdx]
	c.addr.Store(&u.hostPort)
	nc, br, hs, err := c.dialer.Dial(ctx, u.url)
	if err != nil {
		var se ws.StatusError
		if errors.As(err, &se) {
			return nil, &HandshakeError{StatusCode: int(se), Status: c.hs.status, Body: c.hs.body}
		}
		return nil, fmt.Errorf("consumer: connect %s: %w", u.logURL, err)
	}
	if br != nil {
		// The Provider sent frames in the same packet as its response.
		nc = &prefixConn{Conn: nc, br: br}
	}
	s := &session{nc: nc, interval: c.hs.interval, v2: hs.Protocol == proto.SubprotocolV2}
	if err := c.negotiate(s, hs.Extensions); err != nil {
		// RFC 7692 §5: a response the client cannot accept fails the
		// connection.
		c.failHandshake(nc, frame.CloseMandatoryExtension, "permessage-deflate response not accepted")
		return nil, fmt.Errorf("consumer: connect %s: %w", u.logURL, err)
	}
	return s, nil
}

// negotiate checks the Provider's permessage-deflate response (if any) and
// sets up the codecs.
func (c *Consumer) negotiate(s *session, exts []httphead.Option) error {
	if len(exts) == 0 {
		return nil
	}
	if !c.cfg.compress.Enabled() {
		return errors.New("extensions in the response that were not offered")
	}
	// gobwas/ws checked the names against the offer and kept the
	// parameters (values unquoted); render them back for the compress
	// package's parser, which applies RFC 7692's rules.
	var sb strings.Builder
	for i, e := range exts {
		if i > 0 {
			sb.WriteString(", ")
		}
		sb.Write(e.Name)
		e.Parameters.ForEach(func(k, v []byte) bool {
			sb.WriteString("; ")
			sb.Write(k)
			if len(v) > 0 {
				sb.WriteByte('=')
				sb.Write(v)
			}
			return true
		})
	}
	resp, ok, err := compress.ParseResponse([]string{sb.String()})
	if err == nil && ok {
		err = c.cfg.compress.CheckResponse(c.cfg.compress.Offer(), resp)
	}
	if err != nil {
		return fmt.Errorf("permessage-deflate response %q: %w", sb.String(), err)
	}
	if !ok {
		return nil
	}
	cfg := compress.NewConfig(c.cfg.compress, resp, false)
	s.deflate = true
	s.comp = compress.NewCompressor(cfg)
	s.dec = compress.NewDecompressor(cfg)
	return nil
}

// failHandshake sends a close frame on a connection that is not installed
// yet and drops it.
func (c *Consumer) failHandshake(nc net.Conn, code frame.CloseCode, reason string) {
	c.wmu.Lock()
	c.wc, c.closeSent = nc, false
	c.sendCloseLocked(code, reason)
	c.wc = nil
	c.closeSent = true
	c.wmu.Unlock()
	_ = nc.Close()
}

// prefixConn reads the bytes the handshake reader buffered before reading
// from the connection.
type prefixConn struct {
	net.Conn
	br *bufio.Reader
}

func (p *prefixConn) Read(b []byte) (int, error) {
	if p.br != nil {
		n, _ := p.br.Read(b)
		if p.br.Buffered() == 0 {
			ws.PutReader(p.br)
			p.br = nil
		}
		if n > 0 {
			return n, nil
		}
	}
	return p.Conn.Read(b)
}
