package sockdiag

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// tcpInfo builds a struct tcp_info of length n with the two counters set.
func tcpInfo(n int, acked, received uint64) []byte {
	b := make([]byte, n)
	if n >= tcpiMinLen {
		binary.NativeEndian.PutUint64(b[tcpiBytesAckedOff:], acked)
		binary.NativeEndian.PutUint64(b[tcpiBytesReceivedOff:], received)
	}
	return b
}

// The offsets are written out by hand; check them against the kernel
// header as x/sys/unix mirrors it. Offsetof reads no memory.
func TestTCPInfoOffsets(t *testing.T) {
	var ti unix.TCPInfo
	if o := unsafe.Offsetof(ti.Bytes_acked); o != tcpiBytesAckedOff {
		t.Errorf("tcpi_bytes_acked at %d, want %d", o, tcpiBytesAckedOff)
	}
	if o := unsafe.Offsetof(ti.Bytes_received); o != tcpiBytesReceivedOff {
		t.Errorf("tcpi_bytes_received at %d, want %d", o, tcpiBytesReceivedOff)
	}
}

func TestParseTCPInfo(t *testing.T) {
	a, r, err := ParseTCPInfo(tcpInfo(232, 1<<40+5, 77))
	if err != nil || a != 1<<40+5 || r != 77 {
		t.Fatalf("ParseTCPInfo = %d, %d, %v", a, r, err)
	}
	if _, _, err := ParseTCPInfo(tcpInfo(104, 1, 1)); !errors.Is(err, ErrNoCounters) {
		t.Errorf("short tcp_info (an old kernel): err = %v, want ErrNoCounters", err)
	}
}

func TestParseConn(t *testing.T) {
	b := build(AFInet6, 1, netip.MustParseAddrPort("[::ffff:127.0.0.1]:443"), netip.MustParseAddrPort("[::ffff:127.0.0.1]:50000"), 0, 0, 7,
		attr(attrSKV6Only, 0), attr(attrInfo, tcpInfo(232, 1000, 2000)...))
	binary.NativeEndian.PutUint32(b[44:48], 0xdeadbeef)
	binary.NativeEndian.PutUint32(b[48:52], 0x1)
	m, ci, err := ParseConn(b)
	if err != nil {
		t.Fatal(err)
	}
	want := ConnInfo{Cookie: 0x1deadbeef, BytesAcked: 1000, BytesReceived: 2000, Known: true}
	if ci != want || m.Inode != 7 || m.Remote.Port() != 50000 {
		t.Errorf("ParseConn = %+v %+v, want %+v", m, ci, want)
	}
	// A tcp_info without the counters keeps the message, without counters.
	b = build(AFInet, 1, netip.MustParseAddrPort("127.0.0.1:443"), netip.MustParseAddrPort("127.0.0.1:50000"), 0, 0, 8,
		attr(attrInfo, tcpInfo(104, 0, 0)...))
	if m, ci, err := ParseConn(b); err != nil || ci.Known || m.Inode != 8 {
		t.Errorf("short tcp_info: %+v %+v %v", m, ci, err)
	}
	// Parse ignores INET_DIAG_INFO.
	if m, err := Parse(b); err != nil || m.Inode != 8 {
		t.Errorf("Parse with tcp_info: %+v %v", m, err)
	}
}

func TestRequestExt(t *testing.T) {
	b := RequestExt(AFInet, ProtoTCP, 1<<1, ExtInfo)
	if b[2] != 2 {
		t.Errorf("idiag_ext = %d, want 2 (1<<(INET_DIAG_INFO-1))", b[2])
	}
}

func FuzzParseConn(f *testing.F) {
	f.Add(build(AFInet, 1, netip.MustParseAddrPort("127.0.0.1:443"), netip.MustParseAddrPort("127.0.0.1:50000"), 0, 0, 8,
		attr(attrInfo, tcpInfo(232, 10, 20)...)))
	f.Add(build(AFInet6, 1, netip.MustParseAddrPort("[::1]:443"), netip.MustParseAddrPort("[::1]:50000"), 0, 0, 9,
		attr(attrSKV6Only, 1), attr(attrInfo, tcpInfo(136, 1, 2)...)))
	f.Add(build(AFInet, 1, netip.MustParseAddrPort("127.0.0.1:443"), netip.MustParseAddrPort("127.0.0.1:50000"), 0, 0, 8,
		attr(attrInfo, tcpInfo(135, 0, 0)...)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, ci, err := ParseConn(b)
		if err != nil {
			return
		}
		if m.Family != AFInet && m.Family != AFInet6 {
			t.Fatalf("accepted family %d", m.Family)
		}
		// The counters are read from the message, never invented.
		if !ci.Known && (ci.BytesAcked != 0 || ci.BytesReceived != 0) {
			t.Fatalf("counters without tcp_info: %+v", ci)
		}
		m2, err := Parse(b)
		if err != nil || m2 != m {
			t.Fatalf("Parse and ParseConn disagree: %+v / %+v, %v", m2, m, err)
		}
	})
}

func FuzzParseTCPInfo(f *testing.F) {
	f.Add(tcpInfo(232, 10, 20))
	f.Add(tcpInfo(136, 1<<63, 1))
	f.Add(tcpInfo(135, 0, 0))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		a, r, err := ParseTCPInfo(b)
		if err != nil {
			if len(b) >= tcpiMinLen {
				t.Fatalf("rejected %d bytes: %v", len(b), err)
			}
			return
		}
		if a != binary.NativeEndian.Uint64(b[120:128]) || r != binary.NativeEndian.Uint64(b[128:136]) {
			t.Fatal("counters read from the wrong offsets")
		}
	})
}
