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
	if end > start {
		unix.Madvise(unsafe.Slice((*byte)(unsafe.Add(base, start-p)), end-start), unix.MADV_HUGEPAGE)
	}
	runtime.KeepAlive(b)
	b = nil
	// Free the block now, so the pages are the next ones handed out.
	runtime.GC()
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
