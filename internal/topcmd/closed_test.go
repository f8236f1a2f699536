package topcmd

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"
)

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

// The notes say that short connections may be undercounted only when
// porteirod's counters were not there, and where the counting came from
// when they were: in batch text and in the screen's footer.
func TestTopClosedNotes(t *testing.T) {
	for _, counted := range []bool{false, true} {
		v := sampleView()
		v.ClosedCounted = counted
		var b bytes.Buffer
		if err := writeTopText(&b, v, "web01", 7, 0); err != nil {
			t.Fatal(err)
		}
		u := newTopUI(&topFlags{ProcRoot: "/proc", Socket: filepath.Join(t.TempDir(), "none.sock")})
		u.view = v
		u.noColor = true
		for what, s := range map[string]string{"text": b.String(), "footer": u.render()} {
			under := strings.Contains(s, "undercounted")
			from := strings.Contains(s, "counted by porteirod") || strings.Contains(s, "porteirod's eBPF close counters")
			if under == counted || from != counted {
				t.Errorf("%s with ClosedCounted %v:\n%s", what, counted, s)
			}
		}
		u.sampler.Close()
	}
}
