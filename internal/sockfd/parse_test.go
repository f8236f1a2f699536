package sockfd

import (
	"encoding/binary"
	"net/netip"
	"testing"
)

// dirent builds one linux_dirent64 record, padded to 8 bytes.
func dirent(name string) []byte {
	n := (direntNameOff + len(name) + 1 + 7) &^ 7
	b := make([]byte, n)
	binary.NativeEndian.PutUint16(b[16:18], uint16(n))
	copy(b[direntNameOff:], name)
	return b
}

func TestParseDirents(t *testing.T) {
	var b []byte
	for _, n := range []string{".", "..", "0", "17", "1234567"} {
		b = append(b, dirent(n)...)
	}
	var fds []int
	parseDirents(b, func(name []byte) {
		if fd, ok := parseFD(name); ok {
			fds = append(fds, fd)
		}
	})
	if len(fds) != 3 || fds[0] != 0 || fds[1] != 17 || fds[2] != 1234567 {
		t.Errorf("fds %v", fds)
	}
	// A record whose length runs past the buffer ends the parse.
	bad := dirent("5")
	binary.NativeEndian.PutUint16(bad[16:18], 200)
	n := 0
	parseDirents(append(dirent("4"), bad...), func([]byte) { n++ })
	if n != 1 {
		t.Errorf("%d names from a truncated buffer, want 1", n)
	}
}

func TestParseFD(t *testing.T) {
	for s, want := range map[string]bool{"0": true, "2147483647": true, "2147483648": false, "": false,
		".": false, "-1": false, "1a": false, "99999999999": false} {
		if _, ok := parseFD([]byte(s)); ok != want {
			t.Errorf("parseFD(%q) ok=%v, want %v", s, ok, want)
		}
	}
}

func TestParseSockaddr(t *testing.T) {
	v4 := make([]byte, 16)
	binary.NativeEndian.PutUint16(v4, afInet)
	binary.BigEndian.PutUint16(v4[2:], 8080)
	copy(v4[4:], []byte{127, 0, 0, 1})
	if f, ap, ok := parseSockaddr(v4); !ok || f != afInet || ap != netip.MustParseAddrPort("127.0.0.1:8080") {
		t.Errorf("v4: %d %v %v", f, ap, ok)
	}
	v6 := make([]byte, 28)
	binary.NativeEndian.PutUint16(v6, afInet6)
	binary.BigEndian.PutUint16(v6[2:], 53)
	v6[23] = 1
	binary.NativeEndian.PutUint32(v6[24:], 7) // scope id: dropped, as sock_diag has none
	if f, ap, ok := parseSockaddr(v6); !ok || f != afInet6 || ap != netip.MustParseAddrPort("[::1]:53") {
		t.Errorf("v6: %d %v %v", f, ap, ok)
	}
	if _, _, ok := parseSockaddr(v6[:20]); ok {
		t.Error("a short sockaddr_in6 parsed")
	}
	unixAddr := []byte{1, 0, '/', 't'}
	if _, _, ok := parseSockaddr(unixAddr); ok {
		t.Error("an AF_UNIX address parsed")
	}
}

func FuzzParseDirents(f *testing.F) {
	f.Add(append(dirent("."), dirent("3")...))
	f.Add(dirent("\x1b[2J\n"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		total := 0
		parseDirents(b, func(name []byte) {
			total += len(name)
			if fd, ok := parseFD(name); ok && (fd < 0 || fd > 1<<31-1) {
				t.Fatalf("fd %d out of range", fd)
			}
		})
		if total > len(b) {
			t.Fatalf("names of %d bytes from %d", total, len(b))
		}
	})
}

func FuzzParseSockaddr(f *testing.F) {
	v4 := make([]byte, 16)
	binary.NativeEndian.PutUint16(v4, afInet)
	f.Add(v4)
	v6 := make([]byte, 28)
	binary.NativeEndian.PutUint16(v6, afInet6)
	f.Add(v6)
	f.Add([]byte{10})
	f.Fuzz(func(t *testing.T, b []byte) {
		fam, ap, ok := parseSockaddr(b)
		if !ok {
			return
		}
		if (fam == afInet) != ap.Addr().Is4() {
			t.Fatalf("family %d, address %v", fam, ap)
		}
	})
}
