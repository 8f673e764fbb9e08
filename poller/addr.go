package poller

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// connAddr is a Conn seen as its peer's address, for a connection of the
// netpoll engine from an IPv4 peer: netpoll keeps it as the connection's
// remote address, so that the address costs no allocation of its own (a
// *net.TCPAddr costs 48 bytes and its IP 16 more), and it leads netpoll's
// close callback to the Conn (a method value would cost 16 bytes more).
// [Conn.RemoteAddr] gives it as a *net.TCPAddr. Its fields ip4 and port
// are set before the Conn is shared and never change.
type connAddr Conn

func (a *connAddr) Network() string { return "tcp" }

func (a *connAddr) String() string {
	return netip.AddrPortFrom(netip.AddrFrom4(a.ip4), a.port).String()
}

// tcpAddrOf returns a as a *net.TCPAddr if it is a connAddr, else a.
func tcpAddrOf(a net.Addr) net.Addr {
	if ca, ok := a.(*connAddr); ok {
		return &net.TCPAddr{IP: sharedIPv4(ca.ip4), Port: int(ca.port)}
	}
	return a
}

// ip4Cache holds the 16-byte forms of recent IPv4 peer addresses, so that
// the addresses of connections from one host (a fleet of workers comes
// from a few) share their IP's bytes instead of holding a copy each.
// Direct-mapped; a miss makes the copy it would have made anyway.
var ip4Cache [64]atomic.Pointer[[net.IPv6len]byte]

// sharedIPv4 returns the IP a4 in its 16-byte form, shared with other
// addresses of the same IP: it must not be modified.
func sharedIPv4(a4 [4]byte) net.IP {
	slot := &ip4Cache[(uint32(a4[0])*0x9e3779b1^uint32(a4[1])*0x85ebca6b^uint32(a4[2])*0xc2b2ae35^uint32(a4[3])*0x27d4eb2f)>>26]
	if b := slot.Load(); b != nil && [4]byte(b[12:]) == a4 {
		return b[:]
	}
	b := &[net.IPv6len]byte{10: 0xff, 11: 0xff}
	copy(b[12:], a4[:])
	slot.Store(b)
	return b[:]
}
