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

// tableSize returns the slots of an open-addressed table for n keys (a
// power of two, at most half full) and the shift of hashSlot for it.
func tableSize(n int) (int, uint8) {
	size := 16
	for size < 2*n {
		size *= 2
	}
	return size, uint8(64 - bits.TrailingZeros(uint(size)))
}

// hashSlot is where a table of tableSize's shift starts looking for ino:
// a multiplicative (Fibonacci) hash.
func hashSlot(ino uint64, shift uint8) int {
	return int((ino * 0x9e3779b97f4a7c15) >> shift)
}

// newInodeSet returns the set of the non-zero keys of want.
func newInodeSet(want map[uint64]struct{}) *inodeSet {
	size, shift := tableSize(len(want))
	s := &inodeSet{slots: make([]uint64, size), shift: shift}
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

func (s *inodeSet) slot(ino uint64) int { return hashSlot(ino, s.shift) }

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

// inodeIndex finds where the run of each non-zero inode of a sorted
// slice starts, for Owners.HoldersOf: attaching owners looks up every
// listed socket two or three times, and a binary search over the holders
// was 2% of a listing. The same open addressing as inodeSet, but a slot
// holds only a position in the slice (plus one; 0 is free), whose inode
// the slice has: 4 bytes a slot, 1 MB for a host of 100,000 sockets.
type inodeIndex struct {
	sorted []uint64
	slots  []int32
	shift  uint8
}

// newInodeIndex indexes sorted, a slice in increasing order.
func newInodeIndex(sorted []uint64) *inodeIndex {
	size, shift := tableSize(len(sorted))
	x := &inodeIndex{sorted: sorted, slots: make([]int32, size), shift: shift}
	for i, ino := range sorted {
		if ino == 0 || (i > 0 && sorted[i-1] == ino) {
			continue
		}
		j := hashSlot(ino, x.shift)
		for x.slots[j] != 0 {
			j = (j + 1) & (size - 1)
		}
		x.slots[j] = int32(i + 1)
	}
	return x
}

// find returns where the run of ino starts, and whether there is one.
func (x *inodeIndex) find(ino uint64) (int, bool) {
	if ino == 0 {
		return 0, false
	}
	for j := hashSlot(ino, x.shift); ; j = (j + 1) & (len(x.slots) - 1) {
		p := x.slots[j]
		if p == 0 {
			return 0, false
		}
		if x.sorted[p-1] == ino {
			return int(p - 1), true
		}
	}
}
