// Package proto holds the wire conventions that the Provider and the
// Consumer share beyond RFC 6455: how the heartbeat interval is announced,
// and the text heartbeat of the Node network-cluster 1.0.4 package.
package proto

import (
	"math"
	"strconv"
	"time"
)

// HeartbeatHeader is the upgrade response header in which a Provider that
// uses RFC 6455 ping/pong control frames announces its heartbeat interval,
// in milliseconds. A Consumer expects a ping at least every 2 × interval.
const HeartbeatHeader = "X-Network-Cluster-Heartbeat"

// The Node network-cluster 1.0.4 text heartbeat: the Provider sends
// TextHeartbeatPrefix followed by the interval in milliseconds once, right
// after the connection opens, then TextPing each interval; the Consumer
// answers TextPong. Both sides swallow these messages.
const (
	TextHeartbeatPrefix = "PROVIDER_HEARTBEAT|"
	TextPing            = "PING"
	TextPong            = "PONG"
)

// FormatInterval renders d as whole milliseconds, the unit of both forms.
func FormatInterval(d time.Duration) string {
	return strconv.FormatInt(d.Milliseconds(), 10)
}

// maxIntervalMS is the largest interval ParseInterval returns, in
// milliseconds (about 146 years): twice it, the cutoff, still fits a
// time.Duration.
const maxIntervalMS = math.MaxInt64 / 2 / int64(time.Millisecond)

// ParseInterval parses a millisecond count as sent by either form. It
// accepts only a positive decimal integer (Node may send a float such as
// "10000.0"; the fraction is ignored). A count above maxIntervalMS is
// clamped to it.
func ParseInterval(s string) (time.Duration, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			s = s[:i]
			break
		}
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms <= 0 {
		return 0, false
	}
	ms = min(ms, maxIntervalMS)
	return time.Duration(ms) * time.Millisecond, true
}

// ParseTextHeartbeat reports whether msg is the text announcement
// "PROVIDER_HEARTBEAT|<ms>" and returns the interval it carries.
func ParseTextHeartbeat(msg []byte) (time.Duration, bool) {
	if len(msg) <= len(TextHeartbeatPrefix) || string(msg[:len(TextHeartbeatPrefix)]) != TextHeartbeatPrefix {
		return 0, false
	}
	return ParseInterval(string(msg[len(TextHeartbeatPrefix):]))
}
