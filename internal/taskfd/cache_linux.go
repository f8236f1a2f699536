package taskfd

import (
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// cachePath is the layout cache (see cache.go). Tests point it elsewhere.
var cachePath = "/run/porteiro-taskfd.cache"

// currentKey identifies the running kernel's BTF.
func currentKey() (cacheKey, error) {
	var k cacheKey
	fd, err := unix.Open("/proc/sys/kernel/random/boot_id", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return k, err
	}
	var b [64]byte
	n, err := unix.Read(fd, b[:])
	unix.Close(fd)
	if err != nil {
		return k, err
	}
	if n < len(k.BootID) {
		return k, errCacheMiss
	}
	copy(k.BootID[:], b[:len(k.BootID)])
	var st unix.Stat_t
	if err := unix.Stat(VmlinuxBTF, &st); err != nil {
		return k, err
	}
	k.BTFSize, k.BTFMtime = st.Size, st.Mtim.Nano()
	return k, nil
}

// readCache returns the cached layout for k, if the file at path is root's
// alone and holds one.
func readCache(path string, k cacheKey) (Layout, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return Layout{}, errCacheMiss
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG ||
		st.Uid != 0 || st.Mode&0o022 != 0 || st.Size != int64(cacheSize) {
		return Layout{}, errCacheMiss
	}
	b := make([]byte, cacheSize+1) // one more: a file that grew is no record
	n, err := unix.Read(fd, b)
	if err != nil {
		return Layout{}, errCacheMiss
	}
	return decodeCache(b[:n], k)
}

// writeCache keeps l for k at path, replacing what is there at once (a
// reader sees the old file or the new one). Only root writes it; failing
// to (a read-only /run) only means parsing the BTF next time too.
func writeCache(path string, k cacheKey, l Layout) {
	if os.Geteuid() != 0 {
		return
	}
	tmp := path + ".tmp" + strconv.Itoa(os.Getpid())
	fd, err := unix.Open(tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return
	}
	b := encodeCache(k, l)
	n, err := unix.Write(fd, b)
	if cerr := unix.Close(fd); err == nil && cerr == nil && n == len(b) {
		if unix.Rename(tmp, path) == nil {
			return
		}
	}
	unix.Unlink(tmp)
}

// dropCache removes a cached layout that the iterator proved wrong.
func dropCache() { unix.Unlink(cachePath) }
