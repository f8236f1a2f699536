package kview

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

func rawRecord(kind Kind, family uint8, comm string) []byte {
	b := make([]byte, RecordSize)
	ne := binary.NativeEndian
	ne.PutUint64(b[0:], 4242)
	ne.PutUint64(b[8:], 77)
	ne.PutUint32(b[16:], 4026531840)
	ne.PutUint32(b[20:], 1234)
	ne.PutUint32(b[24:], 1000)
	ne.PutUint32(b[28:], 7)
	b[32], b[33], b[34], b[35] = byte(kind), 6, family, 10
	ne.PutUint16(b[36:], 8080)
	ne.PutUint16(b[38:], 0)
	b[40] = 1
	if family == 2 {
		copy(b[48:], []byte{127, 0, 0, 1})
	} else if family == 10 {
		b[63] = 1
	}
	copy(b[80:], comm)
	return b
}

func TestParse(t *testing.T) {
	r, err := Parse(rawRecord(KindFile, 2, "nginx\x1b[31m"))
	if err != nil {
		t.Fatal(err)
	}
	if r.Inode != 4242 || r.CgroupID != 77 || r.TGID != 1234 || r.UID != 1000 || r.FD != 7 || !r.V6Only ||
		r.Local != netip.MustParseAddrPort("127.0.0.1:8080") || r.Comm != "nginx\x1b[31m" {
		t.Fatalf("%+v", r)
	}
	r, err = Parse(rawRecord(KindTCP, 10, "0123456789abcdef"))
	if err != nil || r.Local != netip.MustParseAddrPort("[::1]:8080") || r.Comm != "0123456789abcdef" {
		t.Fatalf("%+v %v", r, err)
	}
	for _, bad := range [][]byte{nil, make([]byte, 95), rawRecord(9, 2, ""), rawRecord(KindTCP, 0, ""), rawRecord(KindTCP, 3, "")} {
		if _, err := Parse(bad); !errors.Is(err, ErrBadRecord) {
			t.Errorf("Parse(%x) = %v, want ErrBadRecord", bad, err)
		}
	}
	if err := ParseAll(make([]byte, RecordSize+1), func(Record) {}); !errors.Is(err, ErrBadRecord) {
		t.Errorf("ParseAll of a partial record: %v", err)
	}
	if _, err := Parse(rawRecord(KindTask, 0, "init")); err != nil {
		t.Errorf("a task record has no family: %v", err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(rawRecord(KindFile, 2, "nginx"))
	f.Add(rawRecord(KindUDP, 10, "x"))
	f.Add(rawRecord(KindTask, 0, "init"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := ParseAll(b, func(r Record) {
			n++
			if r.Kind != KindTask && !r.Local.IsValid() {
				t.Fatalf("socket record without an address: %+v", r)
			}
		})
		if err == nil && n != len(b)/RecordSize {
			t.Fatalf("%d records from %d bytes", n, len(b))
		}
	})
}
