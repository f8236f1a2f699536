package inventory

import (
	"context"
	"errors"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/porteiro/porteiro/internal/procfs/procfstest"
)

// refusedSource is a fake for fault injection: a netlink socket the kernel
// (or a seccomp filter) refuses.
type refusedSource struct{}

func (refusedSource) Name() string { return "netlink" }
func (refusedSource) Sockets(context.Context, Query) ([]Socket, error) {
	return nil, &os.SyscallError{Syscall: "socket", Err: syscall.EPERM}
}

func TestFallbackToProcNet(t *testing.T) {
	tr := procfstest.New(t)
	tr.File(t, "net/tcp", tcpTable)
	tr.File(t, "net/tcp6", "header\n")
	tr.File(t, "net/udp", "header\n")
	tr.File(t, "net/udp6", "header\n")
	src := &autoSource{nl: refusedSource{}, proc: &ProcNetSource{ProcRoot: tr.Root}}
	snap, err := NewScanner(Options{ProcRoot: tr.Root, Source: src}).Scan(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Source != "procfs" || len(snap.Sockets) != 6 {
		t.Errorf("source %q with %d sockets, want procfs with the fixture's 6 listeners", snap.Source, len(snap.Sockets))
	}

	// Both refused: the error names both failures.
	broken := &autoSource{nl: refusedSource{}, proc: &ProcNetSource{ProcRoot: t.TempDir()}}
	_, err = NewScanner(Options{ProcRoot: tr.Root, Source: broken}).Scan(context.Background(), Query{})
	if err == nil || !errors.Is(err, syscall.EPERM) || !strings.Contains(err.Error(), "net/tcp") {
		t.Errorf("both sources failing: err = %v, want the netlink EPERM and the /proc/net error", err)
	}
}
