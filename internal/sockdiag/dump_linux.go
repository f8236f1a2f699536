package sockdiag

import (
	"errors"
	"fmt"

	"golang.org/x/sys/unix"
)

// Conn is a NETLINK_SOCK_DIAG socket with a reused receive buffer. Reuse it
// across dumps: a dump then allocates nothing per socket, which matters when
// a host has 100,000 of them. (A general netlink library allocates a message
// per socket; this is the one hot path where that shows.)
type Conn struct {
	fd  int
	seq uint32
	buf []byte
	req []byte
}

// Dial opens a sock_diag socket in the caller's network namespace.
func Dial() (*Conn, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("opening NETLINK_SOCK_DIAG socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding NETLINK_SOCK_DIAG socket: %w", err)
	}
	// The kernel fills each dump reply up to the reader's buffer size, to a
	// maximum of 32 KiB; a larger buffer means fewer round trips.
	return &Conn{fd: fd, buf: make([]byte, 64*1024)}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return unix.Close(c.fd) }

// Dump calls fn for every socket of the family and protocol whose kernel
// state is in states (bit n for state n). The kernel does the filtering.
func (c *Conn) Dump(family, protocol uint8, states uint32, fn func(Msg)) error {
	return c.dump(family, protocol, states, 0, nil, func(p []byte) error {
		m, err := Parse(p)
		if err != nil {
			return err
		}
		fn(m)
		return nil
	})
}

// DumpFiltered is Dump with inet_diag bytecode (from LocalPortFilter) that
// the kernel runs on each socket: only those it accepts come back.
func (c *Conn) DumpFiltered(family, protocol uint8, states uint32, filter []byte, fn func(Msg)) error {
	return c.dump(family, protocol, states, 0, filter, func(p []byte) error {
		m, err := Parse(p)
		if err != nil {
			return err
		}
		fn(m)
		return nil
	})
}

// Connections calls fn for every TCP socket of the family whose state is in
// states, with its cookie and byte counters (INET_DIAG_INFO). It is the
// dump behind "porteiro top": the kernel fills in tcp_info for each socket,
// so ask only for the states that carry traffic, and pass a filter (from
// LocalPortFilter; nil for none) to skip the sockets that are not wanted.
func (c *Conn) Connections(family uint8, states uint32, filter []byte, fn func(Msg, ConnInfo)) error {
	return c.dump(family, ProtoTCP, states, ExtInfo, filter, func(p []byte) error {
		m, ci, err := ParseConn(p)
		if err != nil {
			return err
		}
		fn(m, ci)
		return nil
	})
}

func (c *Conn) dump(family, protocol uint8, states uint32, ext uint8, filter []byte, decode func([]byte) error) error {
	c.seq++
	c.req = appendRequest(c.req[:0], c.seq, family, protocol, states, ext, filter)
	if err := unix.Sendto(c.fd, c.req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return fmt.Errorf("sock_diag request (family %d, protocol %d): %w", family, protocol, err)
	}
	for {
		n, _, err := unix.Recvfrom(c.fd, c.buf, 0)
		if err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return fmt.Errorf("sock_diag reply (family %d, protocol %d): %w", family, protocol, err)
		}
		if n == 0 {
			return fmt.Errorf("sock_diag reply (family %d, protocol %d): connection closed", family, protocol)
		}
		done, err := walkFrames(c.buf[:n], c.seq, func(p []byte) error {
			if err := decode(p); err != nil {
				return fmt.Errorf("decoding sock_diag reply: %w", err)
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("sock_diag dump (family %d, protocol %d): %w", family, protocol, err)
		}
		if done {
			return nil
		}
	}
}
