package consumer

// The runner of the Consumer's conformance cases (conformance_test.go): a
// raw test server on 127.0.0.1 performs the upgrade itself (answering with
// whatever Sec-WebSocket-Extensions a case asks for, valid or not), then
// plays a script of writes (unmasked server frames, valid or not, written
// at once, chopped, or frame by frame) and of the events it then expects
// from the Consumer, in order: the messages its OnMessage handler sends
// back, pongs, its close frame. After the script the server closes with
// 1000 unless a close was already exchanged; every case ends by checking
// that nothing follows the Consumer's close frame, that the Consumer closes
// TCP once the server has (RFC 6455 §7.1.1), and that OnDisconnect reported
// the code of the close that ended the connection.

import (
	"bufio"
	"context"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/frame"
	cf "github.com/networkcluster/networkcluster/internal/wstest/conformance"
)

// cfTimeout bounds every read and write of the test server.
const cfTimeout = 10 * time.Second

// --- the test server ---

// cfServer accepts connections on 127.0.0.1 and hands them to the cases.
type cfServer struct {
	ln    net.Listener
	port  int
	conns chan net.Conn
	wg    sync.WaitGroup
}

func cfListen(t testing.TB) *cfServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &cfServer{ln: ln, port: ln.Addr().(*net.TCPAddr).Port, conns: make(chan net.Conn, 16)}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.conns)
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			s.conns <- nc
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		for nc := range s.conns {
			nc.Close()
		}
		s.wg.Wait()
	})
	return s
}

// cfRecorder records a Consumer's events.
type cfRecorder struct {
	mu          sync.Mutex
	opens       int
	disconnects []cfDisc
	errs        []error
}

type cfDisc struct {
	code   frame.CloseCode
	reason string
}

// cfMode says what the Consumer's OnMessage does with a message.
type cfMode int

const (
	cfEcho   cfMode = iota // sends it back, same type
	cfDigest               // sends back the text "<length>:<sha-256 hex>"
)

// cfDigestOf is the Consumer's reply to p in cfDigest mode.
func cfDigestOf(p []byte) string {
	sum := sha256.Sum256(p)
	return strconv.Itoa(len(p)) + ":" + hex.EncodeToString(sum[:])
}

// cfStartConsumer creates a Consumer for the server (never reconnecting
// during a case), starts connecting, and returns it with its recorder; the
// Consumer is destroyed when the test ends. connected receives Connect's
// result.
func cfStartConsumer(t testing.TB, srv *cfServer, mode cfMode, mod func(o *Options)) (*Consumer, *cfRecorder, chan error) {
	t.Helper()
	rec := &cfRecorder{}
	var c *Consumer
	o := Options{
		Host:      "127.0.0.1",
		Port:      srv.port,
		Reconnect: Reconnect{Interval: time.Hour, MaxInterval: time.Hour, NoJitter: true},
		OnOpen:    func() { rec.mu.Lock(); rec.opens++; rec.mu.Unlock() },
		OnDisconnect: func(code frame.CloseCode, reason string) {
			rec.mu.Lock()
			rec.disconnects = append(rec.disconnects, cfDisc{code, reason})
			rec.mu.Unlock()
		},
		OnError: func(err error) { rec.mu.Lock(); rec.errs = append(rec.errs, err); rec.mu.Unlock() },
		OnMessage: func(m Message) {
			switch {
			case mode == cfDigest:
				_ = c.Send(cfDigestOf(m.Data))
			case m.Binary:
				_ = c.SendBinary(m.Data)
			default:
				_ = c.SendText(m.Data)
			}
		},
	}
	if mod != nil {
		mod(&o)
	}
	var err error
	if c, err = New(o); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Destroy)
	connected := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), cfTimeout)
		defer cancel()
		connected <- c.Connect(ctx)
	}()
	return c, rec, connected
}

// cfSession is the server side of one case.
type cfSession struct {
	cf.Session
	nc      net.Conn
	br      *bufio.Reader
	rec     *cfRecorder
	req     *http.Request
	deflate bool // permessage-deflate was negotiated: RSV1 allowed
}

// cfAccept takes the next connection and reads its upgrade request.
func cfAccept(t testing.TB, srv *cfServer, rec *cfRecorder) *cfSession {
	t.Helper()
	var nc net.Conn
	select {
	case nc = <-srv.conns:
	case <-time.After(cfTimeout):
		t.Fatal("the Consumer did not connect")
	}
	t.Cleanup(func() { nc.Close() })
	s := &cfSession{nc: nc, br: bufio.NewReader(nc), rec: rec}
	s.Session = cf.Session{T: t, Side: cf.Server, Peer: "Consumer", Limit: 64 << 20, PongsAnyOrder: true, ReadFrame: s.readFrame,
		Write: func(b []byte) error {
			_ = nc.SetWriteDeadline(time.Now().Add(cfTimeout))
			_, err := nc.Write(b)
			return err
		}}
	s.Finish = s.finish
	_ = nc.SetReadDeadline(time.Now().Add(cfTimeout))
	req, err := http.ReadRequest(s.br)
	if err != nil {
		t.Fatalf("reading the upgrade request: %v", err)
	}
	s.req = req
	return s
}

// upgrade answers the request with 101 and the given extra header lines,
// after checking the request as RFC 6455 §4.1 requires.
func (s *cfSession) upgrade(extra ...string) {
	s.T.Helper()
	s.upgradeWith(nil, extra...)
}

// upgradeWith is upgrade with frames written in the same write as the
// response.
func (s *cfSession) upgradeWith(frames []byte, extra ...string) {
	s.T.Helper()
	r := s.req
	key := r.Header.Get("Sec-WebSocket-Key")
	if raw, err := base64.StdEncoding.DecodeString(key); err != nil || len(raw) != 16 {
		s.T.Fatalf("Sec-WebSocket-Key %q is not 16 bytes in base64 (RFC 6455 §4.1)", key)
	}
	if r.Method != http.MethodGet || !strings.EqualFold(r.Header.Get("Upgrade"), "websocket") ||
		!strings.Contains(strings.ToLower(r.Header.Get("Connection")), "upgrade") || r.Header.Get("Sec-WebSocket-Version") != "13" {
		s.T.Fatalf("not an RFC 6455 §4.1 upgrade request: %s %v", r.Method, r.Header)
	}
	sum := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	var b strings.Builder
	b.WriteString("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n")
	b.WriteString("Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n")
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	s.writeRaw(append([]byte(b.String()), frames...))
}

// cfConnect accepts the Consumer's connection, upgrades it and waits until
// the Consumer reports it open.
func cfConnect(t testing.TB, srv *cfServer, mode cfMode, mod func(o *Options), extra ...string) (*Consumer, *cfSession) {
	t.Helper()
	c, rec, connected := cfStartConsumer(t, srv, mode, mod)
	s := cfAccept(t, srv, rec)
	s.upgrade(extra...)
	if err := <-connected; err != nil {
		t.Fatalf("Connect: %v", err)
	}
	return c, s
}

// writeRaw writes b in one write.
func (s *cfSession) writeRaw(b []byte) {
	s.T.Helper()
	if err := s.Write(b); err != nil {
		s.Fatalf("write: %v", err)
	}
}

// readFrame reads one frame from the Consumer and unmasks it. Parsing as a
// server holds the Consumer to RFC 6455 §5.1–§5.5: masked frames, no
// reserved bits or opcodes, control frames short and whole.
func (s *cfSession) readFrame() (frame.Header, []byte, error) {
	_ = s.nc.SetReadDeadline(time.Now().Add(cfTimeout))
	var hb [frame.MaxHeaderSize]byte
	n := 0
	for {
		h, hn, need, err := frame.ParseHeader(hb[:n], frame.ParseOptions{Role: frame.RoleServer, AllowRSV1: s.deflate})
		if err != nil {
			return h, nil, fmt.Errorf("the Consumer's frame: %w", err)
		}
		if need == 0 {
			_ = hn
			if h.Length > int64(s.Limit) {
				return h, nil, fmt.Errorf("frame of %d bytes", h.Length)
			}
			p := make([]byte, h.Length)
			if _, err := io.ReadFull(s.br, p); err != nil {
				return h, nil, err
			}
			frame.Mask(p, h.Mask, 0)
			return h, p, nil
		}
		if _, err := io.ReadFull(s.br, hb[n:n+need]); err != nil {
			return h, nil, err
		}
		n += need
	}
}

// finish closes (unless done), closes TCP first as a server should, checks
// that nothing follows the Consumer's close frame and that the Consumer
// closes TCP too, and checks the OnDisconnect event.
func (s *cfSession) finish() {
	s.T.Helper()
	s.CloseHandshake()
	// The server closes its side first (RFC 6455 §7.1.1); the Consumer
	// must send nothing more and close too.
	if tc, ok := s.nc.(*net.TCPConn); ok {
		_ = tc.CloseWrite()
	}
	s.ExpectEOF()
	s.nc.Close()
	want := s.FirstCode()
	var got cfDisc
	deadline := time.Now().Add(cfTimeout)
	for {
		s.rec.mu.Lock()
		n := len(s.rec.disconnects)
		if n > 0 {
			got = s.rec.disconnects[n-1]
		}
		s.rec.mu.Unlock()
		if n > 0 {
			break
		}
		if time.Now().After(deadline) {
			s.Fatalf("no OnDisconnect")
		}
		time.Sleep(time.Millisecond)
	}
	if got.code != want {
		s.Fatalf("OnDisconnect code %v (%q), want %v", got.code, got.reason, want)
	}
}

// cfRun runs cases as subtests, each with a new Consumer of the server.
func cfRun(t *testing.T, srv *cfServer, mode cfMode, mod func(o *Options), cases []cf.Case) {
	t.Helper()
	cf.Run(t, cases, func(t *testing.T, c cf.Case) {
		_, s := cfConnect(t, srv, mode, mod)
		s.Where = c.Where()
		s.Run(c.Script())
	})
}
