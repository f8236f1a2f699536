package procnet

import (
	"net/netip"
	"strings"
	"testing"
)

const tcp4 = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 25309 1 0000000000000000 100 0 0 10 0
   1: 00000000:07E8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1456 1 0000000000000000 100 0 0 10 0
   2: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 31337 1 0000000000000000 20 4 30 10 -1
`

const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:2382 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 26034 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0035 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   101        0 777 1 0000000000000000 100 0 0 10 0
`

func collect(t *testing.T, in string, states uint32) []Entry {
	t.Helper()
	var out []Entry
	if err := Parse(strings.NewReader(in), states, func(e Entry) { out = append(out, e) }); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestParseIPv4(t *testing.T) {
	got := collect(t, tcp4, 1<<10)
	want := []Entry{
		{Local: netip.MustParseAddrPort("127.0.0.1:8080"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: 10, UID: 0, Inode: 25309},
		{Local: netip.MustParseAddrPort("0.0.0.0:2024"), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: 10, UID: 1000, Inode: 1456},
	}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("entry %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if all := collect(t, tcp4, 0xffff); len(all) != 3 || all[2].Remote != netip.MustParseAddrPort("127.0.0.1:50000") {
		t.Errorf("all states: %+v", all)
	}
}

func TestParseIPv6(t *testing.T) {
	got := collect(t, tcp6, 1<<10)
	if len(got) != 2 {
		t.Fatalf("got %+v", got)
	}
	if got[0].Local != netip.MustParseAddrPort("[::]:9090") {
		t.Errorf("wildcard = %v", got[0].Local)
	}
	if got[1].Local != netip.MustParseAddrPort("[::1]:53") || got[1].UID != 101 {
		t.Errorf("loopback = %+v", got[1])
	}
}

func TestParseErrors(t *testing.T) {
	for _, in := range []string{
		"header\n 0: 0100007F:1F90 00000000:0000 0A\n",
		"header\n 0: 0100007Z:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1\n",
		"header\n 0: 0100007F:1F90 00000000:0000 0A 0:0 0:0 0 x 0 1\n",
		"header\n 0: 0100007F1F90 00000000:0000 0A 0:0 0:0 0 0 0 1\n",
		"header\n 0: 01007F:1F90 00000000:0000 0A 0:0 0:0 0 0 0 1\n",
	} {
		err := Parse(strings.NewReader(in), 0xffff, func(Entry) {})
		if err == nil || !strings.Contains(err.Error(), "line 2") {
			t.Errorf("Parse(%q) error = %v, want one naming line 2", in, err)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(tcp4)
	f.Add(tcp6)
	f.Add("header\n 0: 0100007F:1F90\n")
	f.Fuzz(func(t *testing.T, in string) {
		_ = Parse(strings.NewReader(in), 0xffffffff, func(e Entry) {
			if !e.Local.Addr().IsValid() || !e.Remote.Addr().IsValid() {
				t.Fatalf("entry with invalid address: %+v", e)
			}
		})
	})
}
