package bpfevents

import (
	"net/netip"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/inventory"
)

// Address families, as the kernel numbers them.
const (
	afInet  = 2
	afInet6 = 10
)

// closedCounter converts one entry of the closed_conns map: the local end
// of the connections (an IPv4 address in the first 4 bytes) and their sums.
// ok is false for a family that is neither IPv4 nor IPv6.
func closedCounter(netns uint32, family uint8, addr [16]byte, port uint16, in, out, closes uint64) (c localapi.ClosedCounter, ok bool) {
	switch family {
	case afInet:
		c.Family = string(inventory.IPv4)
		c.Address = netip.AddrFrom4([4]byte(addr[:4]))
	case afInet6:
		// Kept in its 16-byte form: an IPv4 client of a dual-stack
		// listener is ::ffff:a.b.c.d, as sock_diag reports it.
		c.Family = string(inventory.IPv6)
		c.Address = netip.AddrFrom16(addr)
	default:
		return c, false
	}
	c.NetNS, c.Port = uint64(netns), port
	c.BytesIn, c.BytesOut, c.Closes = in, out, closes
	return c, true
}
