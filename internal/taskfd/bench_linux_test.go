package taskfd

import (
	"context"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

func BenchmarkParseLayout(b *testing.B) {
	raw, err := os.ReadFile(VmlinuxBTF)
	if err != nil {
		b.Skip(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseLayout(raw); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkReadBTF(b *testing.B) {
	for b.Loop() {
		if _, err := os.ReadFile(VmlinuxBTF); err != nil {
			b.Skip(err)
		}
	}
}

func BenchmarkMmapBTF(b *testing.B) {
	for b.Loop() {
		f, err := os.Open(VmlinuxBTF)
		if err != nil {
			b.Skip(err)
		}
		st, _ := f.Stat()
		m, err := unix.Mmap(int(f.Fd()), 0, int(st.Size()), unix.PROT_READ, unix.MAP_PRIVATE)
		if err != nil {
			b.Skip(err)
		}
		if _, err := ParseLayout(m); err != nil {
			b.Fatal(err)
		}
		unix.Munmap(m)
		f.Close()
	}
}

// BenchmarkRead is one pass of the iterator over every process, reusing the
// buffer as a caller would.
func BenchmarkRead(b *testing.B) { benchRead(b, openIterator(b)) }

// BenchmarkReadListeners is BenchmarkRead with the program for the
// states of listeners (OpenStates), which leaves connected sockets out.
func BenchmarkReadListeners(b *testing.B) {
	openIterator(b) // skips where there is no iterator
	it, err := OpenStates(1<<10 | 1<<7)
	if err != nil {
		b.Fatal(err)
	}
	defer it.Close()
	benchRead(b, it)
}

// benchRead times passes of it, reusing the buffer as a caller would.
func benchRead(b *testing.B, it *Iterator) {
	ctx := context.Background()
	buf, err := it.Read(ctx, nil)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if buf, err = it.Read(ctx, buf); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(buf)/RecordSize), "records")
}

// BenchmarkOpenTasks loads the task iterator program (the verifier's
// time, most of it).
func BenchmarkOpenTasks(b *testing.B) {
	openTasks(b).Close()
	for b.Loop() {
		t, err := OpenTasks()
		if err != nil {
			b.Fatal(err)
		}
		t.Close()
	}
}

// BenchmarkTasksRead runs one task pass over every process, and reports
// its cost per process.
func BenchmarkTasksRead(b *testing.B) {
	tk := openTasks(b)
	var buf []byte
	procs := 0
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if buf, err = tk.Read(context.Background(), buf); err != nil {
			b.Fatal(err)
		}
		procs = 0
		ParseTasks(buf, func(*Task) { procs++ })
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(max(procs, 1)), "ns/process")
	b.ReportMetric(float64(procs), "processes")
}

// BenchmarkOpen loads and attaches the task-file program as Open does:
// the depth program first, then the program built for that depth.
func BenchmarkOpen(b *testing.B) {
	for b.Loop() {
		it, err := Open()
		if err != nil {
			b.Skip(err)
		}
		it.Close()
	}
}

// BenchmarkReaderDepth is the depth program alone: load, attach to one
// thread, one read.
func BenchmarkReaderDepth(b *testing.B) {
	_, l, err := readerLayout()
	if err != nil {
		b.Skip(err)
	}
	for b.Loop() {
		if _, err := readerDepth(l); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLoadProgram compares the verifier's time on the program that
// finds the reader's depth for every file with the one built for it.
func BenchmarkLoadProgram(b *testing.B) {
	level, l, err := readerLayout()
	if err != nil {
		b.Skip(err)
	}
	for _, exact := range []bool{false, true} {
		b.Run(map[bool]string{false: "any-depth", true: "exact"}[exact], func(b *testing.B) {
			code, err := Program(l, level)
			if exact {
				code, err = ExactProgram(l, level, 0)
			}
			if err != nil {
				b.Fatal(err)
			}
			for b.Loop() {
				fd, err := loadProgram(code, l.AttachID)
				if err != nil {
					b.Fatal(err)
				}
				unix.Close(fd)
			}
		})
	}
}
