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
// otherwise. So Enable has the runtime map a large range fresh, marks it
// MADV_HUGEPAGE while nothing has touched it, and has it freed: the
// runtime hands out the lowest free pages first, so the command's next
// allocations come from that range, and their faults are huge pages. The
// mark stays on the mapping for the life of the process; memory the
// runtime gives back is faulted in again the same way.
//
// The range is the stack of a goroutine (viaStacks) that calls a function
// whose frame is 30 MiB of variables that are never written: the runtime
// gives it a stack of 32 MiB, from the heap, untouched but for its top.
// When the goroutine ends, its stack goes back to the heap at once. An
// allocation freed instead would wait for a collection, and the first
// collection of a process costs 3 to 5 ms here (the first faults of the
// runtime's own span lists, mostly). Should the stacks not serve
// (another compiler or runtime), Enable falls back to that: one large
// allocation, marked, then freed by a collection.
//
// Either range is placed on a huge page boundary: a part below the first
// boundary could not be marked, and being the lowest it would be handed
// out first, in small pages (up to 2 MiB, 5 ms of CPU on average). Until
// the first collection the runtime frees nothing, so large allocations
// are laid one after another from the top of the heap: an allocation that
// is never touched, from that top up to the next boundary, puts the range
// on it (alignTop). A block the fallback could not place has its part
// below the boundary held (hold).
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
	"sync"
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
	// No collection while the range is taken: one this large would start
	// one.
	defer debug.SetGCPercent(debug.SetGCPercent(-1))
	alignTop()
	if !noStacks {
		if start, end, ok := viaStacks(size); ok {
			marked.start, marked.end, marked.stacks = start, end, true
			return
		}
	}
	// Allocated without clearing, so never touched: the runtime clears
	// memory it had freed (the stacks') when it hands it out again.
	b := new(strings.Builder)
	b.Grow(size)
	p := addrOf(b)
	start := (p + hugePage - 1) &^ (hugePage - 1)
	end := (p + uintptr(size)) &^ (hugePage - 1)
	ok := end > start && madvise(start, end, unix.MADV_HUGEPAGE) == nil
	runtime.KeepAlive(b)
	b = nil
	// Free the block now, so the pages are the next ones handed out.
	runtime.GC()
	if ok {
		hold(p, start)
		marked.start, marked.end = start, end
	}
}

// noStacks makes Enable use the block (the tests' fault injection).
var noStacks bool

// The stack the runtime gives a goroutine in deepFrame, and the page size
// of the runtime's heap, to which stacks are aligned.
const (
	stackBlock = 32 << 20
	heapPage   = 8 << 10
)

// viaStacks marks the stacks of size/stackBlock goroutines for huge pages
// and has them freed, and returns the range marked: each stack but its
// top huge page, where the goroutine's first frames are. It reports false
// when the stacks did not end up where the next allocations come from.
func viaStacks(size int) (start, end uintptr, ok bool) {
	n := max(size/stackBlock, 1)
	tops := make([]uintptr, n)
	release := make(chan struct{})
	var grown, done sync.WaitGroup
	for i := range n {
		grown.Add(1)
		done.Add(1)
		go func() {
			defer done.Done()
			deepFrame(0)
			// After the stack grew (it moved): in the goroutine's first
			// frame, at the top of its stack.
			var here byte
			tops[i] = uintptr(unsafe.Pointer(&here))
			grown.Done()
			<-release // the stack stays this large until the goroutine ends
		}()
	}
	grown.Wait()
	lo, hi := ^uintptr(0), uintptr(0)
	for _, t := range tops {
		top := (t + heapPage) &^ (heapPage - 1) // the end of the stack's page
		lo, hi = min(lo, top-stackBlock), max(hi, top)
	}
	start = (lo + hugePage - 1) &^ (hugePage - 1)
	end = (hi &^ (hugePage - 1)) - hugePage // not the top's huge page
	err := madvise(start, end, unix.MADV_HUGEPAGE)
	close(release)
	done.Wait()
	if end <= start || err != nil {
		return 0, 0, false
	}
	// The stacks are freed as the goroutines exit, just after done: the
	// next large allocation must come from the lowest of them.
	for range 4 {
		runtime.Gosched()
		probe := new(strings.Builder)
		probe.Grow(minHold)
		held = append(held, probe)
		if a := addrOf(probe); a >= lo && a < hi {
			return start, end, a >= start
		}
	}
	return 0, 0, false
}

// alignTop puts the top of the heap, where the next large allocation
// goes, on a huge page boundary, with allocations that are never touched.
func alignTop() {
	top := new(strings.Builder)
	top.Grow(minHold)
	held = append(held, top)
	if t := addrOf(top) + minHold; t%hugePage != 0 {
		gap := hugePage - t%hugePage
		if gap < minHold {
			gap += hugePage // too small for an allocation from the top
		}
		pad := new(strings.Builder)
		pad.Grow(int(gap))
		held = append(held, pad)
	}
}

// madvise gives advice for the pages from start to end. It takes
// addresses, not a slice: the range is not a Go object.
func madvise(start, end, advice uintptr) error {
	_, _, e := unix.Syscall(unix.SYS_MADVISE, start, end-start, advice)
	if e != 0 {
		return e
	}
	return nil
}

// addrOf returns where sb's buffer starts.
func addrOf(sb *strings.Builder) uintptr {
	return uintptr(unsafe.Pointer(unsafe.StringData(sb.String())))
}

// held keeps the allocations of alignTop, viaStacks and hold for the
// life of the process. Their memory is never written: strings.Builder.Grow
// allocates without clearing (make would clear the pages of a freed
// block, and fault each in), and a page never touched costs no memory.
var held []*strings.Builder

// marked is the range Enable marked, and whether it was the stacks', for
// the tests.
var marked struct {
	start, end uintptr
	stacks     bool
}

// minHold is the size of the allocations that mark the top of the heap,
// and the least head worth holding: the runtime takes an allocation of
// under 16 pages (of 8 KiB) from a per-P cache of pages, not from the top
// of the heap.
const minHold = 128 << 10

// hold allocates the free pages from p, where the freed block began, up
// to start, its first huge page boundary, and keeps them, so that the
// allocations after it begin at start. The allocator takes the lowest run
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
		if a := addrOf(sb); a >= p {
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
