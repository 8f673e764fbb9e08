package poller

import (
	"net"
	"syscall"
	"testing"
)

// Peer addresses from one host share their IP's bytes; each is still the
// right address.
func TestSharedIPv4(t *testing.T) {
	a := sockaddrToTCP(&syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 1000}).(*net.TCPAddr)
	b := sockaddrToTCP(&syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 2000}).(*net.TCPAddr)
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
		got := sockaddrToTCP(&syscall.SockaddrInet4{Addr: ip, Port: i}).(*net.TCPAddr)
		if !got.IP.Equal(net.IP(ip[:])) || got.Port != i {
			t.Fatalf("%v:%d gave %v", ip, i, got)
		}
	}
	if a.String() != "127.0.0.1:1000" {
		t.Fatalf("an earlier address changed to %v", a)
	}
	if !raceEnabled && testing.AllocsPerRun(100, func() {
		sockaddrToTCP(&syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: 1000})
	}) > 1 {
		t.Error("a cached IP is allocated again")
	}
}
