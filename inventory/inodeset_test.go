package inventory

import (
	"math/rand/v2"
	"slices"
	"testing"
)

// TestInodeSet checks the set against a map on dense, sparse and
// colliding inodes, with every non-member probed around each member.
func TestInodeSet(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for _, tc := range inodeCases(r, 1) {
		want := map[uint64]struct{}{}
		for i := range tc.n {
			want[tc.gen(i)] = struct{}{}
		}
		s := newInodeSet(want)
		for ino := range want {
			for _, q := range []uint64{ino - 1, ino, ino + 1, ino ^ 1<<40} {
				_, in := want[q]
				if got := s.has(q); got != (in && q != 0) {
					t.Errorf("%s: has(%d) = %v, want %v", tc.name, q, got, in && q != 0)
				}
			}
		}
		for range 10000 {
			q := r.Uint64() >> r.IntN(64)
			if _, in := want[q]; s.has(q) != (in && q != 0) {
				t.Errorf("%s: has(%d) = %v", tc.name, q, s.has(q))
			}
		}
		if s.has(0) {
			t.Errorf("%s: has(0)", tc.name)
		}
	}
}

func BenchmarkInodeSet(b *testing.B) {
	want := map[uint64]struct{}{}
	for i := range 8000 {
		want[uint64(200000+3*i)] = struct{}{}
	}
	s := newInodeSet(want)
	probes := make([]uint64, 27000)
	for i := range probes {
		probes[i] = uint64(200000 + i)
	}
	b.Run("set", func(b *testing.B) {
		n := 0
		for b.Loop() {
			for _, q := range probes {
				if s.has(q) {
					n++
				}
			}
		}
	})
	b.Run("map", func(b *testing.B) {
		n := 0
		for b.Loop() {
			for _, q := range probes {
				if _, ok := want[q]; ok {
					n++
				}
			}
		}
	})
}

// TestInodeIndex checks the index against a binary search of the sorted
// slice it indexes, on dense, sparse and colliding inodes with runs.
func TestInodeIndex(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, tc := range inodeCases(r, 3) {
		sorted := make([]uint64, tc.n)
		for i := range sorted {
			sorted[i] = tc.gen(i)
		}
		slices.Sort(sorted)
		x := newInodeIndex(sorted)
		check := func(q uint64) {
			i, found := slices.BinarySearch(sorted, q)
			got, ok := x.find(q)
			if q == 0 {
				found = false
			}
			if ok != found || (found && got != i) {
				t.Errorf("%s: find(%d) = %d, %v; want %d, %v", tc.name, q, got, ok, i, found)
			}
		}
		for _, ino := range sorted {
			for _, q := range []uint64{ino - 1, ino, ino + 1, ino ^ 1<<40} {
				check(q)
			}
		}
		for range 10000 {
			check(r.Uint64() >> r.IntN(64))
		}
		check(0)
	}
}

// inodeCase is a set of inodes for the tests of inodeSet and inodeIndex:
// inode gen(i) for i below n.
type inodeCase struct {
	name string
	gen  func(i int) uint64
	n    int
}

// inodeCases are dense, sparse and colliding inodes, and inode 0, each
// repeated runs times in a row (a socket held by several fds).
func inodeCases(r *rand.Rand, runs int) []inodeCase {
	var last uint64
	random := func(f func() uint64) func(int) uint64 {
		return func(i int) uint64 {
			if i%runs == 0 {
				last = f()
			}
			return last
		}
	}
	return []inodeCase{
		{"empty", nil, 0},
		{"one", func(int) uint64 { return 4242 }, runs},
		{"dense", func(i int) uint64 { return 100000 + uint64(i/runs) }, 5000},
		{"sparse", random(r.Uint64), 3000},
		{"32-bit", random(func() uint64 { return uint64(r.Uint32()) }), 7000},
		{"same hash slot", func(i int) uint64 { return uint64(i/runs+1) << 50 }, 12 * runs},
		{"with zero", func(i int) uint64 { return uint64(i / runs) }, 50},
	}
}
