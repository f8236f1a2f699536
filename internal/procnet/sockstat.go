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
	eachCount(b, func(proto, key string, n int) {
		switch proto {
		case "TCP", "TCP6", "UDP", "UDP6":
			if key == "inuse" || key == "tw" {
				total += n
			}
		}
	})
	return total
}

// InUse returns the "inuse" count of proto ("TCP", "TCP6"...) in the text
// of /proc/net/sockstat or sockstat6, and whether the file gives it. For
// TCP it counts the namespace's listening and connected sockets, not those
// in TIME-WAIT.
func InUse(b []byte, proto string) (n int, ok bool) {
	eachCount(b, func(p, key string, v int) {
		if p == proto && key == "inuse" && !ok {
			n, ok = v, true
		}
	})
	return n, ok
}

// eachCount calls fn for each "key value" pair of each "PROTO: key value
// key value..." line whose value is a non-negative number.
func eachCount(b []byte, fn func(proto, key string, n int)) {
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		name, rest, ok := bytes.Cut(line, []byte(": "))
		if !ok {
			continue
		}
		f := bytes.Fields(rest)
		for i := 0; i+1 < len(f); i += 2 {
			if n, err := strconv.Atoi(string(f[i+1])); err == nil && n >= 0 {
				fn(string(name), string(f[i]), n)
			}
		}
	}
}
