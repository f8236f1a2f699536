package taskfd

import (
	"golang.org/x/sys/unix"
	"os"
	"testing"
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
