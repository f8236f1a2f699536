package sockdiag

import (
	"fmt"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// Conn is a NETLINK_SOCK_DIAG socket. Reuse it across dumps: dialing costs
// a socket and a bind each time.
type Conn struct {
	c *netlink.Conn
}

// Dial opens a sock_diag socket in the caller's network namespace.
func Dial() (*Conn, error) {
	c, err := netlink.Dial(unix.NETLINK_SOCK_DIAG, nil)
	if err != nil {
		return nil, fmt.Errorf("opening NETLINK_SOCK_DIAG socket: %w", err)
	}
	return &Conn{c: c}, nil
}

// Close closes the socket.
func (c *Conn) Close() error { return c.c.Close() }

// Dump returns every socket of the family and protocol whose kernel state is
// in states (bit n for state n). The kernel does the filtering.
func (c *Conn) Dump(family, protocol uint8, states uint32, fn func(Msg)) error {
	req := netlink.Message{
		Header: netlink.Header{
			Type:  SockDiagByFamily,
			Flags: netlink.Request | netlink.Dump,
		},
		Data: Request(family, protocol, states),
	}
	msgs, err := c.c.Execute(req)
	if err != nil {
		return fmt.Errorf("sock_diag dump (family %d, protocol %d): %w", family, protocol, err)
	}
	for _, nm := range msgs {
		m, err := Parse(nm.Data)
		if err != nil {
			return fmt.Errorf("decoding sock_diag reply: %w", err)
		}
		fn(m)
	}
	return nil
}
