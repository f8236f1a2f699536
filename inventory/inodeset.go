package inventory

import "math/bits"

// inodeSet is a set of socket inodes for the owner pass's test of every
// record the iterator writes (tens of thousands per scan, most of them
// misses: connected sockets a listing of listeners does not want). Open
// addressing with linear probing at most half full, and a multiplicative
// hash: about three times quicker than a map for this, where the map's
// lookup was 2% of a listing. Inode 0 is never a member; it marks a free
// slot.
type inodeSet struct {
	slots []uint64
	shift uint8
}

// newInodeSet returns the set of the non-zero keys of want.
func newInodeSet(want map[uint64]struct{}) *inodeSet {
	size := 16
	for size < 2*len(want) {
		size *= 2
	}
	s := &inodeSet{slots: make([]uint64, size), shift: uint8(64 - bits.TrailingZeros(uint(size)))}
	for ino := range want {
		if ino == 0 {
			continue
		}
		for i := s.slot(ino); ; i = (i + 1) & (len(s.slots) - 1) {
			if s.slots[i] == 0 {
				s.slots[i] = ino
				break
			}
			if s.slots[i] == ino {
				break
			}
		}
	}
	return s
}

func (s *inodeSet) slot(ino uint64) int {
	return int((ino * 0x9e3779b97f4a7c15) >> s.shift)
}

// has reports whether ino is in the set.
func (s *inodeSet) has(ino uint64) bool {
	if ino == 0 {
		return false
	}
	for i := s.slot(ino); ; i = (i + 1) & (len(s.slots) - 1) {
		switch s.slots[i] {
		case ino:
			return true
		case 0:
			return false
		}
	}
}
