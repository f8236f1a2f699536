// Package testenv helps tests find what they need on the machine: the built
// porteiro binary, root, and real servers (mailpit, Prometheus,
// Alertmanager). A missing server skips the test, unless
// PORTEIRO_REQUIRE_SERVERS=1 (set by scripts/test.sh) turns that into a
// failure, so CI never passes by skipping.
package testenv

import (
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"testing"

	"github.com/porteiro/porteiro/internal/taskfd"
)

// built is one program built once per test process.
type built struct {
	once sync.Once
	path string
	err  error
}

var builds = map[string]*built{"porteiro": {}, "porteirod": {}}

// Binary returns the path of a porteiro binary: $PORTEIRO_BIN if set,
// otherwise one built once per test process.
func Binary(t testing.TB) string {
	t.Helper()
	return program(t, "porteiro", "PORTEIRO_BIN")
}

// DaemonBinary returns the path of a porteirod binary: $PORTEIROD_BIN if
// set, otherwise one built once per test process.
func DaemonBinary(t testing.TB) string {
	t.Helper()
	return program(t, "porteirod", "PORTEIROD_BIN")
}

func program(t testing.TB, name, env string) string {
	t.Helper()
	if p := os.Getenv(env); p != "" {
		return p
	}
	b := builds[name]
	b.once.Do(func() {
		dir, err := os.MkdirTemp("", name+"-bin-")
		if err != nil {
			b.err = err
			return
		}
		b.path = filepath.Join(dir, name)
		cmd := exec.Command("go", "build", "-o", b.path, "./cmd/"+name)
		cmd.Dir = ModuleRoot()
		if out, err := cmd.CombinedOutput(); err != nil {
			b.err = &buildError{out: string(out), err: err}
		}
	})
	if b.err != nil {
		t.Fatalf("building %s: %v", name, b.err)
	}
	return b.path
}

type buildError struct {
	out string
	err error
}

func (e *buildError) Error() string { return e.err.Error() + "\n" + e.out }

// ModuleRoot returns the repository root.
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (network namespaces, other users' processes); run the suite as root, as CI does")
	}
}

// RequireCommand returns the path of a command, or skips the test (fails it
// when PORTEIRO_REQUIRE_SERVERS=1) when it is missing.
func RequireCommand(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err == nil {
		return p
	}
	for _, dir := range []string{filepath.Join(os.Getenv("HOME"), "go", "bin"), "/root/go/bin", "/usr/sbin", "/sbin"} {
		if _, err := os.Stat(filepath.Join(dir, name)); err == nil {
			return filepath.Join(dir, name)
		}
	}
	if os.Getenv("PORTEIRO_REQUIRE_SERVERS") == "1" {
		t.Fatalf("%s is not installed; scripts/install-test-deps.sh installs it", name)
	}
	t.Skipf("%s is not installed; run scripts/install-test-deps.sh", name)
	return ""
}

// FreePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// Addr returns "127.0.0.1:PORT" for a free port.
func Addr(t testing.TB) string {
	return "127.0.0.1:" + strconv.Itoa(FreePort(t))
}

// IteratorError says why the kernel's task-file iterator cannot be loaded
// by this process, or is nil when it can.
func IteratorError() error {
	it, err := taskfd.Open()
	if err == nil {
		it.Close()
	}
	return err
}

// RequireIterator skips the test when this process or machine does not
// offer the task-file iterator (not root, a kernel without BTF, bpf(2)
// refused by a sandbox), and fails it when the iterator is offered but
// does not load, which is porteiro's fault.
func RequireIterator(t testing.TB) {
	t.Helper()
	err := IteratorError()
	switch {
	case err == nil:
	case taskfd.Unavailable(err):
		t.Skipf("the task-file iterator is not available here (it needs root, or CAP_BPF and CAP_PERFMON, and a kernel with BTF): %v", err)
	default:
		t.Fatalf("the task-file iterator does not load: %v", err)
	}
}

// Buffer is a bytes.Buffer that a command's output goroutine may write
// while the test reads it.
type Buffer struct {
	mu sync.Mutex
	b  []byte
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.b = append(b.b, p...)
	return len(p), nil
}

// String returns what was written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return string(b.b)
}
