// Package sockdiag speaks the kernel's sock_diag netlink protocol
// (NETLINK_SOCK_DIAG, inet_diag), which is what ss uses to list sockets. The
// encoder and decoder here are pure and run anywhere; only dump_linux.go
// opens a socket.
package sockdiag

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// Kernel constants from linux/inet_diag.h and linux/sock_diag.h.
const (
	SockDiagByFamily = 20 // SOCK_DIAG_BY_FAMILY message type

	AFInet  = 2
	AFInet6 = 10

	ProtoTCP = 6
	ProtoUDP = 17

	attrSKV6Only = 11 // INET_DIAG_SKV6ONLY

	reqLen = 56 // sizeof(struct inet_diag_req_v2)
	msgLen = 72 // sizeof(struct inet_diag_msg)
)

// ErrShort means a message was shorter than the struct it must hold.
var ErrShort = errors.New("sock_diag message too short")

// Request returns the body of an inet_diag_req_v2 that dumps every socket of
// the family and protocol whose state is in the states bitmask.
func Request(family, protocol uint8, states uint32) []byte {
	b := make([]byte, reqLen)
	b[0] = family
	b[1] = protocol
	b[2] = 0 // idiag_ext: no extensions; SKV6ONLY comes anyway
	binary.NativeEndian.PutUint32(b[4:8], states)
	// The socket id stays zero: a dump ignores it, except for cookie
	// INET_DIAG_NOCOOKIE, which zero also means "no filter".
	return b
}

// Msg is one decoded inet_diag_msg.
type Msg struct {
	Family  uint8
	State   uint8
	Local   netip.AddrPort
	Remote  netip.AddrPort
	IfIndex uint32
	UID     uint32
	Inode   uint32
	RQueue  uint32
	WQueue  uint32
	// V6Only is meaningful when V6OnlyKnown: the kernel reports it for
	// AF_INET6 sockets.
	V6Only      bool
	V6OnlyKnown bool
}

// Parse decodes an inet_diag_msg and its attributes. Ports are big-endian;
// every other integer is in the host's order.
func Parse(b []byte) (Msg, error) {
	var m Msg
	if len(b) < msgLen {
		return m, fmt.Errorf("%w: %d bytes, want at least %d", ErrShort, len(b), msgLen)
	}
	m.Family = b[0]
	m.State = b[1]
	sport := binary.BigEndian.Uint16(b[4:6])
	dport := binary.BigEndian.Uint16(b[6:8])
	var src, dst netip.Addr
	switch m.Family {
	case AFInet:
		src = netip.AddrFrom4([4]byte(b[8:12]))
		dst = netip.AddrFrom4([4]byte(b[24:28]))
	case AFInet6:
		src = netip.AddrFrom16([16]byte(b[8:24]))
		dst = netip.AddrFrom16([16]byte(b[24:40]))
	default:
		return m, fmt.Errorf("sock_diag message with unknown family %d", m.Family)
	}
	m.Local = netip.AddrPortFrom(src, sport)
	m.Remote = netip.AddrPortFrom(dst, dport)
	m.IfIndex = binary.NativeEndian.Uint32(b[40:44])
	// b[44:52] cookie, b[52:56] expires
	m.RQueue = binary.NativeEndian.Uint32(b[56:60])
	m.WQueue = binary.NativeEndian.Uint32(b[60:64])
	m.UID = binary.NativeEndian.Uint32(b[64:68])
	m.Inode = binary.NativeEndian.Uint32(b[68:72])
	if err := parseAttrs(b[msgLen:], &m); err != nil {
		return m, err
	}
	return m, nil
}

// parseAttrs walks the rtattr list after the message. Unknown attributes are
// skipped; a malformed length is an error rather than a panic.
func parseAttrs(b []byte, m *Msg) error {
	for len(b) >= 4 {
		l := int(binary.NativeEndian.Uint16(b[0:2]))
		typ := binary.NativeEndian.Uint16(b[2:4]) & 0x3fff // strip NLA_F_NESTED/NET_BYTEORDER
		if l < 4 || l > len(b) {
			return fmt.Errorf("sock_diag attribute %d with bad length %d (%d bytes left)", typ, l, len(b))
		}
		if typ == attrSKV6Only && l >= 5 {
			m.V6Only = b[4] != 0
			m.V6OnlyKnown = true
		}
		adv := (l + 3) &^ 3
		if adv > len(b) {
			break
		}
		b = b[adv:]
	}
	return nil
}
