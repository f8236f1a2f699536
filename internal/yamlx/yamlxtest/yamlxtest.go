// Package yamlxtest holds the hostile YAML files of issue 10 and the bound
// they must be refused within, for the tests of every reader of YAML
// (policy, config, command line): one copy of each bomb.
package yamlxtest

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// NestedBrackets is "key: [[[...]]]", n deep: 200 KB at n = 100000, which
// took go-yaml 42 s and 14 GiB.
func NestedBrackets(key string, n int) string {
	return key + ": " + strings.Repeat("[", n) + strings.Repeat("]", n) + "\n"
}

// NestedMappings is the mapping form, "key: {a: {a: ...}}".
func NestedMappings(key string, n int) string {
	return key + ": " + strings.Repeat("{a: ", n) + "1" + strings.Repeat("}", n) + "\n"
}

// AliasBomb is the "billion laughs" after a first line head: each level
// lists the one before it 9 times, so level 8 stands for 9^8 values in
// about 600 bytes. The first anchor is on line 2, under key first.
func AliasBomb(head, first string, levels int) string {
	var b strings.Builder
	b.WriteString(head)
	b.WriteString(first + ": &c0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= levels; i++ {
		prev := "*c" + strconv.Itoa(i-1)
		b.WriteString("x" + strconv.Itoa(i) + ": &c" + strconv.Itoa(i) + " [")
		b.WriteString(strings.TrimSuffix(strings.Repeat(prev+", ", 9), ", "))
		b.WriteString("]\n")
	}
	return b.String()
}

// BlockAliasBomb is the same bomb written in block style.
func BlockAliasBomb(levels int) string {
	var b strings.Builder
	b.WriteString("c0: &c0\n" + strings.Repeat("- lol\n", 9))
	for i := 1; i <= levels; i++ {
		b.WriteString("c" + strconv.Itoa(i) + ": &c" + strconv.Itoa(i) + "\n")
		b.WriteString(strings.Repeat("  - *c"+strconv.Itoa(i-1)+"\n", 9))
	}
	return b.String()
}

// Fifo makes a named pipe in dir, which nobody writes to.
func Fifo(t testing.TB, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(p, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Write writes src to dir/name and returns the path.
func Write(t testing.TB, dir, name, src string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// Bounded runs f and fails when it takes more than a second or allocates
// more than 100 MB. The bounds are loose on purpose, so that a loaded
// machine does not fail the test: the bombs took tens of seconds and
// gigabytes before the limits. Under the race detector the time bound is
// ten seconds: it slows go-yaml about tenfold.
func Bounded(t testing.TB, name string, f func()) {
	t.Helper()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	f()
	took := time.Since(start)
	runtime.ReadMemStats(&after)
	alloc := after.TotalAlloc - before.TotalAlloc
	if limit := timeScale * time.Second; took > limit {
		t.Errorf("%s: took %s, want under %s", name, took, limit)
	}
	if alloc > 100<<20 {
		t.Errorf("%s: allocated %d MB, want under 100 MB", name, alloc>>20)
	}
	t.Logf("%s: %s, %d KB allocated", name, took, alloc>>10)
}
