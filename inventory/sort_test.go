package inventory

import (
	"math/rand"
	"net/netip"
	"slices"
	"testing"
)

// TestSortSockets checks the key sort and in-place permutation against a
// plain stable sort of the values, on random sockets with many ties.
func TestSortSockets(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	addrs := []netip.Addr{netip.MustParseAddr("0.0.0.0"), netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::"), netip.MustParseAddr("::1")}
	for round := 0; round < 50; round++ {
		n := r.Intn(300)
		socks := make([]Socket, n)
		for i := range socks {
			socks[i] = Socket{
				Proto:  []Proto{TCP, UDP}[r.Intn(2)],
				Local:  Endpoint{Address: addrs[r.Intn(len(addrs))], Port: uint16(r.Intn(5))},
				Remote: Endpoint{Address: addrs[r.Intn(len(addrs))], Port: uint16(r.Intn(3))},
				Inode:  uint64(r.Intn(20)),
				UID:    uint32(i), // tells equal-keyed sockets apart
			}
		}
		want := slices.Clone(socks)
		slices.SortStableFunc(want, func(a, b Socket) int {
			ka := sortKey{local: a.Local.Address, remote: a.Remote.Address, inode: a.Inode, lport: a.Local.Port, rport: a.Remote.Port, proto: a.Proto}
			kb := sortKey{local: b.Local.Address, remote: b.Remote.Address, inode: b.Inode, lport: b.Local.Port, rport: b.Remote.Port, proto: b.Proto}
			switch {
			case ka.proto != kb.proto:
				return map[bool]int{true: -1, false: 1}[ka.proto < kb.proto]
			case ka.lport != kb.lport:
				return int(ka.lport) - int(kb.lport)
			case ka.local != kb.local:
				return ka.local.Compare(kb.local)
			case ka.rport != kb.rport:
				return int(ka.rport) - int(kb.rport)
			case ka.remote != kb.remote:
				return ka.remote.Compare(kb.remote)
			case ka.inode != kb.inode:
				return map[bool]int{true: -1, false: 1}[ka.inode < kb.inode]
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
