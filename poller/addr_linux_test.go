package poller

import (
	"context"
	"net"
	"syscall"
	"testing"
)

// An accepted connection's address is kept compact and given as a
// *net.TCPAddr; those from one host share their IP's bytes, and each is
// still the right address.
func TestSharedIPv4(t *testing.T) {
	sockaddrToTCP := func(sa syscall.Sockaddr) net.Addr { return peerAddr(&Poller{}, sa) }
	a := tcpAddrOf(sockaddrToTCP(&syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 1000})).(*net.TCPAddr)
	b := tcpAddrOf(sockaddrToTCP(&syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 2000})).(*net.TCPAddr)
	if a.String() != "127.0.0.1:1000" || b.String() != "127.0.0.1:2000" {
		t.Fatalf("addresses %v, %v", a, b)
	}
	if &a.IP[0] != &b.IP[0] {
		t.Error("two connections from 127.0.0.1 hold an IP each")
	}
	if len(a.IP) != net.IPv6len || !a.IP.Equal(net.IPv4(127, 0, 0, 1)) {
		t.Errorf("IP %v (%d bytes)", a.IP, len(a.IP))
	}
	for i := range 300 { // more addresses than the cache holds, some colliding
		ip := [4]byte{10, byte(i >> 8), byte(i), 7}
		pa := sockaddrToTCP(&syscall.SockaddrInet4{Addr: ip, Port: i})
		got := tcpAddrOf(pa).(*net.TCPAddr)
		if pa.String() != got.String() || pa.Network() != "tcp" {
			t.Fatalf("compact %s/%s, full %s", pa.Network(), pa, got)
		}
		if !got.IP.Equal(net.IP(ip[:])) || got.Port != i {
			t.Fatalf("%v:%d gave %v", ip, i, got)
		}
	}
	if a.String() != "127.0.0.1:1000" {
		t.Fatalf("an earlier address changed to %v", a)
	}
	pa := sockaddrToTCP(&syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 1000})
	if !raceEnabled && testing.AllocsPerRun(100, func() { tcpAddrOf(pa) }) > 1 {
		t.Error("a cached IP is allocated again")
	}
	six := &syscall.SockaddrInet6{Addr: [16]byte{15: 1}, Port: 443}
	if got := tcpAddrOf(sockaddrToTCP(six)).(*net.TCPAddr); got.String() != "[::1]:443" {
		t.Errorf("IPv6 address %v", got)
	}
}

// On the netpoll engine, an IPv4 connection's RemoteAddr is a *net.TCPAddr:
// the client's address.
func TestRemoteAddrIPv4(t *testing.T) {
	h := &testHandler{tb: t, data: echo}
	p, err := Listen(context.Background(), "tcp", "127.0.0.1:0", h, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := dialTCP(t, p.Addr().String())
	defer c.Close()
	var remote net.Addr
	waitFor(t, "a conn", func() bool {
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, sc := range p.slots {
			if sc != nil {
				remote = sc.RemoteAddr()
				if ca, ok := sc.nc.RemoteAddr().(*connAddr); !ok || (*Conn)(ca) != sc {
					t.Errorf("netpoll keeps %T as the address, not the Conn", sc.nc.RemoteAddr())
				}
				return true
			}
		}
		return false
	})
	if ra, ok := remote.(*net.TCPAddr); !ok || ra.String() != c.LocalAddr().String() {
		t.Fatalf("RemoteAddr = %T %v, want %v", remote, remote, c.LocalAddr())
	}
}
