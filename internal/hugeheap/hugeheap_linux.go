// Package hugeheap backs the heap of a short-lived command with
// transparent huge pages, where the kernel offers them on request
// (/sys/kernel/mm/transparent_hugepage/enabled set to "madvise", the
// default of most distributions).
//
// A one-shot "porteiro list" touches about 15 MB of fresh heap, one page
// fault per 4 KiB page. In a virtual machine a fault can cost 15 to 20
// µs (a nested page-table update), and the faults of one listing then
// took a third of its CPU time, more than the kernel's whole socket dump.
// A 2 MiB huge page costs one fault for 512 pages.
//
// The Go runtime asks for huge pages only when the system gives them to
// everyone (THP "always"), and offers no setting to ask for them
// otherwise. So Enable allocates one large block, which the runtime maps
// fresh and leaves untouched, marks its range MADV_HUGEPAGE, and frees it
// at once with a collection: the runtime hands out the lowest free pages
// first, so the command's next allocations come from that range, and
// their faults are huge pages. The mark stays on the mapping for the life
// of the process; memory the runtime gives back is faulted in again the
// same way.
//
// The block starts where the heap ended, on no particular boundary. Its
// part below the first huge page boundary (up to 2 MiB, 1 MiB on
// average) cannot be marked, and being the lowest it would be handed out
// first, one small page fault per 4 KiB: about 250 faults, 5 ms of CPU on
// average. So Enable holds that part with an allocation that nothing ever
// touches (hold), and the command's allocations start on the boundary.
//
// Only the client's one-shot commands use it: a long-running process
// gains nothing from cheaper first faults, and its resident size would
// round up to whole huge pages.
package hugeheap

import (
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// enabled is set by the first Enable.
var enabled atomic.Bool

// hugePage is the size of a transparent huge page on the architectures
// Go supports for Linux with 4 KiB pages.
const hugePage = 2 << 20

// Enable marks a range of size bytes of fresh heap for huge pages. It
// does nothing when GODEBUG says disablethp=1 (the runtime's own switch
// for keeping huge pages out of the heap), or when the kernel refuses.
// Call it first thing in main, before the heap grows.
func Enable(size int) {
	if size < 2*hugePage || thpDisabled(os.Getenv("GODEBUG")) || !enabled.CompareAndSwap(false, true) {
		return // once per process: the mark stays
	}
	// No collection while the block is allocated: one this large would
	// start one (the first goal is 4 MB), and the one below would then
	// wait for it. Each collection's sweep takes fresh pages for the
	// runtime's span lists.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	b := make([]byte, size) // fresh from the kernel: not zeroed by hand, not touched
	base := unsafe.Pointer(unsafe.SliceData(b))
	p := uintptr(base)
	start := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + uintptr(size)) &^ (hugePage - 1)
	ok := end > start && unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, start-p)), end-start), unix.MADV_HUGEPAGE) == nil
	runtime.KeepAlive(b)
	b = nil
	// Free the block now, so the pages are the next ones handed out.
	runtime.GC()
	if ok {
		hold(p, start)
		marked.block, marked.start, marked.end = p, start, end
	}
}

// held keeps the allocations of hold for the life of the process.
var held []*strings.Builder

// marked is where the block began and the range Enable marked, for the
// tests.
var marked struct{ block, start, end uintptr }

// minHold is the least head worth holding: below it, a few pages.
const minHold = 64 << 10

// hold allocates the free pages from p, where the freed block began, up
// to start, its first huge page boundary, and keeps them, so that the
// allocations after it begin at start.
//
// The memory is never written: strings.Builder.Grow allocates without
// clearing (make would clear the freed pages, and fault each in), and a
// page never touched costs no memory. The allocator takes the lowest run
// of free pages that fits: when a hole lower in the heap is that large,
// the allocation fills it instead, and hold tries again.
func hold(p, start uintptr) {
	for range 8 {
		if start-p < minHold {
			return
		}
		sb := new(strings.Builder)
		sb.Grow(int(start - p))
		held = append(held, sb)
		if a := uintptr(unsafe.Pointer(unsafe.StringData(sb.String()))); a >= p {
			return // the head itself, or (taken meanwhile) beyond it
		}
	}
}

// thpDisabled reports whether a GODEBUG value sets disablethp=1 (the
// last setting of a key wins, as in the runtime).
func thpDisabled(godebug string) bool {
	off := false
	for _, kv := range strings.Split(godebug, ",") {
		if k, v, ok := strings.Cut(strings.TrimSpace(kv), "="); ok && k == "disablethp" {
			off = v == "1"
		}
	}
	return off
}
