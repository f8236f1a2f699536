package load

import "testing"

func TestPlanTotals(t *testing.T) {
	for _, name := range []string{"small", "medium", "large"} {
		c, err := Preset(name)
		if err != nil {
			t.Fatal(err)
		}
		p, err := NewPlan(c)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p.Sockets != c.Sockets {
			t.Errorf("%s: %d sockets planned, want %d", name, p.Sockets, c.Sockets)
		}
		if p.OtherFDs != c.FDs {
			t.Errorf("%s: %d other fds planned, want %d", name, p.OtherFDs, c.FDs)
		}
		if p.Count[TCPClient] != p.Count[TCPServer] {
			t.Errorf("%s: %d clients, %d servers", name, p.Count[TCPClient], p.Count[TCPServer])
		}
		if p.Count[TCPReusePort]%reuseGroup != 0 || p.ReuseGroups == 0 || p.Shared == 0 {
			t.Errorf("%s: reuseport %d in %d groups, %d shared", name, p.Count[TCPReusePort], p.ReuseGroups, p.Shared)
		}
		for i, h := range p.Holds {
			if len(h) == 0 {
				t.Errorf("%s: holder %d holds nothing", name, i)
			}
		}
		// Every held item is created no later than its first holder starts.
		created := map[int32]int{}
		for _, id := range p.CreateParent {
			created[id] = -1
		}
		for i, ids := range p.Create {
			for _, id := range ids {
				created[id] = i
				if p.Items[id].Kind == TCPClient {
					created[id+1] = i
				}
			}
		}
		for i, ids := range p.Holds {
			for _, id := range ids {
				at, ok := created[id]
				if !ok || at > i {
					t.Fatalf("%s: item %d (%v) held by %d is created at %d (%v)", name, id, p.Items[id].Kind, i, at, ok)
				}
			}
		}
		t.Logf("%s: %d holders, %d sockets (%d shared, %d reuseport groups), largest holder %d fds, loadgen peak %d fds",
			name, len(p.Holds), p.Sockets, p.Shared, p.ReuseGroups, p.MaxHolderFDs, p.ParentFDs)
	}
}

func TestPlanRejects(t *testing.T) {
	for _, c := range []Config{
		{Procs: 0, Sockets: 100},
		{Procs: 1, Sockets: 3},
		{Procs: 1, Sockets: 100, FDs: -1},
		{Procs: 1, Sockets: 100, ListenFrac: 0.9, UDPFrac: 0.5},
	} {
		if _, err := NewPlan(c); err == nil {
			t.Errorf("NewPlan(%+v) = nil error", c)
		}
	}
}

func TestPlanTiny(t *testing.T) {
	p, err := NewPlan(Config{Procs: 1, Sockets: 16, FDs: 3})
	if err != nil {
		t.Fatal(err)
	}
	if p.Sockets != 16 || p.OtherFDs != 3 {
		t.Errorf("got %d sockets, %d other fds", p.Sockets, p.OtherFDs)
	}
}
