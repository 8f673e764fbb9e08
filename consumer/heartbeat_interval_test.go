package consumer

import (
	"testing"
	"time"

	"github.com/gobwas/ws"
	"github.com/networkcluster/networkcluster/internal/proto"
)

// A Provider may announce a huge interval (Number.MAX_SAFE_INTEGER ms from a
// Node Provider configured to "never" ping, or 5e12 ms in the header): the
// cutoff, twice the interval, must not wrap around to a negative duration
// that drops the connection at once.
func TestHugeHeartbeatInterval(t *testing.T) {
	cases := []struct {
		name string
		o    srvOpts
	}{
		{"header", srvOpts{mode: hbHeader, interval: 5_000_000_000_000 * time.Millisecond, pingEvery: -1}},
		{"text", srvOpts{onOpen: func(sc *srvConn) {
			_ = sc.write(ws.OpText, []byte(proto.TextHeartbeatPrefix+"9007199254740991"))
		}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newTestServer(t, tc.o)
			c, ev := newConsumer(t, s.port, func(o *Options) { o.Reconnect.Interval = time.Hour })
			if err := c.Connect(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			_ = c.Send("x")
			waitFor(t, 5*time.Second, "the echo or a disconnect", func() bool {
				_, d, _, _, m := ev.snapshot()
				return len(m) == 1 || len(d) > 0
			})
			opens, disc, _, errs, msgs := ev.snapshot()
			if opens != 1 || len(disc) != 0 || len(msgs) != 1 {
				t.Fatalf("opens=%d disconnects=%v errors=%v messages=%d: the connection must stay up", opens, disc, errs, len(msgs))
			}
			if iv, co := c.HeartbeatInterval(), c.HeartbeatCutoff(); iv <= 0 || co < iv {
				t.Fatalf("HeartbeatInterval %v, HeartbeatCutoff %v", iv, co)
			}
		})
	}
}
