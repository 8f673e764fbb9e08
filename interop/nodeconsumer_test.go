package interop

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/networkcluster/networkcluster/compress"
	"github.com/networkcluster/networkcluster/provider"
)

// A Node client on ws@7 behaving on the wire as the Node network-cluster
// 1.0.4 Consumer (node/nc-consumer.js) against our Provider in
// text-heartbeat mode.

const textHeartbeat = 250 * time.Millisecond

func startNCConsumer(t *testing.T, addr string, params ...string) *peer {
	t.Helper()
	args := []string{filepath.Join("node", "nc-consumer.js"), "--url", wsURL(addr),
		"--reconnect-ms", "100", "--max-attempts", "3"}
	for _, p := range params {
		args = append(args, "--param", p)
	}
	return spawn(t, "node", args...)
}

func TestNodeClusterConsumer(t *testing.T) {
	requireNode(t, "ws7")
	prov, ev := startProvider(t, func(o *provider.Options) {
		o.Heartbeat = provider.Heartbeat{Mode: provider.HeartbeatText, Interval: textHeartbeat}
		o.Auth.Parameters = map[string]string{"key": "SECRET KEY/1"}
		o.Compressor = compress.SharedCompressor // ws7 offers permessage-deflate
	})
	addr := prov.Addr().String()

	t.Run("parameters arrive", func(t *testing.T) {
		track(t, "node ws@7 as network-cluster 1.0.4 consumer")
		p := startNCConsumer(t, addr, "key=SECRET KEY/1", "worker=é 7", "role=a&b=c")
		t.Cleanup(func() {
			if t.Failed() {
				t.Logf("nc-consumer.js output:\n%s\nprovider: %s", strings.Join(p.output(), "\n"), ev)
			}
		})
		p.wait("OPEN 1", 10*time.Second)
		waitFor(t, 5*time.Second, "OnOpen", func() bool { return len(ev.opened()) == 1 })
		c := ev.opened()[0]
		// The 1.0.4 Consumer offers no subprotocol: the connection stays
		// plain and requests to it are refused, not sent.
		if c.SupportsRequests() {
			t.Error("requests negotiated with the Node 1.0.4 Consumer")
		}
		if _, err := c.Request(context.Background(), false, []byte("job")); !errors.Is(err, provider.ErrNotSupported) {
			t.Errorf("Request to the Node 1.0.4 Consumer: %v, want ErrNotSupported", err)
		}
		for k, want := range map[string]string{"key": "SECRET KEY/1", "worker": "é 7", "role": "a&b=c"} {
			if got := c.Parameters()[k]; len(got) != 1 || got[0] != want {
				t.Errorf("parameter %s = %q, want [%q]", k, got, want)
			}
		}

		t.Run("heartbeat learned and answered across several intervals", func(t *testing.T) {
			track(t, "node ws@7 as network-cluster 1.0.4 consumer")
			if l := p.wait("HEARTBEAT ", 5*time.Second); l != "HEARTBEAT 250 500" {
				t.Errorf("announcement %q, want HEARTBEAT 250 500", l)
			}
			waitFor(t, 30*time.Second, "8 PINGs", func() bool { return p.count("PING") >= 8 })
			// The cutoff never fired and no reconnect happened; the Provider saw
			// every PONG: strikes 0, one connection, no heartbeat kill.
			for _, bad := range []string{"CUTOFF", "DISCONNECT", "RECONNECT", "OPEN 2", "MESSAGE PING", "MESSAGE PROVIDER_HEARTBEAT"} {
				if n := p.count(bad); n != 0 {
					t.Errorf("%d %q lines", n, bad)
				}
			}
			if s := c.Strikes(); s != 0 {
				t.Errorf("strikes %d, want 0", s)
			}
			if since := time.Since(c.LastPing()); since > 20*textHeartbeat {
				t.Errorf("last PONG %v ago", since)
			}
			if st := prov.Stats(); st.Opened != 1 || st.HeartbeatKills != 0 || st.Connections != 1 {
				t.Errorf("stats: opened %d, heartbeat kills %d, connections %d", st.Opened, st.HeartbeatKills, st.Connections)
			}
		})

		t.Run("messages flow both ways", func(t *testing.T) {
			track(t, "node ws@7 as network-cluster 1.0.4 consumer")
			p.send("send hello from node")
			p.wait("SENT true", 5*time.Second)
			p.wait("MESSAGE hello from node", 5*time.Second) // echoed by the Provider
			if err := c.Send("hello from the provider"); err != nil {
				t.Fatal(err)
			}
			p.wait("MESSAGE hello from the provider", 5*time.Second)
			long := strings.Repeat("réseau ", 2000) // over the threshold: ws7 compresses it
			p.send("send " + long)
			p.wait("MESSAGE "+long, 5*time.Second)
			if !c.Compressed() || prov.Stats().FramesCompressed == 0 {
				t.Errorf("permessage-deflate negotiated %v, %d messages sent compressed", c.Compressed(), prov.Stats().FramesCompressed)
			}
			// The PONGs were swallowed: the echo handler never saw one.
			if n := p.count("MESSAGE PONG"); n != 0 {
				t.Errorf("the Provider delivered %d PONGs to OnMessage", n)
			}
		})

		t.Run("graceful shutdown is seen as 1001", func(t *testing.T) {
			track(t, "node ws@7 as network-cluster 1.0.4 consumer")
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := prov.Shutdown(ctx); err != nil {
				t.Fatal(err)
			}
			if l := p.wait("DISCONNECT ", 5*time.Second); l != "DISCONNECT 1001 provider shutting down" {
				t.Errorf("%q, want DISCONNECT 1001 provider shutting down", l)
			}
		})
	})

	// A second Provider: the first one was shut down.
	prov2, ev2 := startProvider(t, func(o *provider.Options) {
		o.Heartbeat = provider.Heartbeat{Mode: provider.HeartbeatText, Interval: textHeartbeat}
		o.Auth.Parameters = map[string]string{"key": "SECRET KEY/1"}
	})
	for _, tc := range []struct {
		name   string
		params []string
	}{
		{"a bad key is rejected with 403", []string{"key=WRONG", "worker=1"}},
		{"a missing key is rejected with 403", []string{"worker=1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			track(t, "node ws@7 as network-cluster 1.0.4 consumer")
			before := prov2.Stats().Rejected["auth"]
			p := startNCConsumer(t, prov2.Addr().String(), tc.params...)
			if l := p.wait("REJECTED ", 10*time.Second); l != "REJECTED 403 Unauthorized" {
				t.Errorf("%q, want REJECTED 403 Unauthorized", l)
			}
			p.wait("CLOSE 403", 5*time.Second) // final: no retry
			if err := p.waitExit(10 * time.Second); err != nil {
				t.Errorf("nc-consumer.js: %v", err)
			}
			if n := p.count("RECONNECT"); n != 0 {
				t.Errorf("%d reconnects after a 403", n)
			}
			if got := prov2.Stats().Rejected["auth"] - before; got != 1 {
				t.Errorf("auth rejections %d, want 1", got)
			}
			if n := len(ev2.opened()); n != 0 {
				t.Errorf("%d connections opened", n)
			}
		})
	}
}
