package taskfd

import (
	"encoding/binary"
	"testing"
)

// FuzzParseLayout feeds ParseLayout arbitrary bytes: it must return, without
// panicking, within seconds (parseWithin), and a layout it accepts must be one the
// assembler can use. The corpus in testdata/fuzz/FuzzParseLayout holds a
// valid synthetic kernel BTF among others.
func FuzzParseLayout(f *testing.F) {
	b := kernelLike()
	f.Add(b.encode(binary.LittleEndian))
	f.Add(b.encode(binary.BigEndian))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, blob []byte) {
		l, err := parseWithin(t, blob)
		if err != nil {
			return
		}
		if l.AttachID == 0 {
			t.Errorf("accepted layout attaches to type 0: %+v", l)
		}
		for _, off := range []int16{l.CtxMeta, l.CtxTask, l.CtxFD, l.CtxFile, l.MetaSeq, l.FileInode,
			l.InodeMode, l.InodeIno, l.TaskGroupLeader, l.TaskThreadPid, l.PidNumbers, l.UpidNr} {
			if off < 0 {
				t.Errorf("accepted layout has a negative offset: %+v", l)
			}
		}
		if l.UpidSize <= 0 || l.UpidSize > 256 || l.PidNumbers > 1<<14 {
			t.Errorf("accepted layout has a bad pid array: %+v", l)
		}
		if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
			if _, err := Program(l, 0); err != nil {
				t.Errorf("Program refuses an accepted layout %+v: %v", l, err)
			}
		}
	})
}

// FuzzParseRecords checks that ParseRecords hands over every byte of a
// whole number of records, in order, and refuses anything else.
func FuzzParseRecords(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, RecordSize))
	f.Add(make([]byte, RecordSize+1))
	f.Fuzz(func(t *testing.T, b []byte) {
		n := 0
		err := ParseRecords(b, func(pid, fd uint32, inode uint64, netns uint32) {
			at := b[n*RecordSize:]
			if pid != binary.NativeEndian.Uint32(at) || fd != binary.NativeEndian.Uint32(at[4:]) ||
				inode != binary.NativeEndian.Uint64(at[8:]) || netns != binary.NativeEndian.Uint32(at[16:]) {
				t.Errorf("record %d decoded as (%d, %d, %d, %d)", n, pid, fd, inode, netns)
			}
			n++
		})
		if err != nil {
			if len(b)%RecordSize == 0 {
				t.Errorf("%d bytes refused: %v", len(b), err)
			}
			if n != 0 {
				t.Errorf("%d records handed over before the error", n)
			}
			return
		}
		if n*RecordSize != len(b) {
			t.Errorf("%d records from %d bytes", n, len(b))
		}
	})
}
