package bpfevents

import (
	"bytes"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/localapi"
)

// serveExchange accepts connections on l: each reads until the client's
// half-close, then answers out bytes and closes. It returns how many bytes
// each connection received, once l is closed and every connection is done.
func serveExchange(l net.Listener, out int) func() []int {
	var (
		mu  sync.Mutex
		got []int
		wg  sync.WaitGroup
	)
	answer := bytes.Repeat([]byte{'o'}, out)
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				n, _ := io.Copy(io.Discard, c)
				c.Write(answer)
				mu.Lock()
				got = append(got, int(n))
				mu.Unlock()
			}()
		}
	}()
	return func() []int {
		l.Close()
		wg.Wait()
		return got
	}
}

// clientExchange dials addr k times, one after the other: sends in bytes,
// half-closes, reads the whole answer and closes. It returns the bytes
// read back in all.
func clientExchange(t *testing.T, addr string, k, in int) int {
	t.Helper()
	payload := bytes.Repeat([]byte{'i'}, in)
	total := 0
	for i := 0; i < k; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write(payload); err != nil {
			t.Fatal(err)
		}
		c.(*net.TCPConn).CloseWrite()
		n, err := io.Copy(io.Discard, c)
		if err != nil {
			t.Fatal(err)
		}
		total += int(n)
		c.Close()
	}
	return total
}

// waitClosed polls Closed until the counter of (netns, addr, port) has
// want closes, or 5 s pass; it returns the last counter seen.
func waitClosed(t *testing.T, s *Source, netns uint64, addr netip.Addr, port uint16, want uint64) localapi.ClosedCounter {
	t.Helper()
	var last localapi.ClosedCounter
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs, err := s.Closed(func(p uint16) bool { return p == port })
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			if c.Port != port {
				t.Errorf("Closed kept port %d, asked for %d only", c.Port, port)
			}
			if c.NetNS == netns && c.Address == addr {
				last = c
			}
		}
		if last.Closes >= want || time.Now().After(deadline) {
			return last
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkClosed compares a counter with the payload the connections moved.
// The kernel's counters (and sock_diag's tcpi_bytes_*, which top reads for
// live connections) advance with sequence numbers, and a FIN takes one:
// each connection that closed both ways counts one byte more each way.
func checkClosed(t *testing.T, c localapi.ClosedCounter, family string, closes, in, out uint64) {
	t.Helper()
	in, out = in+closes, out+closes
	if c.Family != family || c.Closes != closes || c.BytesIn != in || c.BytesOut != out {
		t.Errorf("counter %+v: want family %s, %d closes, %d bytes in, %d out", c, family, closes, in, out)
	}
}

// TestClosedCounters opens real loopback connections that push known byte
// counts and close, and checks the sums the kernel kept for the listener's
// local end, for IPv4 and for an IPv4 client of a dual-stack listener.
func TestClosedCounters(t *testing.T) {
	c := openSource(t, Options{NoProcDetails: true}, false)
	ns := ownNetNS(t)
	const k, in, out = 20, 7000, 300001

	l4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := serveExchange(l4, out)
	port := uint16(l4.Addr().(*net.TCPAddr).Port)
	if got := clientExchange(t, l4.Addr().String(), k, in); got != k*out {
		t.Fatalf("clients read %d bytes, want %d", got, k*out)
	}
	for _, n := range done() {
		if n != in {
			t.Fatalf("server read %d bytes, want %d", n, in)
		}
	}
	got := waitClosed(t, c.s, ns, netip.MustParseAddr("127.0.0.1"), port, k)
	checkClosed(t, got, "ipv4", k, k*in, k*out)

	l6, err := net.Listen("tcp", "[::]:0")
	if err != nil {
		t.Skipf("no IPv6: %v", err)
	}
	done = serveExchange(l6, out)
	port6 := uint16(l6.Addr().(*net.TCPAddr).Port)
	clientExchange(t, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port6).String(), 3, in)
	done()
	got = waitClosed(t, c.s, ns, netip.MustParseAddr("::ffff:127.0.0.1"), port6, 3)
	checkClosed(t, got, "ipv6", 3, 3*in, 3*out)

	// The counters are cumulative: more connections add to them.
	l4b, err := net.Listen("tcp4", l4.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	done = serveExchange(l4b, out)
	clientExchange(t, l4.Addr().String(), 2, in)
	done()
	got = waitClosed(t, c.s, ns, netip.MustParseAddr("127.0.0.1"), port, k+2)
	checkClosed(t, got, "ipv4", k+2, (k+2)*in, (k+2)*out)
	if c.s.LoadID() == "" || c.s.ClosedSince().IsZero() {
		t.Errorf("LoadID %q, ClosedSince %v: want both set", c.s.LoadID(), c.s.ClosedSince())
	}
}

// TestClosedCountersNetns checks that the key carries the connection's
// network namespace: the same exchange in a new namespace is counted
// under that namespace's inode, and not under the host's.
func TestClosedCountersNetns(t *testing.T) {
	c := openSource(t, Options{NoProcDetails: true}, false)
	const k, in, out = 5, 1234, 56789
	var (
		nsIno uint64
		l     net.Listener
	)
	// The sockets are made on a thread inside the new namespace, which
	// then comes back; the sockets stay in it.
	ch := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, oerr := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if oerr != nil {
			ch <- oerr
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- err
			return // the thread dies locked: it may be in a half state
		}
		var st unix.Stat_t
		err := unix.Stat("/proc/thread-self/ns/net", &st)
		nsIno = st.Ino
		if err == nil {
			err = loUp()
		}
		if err == nil {
			l, err = net.Listen("tcp4", "127.0.0.1:0")
		}
		if err == nil {
			done := serveExchange(l, out)
			// Dialled from this thread too: the client's socket must be
			// in the namespace to reach its 127.0.0.1.
			got := 0
			payload := bytes.Repeat([]byte{'i'}, in)
			for i := 0; i < k && err == nil; i++ {
				var conn net.Conn
				if conn, err = net.Dial("tcp", l.Addr().String()); err == nil {
					conn.Write(payload)
					conn.(*net.TCPConn).CloseWrite()
					n, _ := io.Copy(io.Discard, conn)
					got += int(n)
					conn.Close()
				}
			}
			done()
			if err == nil && got != k*out {
				err = io.ErrShortBuffer
			}
		}
		if serr := unix.Setns(orig, unix.CLONE_NEWNET); serr != nil {
			ch <- serr
			return
		}
		runtime.UnlockOSThread()
		ch <- err
	}()
	if err := <-ch; err != nil {
		t.Fatalf("exchange in a new network namespace: %v", err)
	}
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	got := waitClosed(t, c.s, nsIno, netip.MustParseAddr("127.0.0.1"), port, k)
	checkClosed(t, got, "ipv4", k, k*in, k*out)
	host := waitClosed(t, c.s, ownNetNS(t), netip.MustParseAddr("127.0.0.1"), port, 0)
	if host.Closes != 0 {
		t.Errorf("the host's namespace has %+v for the other namespace's port", host)
	}
}

// loUp brings up lo of the calling thread's namespace, which a new
// namespace starts with down.
func loUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return err
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	return unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr)
}

func TestClosedCounterDecode(t *testing.T) {
	var a [16]byte
	copy(a[:], []byte{10, 0, 0, 7})
	c, ok := closedCounter(99, afInet, a, 443, 1, 2, 3)
	if !ok || c.Address != netip.MustParseAddr("10.0.0.7") || c.Family != "ipv4" || c.NetNS != 99 || c.Port != 443 ||
		c.BytesIn != 1 || c.BytesOut != 2 || c.Closes != 3 {
		t.Errorf("ipv4: %+v %v", c, ok)
	}
	a = netip.MustParseAddr("::ffff:10.0.0.7").As16()
	if c, ok = closedCounter(99, afInet6, a, 443, 1, 2, 3); !ok || !c.Address.Is4In6() || c.Family != "ipv6" {
		t.Errorf("ipv6: %+v %v", c, ok)
	}
	if _, ok = closedCounter(99, 1, a, 443, 1, 2, 3); ok {
		t.Error("family 1 (AF_UNIX) decoded")
	}
}

// BenchmarkClosed reads a full table (16,384 local ends, filled from
// here), as a daemon asked by `top` every second does.
func BenchmarkClosed(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("loading BPF programs needs root")
	}
	s, err := Open(Options{NoProcDetails: true})
	if err != nil {
		b.Skip(err)
	}
	defer s.Close()
	m := s.objs.ClosedConns
	for i := range int(m.MaxEntries()) {
		k := listenerClosedKey{Netns: 1, Port: uint16(i), Family: afInet, Addr: [16]byte{10, 0, byte(i >> 8), byte(i)}}
		if err := m.Put(&k, &listenerClosedVal{BytesIn: 1, Closes: 1}); err != nil {
			b.Fatal(err)
		}
	}
	// The LRU table may evict some before it is full.
	all, err := s.Closed(nil)
	if err != nil || len(all) < int(m.MaxEntries())*3/4 {
		b.Fatalf("%d counters of %d put, %v", len(all), m.MaxEntries(), err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := s.Closed(func(p uint16) bool { return p == 80 }); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(all)), "entries")
}
