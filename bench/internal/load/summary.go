package load

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"
)

// Options says how the holders run.
type Options struct {
	// Holder is the argv of every holder process; Holder[0] is looked up
	// in PATH. Default: sleep infinity. The holder must leave fds 3 and up
	// alone.
	Holder []string
	// HolderEnv is added to the holders' environment.
	HolderEnv []string
	// Log gets progress lines; nil discards them.
	Log io.Writer
}

// Summary describes a running load.
type Summary struct {
	LoadgenPID  int
	PIDs        []int // holders, in start order
	Sockets     int   // TCP and UDP sockets (kernel sockets)
	Shared      int   // sockets held by more than one process
	ReuseGroups int
	OtherFDs    int
	Count       [numKinds]int
	WhoAddr     netip.AddrPort // a TCP listener held by loadgen and two holders
	Setup       time.Duration
}

// String is the one-line summary that loadgen prints after "ready".
func (s *Summary) String() string {
	var b strings.Builder
	first, last := 0, 0
	if len(s.PIDs) > 0 {
		first, last = s.PIDs[0], s.PIDs[len(s.PIDs)-1]
	}
	fmt.Fprintf(&b, "procs=%d loadgen_pid=%d pids=%d..%d sockets=%d", len(s.PIDs), s.LoadgenPID, first, last, s.Sockets)
	fmt.Fprintf(&b, " tcp_listen=%d", s.Count[TCPListen]+s.Count[TCPListen6]+s.Count[TCPReusePort]+s.Count[TCPAcceptor]+s.Count[TCPWho])
	fmt.Fprintf(&b, " tcp_established=%d udp=%d", s.Count[TCPClient]+s.Count[TCPServer], s.Count[UDPBound]+s.Count[UDPBound6]+s.Count[UDPConnected])
	fmt.Fprintf(&b, " shared=%d reuseport_groups=%d other_fds=%d", s.Shared, s.ReuseGroups, s.OtherFDs)
	fmt.Fprintf(&b, " who_port=%d who_addr=%s setup=%s", s.WhoAddr.Port(), s.WhoAddr.Addr(), s.Setup.Round(time.Millisecond))
	return b.String()
}
