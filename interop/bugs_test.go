package interop

import (
	"bufio"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/provider"
)

// Plain-TCP checks of Provider behaviours that the independent peers
// exposed. They need no peer, so they always run.

// TestProviderOversizedFrameClosingHandshake: a client sends a frame over
// MaxPayloadLength, in full and at once, as Node's ws does. RFC 6455 §7.1.7
// and §10.4: the Provider answers 1009 and neither resets the connection
// while the rest of the rejected frame arrives nor before the client's close
// frame (a reset made Node's ws client report 1006 instead of 1009: the
// "message over max payload" cases of TestNodeWSClient). A reset shows only
// when the payload reaches the Provider in several reads, so without the fix
// this failed reliably without -race and sometimes with it.
func TestProviderOversizedFrameClosingHandshake(t *testing.T) {
	t.Run("frame of 4 MiB over a 64 KiB limit", func(t *testing.T) {
		track(t, "plain TCP regression")
		prov, ev := startProvider(t, func(o *provider.Options) {
			o.MaxPayloadLength = 64 << 10
			o.CloseTimeout = 3 * time.Second
		})
		c, err := net.Dial("tcp", prov.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		fmt.Fprintf(c, "GET /connect HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n")
		br := bufio.NewReader(c)
		status, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(status, "HTTP/1.1 101") {
			t.Fatalf("handshake: %q %v", status, err)
		}
		for {
			l, err := br.ReadString('\n')
			if err != nil {
				t.Fatal(err)
			}
			if l == "\r\n" {
				break
			}
		}

		// The whole oversized frame (masked binary, 64-bit length), written
		// at once while the answer is read, as Node's ws does.
		size := 4 << 20
		mask := [4]byte{1, 2, 3, 4}
		frame := []byte{0x82, 0xff, 0, 0, 0, 0, byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size), mask[0], mask[1], mask[2], mask[3]}
		payload := make([]byte, size)
		_, _ = rand.Read(payload)
		wrote := make(chan error, 1)
		go func() {
			_, err := c.Write(append(frame, payload...))
			wrote <- err
		}()

		// The Provider's close frame: 1009.
		var hdr [4]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("reading the close frame: %v", err)
		}
		if hdr[0] != 0x88 || hdr[1] < 2 || hdr[1] > 125 {
			t.Fatalf("frame header % x, want a close frame", hdr)
		}
		if code := int(hdr[2])<<8 | int(hdr[3]); code != 1009 {
			t.Fatalf("close code %d, want 1009", code)
		}
		if _, err := io.ReadFull(br, make([]byte, int(hdr[1])-2)); err != nil {
			t.Fatal(err)
		}
		// The rest of the frame must be taken (not answered with a reset),
		// then our close frame completes the handshake.
		if err := <-wrote; err != nil {
			t.Errorf("the Provider reset the connection while the rejected frame was still arriving: %v", err)
		}
		mask = [4]byte{9, 8, 7, 6}
		reply := []byte{0x88, 0x82, mask[0], mask[1], mask[2], mask[3], 0x03 ^ mask[0], 0xf1 ^ mask[1]} // 1009
		if _, err := c.Write(reply); err != nil {
			t.Errorf("writing our close frame: %v", err)
		}
		rest, err := io.ReadAll(br)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				t.Errorf("the Provider did not close TCP after the closing handshake")
			} else {
				t.Errorf("the connection ended with %v, want a clean close (EOF) after the closing handshake", err)
			}
		}
		if len(rest) != 0 {
			t.Errorf("%d more bytes after the close frame", len(rest))
		}
		c.Close() // the Provider may wait for our FIN: it discards input after failing
		waitFor(t, 10*time.Second, "OnClose", func() bool { return len(ev.closed()) == 1 })
		if cl := ev.closed()[0]; cl.code != 1009 {
			t.Errorf("Provider reported %d %q, want 1009", cl.code, cl.reason)
		}
	})
}
