package provider

// Conformance cases after the sections of Autobahn|Testsuite (its
// fuzzingclient mode: the suite is the client, the Provider the server
// under test): framing (1), pings and pongs (2), reserved bits (3), opcodes
// (4), fragmentation (5), UTF-8 (6), closing (7), limits and large messages
// (9) and auto-fragmentation (10), whose tables internal/wstest/conformance
// shares with the Consumer's cases; permessage-deflate (12, 13) is in
// conformance_deflate_test.go. Each case names the Autobahn case it follows
// (our own cases say "-") and the RFC section that decides what the
// Provider must do. The Provider echoes every message; the raw client of
// internal/wstest sends exactly the bytes of each case over a real socket
// (see conformance_runner_test.go).

import (
	"testing"
	"unicode/utf8"

	"github.com/networkcluster/networkcluster/frame"
	cf "github.com/networkcluster/networkcluster/internal/wstest/conformance"
)

// cfEchoProvider starts an echo Provider for the conformance cases: no
// heartbeat (no pings interleave with the cases) and a 1 MiB message limit.
func cfEchoProvider(t *testing.T, o Options) (*Provider, *events, string) {
	mustEcho(&o)
	o.Heartbeat.Mode = HeartbeatOff
	if o.MaxPayloadLength == 0 {
		o.MaxPayloadLength = 1 << 20
	}
	return start(t, o)
}

// TestConformance runs sections 1 to 7 and 10 against one Provider.
func TestConformance(t *testing.T) {
	_, e, addr := cfEchoProvider(t, Options{})
	sections := []struct {
		name  string
		cases []cf.Case
	}{
		{"1 framing", cf.Section1(cf.Client)},
		{"2 pings and pongs", cf.Section2(cf.Client)},
		{"3 reserved bits", cf.Section3(cf.Client)},
		{"4 opcodes", cf.Section4(cf.Client)},
		{"5 fragmentation", cf.Section5(cf.Client)},
		{"6 UTF-8", cf.Section6(cf.Client)},
		{"7 close", cf.Section7(cf.Client)},
		{"10 auto-fragmentation", cf.Section10(cf.Client)},
	}
	for _, sec := range sections {
		t.Run(sec.name, func(t *testing.T) { cfRun(t, e, addr, sec.cases) })
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.messages {
		if !m.bin && !utf8.ValidString(m.data) {
			t.Errorf("invalid UTF-8 delivered to OnMessage: %q", m.data)
		}
	}
}

// TestConformanceServerClose: the Provider starts the closing handshake
// (RFC 6455 §7.1.2): its close frame carries the code and reason, it sends
// nothing after it, data the client sent before seeing it is not
// delivered, and it closes TCP once the client answers.
func TestConformanceServerClose(t *testing.T) {
	o := Options{}
	o.Heartbeat.Mode = HeartbeatOff
	o.OnMessage = func(c *Connection, m Message) {
		if string(m.Data) == "close please" {
			_ = c.Close(frame.CloseGoingAway, "bye now")
			if err := c.Send("after close"); err == nil {
				t.Error("Send after Close succeeded")
			}
			return
		}
		_ = c.SendText(m.Data)
	}
	_, e, addr := start(t, o)
	s := cfOpen(t, e, addr, "/connect")
	s.Where = "[-, RFC 6455 §7.1.2]"
	s.Run(cf.Steps(
		cf.Send(cf.Client.F(true, frame.OpText, "first")).Expect(cf.EvText("first")),
		// The client's message after "close please" crosses the close frame.
		cf.Send(cf.Client.F(true, frame.OpText, "close please"), cf.Client.F(true, frame.OpText, "in flight")).Expect(cf.EvClose(frame.CloseGoingAway)),
	))
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, m := range e.messages {
		if m.data == "in flight" {
			t.Error("a message that arrived after the Provider's close was delivered")
		}
	}
}

// TestConformanceLimits follows section 9 against a Provider whose limit is
// raised to 16 MiB (cf.Section9, answered with echoes). The limit is
// checked against a second Provider with a 1 MiB limit (RFC 6455 §10.4: a
// larger message fails the connection with 1009, §7.4.1).
func TestConformanceLimits(t *testing.T) {
	if testing.Short() {
		t.Skip("large messages")
	}
	t.Run("16 MiB", func(t *testing.T) {
		const max = 16 << 20
		_, e, addr := cfEchoProvider(t, Options{MaxPayloadLength: max, MaxBackpressure: 2 * max})
		cfRun(t, e, addr, cf.Section9(cf.Client, cf.Echo))
	})
	t.Run("limit", func(t *testing.T) {
		const max = 1 << 20
		_, e, addr := cfEchoProvider(t, Options{MaxPayloadLength: max})
		cfRun(t, e, addr, cf.LimitCases(cf.Client, max, "MaxPayloadLength", cf.Echo))
	})
}
