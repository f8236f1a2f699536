package sockdiag

import (
	"encoding/binary"
	"fmt"
	"syscall"
)

// Netlink framing constants (linux/netlink.h).
const (
	nlmsgHdrLen = 16
	nlmsgDone   = 3
	nlmsgError  = 2
	nlmFMulti   = 0x2
)

// walkFrames calls fn with the payload of each sock_diag reply in one
// receive buffer. done is true when the buffer ends the dump (NLMSG_DONE).
// A kernel error (NLMSG_ERROR) is returned as a syscall.Errno. Lengths are
// checked, so a malformed buffer is an error, never a panic.
func walkFrames(b []byte, seq uint32, fn func(payload []byte) error) (done bool, err error) {
	for len(b) >= nlmsgHdrLen {
		l := int(binary.NativeEndian.Uint32(b[0:4]))
		typ := binary.NativeEndian.Uint16(b[4:6])
		mseq := binary.NativeEndian.Uint32(b[8:12])
		if l < nlmsgHdrLen || l > len(b) {
			return false, fmt.Errorf("netlink message with bad length %d (%d bytes left)", l, len(b))
		}
		payload := b[nlmsgHdrLen:l]
		adv := (l + 3) &^ 3
		if adv > len(b) {
			adv = len(b)
		}
		b = b[adv:]
		if mseq != seq {
			continue // a reply to an earlier, abandoned request
		}
		switch typ {
		case nlmsgDone:
			return true, nil
		case nlmsgError:
			if len(payload) < 4 {
				return false, fmt.Errorf("short netlink error message")
			}
			code := int32(binary.NativeEndian.Uint32(payload[0:4]))
			if code == 0 {
				continue // an acknowledgement
			}
			return false, syscall.Errno(-code)
		case SockDiagByFamily:
			if err := fn(payload); err != nil {
				return false, err
			}
		}
	}
	return false, nil
}

// appendRequest appends a complete netlink message holding an
// inet_diag_req_v2 dump request, and the bytecode filter if there is one.
func appendRequest(dst []byte, seq uint32, family, protocol uint8, states uint32, ext uint8, bytecode []byte) []byte {
	body := RequestExt(family, protocol, states, ext)
	if len(bytecode) > 0 {
		var a [4]byte
		binary.NativeEndian.PutUint16(a[0:2], uint16(4+len(bytecode)))
		binary.NativeEndian.PutUint16(a[2:4], attrReqBytecode)
		body = append(append(body, a[:]...), bytecode...) // 4-byte aligned already
	}
	var h [nlmsgHdrLen]byte
	binary.NativeEndian.PutUint32(h[0:4], uint32(nlmsgHdrLen+len(body)))
	binary.NativeEndian.PutUint16(h[4:6], SockDiagByFamily)
	binary.NativeEndian.PutUint16(h[6:8], 0x1|0x300) // NLM_F_REQUEST | NLM_F_DUMP
	binary.NativeEndian.PutUint32(h[8:12], seq)
	dst = append(dst, h[:]...)
	return append(dst, body...)
}
