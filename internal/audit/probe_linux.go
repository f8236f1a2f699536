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
func probeAll(ctx context.Context, exp Explained, workers int, in func(func()) error) (busy []Port, probed, explained int) {
	all := allPorts()
	todo := all[:0]
	for _, p := range all {
		if exp[p] {
			explained++
			continue
		}
		todo = append(todo, p)
	}
	return probe(ctx, todo, exp, workers, in), len(todo), explained
}

// probeTask is one port of one protocol, with the families to probe.
type probeTask struct {
	proto  uint8
	port   uint16
	v4, v6 bool
}

// probe binds each port not explained and returns those in use. The work is
// split in contiguous slices, one per worker, and each (protocol, port) is
// one task, so no two workers try the same port at once (a probe's own
// socket must not make another fail).
//
// When both families of a port need probing, one dual-stack bind on [::]
// (IPV6_V6ONLY off) answers for both: it is refused by any IPv4 or IPv6
// socket on the port. Only when it is refused are the two exact probes
// made. That halves the work on a host where most ports are free.
//
// in, when not nil, runs each worker's probes inside the namespace to
// probe (netns.Do); a worker that could not enter probes nothing.
func probe(ctx context.Context, ports []Port, exp Explained, workers int, in func(func()) error) []Port {
	if workers <= 0 {
		workers = runtime.NumCPU()
	}
	var tasks []probeTask
	index := map[[2]uint16]int{}
	for _, p := range ports {
		if exp[p] {
			continue
		}
		k := [2]uint16{uint16(p.Proto), p.Port}
		i, ok := index[k]
		if !ok {
			i = len(tasks)
			index[k] = i
			tasks = append(tasks, probeTask{proto: p.Proto, port: p.Port})
		}
		if p.V6 {
			tasks[i].v6 = true
		} else {
			tasks[i].v4 = true
		}
	}
	if len(tasks) == 0 {
		return nil
	}
	dual := dualStackWorks()
	chunk := (len(tasks) + workers - 1) / workers
	results := make([][]Port, workers)
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		lo, hi := w*chunk, min((w+1)*chunk, len(tasks))
		if lo >= hi {
			break
		}
		wg.Add(1)
		go func(w int, part []probeTask) {
			defer wg.Done()
			work := func() {
				for i, t := range part {
					if i%4096 == 0 && ctx.Err() != nil {
						return
					}
					if dual && t.v4 && t.v6 && !bindRefused(t.proto, t.port, modeDual) {
						continue
					}
					if t.v4 && bindRefused(t.proto, t.port, modeV4) {
						results[w] = append(results[w], Port{t.proto, false, t.port})
					}
					if t.v6 && bindRefused(t.proto, t.port, modeV6Only) {
						results[w] = append(results[w], Port{t.proto, true, t.port})
					}
				}
			}
			if in == nil {
				work()
			} else {
				_ = in(work) // not entered: this worker probed nothing
			}
		}(w, tasks[lo:hi])
	}
	wg.Wait()
	var busy []Port
	for _, r := range results {
		busy = append(busy, r...)
	}
	return busy
}

// dualStackWorks says whether this host has IPv6 sockets that can be
// dual-stack (no IPv6, or bindv6only forced on, and the probe makes two
// binds per port).
func dualStackWorks() bool {
	fd, err := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return false
	}
	defer unix.Close(fd)
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 0); err != nil {
		return false
	}
	v, err := unix.GetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
	return err == nil && v == 0
}

func inUse(p Port) bool {
	if p.V6 {
		return bindRefused(p.Proto, p.Port, modeV6Only)
	}
	return bindRefused(p.Proto, p.Port, modeV4)
}

const (
	modeV4     = iota // 0.0.0.0:port
	modeV6Only        // [::]:port with IPV6_V6ONLY
	modeDual          // [::]:port without it: refused by v4 and v6 sockets
)

// bindRefused binds the wildcard address on the port and says whether the
// kernel refused it because the port is taken. No SO_REUSEADDR: a
// TIME-WAIT on the port then refuses too, and the views show those.
//
// socket, setsockopt, bind and close do not block, so they are made as raw
// syscalls with a prepared address: the probes spend their time in the
// kernel rather than in the Go scheduler's syscall bookkeeping.
func bindRefused(proto uint8, p uint16, mode int) bool {
	fam, typ := uintptr(unix.AF_INET), uintptr(unix.SOCK_STREAM|unix.SOCK_CLOEXEC)
	if mode != modeV4 {
		fam = unix.AF_INET6
	}
	if proto == unix.IPPROTO_UDP {
		typ = unix.SOCK_DGRAM | unix.SOCK_CLOEXEC
	}
	fd, _, errno := unix.RawSyscall(unix.SYS_SOCKET, fam, typ, 0)
	if errno != 0 {
		return false
	}
	defer unix.RawSyscall(unix.SYS_CLOSE, fd, 0, 0)
	port := p<<8 | p>>8 // network order
	var errb unix.Errno
	if mode != modeV4 {
		only := int32(1)
		if mode == modeDual {
			only = 0
		}
		if _, _, e := unix.RawSyscall6(unix.SYS_SETSOCKOPT, fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY,
			uintptr(unsafe.Pointer(&only)), 4, 0); e != 0 {
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
