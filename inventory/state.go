package inventory

import (
	"fmt"
	"strings"
)

// State is a socket state, named as ss names it: LISTEN, ESTABLISHED, UNCONN...
type State string

// Kernel TCP states (include/net/tcp_states.h), used by sock_diag and /proc/net.
const (
	TCPEstablished = 1
	TCPSynSent     = 2
	TCPSynRecv     = 3
	TCPFinWait1    = 4
	TCPFinWait2    = 5
	TCPTimeWait    = 6
	TCPClose       = 7
	TCPCloseWait   = 8
	TCPLastAck     = 9
	TCPListen      = 10
	TCPClosing     = 11
	TCPNewSynRecv  = 12
)

var stateNames = [...]State{
	TCPEstablished: "ESTABLISHED",
	TCPSynSent:     "SYN-SENT",
	TCPSynRecv:     "SYN-RECV",
	TCPFinWait1:    "FIN-WAIT-1",
	TCPFinWait2:    "FIN-WAIT-2",
	TCPTimeWait:    "TIME-WAIT",
	TCPClose:       "UNCONN",
	TCPCloseWait:   "CLOSE-WAIT",
	TCPLastAck:     "LAST-ACK",
	TCPListen:      "LISTEN",
	TCPClosing:     "CLOSING",
	TCPNewSynRecv:  "SYN-RECV",
}

// StateFromKernel names a kernel state number.
func StateFromKernel(n uint8) State {
	if int(n) < len(stateNames) && stateNames[n] != "" {
		return stateNames[n]
	}
	return State(fmt.Sprintf("UNKNOWN-%d", n))
}

// StateMask is a set of kernel states, bit n for state n, as sock_diag takes it.
type StateMask uint32

// Masks for common queries.
const (
	MaskAll         StateMask = 0xfff << 1
	MaskTCPListen   StateMask = 1 << TCPListen
	MaskUDPListen   StateMask = 1 << TCPClose
	MaskEstablished StateMask = 1 << TCPEstablished
)

// Has reports whether the mask holds kernel state n.
func (m StateMask) Has(n uint8) bool { return n < 32 && m&(1<<n) != 0 }

// ParseStates parses a comma-separated list of state names (case-insensitive;
// "listening", "connected" and "all" are groups) into a mask.
func ParseStates(s string) (StateMask, error) {
	var m StateMask
	for _, f := range strings.Split(s, ",") {
		f = strings.ToUpper(strings.TrimSpace(f))
		f = strings.ReplaceAll(f, "_", "-")
		switch f {
		case "":
			continue
		case "ALL":
			m |= MaskAll
			continue
		case "LISTENING":
			m |= MaskTCPListen | MaskUDPListen
			continue
		case "CONNECTED":
			m |= MaskAll &^ (MaskTCPListen | MaskUDPListen | 1<<TCPTimeWait | 1<<TCPSynRecv)
			continue
		case "SYN-RECV":
			m |= 1<<TCPSynRecv | 1<<TCPNewSynRecv
			continue
		case "CLOSE", "CLOSED":
			f = "UNCONN"
		}
		found := false
		for i, n := range stateNames {
			if n != "" && string(n) == f {
				m |= 1 << i
				found = true
			}
		}
		if !found {
			return 0, fmt.Errorf("unknown socket state %q: want one of listen, established, syn-sent, syn-recv, fin-wait-1, fin-wait-2, time-wait, unconn, close-wait, last-ack, closing, listening, connected, all", strings.ToLower(f))
		}
	}
	if m == 0 {
		return 0, fmt.Errorf("empty socket state list")
	}
	return m, nil
}
