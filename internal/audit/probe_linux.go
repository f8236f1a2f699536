package audit

import (
	"context"
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// allPorts lists the 262,140 probes: TCP and UDP, v4 and v6, ports 1-65535.
func allPorts() []Port {
	out := make([]Port, 0, 4*65535)
	for p := 1; p <= 65535; p++ {
		for _, proto := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			out = append(out, Port{proto, false, uint16(p)}, Port{proto, true, uint16(p)})
		}
	}
	return out
}

// probeAll binds every port the views do not already explain and returns
// the ones in use, how many were probed and how many the views explained.
func probeAll(ctx context.Context, exp Explained, workers int) (busy []Port, probed, explained int) {
	all := allPorts()
	todo := all[:0]
	for _, p := range all {
		if exp[p] {
			explained++
			continue
		}
		todo = append(todo, p)
	}
	return probe(ctx, todo, exp, workers), len(todo), explained
}

// probe binds each port not explained and returns those in use. The work is
// split in contiguous slices, one per worker, so no two workers try the same
// port at once (a probe's own socket must not make another fail).
func probe(ctx context.Context, ports []Port, exp Explained, workers int) []Port {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	var todo []Port
	for _, p := range ports {
		if !exp[p] {
			todo = append(todo, p)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	chunk := (len(todo) + workers - 1) / workers
	results := make([][]Port, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(todo))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(w int, part []Port) {
			defer wg.Done()
			for i, p := range part {
				if i%4096 == 0 && ctx.Err() != nil {
					return
				}
				if inUse(p) {
					results[w] = append(results[w], p)
				}
			}
		}(w, todo[lo:hi])
	}
	wg.Wait()
	var busy []Port
	for _, r := range results {
		busy = append(busy, r...)
	}
	return busy
}

// inUse binds the wildcard address on the port and says whether the kernel
// refused it because the port is taken. No SO_REUSEADDR: a TIME-WAIT on
// the port then refuses too, and the views show those.
//
// socket, setsockopt, bind and close do not block, so they are made as raw
// syscalls with a prepared address: 262,140 probes spend their time in the
// kernel rather than in the Go scheduler's syscall bookkeeping.
func inUse(p Port) bool {
	fam, typ := uintptr(unix.AF_INET), uintptr(unix.SOCK_STREAM|unix.SOCK_CLOEXEC)
	if p.V6 {
		fam = unix.AF_INET6
	}
	if p.Proto == unix.IPPROTO_UDP {
		typ = unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	}
	fd, _, errno := unix.RawSyscall(unix.SYS_SOCKET, fam, typ, 0)
	if errno != 0 {
		return false
	}
	defer unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	port := p.Port<<8 | p.Port>>8 // network order
	var errb unix.Errno
	if p.V6 {
		one := int32(1)
		if _, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY,
			uintptr(unsafe.Pointer(&one)), 4, 0); e != 0 {
			return false
		}
		sa := unix.RawSockaddrInet6{Family: unix.AF_INET6, Port: port}
		_, _, errb = unix.RawSyscall(unix.SYS_BIND, fd, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet6)
	} else {
		sa := unix.RawSockaddrInet4{Family: unix.AF_INET, Port: port}
		_, _, errb = unix.RawSyscall(unix.SYS_BIND, fd, uintptr(unsafe.Pointer(&sa)), unix.SizeofSockaddrInet4)
	}
	return errb == unix.EADDRINUSE
}

// unexplained drops the ports that socks account for.
func unexplained(busy []Port, socks []Sock) []Port {
	e := Explained{}
	for _, s := range socks {
		e.Add(s)
	}
	out := busy[:0]
	for _, p := range busy {
		if !e[p] {
			out = append(out, p)
		}
	}
	return out
}
