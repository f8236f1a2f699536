// Package sockfd asks one process's sockets about themselves. It lists the
// socket fds of the process (/proc/PID/fd), takes a duplicate of each with
// pidfd_getfd(2), and reads from the duplicate what the kernel knows: the
// family, type and protocol, both addresses, the TCP state, the bound
// device, IPV6_V6ONLY, the owner and inode, and the network namespace
// (SIOCGSKNS). The cost follows the process: nothing of the rest of the host
// is read, unlike a sock_diag dump.
//
// pidfd_getfd needs the right to ptrace the process (PTRACE_MODE_ATTACH) and
// Linux 5.6; without them the calls fail with an error that matches
// ErrRefused, and the caller falls back to the dump.
//
// Only reads are made on a duplicate, and it is closed at once. One side
// effect remains, the kernel's: like a socket received over a unix socket,
// a duplicate takes the cgroup v1 net_cls classid and net_prio index of the
// process that receives it (__receive_sock), which matters only where those
// v1 controllers shape traffic.
package sockfd

import (
	"encoding/binary"
	"net/netip"
)

const direntNameOff = 19 // offsetof(struct linux_dirent64, d_name)

// parseDirents calls fn with the name of each linux_dirent64 record in b
// (what getdents64 wrote), without its NUL padding. It stops at the first
// malformed record.
func parseDirents(b []byte, fn func(name []byte)) {
	for len(b) >= direntNameOff {
		reclen := int(binary.NativeEndian.Uint16(b[16:18]))
		if reclen < direntNameOff || reclen > len(b) {
			return
		}
		name := b[direntNameOff:reclen]
		b = b[reclen:]
		for i, c := range name {
			if c == 0 {
				name = name[:i]
				break
			}
		}
		fn(name)
	}
}

// parseFD parses an fd directory entry's name: decimal digits, at most
// 2^31-1. "." and ".." are not fds.
func parseFD(name []byte) (int, bool) {
	if len(name) == 0 || len(name) > 10 {
		return 0, false
	}
	v := 0
	for _, c := range name {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, v <= 1<<31-1
}

// Address families, as struct sockaddr's first field holds them.
const (
	afInet  = 2
	afInet6 = 10
)

// parseSockaddr decodes a struct sockaddr_in or sockaddr_in6 of n bytes,
// as getsockname(2) fills it. The port is big-endian, the family native.
// An IPv6 address keeps no zone: sock_diag reports none either, and the
// two paths must give the same sockets.
func parseSockaddr(b []byte) (family uint16, ap netip.AddrPort, ok bool) {
	if len(b) < 2 {
		return 0, ap, false
	}
	family = binary.NativeEndian.Uint16(b[:2])
	switch family {
	case afInet:
		if len(b) < 8 {
			return family, ap, false
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return family, netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[4:8])), port), true
	case afInet6:
		if len(b) < 24 {
			return family, ap, false
		}
		port := binary.BigEndian.Uint16(b[2:4])
		return family, netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[8:24])), port), true
	}
	return family, ap, false
}
