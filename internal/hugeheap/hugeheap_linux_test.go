package hugeheap

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
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
// touched. The range is the goroutines' stacks (viaStacks); with
// HUGEHEAP_BLOCK=1 (TestEnableBlock) it is the freed block.
func TestEnable(t *testing.T) {
	mode, err := os.ReadFile("/sys/kernel/mm/transparent_hugepage/enabled")
	if err != nil || !bytes.Contains(mode, []byte("[madvise]")) {
		t.Skipf("transparent huge pages are not in madvise mode here (%q, %v): nothing to enable", mode, err)
	}
	block := os.Getenv("HUGEHEAP_BLOCK") == "1"
	noStacks = block // fault injection: the stacks "did not serve"
	// The heap of a test binary often ends on a huge page boundary:
	// 1.5 MiB kept before the range make it end elsewhere, for alignTop
	// to mend.
	pre := make([]byte, 3<<19)
	Enable(32 << 20)
	runtime.KeepAlive(pre)
	if marked.stacks == block {
		t.Fatalf("Enable used the stacks: %v, want %v", marked.stacks, !block)
	}
	b := make([]byte, 8<<20)
	for i := 0; i < len(b); i += 4096 {
		b[i] = 1
	}
	// The range is on a huge page boundary (alignTop): the next
	// allocation comes from it, not from small pages below it.
	first := uintptr(unsafe.Pointer(&b[0]))
	t.Logf("marked %#x-%#x (stacks: %v); the next 8 MiB at %#x", marked.start, marked.end, marked.stacks, first)
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

// TestEnableBlock runs TestEnable in a process of its own (Enable works
// once per process) with the stacks refused: the freed block serves.
func TestEnableBlock(t *testing.T) {
	if os.Getenv("HUGEHEAP_BLOCK") != "" {
		t.Skip("the child's own run")
	}
	cmd := exec.Command(os.Args[0], "-test.run", "^TestEnable$", "-test.v")
	cmd.Env = append(os.Environ(), "HUGEHEAP_BLOCK=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("TestEnable with the block: %v\n%s", err, out)
	}
	if !bytes.Contains(out, []byte("stacks: false")) && !bytes.Contains(out, []byte("SKIP")) {
		t.Fatalf("TestEnable with the block did not run as such:\n%s", out)
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
