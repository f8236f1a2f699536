package procnet

import (
	"bytes"
	"strconv"
)

// CountSockets adds up the TCP and UDP sockets that /proc/net/sockstat or
// sockstat6 reports ("TCP: inuse 5 orphan 0 tw 2 ...", "UDP6: inuse 1"),
// TIME-WAIT included. It is an estimate for sizing buffers: malformed lines
// count as zero.
func CountSockets(b []byte) int {
	total := 0
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		name, rest, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		switch string(name) {
		case "TCP", "TCP6", "UDP", "UDP6":
		default:
			continue
		}
		f := bytes.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if k := string(f[i]); k == "inuse" || k == "tw" {
				if n, err := strconv.Atoi(string(f[i+1])); err == nil && n > 0 {
					total += n
				}
			}
		}
	}
	return total
}
