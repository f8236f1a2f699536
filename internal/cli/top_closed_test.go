package cli

import "testing"

func TestTopClosedPortList(t *testing.T) {
	for _, c := range []struct {
		ports []uint16
		want  string
	}{
		{[]uint16{80}, "80"},
		{[]uint16{443, 80, 80, 22}, "22,80,443"},
		{[]uint16{8003, 8000, 8001, 8002, 22, 65535, 65534, 1}, "1,22,8000-8003,65534-65535"},
	} {
		s := &topSampler{ports: c.ports}
		if got := s.portList(); got != c.want {
			t.Errorf("portList(%v) = %q, want %q", c.ports, got, c.want)
		}
	}
}
