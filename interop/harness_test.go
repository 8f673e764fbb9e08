package interop

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/provider"
)

// --- the summary of which cases ran against which peer ---

type caseRow struct{ peer, name, status string }

// summary collects a row per case; TestMain prints it (go test -v shows it).
var summary struct {
	mu   sync.Mutex
	rows []caseRow
}

// track logs that the test t is a case run against peer and records how it
// ended in the summary.
func track(t *testing.T, peer string) {
	t.Helper()
	t.Logf("CASE %s: %s", peer, t.Name())
	t.Cleanup(func() {
		status := "pass"
		switch {
		case t.Skipped():
			status = "skip"
		case t.Failed():
			status = "FAIL"
		}
		summary.mu.Lock()
		summary.rows = append(summary.rows, caseRow{peer, t.Name(), status})
		summary.mu.Unlock()
	})
}

func TestMain(m *testing.M) {
	code := m.Run()
	summary.mu.Lock()
	defer summary.mu.Unlock()
	type tally struct{ pass, fail, skip int }
	byPeer := map[string]*tally{}
	var peers []string
	for _, r := range summary.rows {
		tl := byPeer[r.peer]
		if tl == nil {
			tl = &tally{}
			byPeer[r.peer] = tl
			peers = append(peers, r.peer)
		}
		switch r.status {
		case "pass":
			tl.pass++
		case "skip":
			tl.skip++
		default:
			tl.fail++
		}
	}
	sort.Strings(peers)
	if len(peers) > 0 {
		fmt.Println("interop summary (cases per peer):")
		for _, p := range peers {
			tl := byPeer[p]
			fmt.Printf("  %-44s %4d passed, %d failed, %d skipped\n", p, tl.pass, tl.fail, tl.skip)
		}
		for _, r := range summary.rows {
			if r.status == "FAIL" {
				fmt.Printf("  FAILED %s: %s\n", r.peer, r.name)
			}
		}
	}
	os.Exit(code)
}

// --- an in-process Provider with an echo handler ---

type provClose struct {
	id     string
	code   provider.CloseCode
	reason string
}

// provEvents records a Provider's callbacks.
type provEvents struct {
	mu     sync.Mutex
	opens  []*provider.Connection
	closes []provClose
	errs   []error
	msgs   []string // text messages received (not commands, not echoed ones)
}

func (e *provEvents) opened() []*provider.Connection {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]*provider.Connection(nil), e.opens...)
}

func (e *provEvents) closed() []provClose {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]provClose(nil), e.closes...)
}

// closeOf returns the close recorded for connection id.
func (e *provEvents) closeOf(id string) (provClose, bool) {
	for _, c := range e.closed() {
		if c.id == id {
			return c, true
		}
	}
	return provClose{}, false
}

func (e *provEvents) String() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return fmt.Sprintf("opens %d, closes %v, errors %v", len(e.opens), e.closes, e.errs)
}

// patterned returns n bytes i % 251.
func patterned(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i % 251)
	}
	return b
}

// textOf returns exactly n bytes of valid UTF-8: ASCII with a two-byte
// character every 10 bytes (the same as node/ws-server.js).
func textOf(n int) []byte {
	unit := "abcdefgh\u00e9" // 10 bytes
	return []byte(strings.Repeat(unit, n/10) + strings.Repeat("x", n%10))
}

// startProvider starts a Provider on 127.0.0.1 that echoes every message
// with its type (compressed when the connection negotiated
// permessage-deflate and the message is over the threshold) and obeys the
// text commands the peers send:
//
//	cmd:close:<code>:<reason>  close the connection with that code
//	cmd:big:<n>                send a binary message of n bytes (i % 251)
//	cmd:bigtext:<n>            send a text message of n UTF-8 bytes (textOf)
//	cmd:note:<text>            record text in provEvents.msgs, no answer
//
// Defaults for the tests: MaxPayloadLength 8 MiB, MaxBackpressure 64 MiB.
func startProvider(t *testing.T, mod func(*provider.Options)) (*provider.Provider, *provEvents) {
	t.Helper()
	e := &provEvents{}
	o := provider.Options{
		Addr:             "127.0.0.1:0",
		MaxPayloadLength: 8 << 20,
		MaxBackpressure:  64 << 20,
		OnOpen: func(c *provider.Connection) {
			e.mu.Lock()
			e.opens = append(e.opens, c)
			e.mu.Unlock()
		},
		OnClose: func(c *provider.Connection, code provider.CloseCode, reason string) {
			e.mu.Lock()
			e.closes = append(e.closes, provClose{c.ID(), code, reason})
			e.mu.Unlock()
		},
		OnError: func(err error) {
			e.mu.Lock()
			e.errs = append(e.errs, err)
			e.mu.Unlock()
		},
		OnMessage: func(c *provider.Connection, m provider.Message) {
			if err := providerCommand(c, m, e); err != nil {
				e.mu.Lock()
				e.errs = append(e.errs, fmt.Errorf("echo on %s: %w", c.ID(), err))
				e.mu.Unlock()
			}
		},
	}
	if mod != nil {
		mod(&o)
	}
	p, err := provider.New(o)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, e
}

func providerCommand(c *provider.Connection, m provider.Message, e *provEvents) error {
	if m.Binary || !bytes.HasPrefix(m.Data, []byte("cmd:")) {
		return c.SendOptions(m.Binary, true, m.Data)
	}
	name, arg, _ := strings.Cut(string(m.Data[4:]), ":")
	switch name {
	case "close":
		code, reason, _ := strings.Cut(arg, ":")
		n, err := strconv.Atoi(code)
		if err != nil {
			return err
		}
		return c.Close(provider.CloseCode(n), reason)
	case "big":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return err
		}
		return c.SendBinary(patterned(n))
	case "bigtext":
		n, err := strconv.Atoi(arg)
		if err != nil {
			return err
		}
		return c.SendText(textOf(n))
	case "note":
		e.mu.Lock()
		e.msgs = append(e.msgs, arg)
		e.mu.Unlock()
		return nil
	}
	return c.Send("unknown command " + name)
}

// wsURL is the Provider's WebSocket endpoint at addr (host:port).
func wsURL(addr string) string { return "ws://" + addr + "/connect" }

// presetCase is a compressor preset of the Provider, with the response it
// must give to the offer "permessage-deflate; client_max_window_bits" that
// browsers and Node's ws send.
type presetCase struct {
	name   string
	preset compress.Preset
	resp   string // normalized Sec-WebSocket-Extensions response; "" = none
}

// presetFamilies are the preset families every peer runs against.
var presetFamilies = []presetCase{
	{"DISABLED", compress.Disabled, ""},
	{"SHARED_COMPRESSOR", compress.SharedCompressor,
		"permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
	{"SHARED_COMPRESSOR|SHARED_DECOMPRESSOR", compress.SharedCompressor | compress.SharedDecompressor,
		"permessage-deflate; client_no_context_takeover; server_no_context_takeover"},
	{"DEDICATED_COMPRESSOR|DEDICATED_DECOMPRESSOR", compress.DedicatedCompressor | compress.DedicatedDecompressor,
		"permessage-deflate"},
	{"DEDICATED_COMPRESSOR_4KB|DEDICATED_DECOMPRESSOR_512B", compress.DedicatedCompressor4KB | compress.DedicatedDecompressor512B,
		"permessage-deflate; client_max_window_bits=9; server_max_window_bits=9"},
}

// normExt normalizes a Sec-WebSocket-Extensions value: the extension name
// first, then its parameters sorted, "; "-separated, spaces trimmed.
func normExt(v string) string {
	if strings.TrimSpace(v) == "" {
		return ""
	}
	parts := strings.Split(v, ";")
	for i := range parts {
		parts[i] = strings.ReplaceAll(strings.TrimSpace(parts[i]), " ", "")
	}
	sort.Strings(parts[1:])
	return strings.Join(parts, "; ")
}

// headerValue returns the value of header name in an HTTP head (request or
// response, without the final blank line); "" if absent.
func headerValue(head, name string) string {
	for _, l := range strings.Split(head, "\r\n")[1:] {
		k, v, ok := strings.Cut(l, ":")
		if ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

// --- a sniffing TCP proxy: what really went over the wire ---

// wireStats is what one direction of a WebSocket connection carried, as
// parsed by the sniffer (an RFC 6455 frame-header scanner independent of
// package frame).
type wireStats struct {
	Head       string // the HTTP request or response head
	Frames     int    // every frame
	Messages   int    // data messages (first frames of text and binary)
	Compressed int    // of which had RSV1 set (permessage-deflate)
	Fragmented int    // of which had more than one frame
	Control    int    // ping, pong and close frames
	CloseCodes []int  // the code of each close frame (1005 when empty)
}

// frameScanner follows one direction of a connection.
type frameScanner struct {
	st       *wireStats
	headDone bool
	headBuf  []byte
	hdr      []byte
	left     int64 // payload bytes of the current frame still to come
	op       byte
	masked   bool
	mask     [4]byte
	pos      int64
	closeP   []byte
	inFrag   bool
}

func (s *frameScanner) feed(b []byte) {
	for len(b) > 0 {
		if !s.headDone {
			s.headBuf = append(s.headBuf, b...)
			i := bytes.Index(s.headBuf, []byte("\r\n\r\n"))
			if i < 0 {
				return
			}
			s.st.Head = string(s.headBuf[:i])
			b = append([]byte(nil), s.headBuf[i+4:]...)
			s.headBuf, s.headDone = nil, true
			continue
		}
		if s.left > 0 {
			n := int64(len(b))
			if n > s.left {
				n = s.left
			}
			if s.op == 8 {
				for _, c := range b[:n] {
					if s.masked {
						c ^= s.mask[s.pos%4]
					}
					s.closeP = append(s.closeP, c)
					s.pos++
				}
			}
			b = b[n:]
			s.left -= n
			if s.left == 0 {
				s.endFrame()
			}
			continue
		}
		s.hdr = append(s.hdr, b[0])
		b = b[1:]
		if len(s.hdr) < 2 {
			continue
		}
		need := 2
		switch s.hdr[1] & 0x7f {
		case 126:
			need += 2
		case 127:
			need += 8
		}
		if s.hdr[1]&0x80 != 0 {
			need += 4
		}
		if len(s.hdr) < need {
			continue
		}
		fin, rsv1, op := s.hdr[0]&0x80 != 0, s.hdr[0]&0x40 != 0, s.hdr[0]&0x0f
		var length int64
		switch l := s.hdr[1] & 0x7f; l {
		case 126:
			length = int64(s.hdr[2])<<8 | int64(s.hdr[3])
		case 127:
			for _, c := range s.hdr[2:10] {
				length = length<<8 | int64(c)
			}
		default:
			length = int64(l)
		}
		s.masked = s.hdr[1]&0x80 != 0
		if s.masked {
			copy(s.mask[:], s.hdr[need-4:need])
		}
		s.hdr = s.hdr[:0]
		s.op, s.pos, s.closeP, s.left = op, 0, s.closeP[:0], length
		s.st.Frames++
		switch {
		case op >= 8:
			s.st.Control++
		case op == 1 || op == 2:
			s.st.Messages++
			if rsv1 {
				s.st.Compressed++
			}
			if !fin {
				s.st.Fragmented++
			}
		}
		if op < 8 {
			s.inFrag = !fin
		}
		if length == 0 {
			s.endFrame()
		}
	}
}

func (s *frameScanner) endFrame() {
	if s.op != 8 {
		return
	}
	code := 1005
	if len(s.closeP) >= 2 {
		code = int(s.closeP[0])<<8 | int(s.closeP[1])
	}
	s.st.CloseCodes = append(s.st.CloseCodes, code)
}

// sniffer is a TCP proxy on 127.0.0.1 in front of target that records, per
// connection, the handshake and the frames in both directions.
type sniffer struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	conns []*sniffed
	open  map[net.Conn]struct{}
}

// sniffed is one proxied connection: Up is client to server, Down server
// to client.
type sniffed struct{ Up, Down wireStats }

func newSniffer(t *testing.T, target string) *sniffer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &sniffer{ln: ln, target: target, open: map[net.Conn]struct{}{}}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.close)
	return s
}

// Addr is the proxy's host:port.
func (s *sniffer) Addr() string { return s.ln.Addr().String() }

func (s *sniffer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		u, err := net.DialTimeout("tcp", s.target, 5*time.Second)
		if err != nil {
			c.Close()
			continue
		}
		sn := &sniffed{}
		s.mu.Lock()
		s.conns = append(s.conns, sn)
		s.open[c], s.open[u] = struct{}{}, struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go s.proxy(c, u, sn)
	}
}

// proxy copies both directions of one connection, scanning what passes, and
// closes both sockets once both directions have ended.
func (s *sniffer) proxy(c, u net.Conn, sn *sniffed) {
	defer s.wg.Done()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.pipe(c, u, &frameScanner{st: &sn.Up})
	}()
	s.pipe(u, c, &frameScanner{st: &sn.Down})
	<-done
	c.Close()
	u.Close()
	s.mu.Lock()
	delete(s.open, c)
	delete(s.open, u)
	s.mu.Unlock()
}

// pipe copies from src to dst, scanning what passes. At the end of src
// (FIN) it half-closes dst, so that the other side sees it; on an error
// (reset) it closes both.
func (s *sniffer) pipe(src, dst net.Conn, sc *frameScanner) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			s.mu.Lock()
			sc.feed(buf[:n])
			s.mu.Unlock()
			if _, werr := dst.Write(buf[:n]); werr != nil {
				src.Close()
				return
			}
		}
		if errors.Is(err, io.EOF) {
			if tc, ok := dst.(*net.TCPConn); ok {
				_ = tc.CloseWrite()
				return
			}
		}
		if err != nil {
			dst.Close()
			src.Close()
			return
		}
	}
}

func (s *sniffer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.open {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// snapshot returns a copy of what every connection carried so far.
func (s *sniffer) snapshot() []sniffed {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]sniffed, len(s.conns))
	for i, c := range s.conns {
		out[i] = *c
		out[i].Up.CloseCodes = append([]int(nil), c.Up.CloseCodes...)
		out[i].Down.CloseCodes = append([]int(nil), c.Down.CloseCodes...)
	}
	return out
}

// total adds up the frames of every connection in each direction.
func (s *sniffer) total() (up, down wireStats) {
	for _, c := range s.snapshot() {
		for _, d := range []struct{ to, from *wireStats }{{&up, &c.Up}, {&down, &c.Down}} {
			d.to.Frames += d.from.Frames
			d.to.Messages += d.from.Messages
			d.to.Compressed += d.from.Compressed
			d.to.Fragmented += d.from.Fragmented
			d.to.Control += d.from.Control
			d.to.CloseCodes = append(d.to.CloseCodes, d.from.CloseCodes...)
		}
	}
	return up, down
}

func itoa(n int) string { return strconv.Itoa(n) }
