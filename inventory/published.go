package inventory

import (
	"bufio"
	"bytes"
	"net/netip"
	"strings"

	"github.com/porteiro/porteiro/internal/container"
)

// Forward is where a published port leads: docker-proxy listens on the
// host and forwards to an address and port inside a container.
type Forward struct {
	Proto   Proto      `json:"proto"`
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
	// NetNS and NetNSName name the container's namespace, when one of the
	// namespaces porteiro read has the address; Container names it.
	NetNS     uint64     `json:"netns,omitempty"`
	NetNSName string     `json:"netns_name,omitempty"`
	Container *Container `json:"container,omitempty"`
}

// forwardOf reads a docker-proxy owner's command line.
func forwardOf(procs []Process) (*Forward, bool) {
	for i := range procs {
		p, ok := container.ParseDockerProxy(procs[i].Cmdline)
		if !ok {
			continue
		}
		proto := TCP
		if p.Proto == "udp" {
			proto = UDP
		}
		return &Forward{Proto: proto, Address: p.ContainerIP, Port: p.ContainerPort}, true
	}
	return nil, false
}

// ParseFibTrieLocal returns the local IPv4 addresses in the text of
// /proc/PID/net/fib_trie: each "|-- ADDR" line followed by a "/32 host
// LOCAL" line. Lines that do not parse are skipped.
func ParseFibTrieLocal(b []byte) []netip.Addr {
	var out []netip.Addr
	var last netip.Addr
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 4096)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if a, ok := strings.CutPrefix(line, "|-- "); ok {
			last, _ = netip.ParseAddr(a)
			continue
		}
		if last.IsValid() && strings.HasPrefix(line, "/32 host LOCAL") {
			if !containsAddr(out, last) {
				out = append(out, last)
			}
			last = netip.Addr{}
		}
	}
	return out
}

func containsAddr(s []netip.Addr, a netip.Addr) bool {
	for _, x := range s {
		if x == a {
			return true
		}
	}
	return false
}
