package netns

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"strconv"
	"testing"

	"github.com/porteiro/porteiro/internal/sockdiag"
	"github.com/porteiro/porteiro/internal/testenv"
)

// TestDialEntersNamespace opens a sock_diag socket inside a namespace made
// with `ip netns add`, and checks that it sees that namespace's listener
// and not the host's, from another goroutine after the dial.
func TestDialEntersNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip")
	name := "porteiro-netns-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", name).Run() })
	exec.Command(ip, "-n", name, "link", "set", "lo", "up").Run()
	// A member process, so the namespace has a member as well as a mount.
	py := exec.Command(ip, "netns", "exec", name, "sh", "-c", "exec sleep 60")
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { py.Process.Kill(); py.Wait() })

	s, err := Discover(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var n *Namespace
	for _, x := range s.ByInode {
		if len(x.Names) > 0 && x.Names[0] == name {
			n = x
		}
	}
	if n == nil {
		t.Fatalf("namespace %s not found", name)
	}
	conn, err := s.Dial(n)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The host has listeners (pid 1's at least) that the new namespace has not.
	count := 0
	err = conn.Dump(sockdiag.AFInet, sockdiag.ProtoTCP, 1<<10, func(sockdiag.Msg) { count++ })
	if err != nil {
		t.Fatal(err)
	}
	if count != 0 {
		t.Errorf("a fresh namespace shows %d TCP listeners: the socket is not inside it", count)
	}
	// And this thread is back home.
	var here, host uint64
	if here, err = nsLink("/proc/thread-self/ns/net"); err != nil {
		t.Fatal(err)
	}
	host = s.Self
	if here != host {
		t.Errorf("after Dial this thread is in namespace %d, not %d", here, host)
	}
	if _, err := s.Dial(&Namespace{Inode: 1}); !errors.Is(err, ErrGone) {
		t.Errorf("Dial of a namespace nothing leads to: %v, want ErrGone", err)
	}
}
