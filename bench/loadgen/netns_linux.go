package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// nsPrefix names the namespaces loadgen makes: porteiro-bench-000, ...
const nsPrefix = "porteiro-bench-"

// nsBasePort is the first listener's port in each namespace; the
// namespaces are separate, so every one uses the same ports.
const nsBasePort = 8000

// nsLoad is -netns: network namespaces made as `ip netns add` makes them,
// each with listeners held by one process that is a member, as a host of
// containers has.
type nsLoad struct {
	names []string // made, to delete
	cmds  []*exec.Cmd
	pids  []int
	log   io.Writer
	// listeners counts the listening sockets made.
	listeners int
}

// startNetns makes n namespaces with per TCP listeners each, held by a
// holder (argv, env) started inside. On error, or when ctx is cancelled,
// everything made so far is removed.
func startNetns(ctx context.Context, n, per int, holder, holderEnv []string, log io.Writer) (l *nsLoad, err error) {
	ip, err := exec.LookPath("ip")
	if err != nil {
		return nil, fmt.Errorf("-netns needs ip (iproute2): %w", err)
	}
	path, err := exec.LookPath(holder[0])
	if err != nil {
		return nil, fmt.Errorf("finding the holder command: %w", err)
	}
	l = &nsLoad{log: log}
	defer func() {
		if err != nil {
			l.Stop()
			l = nil
		}
	}()
	// A namespace of this name left by a loadgen that was killed (or one
	// that runs now) is not ours to reuse or delete.
	for i := range n {
		name := fmt.Sprintf("%s%03d", nsPrefix, i)
		if _, err := os.Lstat("/run/netns/" + name); err == nil {
			return l, fmt.Errorf("/run/netns/%s exists: another loadgen runs, or one was killed; remove its namespaces with: "+
				"for n in $(ip netns list | grep -o '^%s[0-9]*'); do ip netns del $n; done", name, nsPrefix)
		}
	}
	for i := range n {
		if err := ctx.Err(); err != nil {
			return l, err
		}
		name := fmt.Sprintf("%s%03d", nsPrefix, i)
		if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
			return l, fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
		}
		l.names = append(l.names, name)
		cmd, err := l.fill(name, per, path, holder, holderEnv)
		if err != nil {
			return l, fmt.Errorf("netns %s: %w", name, err)
		}
		l.cmds = append(l.cmds, cmd)
		l.pids = append(l.pids, cmd.Process.Pid)
		l.listeners += per
		if log != nil && (i+1)%25 == 0 {
			fmt.Fprintf(log, "loadgen: %d/%d namespaces\n", i+1, n)
		}
	}
	return l, nil
}

// fill enters namespace name on a locked thread, brings lo up, opens per
// listeners and starts the holder from that thread, so that the holder is
// a member, then comes back. If the thread cannot come back it stays
// locked, and the runtime ends it with its goroutine.
func (l *nsLoad) fill(name string, per int, path string, holder, holderEnv []string) (*exec.Cmd, error) {
	type result struct {
		cmd *exec.Cmd
		err error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("opening /proc/thread-self/ns/net: %w", err)}
			return
		}
		defer unix.Close(orig)
		target, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("opening /run/netns/%s: %w", name, err)}
			return
		}
		err = unix.Setns(target, unix.CLONE_NEWNET)
		unix.Close(target)
		if err != nil {
			runtime.UnlockOSThread()
			done <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		cmd, ferr := nsListenAndHold(per, path, holder, holderEnv)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			// Stay locked: this thread dies with the goroutine.
			done <- result{cmd, errors.Join(ferr, fmt.Errorf("returning to loadgen's network namespace: %w", err))}
			return
		}
		runtime.UnlockOSThread()
		done <- result{cmd, ferr}
	}()
	r := <-done
	if r.err != nil && r.cmd != nil {
		l.cmds = append(l.cmds, r.cmd) // Stop kills it
	}
	return r.cmd, r.err
}

// nsListenAndHold runs on a thread inside the namespace: lo up, per TCP
// listeners on ports nsBasePort.. of 0.0.0.0, [::], 127.0.0.1 and ::1 in
// turn, and a holder started from this thread (a child is born in its
// parent thread's namespace) that keeps them.
func nsListenAndHold(per int, path string, holder, holderEnv []string) (*exec.Cmd, error) {
	if err := loopbackUp(); err != nil {
		return nil, err
	}
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	addrs := []unix.Sockaddr{
		&unix.SockaddrInet4{},
		&unix.SockaddrInet6{},
		&unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}},
		&unix.SockaddrInet6{Addr: [16]byte{15: 1}},
	}
	for j := range per {
		var sa unix.Sockaddr
		switch a := addrs[j%len(addrs)].(type) {
		case *unix.SockaddrInet4:
			c := *a
			c.Port = nsBasePort + j
			sa = &c
		case *unix.SockaddrInet6:
			c := *a
			c.Port = nsBasePort + j
			sa = &c
		}
		fd, err := nsListen(sa)
		if err != nil {
			return nil, err
		}
		files = append(files, os.NewFile(uintptr(fd), "listener"))
	}
	cmd := exec.Command(path, holder[1:]...)
	cmd.Env = append(os.Environ(), holderEnv...)
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting the holder: %w", err)
	}
	return cmd, nil
}

func nsListen(sa unix.Sockaddr) (int, error) {
	domain := unix.AF_INET
	if _, ok := sa.(*unix.SockaddrInet6); ok {
		domain = unix.AF_INET6
	}
	fd, err := unix.Socket(domain, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("socket: %w", err)
	}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind: %w", err)
	}
	if err := unix.Listen(fd, 64); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("listen: %w", err)
	}
	return fd, nil
}

// loopbackUp brings up lo of the calling thread's namespace.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for SIOCSIFFLAGS: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("bringing lo up: %w", err)
	}
	return nil
}

// Stop kills the holders by pid and deletes the namespaces loadgen made.
func (l *nsLoad) Stop() {
	if l == nil {
		return
	}
	for _, c := range l.cmds {
		_ = c.Process.Kill()
		_ = c.Wait()
	}
	l.cmds = nil
	ip, _ := exec.LookPath("ip")
	for _, name := range l.names {
		if out, err := exec.Command(ip, "netns", "del", name).CombinedOutput(); err != nil && l.log != nil {
			fmt.Fprintf(l.log, "loadgen: ip netns del %s: %v: %s\n", name, err, strings.TrimSpace(string(out)))
		}
	}
	l.names = nil
}

// String is the part of the ready line about the namespaces.
func (l *nsLoad) String() string {
	return "netns=" + strconv.Itoa(len(l.names)) + " netns_listeners=" + strconv.Itoa(l.listeners) + " netns_first=" + nsPrefix + "000"
}
