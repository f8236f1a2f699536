package taskfd

import (
	"bytes"
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

// appendTask encodes k as the task program writes it.
func appendTask(b []byte, k Task) []byte {
	var h [TaskHeaderSize]byte
	o := binary.NativeEndian
	o.PutUint32(h[taskPID:], k.PID)
	o.PutUint32(h[taskPPID:], k.PPID)
	o.PutUint32(h[taskUID:], k.UID)
	o.PutUint32(h[taskFlags:], k.Flags)
	o.PutUint32(h[taskState:], k.State)
	o.PutUint32(h[taskExit:], k.ExitState)
	o.PutUint64(h[taskStart:], k.StartBoottime)
	o.PutUint32(h[taskNetNS:], k.NetNS)
	o.PutUint32(h[taskCmdLen:], uint32(len(k.Cmdline)))
	o.PutUint64(h[taskArgs:], k.Args)
	copy(h[taskComm:taskComm+commLen], k.Comm)
	o.PutUint64(h[taskExeMnt:], k.ExeMnt)
	o.PutUint64(h[taskExeDen:], k.ExeDentry)
	o.PutUint64(h[taskCSSSet:], k.CSSSet)
	o.PutUint32(h[taskThread:], k.Threads)
	return append(append(b, h[:]...), k.Cmdline...)
}

// FuzzParseTasks: any bytes are refused whole, or split into records that
// cover them exactly and encode back to them.
func FuzzParseTasks(f *testing.F) {
	f.Add([]byte{})
	f.Add(make([]byte, TaskHeaderSize))
	f.Add(make([]byte, TaskHeaderSize-1))
	f.Add(appendTask(appendTask(nil, Task{PID: 1, Comm: []byte("a\nb\x1b[2J"), Cmdline: []byte("sh\x00-c\x00"), Args: 6}),
		Task{PID: 2, Flags: PFKthread, Comm: []byte("0123456789abcdef")}))
	f.Fuzz(func(t *testing.T, b []byte) {
		var again []byte
		calls := 0
		err := ParseTasks(b, func(k *Task) {
			calls++
			if len(k.Comm) > commLen || bytes.IndexByte(k.Comm, 0) >= 0 || len(k.Cmdline) > TaskCmdMax {
				t.Fatalf("record %d: comm %q, command line of %d bytes", calls, k.Comm, len(k.Cmdline))
			}
			again = appendTask(again, *k)
		})
		if err != nil {
			if calls != 0 {
				t.Fatalf("%d records handed over before the error %v", calls, err)
			}
			return
		}
		// The encoding drops what follows comm's NUL, and the padding:
		// compare record by record but for those.
		if len(again) != len(b) {
			t.Fatalf("records of %d bytes from %d", len(again), len(b))
		}
		for i := 0; i < len(b); {
			n := int(binary.NativeEndian.Uint32(b[i+taskCmdLen:]))
			if !bytes.Equal(again[i:i+taskComm], b[i:i+taskComm]) ||
				!bytes.Equal(again[i+taskExeMnt:i+taskThread+4], b[i+taskExeMnt:i+taskThread+4]) ||
				!bytes.Equal(again[i+TaskHeaderSize:i+TaskHeaderSize+n], b[i+TaskHeaderSize:i+TaskHeaderSize+n]) {
				t.Fatalf("record at %d decoded differently", i)
			}
			i += TaskHeaderSize + n
		}
	})
}
