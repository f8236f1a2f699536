package sockdiag

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A real loopback connection: the dump finds both ends, and the server's
// counters match what was written and read.
func TestConnectionsCounters(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()
	cl, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	srv := <-accepted
	defer srv.Close()
	const up, down = 100000, 3000
	go cl.Write(make([]byte, up))
	if _, err := io.ReadFull(srv, make([]byte, up)); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Write(make([]byte, down)); err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(cl, make([]byte, down)); err != nil {
		t.Fatal(err)
	}

	c, err := Dial()
	if err != nil {
		t.Skipf("sock_diag netlink not available here: %v", err)
	}
	defer c.Close()
	srvAddr := netip.MustParseAddrPort(srv.LocalAddr().String())
	peer := netip.MustParseAddrPort(srv.RemoteAddr().String())
	// The last ACK from the client may still be on its way: look again
	// for a moment before calling it wrong.
	var got ConnInfo
	var found bool
	for try := 0; try < 50; try++ {
		found = false
		err = c.Connections(AFInet, 1<<1, nil, func(m Msg, ci ConnInfo) {
			if m.Local == srvAddr && m.Remote == peer {
				found, got = true, ci
				if ci.Cookie == 0 || m.Inode == 0 {
					t.Errorf("no cookie or inode: %+v %+v", m, ci)
				}
			}
		})
		if err != nil {
			t.Fatal(err)
		}
		if !found {
			t.Fatalf("connection %v <- %v not in the dump", srvAddr, peer)
		}
		if !got.Known {
			t.Skip("kernel without tcpi_bytes_acked/received (before 4.1)")
		}
		if got.BytesReceived == up && got.BytesAcked == down {
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Errorf("server end: received %d acked %d, want %d and %d", got.BytesReceived, got.BytesAcked, up, down)
}

// With a local port filter the kernel returns the server's end of the
// connection and not the client's, whose local port is ephemeral.
func TestConnectionsFiltered(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			io.Copy(io.Discard, c)
		}
	}()
	cl, err := net.Dial("tcp4", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	c, err := Dial()
	if err != nil {
		t.Skipf("sock_diag netlink not available here: %v", err)
	}
	defer c.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	clientPort := uint16(cl.LocalAddr().(*net.TCPAddr).Port)
	var server, client, other int
	for try := 0; try < 50 && server == 0; try++ {
		server, client, other = 0, 0, 0
		err = c.Connections(AFInet, 1<<1, LocalPortFilter([]PortRange{{port, port}}), func(m Msg, _ ConnInfo) {
			switch m.Local.Port() {
			case port:
				server++
			case clientPort:
				client++
			default:
				other++
			}
		})
		if err != nil {
			t.Fatalf("filtered dump refused: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if server != 1 || client != 0 || other != 0 {
		t.Errorf("filtered dump: server end %d, client end %d, others %d; want 1, 0, 0", server, client, other)
	}
}
