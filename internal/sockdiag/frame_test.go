package sockdiag

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"syscall"
	"testing"
)

func frame(typ uint16, seq uint32, payload []byte) []byte {
	b := make([]byte, nlmsgHdrLen, nlmsgHdrLen+len(payload)+3)
	binary.NativeEndian.PutUint32(b[0:4], uint32(nlmsgHdrLen+len(payload)))
	binary.NativeEndian.PutUint16(b[4:6], typ)
	binary.NativeEndian.PutUint16(b[6:8], nlmFMulti)
	binary.NativeEndian.PutUint32(b[8:12], seq)
	b = append(b, payload...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}

func TestWalkFrames(t *testing.T) {
	m1 := build(AFInet, 10, netip.MustParseAddrPort("127.0.0.1:22"), netip.MustParseAddrPort("0.0.0.0:0"), 0, 0, 1)
	m2 := build(AFInet6, 10, netip.MustParseAddrPort("[::1]:53"), netip.MustParseAddrPort("[::]:0"), 0, 0, 2, attr(attrSKV6Only, 1))
	var buf []byte
	buf = append(buf, frame(SockDiagByFamily, 7, m1)...)
	buf = append(buf, frame(SockDiagByFamily, 6, m1)...) // stale: another request
	buf = append(buf, frame(SockDiagByFamily, 7, m2)...)
	var got []uint32
	done, err := walkFrames(buf, 7, func(p []byte) error {
		m, err := Parse(p)
		if err != nil {
			return err
		}
		got = append(got, m.Inode)
		return nil
	})
	if err != nil || done || len(got) != 2 || got[0] != 1 || got[1] != 2 {
		t.Fatalf("got %v done=%v err=%v", got, done, err)
	}
	done, err = walkFrames(frame(nlmsgDone, 7, []byte{0, 0, 0, 0}), 7, func([]byte) error { return nil })
	if !done || err != nil {
		t.Errorf("NLMSG_DONE: done=%v err=%v", done, err)
	}
	eperm := make([]byte, 4)
	binary.NativeEndian.PutUint32(eperm, 0xffffffff) // -EPERM
	if _, err := walkFrames(frame(nlmsgError, 7, eperm), 7, func([]byte) error { return nil }); !errors.Is(err, syscall.EPERM) {
		t.Errorf("NLMSG_ERROR -1: err = %v, want EPERM", err)
	}
	bad := frame(SockDiagByFamily, 7, m1)
	binary.NativeEndian.PutUint32(bad[0:4], 9999)
	if _, err := walkFrames(bad, 7, func([]byte) error { return nil }); err == nil {
		t.Error("oversized frame accepted")
	}
}

func TestAppendRequest(t *testing.T) {
	b := appendRequest(nil, 42, AFInet, ProtoTCP, 1<<10, 0, nil)
	if len(b) != nlmsgHdrLen+reqLen || binary.NativeEndian.Uint32(b[0:4]) != uint32(len(b)) ||
		binary.NativeEndian.Uint16(b[4:6]) != SockDiagByFamily || binary.NativeEndian.Uint32(b[8:12]) != 42 {
		t.Fatalf("request = %v", b)
	}
}

func FuzzWalkFrames(f *testing.F) {
	m1 := build(AFInet, 10, netip.MustParseAddrPort("127.0.0.1:22"), netip.MustParseAddrPort("0.0.0.0:0"), 0, 0, 1)
	f.Add(append(frame(SockDiagByFamily, 1, m1), frame(nlmsgDone, 1, []byte{0, 0, 0, 0})...))
	f.Add(frame(nlmsgError, 1, []byte{0xff, 0xff, 0xff, 0xff}))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		walkFrames(b, 1, func(p []byte) error {
			_, err := Parse(p)
			return err
		})
	})
}
