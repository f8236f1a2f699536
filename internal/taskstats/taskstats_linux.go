package taskstats

import (
	"encoding/binary"
	"errors"
	"fmt"
	"syscall"

	"golang.org/x/sys/unix"
)

// Lookup asks the kernel about process pid. It needs no /proc; the kernel
// answers root (and CAP_NET_ADMIN holders) for any process.
func Lookup(pid int) (Task, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_GENERIC)
	if err != nil {
		return Task{}, fmt.Errorf("opening a generic netlink socket: %w", err)
	}
	defer unix.Close(fd)
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return Task{}, fmt.Errorf("binding a generic netlink socket: %w", err)
	}
	name := append([]byte(familyName), 0)
	payload, err := request(fd, genlIDCtrl, ctrlCmdGetFamily, 1, attr(ctrlAttrFamilyName, name))
	if err != nil {
		if errors.Is(err, unix.ENOENT) {
			return Task{}, ErrNoFamily
		}
		return Task{}, fmt.Errorf("resolving the taskstats family: %w", err)
	}
	id, err := ParseFamilyID(payload)
	if err != nil {
		return Task{}, err
	}
	v := make([]byte, 4)
	binary.NativeEndian.PutUint32(v, uint32(pid))
	payload, err = request(fd, id, cmdGet, 1, attr(cmdAttrPID, v))
	if err != nil {
		return Task{}, fmt.Errorf("taskstats of pid %d: %w", pid, err)
	}
	t, err := ParseReply(payload)
	if err == nil && t.PID != pid {
		err = fmt.Errorf("taskstats: asked for pid %d, the kernel answered for %d", pid, t.PID)
	}
	return t, err
}

func attr(typ uint16, val []byte) []byte {
	l := nlaHeaderLen + len(val)
	b := make([]byte, (l+3)&^3)
	binary.NativeEndian.PutUint16(b, uint16(l))
	binary.NativeEndian.PutUint16(b[2:], typ)
	copy(b[nlaHeaderLen:], val)
	return b
}

// request sends one genetlink request and returns the payload of its
// answer, after the genetlink header.
func request(fd int, family uint16, cmd, version uint8, attrs []byte) ([]byte, error) {
	msg := make([]byte, nlmsgHeaderLen+genlHeaderLen+len(attrs))
	binary.NativeEndian.PutUint32(msg, uint32(len(msg)))
	binary.NativeEndian.PutUint16(msg[4:], family)
	binary.NativeEndian.PutUint16(msg[6:], unix.NLM_F_REQUEST)
	binary.NativeEndian.PutUint32(msg[8:], 1)
	msg[nlmsgHeaderLen] = cmd
	msg[nlmsgHeaderLen+1] = version
	copy(msg[nlmsgHeaderLen+genlHeaderLen:], attrs)
	if err := unix.Sendto(fd, msg, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, err
	}
	buf := make([]byte, maxReply)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	if err != nil {
		return nil, err
	}
	b := buf[:n]
	if len(b) < nlmsgHeaderLen {
		return nil, errors.New("short netlink reply")
	}
	l := int(binary.NativeEndian.Uint32(b))
	typ := binary.NativeEndian.Uint16(b[4:])
	if l < nlmsgHeaderLen || l > len(b) {
		return nil, fmt.Errorf("netlink reply of length %d in %d bytes", l, len(b))
	}
	if typ == nlmsgError {
		if l >= nlmsgHeaderLen+4 {
			if code := int32(binary.NativeEndian.Uint32(b[nlmsgHeaderLen:])); code < 0 {
				return nil, syscall.Errno(-code)
			}
		}
		return nil, errors.New("netlink error without a code")
	}
	if l < nlmsgHeaderLen+genlHeaderLen {
		return nil, errors.New("short genetlink reply")
	}
	return b[nlmsgHeaderLen+genlHeaderLen : l], nil
}
