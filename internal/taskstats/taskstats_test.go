package taskstats

import (
	"encoding/binary"
	"testing"
)

// reply builds a TASKSTATS_CMD_GET reply payload as the kernel does.
func reply(pid uint32, comm string, uid uint32, statsLen int) []byte {
	st := make([]byte, statsLen)
	binary.NativeEndian.PutUint16(st, 14) // version
	copy(st[offComm:offComm+lenComm], comm)
	if statsLen >= offUID+4 {
		binary.NativeEndian.PutUint32(st[offUID:], uid)
	}
	if statsLen >= offPID+4 {
		binary.NativeEndian.PutUint32(st[offPID:], pid)
	}
	p := make([]byte, 4)
	binary.NativeEndian.PutUint32(p, pid)
	inner := append(attr(typePID, p), attr(typeStats, st)...)
	return attr(typeAggrPID, inner)
}

func TestParseReply(t *testing.T) {
	got, err := ParseReply(reply(4242, "nc\x1b[31m", 1000, 352))
	if err != nil || got != (Task{PID: 4242, Comm: "nc\x1b[31m", UID: 1000}) {
		t.Errorf("ParseReply = %+v, %v", got, err)
	}
	// A comm of the full 32 bytes has no NUL.
	long := "0123456789abcdef0123456789abcdef"
	if got, err := ParseReply(reply(1, long, 0, 352)); err != nil || got.Comm != long {
		t.Errorf("32-byte comm: %+v, %v", got, err)
	}
	if _, err := ParseReply(reply(1, "x", 0, minStatsLen-1)); err == nil {
		t.Error("a struct too short to hold the uid was accepted")
	}
	if _, err := ParseReply(nil); err == nil {
		t.Error("an empty reply was accepted")
	}
	bad := reply(1, "x", 0, 352)
	binary.NativeEndian.PutUint16(bad, 9999) // length past the end
	if _, err := ParseReply(bad); err == nil {
		t.Error("an attribute longer than the reply was accepted")
	}
}

func TestParseFamilyID(t *testing.T) {
	id := make([]byte, 2)
	binary.NativeEndian.PutUint16(id, 0x1f)
	b := append(attr(ctrlAttrFamilyName, []byte("TASKSTATS\x00")), attr(ctrlAttrFamilyID, id)...)
	if got, err := ParseFamilyID(b); err != nil || got != 0x1f {
		t.Errorf("ParseFamilyID = %#x, %v", got, err)
	}
	if _, err := ParseFamilyID(attr(ctrlAttrFamilyName, []byte("X\x00"))); err == nil {
		t.Error("a reply without an id was accepted")
	}
}

func FuzzParseReply(f *testing.F) {
	f.Add(reply(4242, "sleep", 0, 352))
	f.Add(reply(1, "x", 0, minStatsLen))
	f.Add([]byte{4, 0, 4, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		got, err := ParseReply(b)
		if err == nil && len(got.Comm) > lenComm {
			t.Errorf("comm of %d bytes", len(got.Comm))
		}
		ParseFamilyID(b)
	})
}
