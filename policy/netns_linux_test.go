package policy

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/testenv"
	"github.com/porteiro/porteiro/inventory"
)

// listenIn opens a listener inside the network namespace at path, from a
// locked OS thread that enters it and comes back: the socket stays in that
// namespace, held by this process. A thread that cannot come back is never
// unlocked, so the runtime retires it with its goroutine.
func listenIn(t *testing.T, path, network, addr string) io.Closer {
	t.Helper()
	type result struct {
		c   io.Closer
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer self.Close()
		target, err := os.Open(path)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{err: err}
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- result{err: fmt.Errorf("setns %s: %w", path, err)}
			return
		}
		var r result
		if strings.HasPrefix(network, "udp") {
			r.c, r.err = net.ListenPacket(network, addr)
		} else {
			r.c, r.err = net.Listen(network, addr)
		}
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- result{err: fmt.Errorf("setns back: %w", err)}
			return // the thread stays locked, and dies
		}
		runtime.UnlockOSThread()
		done <- r
	}()
	r := <-done
	if r.err != nil {
		t.Fatal(r.err)
	}
	t.Cleanup(func() { r.c.Close() })
	return r.c
}

func portOf(c io.Closer) int {
	switch v := c.(type) {
	case net.Listener:
		return v.Addr().(*net.TCPAddr).Port
	case net.PacketConn:
		return v.LocalAddr().(*net.UDPAddr).Port
	}
	return 0
}

// A real `ip netns`: baseline keys its listeners by the namespace's name,
// check is clean right after, and a new listener in it is a finding that
// names it. The scan is limited to that namespace, so that what the rest
// of the machine opens meanwhile cannot change the result; ss inside the
// namespace is the oracle for what listens there.
func TestBaselineRealNetNS(t *testing.T) {
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip")
	ns := fmt.Sprintf("porteiro-policy-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
	if out, err := exec.Command(ip, "-n", ns, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", ns, err, out)
	}
	path := "/run/netns/" + ns
	listenIn(t, path, "tcp4", "0.0.0.0:0")
	listenIn(t, path, "tcp6", "[::1]:0")
	listenIn(t, path, "udp4", "127.0.0.1:0")

	sc := inventory.NewScanner(inventory.Options{})
	t.Cleanup(func() { sc.Close() })
	scan := func() *inventory.Snapshot {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		snap, err := sc.Scan(ctx, inventory.Query{NetNS: []string{ns}})
		if err != nil {
			t.Fatal(err)
		}
		for _, so := range snap.Sockets {
			if so.NetNSName != ns {
				t.Fatalf("a socket of netns %q in a scan of %s", so.NetNSName, ns)
			}
		}
		return snap
	}
	snap := scan()
	var b bytes.Buffer
	if err := Baseline(&b, snap, BaselineOptions{}); err != nil {
		t.Fatal(err)
	}
	text := b.String()
	p, err := Parse(b.Bytes(), "baseline.yaml")
	if err != nil {
		t.Fatalf("%v\n%s", err, text)
	}
	if !strings.Contains(ruleLines(text), fmt.Sprintf("netns: %q", ns)) {
		t.Errorf("baseline does not key on the namespace's name:\n%s", text)
	}
	rep := p.Check(snap)
	ss := testenv.SS(t, []string{ip, "netns", "exec", ns}, "-l")
	if !rep.Clean() || rep.Checked != 3 || len(ss) != 3 {
		t.Fatalf("check after baseline: %d checked (ss shows %d), findings %q\n%s", rep.Checked, len(ss), kinds(rep), text)
	}

	// The namespace's rules do not allow the same listeners on the host.
	host := *snap
	host.Sockets = append([]inventory.Socket(nil), snap.Sockets...)
	for i := range host.Sockets {
		host.Sockets[i].NetNSName = "host"
	}
	if rep := p.Check(&host); len(rep.Findings) != 3 {
		t.Errorf("the namespace's rules on the host: findings %q, want 3", kinds(rep))
	}

	// A new listener in the namespace is one finding, and it names it.
	intruder := listenIn(t, path, "tcp4", "0.0.0.0:0")
	rep = p.Check(scan())
	want := fmt.Sprintf("unexpected tcp 0.0.0.0:%d in netns %s", portOf(intruder), ns)
	if len(rep.Findings) != 1 || rep.Findings[0].Key != want {
		t.Fatalf("findings %q, want %q", kinds(rep), want)
	}
	if m := rep.Findings[0].Message; !strings.Contains(m, "in netns "+ns+" is listening") || !strings.Contains(m, fmt.Sprintf("pid %d", os.Getpid())) {
		t.Errorf("message %q", m)
	}
}
