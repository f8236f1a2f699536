package bpfevents

import (
	"encoding/binary"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"unsafe"

	"github.com/porteiro/porteiro/inventory"
)

// record builds a raw record as the program writes it.
type record struct {
	ts, cookie, cgroup, inode  uint64
	netns, tgid, pid, uid      uint32
	kind, proto, family, flags uint8
	port                       uint16
	addr                       [16]byte
	comm                       string
}

func (r record) bytes() []byte {
	b := make([]byte, RecordSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[offTS:], r.ts)
	ne.PutUint64(b[offCookie:], r.cookie)
	ne.PutUint64(b[offCgroup:], r.cgroup)
	ne.PutUint64(b[offInode:], r.inode)
	ne.PutUint32(b[offNetNS:], r.netns)
	ne.PutUint32(b[offTGID:], r.tgid)
	ne.PutUint32(b[offPID:], r.pid)
	ne.PutUint32(b[offUID:], r.uid)
	b[offKind], b[offProto], b[offFamily], b[offFlags] = r.kind, r.proto, r.family, r.flags
	ne.PutUint16(b[offPort:], r.port)
	copy(b[offAddr:], r.addr[:])
	copy(b[offComm:offComm+commLength], r.comm)
	return b
}

func v4(a, b, c, d byte) (x [16]byte) { x[0], x[1], x[2], x[3] = a, b, c, d; return }

// The decoder's offsets must be those of the C struct, as bpf2go read them
// from the object's BTF.
func TestRecordLayoutMatchesProgram(t *testing.T) {
	var e listenerEvent
	if got := int(unsafe.Sizeof(e)); got != RecordSize {
		t.Fatalf("struct event is %d bytes, the decoder expects %d", got, RecordSize)
	}
	for name, want := range map[string]uintptr{
		"TsNs": offTS, "Cookie": offCookie, "CgroupId": offCgroup, "Inode": offInode,
		"Netns": offNetNS, "Tgid": offTGID, "Pid": offPID, "Uid": offUID, "Kind": offKind,
		"Proto": offProto, "Family": offFamily, "Flags": offFlags, "Port": offPort,
		"Addr": offAddr, "Comm": offComm,
	} {
		f, ok := reflect.TypeOf(e).FieldByName(name)
		if !ok {
			t.Errorf("struct event has no field %s", name)
			continue
		}
		if f.Offset != want {
			t.Errorf("field %s at offset %d, decoder reads %d", name, f.Offset, want)
		}
	}
}

func TestDecode(t *testing.T) {
	v6loop := [16]byte{15: 1}
	for _, tc := range []struct {
		name string
		in   []byte
		want Event
		err  string
	}{
		{name: "tcp4 opened",
			in: record{ts: 5, cookie: 77, cgroup: 9, inode: 1234, netns: 4026531833, tgid: 100, pid: 101, uid: 1000,
				kind: 1, proto: 6, family: 2, port: 8080, addr: v4(127, 0, 0, 1), comm: "nginx"}.bytes(),
			want: Event{Kind: Opened, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.MustParseAddr("127.0.0.1"),
				Port: 8080, NetNS: 4026531833, Cookie: 77, Inode: 1234, PID: 100, TID: 101, UID: 1000,
				Comm: "nginx", CgroupID: 9, BootNS: 5}},
		{name: "udp6 closed, v6only, reuseport",
			in: record{kind: 2, proto: 17, family: 10, flags: flagV6Only | flagReusePort, port: 53, addr: v6loop, comm: "dnsd"}.bytes(),
			want: Event{Kind: Closed, Proto: inventory.UDP, Family: inventory.IPv6, Addr: netip.IPv6Loopback(),
				Port: 53, ReusePort: true, Comm: "dnsd"}},
		{name: "dual-stack wildcard",
			in: record{kind: 1, proto: 6, family: 10, port: 80}.bytes(),
			want: Event{Kind: Opened, Proto: inventory.TCP, Family: inventory.IPv6, Addr: netip.IPv6Unspecified(),
				Port: 80, DualStack: true}},
		{name: "v6only wildcard is not dual-stack",
			in:   record{kind: 1, proto: 6, family: 10, flags: flagV6Only, port: 80}.bytes(),
			want: Event{Kind: Opened, Proto: inventory.TCP, Family: inventory.IPv6, Addr: netip.IPv6Unspecified(), Port: 80}},
		{name: "pid outside the namespace",
			in:   record{kind: 1, proto: 17, family: 2, flags: flagPIDOutsideNS, tgid: 5, pid: 6}.bytes(),
			want: Event{Kind: Opened, Proto: inventory.UDP, Family: inventory.IPv4, Addr: netip.IPv4Unspecified(), PIDOutsideNS: true}},
		{name: "hostile comm kept as bytes",
			in:   record{kind: 1, proto: 6, family: 2, comm: "\x1b[31m\u202eevil\n"}.bytes(),
			want: Event{Kind: Opened, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.IPv4Unspecified(), Comm: "\x1b[31m\u202eevil\n"}},
		{name: "comm of 16 bytes without NUL",
			in:   record{kind: 1, proto: 6, family: 2, comm: "0123456789abcdef"}.bytes(),
			want: Event{Kind: Opened, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.IPv4Unspecified(), Comm: "0123456789abcdef"}},
		{name: "short", in: make([]byte, RecordSize-1), err: "87 bytes, want 88"},
		{name: "empty", in: nil, err: "0 bytes"},
		{name: "bad kind", in: record{kind: 3, proto: 6, family: 2}.bytes(), err: "unknown kind 3"},
		{name: "bad proto", in: record{kind: 1, proto: 132, family: 2}.bytes(), err: "unknown protocol 132"},
		{name: "bad family", in: record{kind: 1, proto: 6, family: 1}.bytes(), err: "unknown address family 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Decode(tc.in)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

// A longer record (a future program appending fields) still decodes.
func TestDecodeLonger(t *testing.T) {
	b := append(record{kind: 1, proto: 6, family: 2, port: 22}.bytes(), 1, 2, 3, 4, 5, 6, 7, 8)
	ev, err := Decode(b)
	if err != nil || ev.Port != 22 {
		t.Fatalf("Decode = %+v, %v", ev, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(record{kind: 1, proto: 6, family: 2, port: 8080, addr: v4(127, 0, 0, 1), comm: "nginx"}.bytes())
	f.Add(record{kind: 2, proto: 17, family: 10, flags: 0xff, comm: "\xff\xfe\x00junk"}.bytes())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := Decode(b)
		if err != nil {
			return
		}
		if len(b) < RecordSize {
			t.Fatalf("decoded a %d-byte record", len(b))
		}
		if ev.Kind != Opened && ev.Kind != Closed {
			t.Fatalf("kind %d", ev.Kind)
		}
		if ev.Proto != inventory.TCP && ev.Proto != inventory.UDP {
			t.Fatalf("proto %q", ev.Proto)
		}
		if (ev.Family == inventory.IPv4) != ev.Addr.Is4() {
			t.Fatalf("family %s with address %s", ev.Family, ev.Addr)
		}
		if len(ev.Comm) > commLength {
			t.Fatalf("comm of %d bytes", len(ev.Comm))
		}
		if ev.PIDOutsideNS && (ev.PID != 0 || ev.TID != 0) {
			t.Fatalf("pid %d outside the namespace", ev.PID)
		}
	})
}
