package bench

import (
	"os"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"
)

// The fd walk is most of porteiro's cost. These benchmarks time the three
// ways to learn what one /proc/PID/fd entry is, over every fd of the host,
// so that the per-fd kernel cost can be compared outside the engine.

type fdOp func(dirfd int, name string, buf []byte) bool

func benchFDWalk(b *testing.B, op fdOp) {
	pids := listPIDs(b)
	dbuf := make([]byte, 32*1024)
	lbuf := make([]byte, 64)
	fds := 0
	b.ReportAllocs()
	for b.Loop() {
		fds = 0
		for _, pid := range pids {
			dirfd, err := unix.Open("/proc/"+pid+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			for {
				n, err := unix.Getdents(dirfd, dbuf)
				if err != nil || n <= 0 {
					break
				}
				_, _, names := unix.ParseDirent(dbuf[:n], -1, nil)
				for _, name := range names {
					if op == nil || op(dirfd, name, lbuf) {
						fds++
					}
				}
			}
			unix.Close(dirfd)
		}
	}
	if fds > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fds), "ns/fd")
		b.ReportMetric(float64(fds), "fds")
	}
}

func listPIDs(b *testing.B) []string {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		b.Skip(err)
	}
	var pids []string
	for _, e := range ents {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, e.Name())
		}
	}
	return pids
}

// BenchmarkFDGetdentsOnly lists the fd directories and nothing more.
func BenchmarkFDGetdentsOnly(b *testing.B) { benchFDWalk(b, nil) }

// BenchmarkFDReadlink adds a readlinkat per fd, as porteiro, ss and lsof do.
func BenchmarkFDReadlink(b *testing.B) {
	benchFDWalk(b, func(dirfd int, name string, buf []byte) bool {
		n, err := unix.Readlinkat(dirfd, name, buf)
		return err == nil && n > 0
	})
}

// BenchmarkFDStat adds a stat per fd (following the link), as fuser does:
// st_ino is the socket inode when S_IFSOCK.
func BenchmarkFDStat(b *testing.B) {
	var st unix.Stat_t
	benchFDWalk(b, func(dirfd int, name string, buf []byte) bool {
		return unix.Fstatat(dirfd, name, &st, 0) == nil
	})
}
