// Package wstest is a raw WebSocket client for tests: it writes exactly the
// bytes a test asks for (valid or not) and reads frames as they come, so
// that tests can drive a server through every case of RFC 6455 over a real
// socket.
package wstest

import (
	"bufio"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/networkcluster/networkcluster/frame"
)

// Timeout bounds every read and write of a Client.
var Timeout = 10 * time.Second

// Request returns the bytes of a WebSocket upgrade request for target
// ("/path?query"), with extra header lines ("Name: value").
func Request(host, target string, extra ...string) []byte {
	var key [16]byte
	_, _ = rand.Read(key[:])
	var b strings.Builder
	b.WriteString("GET " + target + " HTTP/1.1\r\n")
	b.WriteString("Host: " + host + "\r\n")
	b.WriteString("Upgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Key: " + base64.StdEncoding.EncodeToString(key[:]) + "\r\n")
	b.WriteString("Sec-WebSocket-Version: 13\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	return []byte(b.String())
}

// Client is a raw test connection.
type Client struct {
	Conn net.Conn
	R    *bufio.Reader
	// Resp is the server's response to the upgrade request.
	Resp *http.Response
}

// Dial connects to addr and sends an upgrade request for target. It
// returns the client whatever the response status (check Resp.StatusCode);
// the error is for network failures only. trailing bytes are written in the
// same write as the request (a frame sent in the same packet).
func Dial(addr, target string, extra []string, trailing []byte) (*Client, error) {
	conn, err := net.DialTimeout("tcp", addr, Timeout)
	if err != nil {
		return nil, err
	}
	return Handshake(conn, addr, target, extra, trailing)
}

// Handshake is Dial over an established connection (a TLS one, say); host
// goes in the Host header. It closes conn on failure.
func Handshake(conn net.Conn, host, target string, extra []string, trailing []byte) (*Client, error) {
	addr := host
	c := &Client{Conn: conn, R: bufio.NewReader(conn)}
	req := append(Request(addr, target, extra...), trailing...)
	if err := c.Write(req); err != nil {
		conn.Close()
		return nil, err
	}
	_ = conn.SetReadDeadline(time.Now().Add(Timeout))
	resp, err := http.ReadResponse(c.R, nil)
	if err != nil {
		conn.Close()
		return nil, fmt.Errorf("reading upgrade response: %w", err)
	}
	c.Resp = resp
	if resp.StatusCode != http.StatusSwitchingProtocols {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		resp.Body = io.NopCloser(strings.NewReader(string(body)))
	}
	return c, nil
}

// Close closes the TCP connection.
func (c *Client) Close() error { return c.Conn.Close() }

// Write writes raw bytes.
func (c *Client) Write(b []byte) error {
	_ = c.Conn.SetWriteDeadline(time.Now().Add(Timeout))
	_, err := c.Conn.Write(b)
	return err
}

// Frame returns the bytes of a masked client frame.
func Frame(fin bool, op frame.Opcode, rsv byte, payload []byte) []byte {
	var key [4]byte
	_, _ = rand.Read(key[:])
	h := frame.Header{Fin: fin, Rsv: rsv, Op: op, Masked: true, Mask: key, Length: int64(len(payload))}
	b := frame.AppendHeader(nil, h)
	start := len(b)
	b = append(b, payload...)
	frame.Mask(b[start:], key, 0)
	return b
}

// WriteFrame writes one masked frame.
func (c *Client) WriteFrame(fin bool, op frame.Opcode, payload []byte) error {
	return c.Write(Frame(fin, op, 0, payload))
}

// WriteClose writes a close frame with code and reason.
func (c *Client) WriteClose(code frame.CloseCode, reason string) error {
	return c.WriteFrame(true, frame.OpClose, frame.AppendClose(nil, code, reason))
}

// ReadFrame reads one frame as the server sent it.
func (c *Client) ReadFrame() (frame.Header, []byte, error) {
	_ = c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	var buf [frame.MaxHeaderSize]byte
	n := 2
	if _, err := io.ReadFull(c.R, buf[:2]); err != nil {
		return frame.Header{}, nil, err
	}
	for {
		h, hn, need, err := frame.ParseHeader(buf[:n], frame.ParseOptions{Role: frame.RoleClient, AllowRSV1: true})
		if err != nil {
			return h, nil, err
		}
		if need == 0 {
			_ = hn
			payload := make([]byte, h.Length)
			if _, err := io.ReadFull(c.R, payload); err != nil {
				return h, nil, err
			}
			return h, payload, nil
		}
		if _, err := io.ReadFull(c.R, buf[n:n+need]); err != nil {
			return frame.Header{}, nil, err
		}
		n += need
	}
}

// ReadMessage reads frames until a whole data message has arrived; it skips
// pings and pongs. A close frame ends it with a *frame.CloseError.
func (c *Client) ReadMessage() (op frame.Opcode, data []byte, err error) {
	for {
		h, p, err := c.ReadFrame()
		if err != nil {
			return 0, nil, err
		}
		switch h.Op {
		case frame.OpPing, frame.OpPong:
			continue
		case frame.OpClose:
			code, reason, perr := frame.ParseClose(p)
			if perr != nil {
				return 0, nil, perr
			}
			return 0, nil, &frame.CloseError{Code: code, Reason: string(reason)}
		case frame.OpContinuation:
			data = append(data, p...)
		default:
			op, data = h.Op, append(data[:0], p...)
		}
		if h.Fin {
			return op, data, nil
		}
	}
}

// ExpectClose reads until a close frame and returns its code and reason;
// data messages before it are skipped.
func (c *Client) ExpectClose() (frame.CloseCode, string, error) {
	for {
		_, _, err := c.ReadMessage()
		var ce *frame.CloseError
		if errors.As(err, &ce) {
			return ce.Code, ce.Reason, nil
		}
		if err != nil {
			return 0, "", err
		}
	}
}

// WaitEOF reads until the server closes the TCP connection and reports
// whether it did so within the timeout.
func (c *Client) WaitEOF() bool {
	_ = c.Conn.SetReadDeadline(time.Now().Add(Timeout))
	_, err := io.Copy(io.Discard, c.R)
	return err == nil || errors.Is(err, net.ErrClosed) || isReset(err)
}

func isReset(err error) bool {
	return err != nil && strings.Contains(err.Error(), "connection reset")
}
