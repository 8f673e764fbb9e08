package poller

import (
	"net"
	"net/netip"
	"sync/atomic"
)

// peerAddr4 is the remote address of an accepted IPv4 connection as netpoll
// keeps it for us: 16 bytes, where a *net.TCPAddr costs 48 and its IP 16
// more. [Conn.RemoteAddr] gives it as a *net.TCPAddr. It also leads netpoll's
// close callback to the Conn (a method value would cost 16 bytes more).
type peerAddr4 struct {
	c    *Conn // set as netpoll prepares the connection
	ip   [4]byte
	port uint16
}

func (a *peerAddr4) Network() string { return "tcp" }

func (a *peerAddr4) String() string {
	return netip.AddrPortFrom(netip.AddrFrom4(a.ip), a.port).String()
}

// tcpAddrOf returns a as a *net.TCPAddr if it is a peerAddr4, else a.
func tcpAddrOf(a net.Addr) net.Addr {
	if pa, ok := a.(*peerAddr4); ok {
		return &net.TCPAddr{IP: sharedIPv4(pa.ip), Port: int(pa.port)}
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
