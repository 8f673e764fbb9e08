package main

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"os"
	"strconv"
	"strings"
)

// target is a parsed --target.
type target struct {
	Scheme     string // ws, wss or tcp (the raw TCP mirror)
	Addr       string // host:port to dial (a resolved loopback IP unless remote)
	Host       string // Host header
	RequestURI string // path and query
	IP         net.IP // the address dialed, when known
}

// defaultPath is used when a ws:// target has no path: the Provider's
// default endpoint.
const defaultPath = "/connect"

// parseTarget parses and vets a target URL: ws://HOST:PORT/PATH?QUERY,
// wss://… or tcp://HOST:PORT. Unless allowRemote, the host must be an
// address of 127.0.0.0/8, or a name that resolves only to loopback
// addresses: the harness opens thousands of connections and must not be
// pointed at someone else's server by a typo.
func parseTarget(ctx context.Context, s string, allowRemote bool) (*target, error) {
	return parseTargetWith(s, allowRemote, func(host string) ([]net.IP, error) {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		ips := make([]net.IP, len(addrs))
		for i, a := range addrs {
			ips[i] = a.IP
		}
		return ips, err
	})
}

// parseTargetWith is parseTarget with the resolver given.
func parseTargetWith(s string, allowRemote bool, lookup func(host string) ([]net.IP, error)) (*target, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrTarget, err)
	}
	t := &target{Scheme: strings.ToLower(u.Scheme)}
	switch t.Scheme {
	case "ws", "wss", "tcp":
	default:
		return nil, fmt.Errorf("%w: %q: the scheme must be ws, wss or tcp", ErrTarget, s)
	}
	if u.User != nil || u.Fragment != "" || u.Opaque != "" {
		return nil, fmt.Errorf("%w: %q: no user info, fragment or opaque part", ErrTarget, s)
	}
	host, port := u.Hostname(), u.Port()
	if host == "" {
		return nil, fmt.Errorf("%w: %q has no host", ErrTarget, s)
	}
	if port == "" {
		switch t.Scheme {
		case "ws":
			port = "80"
		case "wss":
			port = "443"
		default:
			return nil, fmt.Errorf("%w: %q: a tcp target needs a port", ErrTarget, s)
		}
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("%w: %q: bad port", ErrTarget, s)
	}
	t.Host = u.Host
	t.RequestURI = u.RequestURI()
	if u.Path == "" {
		t.RequestURI = defaultPath
		if u.RawQuery != "" {
			t.RequestURI += "?" + u.RawQuery
		}
	}
	if t.Scheme == "tcp" && (u.Path != "" && u.Path != "/" || u.RawQuery != "") {
		return nil, fmt.Errorf("%w: %q: a tcp target has no path or query", ErrTarget, s)
	}
	var ips []net.IP
	if ip := net.ParseIP(host); ip != nil {
		ips = []net.IP{ip}
	} else if ips, err = lookup(host); err != nil {
		return nil, fmt.Errorf("%w: resolving %q: %v", ErrTarget, host, err)
	}
	var pick net.IP
	for _, ip := range ips {
		if isLoopback4(ip) {
			if pick == nil {
				pick = ip
			}
		} else if !allowRemote && !ip.IsLoopback() { // "localhost" is ::1 too
			return nil, fmt.Errorf("%w: %s is %s, not on 127.0.0.0/8: the harness only targets loopback unless --allow-remote is given",
				ErrTarget, host, ip)
		}
	}
	if pick == nil {
		if !allowRemote || len(ips) == 0 {
			return nil, fmt.Errorf("%w: %s has no 127.0.0.0/8 address", ErrTarget, host)
		}
		pick = ips[0]
	}
	t.IP = pick
	t.Addr = net.JoinHostPort(pick.String(), port)
	return t, nil
}

// isLoopback4 reports whether ip is in 127.0.0.0/8.
func isLoopback4(ip net.IP) bool {
	v4 := ip.To4()
	return v4 != nil && v4[0] == 127
}

// sourceIPs returns the source addresses to spread connections to dst
// over: 127.0.0.1 … 127.0.0.n for a loopback dst on Linux, nil (the
// kernel's choice) otherwise or for n ≤ 1.
func sourceIPs(dst net.IP, n int) []net.IP {
	if !spreadSources || n <= 1 || dst == nil || !isLoopback4(dst) {
		return nil
	}
	n = min(n, 254)
	out := make([]net.IP, n)
	for i := range out {
		out[i] = net.IPv4(127, 0, 0, byte(1+i))
	}
	return out
}

// defaultSources is how many 127.0.0.x source addresses connections are
// spread over by default: each gives about 28 000 ephemeral ports per
// server address, so several `run` processes against one server stay
// clear of the port limit.
const defaultSources = 4

// fdOverhead is the file descriptors the harness needs besides its
// connections (stdio, control connection, pipes to servers, epoll, …).
const fdOverhead = 64

// checkLimits says clearly, before anything is dialed, when conns
// connections cannot be held by this process (RLIMIT_NOFILE, after raising
// the soft limit to the hard one) or when the ephemeral ports of the
// sources would run out.
func checkLimits(conns, sources int) error {
	soft, hard, err := raiseNoFile()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrLimit, err)
	}
	if need := uint64(conns + fdOverhead); need > soft {
		return fmt.Errorf("%w: %d connections need about %d file descriptors in this process, but its open-file "+
			"limit (RLIMIT_NOFILE) is %d (hard limit %d). On loopback the client and the server each hold one "+
			"descriptor per connection, in their own processes. Use --conns %d or less, or start several "+
			"`loadtest run` processes against one `loadtest serve`, or raise the hard limit (ulimit -Hn, "+
			"LimitNOFILE=)", ErrLimit, conns, need, soft, hard, soft-fdOverhead)
	}
	lo, hi := ephemeralRange()
	ports := hi - lo + 1
	if sources < 1 {
		sources = 1
	}
	if per := (conns + sources - 1) / sources; ports > 0 && per > ports-512 {
		return fmt.Errorf("%w: %d connections from %d source address(es) need %d ephemeral ports each, but the "+
			"range %d-%d has %d: use --sources %d or more", ErrLimit, conns, sources, per, lo, hi, ports,
			(conns+ports-513)/(ports-512))
	}
	return nil
}

// ephemeralRange reads net.ipv4.ip_local_port_range (Linux's default
// 32768–60999 when unreadable).
func ephemeralRange() (lo, hi int) {
	lo, hi = 32768, 60999
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return lo, hi
	}
	f := strings.Fields(string(b))
	if len(f) == 2 {
		a, err1 := strconv.Atoi(f[0])
		z, err2 := strconv.Atoi(f[1])
		if err1 == nil && err2 == nil && a > 0 && z >= a && z < 65536 {
			return a, z
		}
	}
	return lo, hi
}
