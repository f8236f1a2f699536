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

	attrInfo     = 2  // INET_DIAG_INFO: struct tcp_info
	attrSKV6Only = 11 // INET_DIAG_SKV6ONLY

	// ExtInfo asks for INET_DIAG_INFO in a request's idiag_ext (bit
	// INET_DIAG_INFO-1).
	ExtInfo = 1 << (attrInfo - 1)

	reqLen = 56 // sizeof(struct inet_diag_req_v2)
	msgLen = 72 // sizeof(struct inet_diag_msg)
)

// ErrShort means a message was shorter than the struct it must hold.
var ErrShort = errors.New("sock_diag message too short")

// Request returns the body of an inet_diag_req_v2 that dumps every socket of
// the family and protocol whose state is in the states bitmask.
func Request(family, protocol uint8, states uint32) []byte {
	return RequestExt(family, protocol, states, 0)
}

// RequestExt is Request with extensions (idiag_ext), such as ExtInfo.
// SKV6ONLY comes without asking.
func RequestExt(family, protocol uint8, states uint32, ext uint8) []byte {
	b := make([]byte, reqLen)
	b[0] = family
	b[1] = protocol
	b[2] = ext
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

// ConnInfo is what porteiro takes from a connection beyond Msg: the socket
// cookie, and the byte counters of INET_DIAG_INFO. It is kept apart from
// Msg so that listener dumps, which never ask for it, stay small.
type ConnInfo struct {
	// Cookie identifies the socket for the whole boot; a new connection
	// that reuses a 4-tuple gets a new cookie.
	Cookie uint64
	// BytesAcked is tcpi_bytes_acked: bytes sent and acknowledged by the
	// peer. BytesReceived is tcpi_bytes_received.
	BytesAcked    uint64
	BytesReceived uint64
	// Known is true when the reply carried a tcp_info long enough to hold
	// both counters (Linux 4.1 and later).
	Known bool
}

// tcp_info offsets (include/uapi/linux/tcp.h). The struct only grows, so a
// longer one is fine and a shorter one lacks the counters.
const (
	tcpiBytesAckedOff    = 120
	tcpiBytesReceivedOff = 128
	tcpiMinLen           = 136
)

// ErrNoCounters means a tcp_info was too short to hold the byte counters.
var ErrNoCounters = errors.New("tcp_info without byte counters")

// ParseTCPInfo takes tcpi_bytes_acked and tcpi_bytes_received from a
// struct tcp_info, checking its length first.
func ParseTCPInfo(b []byte) (acked, received uint64, err error) {
	if len(b) < tcpiMinLen {
		return 0, 0, fmt.Errorf("%w: %d bytes, want at least %d", ErrNoCounters, len(b), tcpiMinLen)
	}
	return binary.NativeEndian.Uint64(b[tcpiBytesAckedOff:]), binary.NativeEndian.Uint64(b[tcpiBytesReceivedOff:]), nil
}

// Parse decodes an inet_diag_msg and its attributes. Ports are big-endian;
// every other integer is in the host's order.
func Parse(b []byte) (Msg, error) {
	m, err := parse(b, nil)
	return m, err
}

// ParseConn decodes an inet_diag_msg with its cookie and, when the reply
// carries INET_DIAG_INFO, the connection's byte counters.
func ParseConn(b []byte) (Msg, ConnInfo, error) {
	var ci ConnInfo
	m, err := parse(b, &ci)
	return m, ci, err
}

func parse(b []byte, ci *ConnInfo) (Msg, error) {
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
	// b[44:52] cookie, two u32 halves, low first; b[52:56] expires
	if ci != nil {
		ci.Cookie = uint64(binary.NativeEndian.Uint32(b[44:48])) | uint64(binary.NativeEndian.Uint32(b[48:52]))<<32
	}
	m.RQueue = binary.NativeEndian.Uint32(b[56:60])
	m.WQueue = binary.NativeEndian.Uint32(b[60:64])
	m.UID = binary.NativeEndian.Uint32(b[64:68])
	m.Inode = binary.NativeEndian.Uint32(b[68:72])
	if err := parseAttrs(b[msgLen:], &m, ci); err != nil {
		return m, err
	}
	return m, nil
}

// parseAttrs walks the rtattr list after the message. Unknown attributes are
// skipped; a malformed length is an error rather than a panic.
// The tcp_info is decoded only when ci is not nil; one too short to hold
// the counters leaves ci.Known false rather than failing the message.
func parseAttrs(b []byte, m *Msg, ci *ConnInfo) error {
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
		if typ == attrInfo && ci != nil {
			if a, r, err := ParseTCPInfo(b[4:l]); err == nil {
				ci.BytesAcked, ci.BytesReceived, ci.Known = a, r, true
			}
		}
		adv := (l + 3) &^ 3
		if adv > len(b) {
			break
		}
		b = b[adv:]
	}
	return nil
}
