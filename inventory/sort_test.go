package inventory

import (
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"
)

// TestSortSockets checks the key sort and in-place permutation against a
// plain stable sort of the values, on random sockets with many ties.
func TestSortSockets(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	addrs := []netip.Addr{{}, netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("10.0.0.255"), netip.MustParseAddr("10.1.0.0"), netip.MustParseAddr("255.255.255.255"),
		netip.MustParseAddr("::"), netip.MustParseAddr("::1"), netip.MustParseAddr("::ffff:127.0.0.1"),
		netip.MustParseAddr("fe80::1"), netip.MustParseAddr("2001:db8::ff00"), netip.MustParseAddr("2001:db8::1:0")}
	for round := 0; round < 50; round++ {
		n := r.Intn(300)
		if round == 0 {
			n = 3000
		}
		socks := make([]Socket, n)
		for i := range socks {
			socks[i] = Socket{
				Proto:  []Proto{TCP, UDP}[r.Intn(2)],
				Local:  Endpoint{Address: addrs[r.Intn(len(addrs))], Port: uint16(r.Intn(5))},
				Remote: Endpoint{Address: addrs[r.Intn(len(addrs))], Port: uint16(r.Intn(3))},
				Inode:  uint64(r.Intn(20)) << (8 * r.Intn(8)),
				UID:    uint32(i), // tells equal-keyed sockets apart
			}
		}
		want := slices.Clone(socks)
		slices.SortStableFunc(want, func(a, b Socket) int {
			// The order porteiro promises, spelled out field by field.
			switch {
			case a.Proto != b.Proto:
				return strings.Compare(string(a.Proto), string(b.Proto))
			case a.Local.Port != b.Local.Port:
				return int(a.Local.Port) - int(b.Local.Port)
			case a.Local.Address != b.Local.Address:
				return a.Local.Address.Compare(b.Local.Address)
			case a.Remote.Port != b.Remote.Port:
				return int(a.Remote.Port) - int(b.Remote.Port)
			case a.Remote.Address != b.Remote.Address:
				return a.Remote.Address.Compare(b.Remote.Address)
			case a.Inode != b.Inode:
				return map[bool]int{true: -1, false: 1}[a.Inode < b.Inode]
			}
			return 0
		})
		sortSockets(socks)
		for i := range socks {
			if socks[i].UID != want[i].UID {
				t.Fatalf("round %d: position %d holds socket %d, want %d", round, i, socks[i].UID, want[i].UID)
			}
		}
	}
}

// TestMaskDropsTCPClose: CLOSE is how a listening UDP socket is asked for;
// in a TCP mask it only makes the kernel walk every connection for nothing.
func TestMaskDropsTCPClose(t *testing.T) {
	listening, err := ParseStates("listening")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		q        Query
		tcp, udp StateMask
	}{
		{Query{}, MaskTCPListen, MaskUDPListen},
		{Query{States: listening}, MaskTCPListen, MaskTCPListen | MaskUDPListen},
		{Query{States: MaskAll}, MaskAll &^ (1 << TCPClose), MaskAll},
		{Query{States: MaskUDPListen}, MaskUDPListen, MaskUDPListen}, // CLOSE alone is what was asked
	} {
		if got := tc.q.Mask(TCP); got != tc.tcp {
			t.Errorf("states %#x: TCP mask %#x, want %#x", tc.q.States, got, tc.tcp)
		}
		if got := tc.q.Mask(UDP); got != tc.udp {
			t.Errorf("states %#x: UDP mask %#x, want %#x", tc.q.States, got, tc.udp)
		}
	}
}
