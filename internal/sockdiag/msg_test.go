package sockdiag

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

// build encodes an inet_diag_msg the way the kernel lays it out.
func build(family, state uint8, src, dst netip.AddrPort, ifidx, uid, inode uint32, attrs ...[]byte) []byte {
	b := make([]byte, msgLen)
	b[0], b[1] = family, state
	binary.BigEndian.PutUint16(b[4:6], src.Port())
	binary.BigEndian.PutUint16(b[6:8], dst.Port())
	s, d := src.Addr().AsSlice(), dst.Addr().AsSlice()
	copy(b[8:24], s)
	copy(b[24:40], d)
	binary.NativeEndian.PutUint32(b[40:44], ifidx)
	binary.NativeEndian.PutUint32(b[64:68], uid)
	binary.NativeEndian.PutUint32(b[68:72], inode)
	for _, a := range attrs {
		b = append(b, a...)
	}
	return b
}

func attr(typ uint16, payload ...byte) []byte {
	l := 4 + len(payload)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b[0:2], uint16(l))
	binary.NativeEndian.PutUint16(b[2:4], typ)
	copy(b[4:], payload)
	return b
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		in   []byte
		want Msg
	}{
		{
			name: "ipv4 listener",
			in:   build(AFInet, 10, netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("0.0.0.0:0"), 0, 1000, 4242),
			want: Msg{Family: AFInet, State: 10, Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), UID: 1000, Inode: 4242},
		},
		{
			name: "ipv6 dual-stack with skv6only=0 and an unknown attribute first",
			in: build(AFInet6, 10, netip.MustParseAddrPort("[::]:22"), netip.MustParseAddrPort("[::]:0"), 0, 0, 17,
				attr(5, 0), attr(attrSKV6Only, 0)),
			want: Msg{Family: AFInet6, State: 10, Local: netip.MustParseAddrPort("[::]:22"), Remote: netip.MustParseAddrPort("[::]:0"), Inode: 17, V6OnlyKnown: true},
		},
		{
			name: "ipv6 v6only connected, bound to a device",
			in: build(AFInet6, 1, netip.MustParseAddrPort("[2001:db8::1]:443"), netip.MustParseAddrPort("[2001:db8::2]:50000"), 3, 33, 99,
				attr(attrSKV6Only, 1)),
			want: Msg{Family: AFInet6, State: 1, Local: netip.MustParseAddrPort("[2001:db8::1]:443"), Remote: netip.MustParseAddrPort("[2001:db8::2]:50000"), IfIndex: 3, UID: 33, Inode: 99, V6Only: true, V6OnlyKnown: true},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Parse(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Errorf("Parse() = %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	if _, err := Parse(make([]byte, 10)); !errors.Is(err, ErrShort) {
		t.Errorf("short message: err = %v, want ErrShort", err)
	}
	bad := build(99, 10, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("0.0.0.0:0"), 0, 0, 1)
	bad[0] = 99
	if _, err := Parse(bad); err == nil {
		t.Error("unknown family: want an error")
	}
	// An attribute claiming more bytes than remain must be rejected.
	m := build(AFInet, 10, netip.MustParseAddrPort("127.0.0.1:1"), netip.MustParseAddrPort("0.0.0.0:0"), 0, 0, 1, []byte{200, 0, 11, 0, 1, 0, 0, 0})
	if _, err := Parse(m); err == nil {
		t.Error("oversized attribute: want an error")
	}
}

func TestRequest(t *testing.T) {
	b := Request(AFInet6, ProtoUDP, 1<<7)
	if len(b) != reqLen || b[0] != AFInet6 || b[1] != ProtoUDP || binary.NativeEndian.Uint32(b[4:8]) != 1<<7 {
		t.Fatalf("Request() = %v", b)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(build(AFInet, 10, netip.MustParseAddrPort("127.0.0.1:8080"), netip.MustParseAddrPort("0.0.0.0:0"), 0, 1000, 4242))
	f.Add(build(AFInet6, 10, netip.MustParseAddrPort("[::]:22"), netip.MustParseAddrPort("[::]:0"), 0, 0, 17, attr(attrSKV6Only, 0)))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Parse(b)
		if err != nil {
			return
		}
		if m.Family != AFInet && m.Family != AFInet6 {
			t.Fatalf("accepted family %d", m.Family)
		}
		if !m.Local.Addr().IsValid() {
			t.Fatal("accepted message without a local address")
		}
	})
}
