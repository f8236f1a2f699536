// Package procnet parses /proc/net/{tcp,tcp6,udp,udp6}, the text view of the
// kernel's socket tables. porteiro reads it only when sock_diag netlink is
// refused.
package procnet

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
)

// Entry is one socket line.
type Entry struct {
	Local  netip.AddrPort
	Remote netip.AddrPort
	State  uint8
	UID    uint32
	Inode  uint64
}

// Parse reads a /proc/net/{tcp,udp}[6] table and calls fn for each socket
// whose state is in states (bit n for kernel state n). The header line is
// skipped. A malformed line is an error naming its line number.
func Parse(r io.Reader, states uint32, fn func(Entry)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 1024*1024)
	line := 0
	for sc.Scan() {
		line++
		b := sc.Bytes()
		if line == 1 {
			continue // header
		}
		if len(bytes.TrimSpace(b)) == 0 {
			continue
		}
		e, err := parseLine(b, states)
		if err == errSkip {
			continue
		}
		if err != nil {
			return fmt.Errorf("line %d: %w", line, err)
		}
		fn(e)
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading socket table: %w", err)
	}
	return nil
}

var errSkip = fmt.Errorf("skip")

// fields returns up to n whitespace-separated fields without allocating a
// slice per field beyond the fixed array.
func fields(b []byte, out *[10][]byte) int {
	n := 0
	for n < len(out) {
		for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
			b = b[1:]
		}
		if len(b) == 0 {
			break
		}
		i := 0
		for i < len(b) && b[i] != ' ' && b[i] != '\t' {
			i++
		}
		out[n] = b[:i]
		b = b[i:]
		n++
	}
	return n
}

func parseLine(b []byte, states uint32) (Entry, error) {
	var e Entry
	var f [10][]byte
	if n := fields(b, &f); n < 10 {
		return e, fmt.Errorf("want at least 10 fields, got %d", n)
	}
	st, err := strconv.ParseUint(string(f[3]), 16, 8)
	if err != nil {
		return e, fmt.Errorf("bad state %q", f[3])
	}
	e.State = uint8(st)
	if st >= 32 || states&(1<<st) == 0 {
		return e, errSkip
	}
	if e.Local, err = parseAddrPort(f[1]); err != nil {
		return e, fmt.Errorf("local address: %w", err)
	}
	if e.Remote, err = parseAddrPort(f[2]); err != nil {
		return e, fmt.Errorf("remote address: %w", err)
	}
	uid, err := strconv.ParseUint(string(f[7]), 10, 32)
	if err != nil {
		return e, fmt.Errorf("bad uid %q", f[7])
	}
	e.UID = uint32(uid)
	if e.Inode, err = strconv.ParseUint(string(f[9]), 10, 64); err != nil {
		return e, fmt.Errorf("bad inode %q", f[9])
	}
	return e, nil
}

// parseAddrPort decodes "0100007F:0016". The address is the kernel's
// in-memory bytes printed as 32-bit words in host order (little-endian on
// every platform porteiro supports for this fallback); the port is a plain
// hex number.
func parseAddrPort(b []byte) (netip.AddrPort, error) {
	i := bytes.IndexByte(b, ':')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("no ':' in %q", b)
	}
	ab, pb := b[:i], b[i+1:]
	port, err := strconv.ParseUint(string(pb), 16, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", pb)
	}
	var raw [16]byte
	switch len(ab) {
	case 8:
		if _, err := hex.Decode(raw[:4], ab); err != nil {
			return netip.AddrPort{}, fmt.Errorf("bad address %q", ab)
		}
		swapWords(raw[:4])
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(raw[:4])), uint16(port)), nil
	case 32:
		if _, err := hex.Decode(raw[:], ab); err != nil {
			return netip.AddrPort{}, fmt.Errorf("bad address %q", ab)
		}
		swapWords(raw[:])
		return netip.AddrPortFrom(netip.AddrFrom16(raw), uint16(port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("bad address length %d in %q", len(ab), ab)
}

// swapWords turns each printed little-endian 32-bit word back into memory
// (network) order.
func swapWords(b []byte) {
	for i := 0; i+4 <= len(b); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(b[i:]))
	}
}
