package hugeheap

import (
	"bufio"
	"bytes"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"unsafe"
)

// vmaOf returns the /proc/self/smaps entry of the mapping holding addr.
func vmaOf(t *testing.T, addr uintptr) map[string]string {
	t.Helper()
	b, err := os.ReadFile("/proc/self/smaps")
	if err != nil {
		t.Skipf("no smaps: %v", err)
	}
	var cur map[string]string
	found := false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		if lo, hi, ok := strings.Cut(f[0], "-"); ok && !strings.HasSuffix(f[0], ":") {
			if found {
				break
			}
			l, err1 := strconv.ParseUint(lo, 16, 64)
			h, err2 := strconv.ParseUint(hi, 16, 64)
			cur = map[string]string{}
			found = err1 == nil && err2 == nil && uint64(addr) >= l && uint64(addr) < h
			continue
		}
		if cur != nil && len(f) >= 2 {
			cur[strings.TrimSuffix(f[0], ":")] = f[1]
		}
	}
	if !found {
		t.Fatalf("no mapping holds %#x", addr)
	}
	return cur
}

// TestEnable checks with the kernel's own account (smaps' THPeligible)
// that the heap the next allocations come from may take huge pages, and
// that a large block allocated after Enable is backed by them once
// touched.
func TestEnable(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !bytes.Contains(mode, []byte("[madvise]")) {
		t.Skipf("transparent huge pages are not in madvise mode here (%q, %v): nothing to enable", mode, err)
	}
	// The heap of a test binary often ends on a huge page boundary, and
	// the block would then have no head to hold. 1.5 MiB kept before it
	// make one likely.
	pre := make([]byte, 3<<19)
	Enable(32 << 20)
	runtime.KeepAlive(pre)
	b := make([]byte, 8<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	// The freed block's part below its first huge page boundary is held
	// (hold): the next allocation starts on the boundary, in the marked
	// range, not in the small pages below it.
	first := uintptr(unsafe.Pointer(&b[0]))
	t.Logf("the block began at %#x; marked %#x-%#x; the next 8 MiB at %#x", marked.block, marked.start, marked.end, first)
	if marked.start-marked.block < minHold {
		t.Logf("the block had no head worth holding: its hold is not tested in this run")
	}
	if first < marked.start || first >= marked.end {
		t.Fatalf("the first allocation after Enable is at %#x, outside the marked range %#x-%#x", first, marked.start, marked.end)
	}
	vma := vmaOf(t, first)
	if vma["THPeligible"] != "1" {
		t.Fatalf("the heap after Enable is not eligible for huge pages: %v", vma)
	}
	// The kernel may lack free huge pages at the moment; say so rather
	// than fail.
	if kb, _ := strconv.Atoi(vma["AnonHugePages"]); kb == 0 {
		t.Logf("no huge page was given (memory fragmented?): %v", vma)
	} else {
		t.Logf("%d kB of the heap mapping in huge pages", kb)
	}
}

func TestTHPDisabled(t *testing.T) {
	for godebug, want := range map[string]bool{
		"":                            false,
		"disablethp=1":                true,
		"madvdontneed=1,disablethp=1": true,
		"disablethp=1,disablethp=0":   false,
		"disablethp=0":                false,
		"xdisablethp=1":               false,
		" disablethp=1 ":              true,
	} {
		if got := thpDisabled(godebug); got != want {
			t.Errorf("GODEBUG=%q: %v, want %v", godebug, got, want)
		}
	}
}
