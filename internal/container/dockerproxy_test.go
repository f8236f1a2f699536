package container

import (
	"net/netip"
	"testing"
)

func TestParseDockerProxy(t *testing.T) {
	a := netip.MustParseAddr
	tests := []struct {
		name string
		in   []string
		want Published
		ok   bool
	}{
		{"single dash", []string{"/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "172.17.0.2", "-container-port", "80"},
			Published{"tcp", a("0.0.0.0"), 8080, a("172.17.0.2"), 80}, true},
		{"equals and double dash", []string{"docker-proxy", "--proto=udp", "--host-ip=::", "--host-port=5353", "--container-ip=fd00::2", "--container-port=53"},
			Published{"udp", a("::"), 5353, a("fd00::2"), 53}, true},
		{"use-listen-fd", []string{"/usr/libexec/docker/docker-proxy", "-proto", "tcp", "-host-ip", "127.0.0.1", "-host-port", "5432", "-container-ip", "172.18.0.3", "-container-port", "5432", "-use-listen-fd"},
			Published{"tcp", a("127.0.0.1"), 5432, a("172.18.0.3"), 5432}, true},
		{"bool before value flags", []string{"docker-proxy", "-use-listen-fd", "-host-port", "1", "-container-ip", "10.0.0.1", "-container-port", "2"},
			Published{"tcp", netip.Addr{}, 1, a("10.0.0.1"), 2}, true},
		{"mapped v4", []string{"docker-proxy", "-host-port", "1", "-container-ip", "::ffff:10.0.0.1", "-container-port", "2"},
			Published{"tcp", netip.Addr{}, 1, a("10.0.0.1"), 2}, true},
		{"not docker-proxy", []string{"/usr/bin/socat", "-host-port", "1", "-container-ip", "10.0.0.1", "-container-port", "2"}, Published{}, false},
		{"docker-proxy in a name", []string{"/tmp/docker-proxy-evil", "-host-port", "1", "-container-ip", "10.0.0.1", "-container-port", "2"}, Published{}, false},
		{"missing value", []string{"docker-proxy", "-host-port", "1", "-container-ip", "10.0.0.1", "-container-port"}, Published{}, false},
		{"port 0", []string{"docker-proxy", "-host-port", "0", "-container-ip", "10.0.0.1", "-container-port", "2"}, Published{}, false},
		{"port too big", []string{"docker-proxy", "-host-port", "65536", "-container-ip", "10.0.0.1", "-container-port", "2"}, Published{}, false},
		{"bad proto", []string{"docker-proxy", "-proto", "icmp", "-host-port", "1", "-container-ip", "10.0.0.1", "-container-port", "2"}, Published{}, false},
		{"bad container ip", []string{"docker-proxy", "-host-port", "1", "-container-ip", "web", "-container-port", "2"}, Published{}, false},
		{"zone", []string{"docker-proxy", "-host-port", "1", "-container-ip", "fe80::1%eth0", "-container-port", "2"}, Published{}, false},
		{"bad host ip", []string{"docker-proxy", "-host-ip", "\x1b[2J", "-host-port", "1", "-container-ip", "10.0.0.1", "-container-port", "2"}, Published{}, false},
		{"positional stops flags", []string{"docker-proxy", "x", "-host-port", "1", "-container-ip", "10.0.0.1", "-container-port", "2"}, Published{}, false},
		{"empty", nil, Published{}, false},
	}
	for _, tt := range tests {
		got, ok := ParseDockerProxy(tt.in)
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: ParseDockerProxy = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}
