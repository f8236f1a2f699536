package container

import (
	"net/netip"
	"path"
	"strconv"
	"strings"
)

// Published is one port that docker-proxy forwards from the host to a
// container.
type Published struct {
	Proto         string     `json:"proto"` // tcp, udp or sctp
	HostIP        netip.Addr `json:"host_ip"`
	HostPort      uint16     `json:"host_port"`
	ContainerIP   netip.Addr `json:"container_ip"`
	ContainerPort uint16     `json:"container_port"`
}

// ParseDockerProxy reads a docker-proxy command line:
//
//	docker-proxy -proto tcp -host-ip 0.0.0.0 -host-port 8080 -container-ip 172.17.0.2 -container-port 80
//
// Flags take Go's forms: -flag value, -flag=value, and the same with two
// dashes. Flags it does not know (-use-listen-fd) are skipped. It reports
// false unless argv[0] is docker-proxy and the host port, the container
// address and the container port are all there and valid.
func ParseDockerProxy(cmdline []string) (Published, bool) {
	var p Published
	if len(cmdline) == 0 || path.Base(cmdline[0]) != "docker-proxy" {
		return p, false
	}
	vals := map[string]string{}
	for i := 1; i < len(cmdline); i++ {
		a := cmdline[i]
		if a == "--" || !strings.HasPrefix(a, "-") {
			break // flag parsing stops at the first non-flag, as in Go's flag package
		}
		name := strings.TrimPrefix(strings.TrimPrefix(a, "-"), "-")
		val, hasVal := "", false
		if k, v, ok := strings.Cut(name, "="); ok {
			name, val, hasVal = k, v, true
		}
		switch name {
		case "proto", "host-ip", "host-port", "container-ip", "container-port":
			if !hasVal {
				if i+1 >= len(cmdline) {
					return Published{}, false
				}
				i++
				val = cmdline[i]
			}
			vals[name] = val
		}
	}
	p.Proto = vals["proto"]
	if p.Proto == "" {
		p.Proto = "tcp" // docker-proxy's default
	}
	switch p.Proto {
	case "tcp", "udp", "sctp":
	default:
		return Published{}, false
	}
	var ok bool
	if p.HostPort, ok = port(vals["host-port"]); !ok {
		return Published{}, false
	}
	if p.ContainerPort, ok = port(vals["container-port"]); !ok {
		return Published{}, false
	}
	ca, err := netip.ParseAddr(vals["container-ip"])
	if err != nil || ca.Zone() != "" {
		return Published{}, false
	}
	p.ContainerIP = ca.Unmap()
	if s, set := vals["host-ip"]; set {
		ha, err := netip.ParseAddr(s)
		if err != nil || ha.Zone() != "" {
			return Published{}, false
		}
		p.HostIP = ha.Unmap()
	}
	return p, true
}

func port(s string) (uint16, bool) {
	v, err := strconv.ParseUint(s, 10, 16)
	if err != nil || v == 0 {
		return 0, false
	}
	return uint16(v), true
}
