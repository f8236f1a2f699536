package inventory

import (
	"net/netip"
	"os"
	"slices"
	"testing"
)

const fibTrie = `Main:
  +-- 0.0.0.0/0 3 0 5
     |-- 0.0.0.0
        /0 universe UNICAST
     +-- 172.17.0.0/16 2 0 2
        |-- 172.17.0.0
           /16 link UNICAST
        |-- 172.17.0.2
           /32 host LOCAL
Local:
  +-- 0.0.0.0/0 3 0 5
     +-- 127.0.0.0/8 2 0 2
           |-- 127.0.0.1
              /32 host LOCAL
        |-- 172.17.0.2
           /32 host LOCAL
        |-- 172.17.255.255
           /32 link BROADCAST
`

func TestParseFibTrieLocal(t *testing.T) {
	got := ParseFibTrieLocal([]byte(fibTrie))
	want := []netip.Addr{netip.MustParseAddr("172.17.0.2"), netip.MustParseAddr("127.0.0.1")}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// The live file of this process's namespace has 127.0.0.1 (lo is up
	// wherever tests run).
	if b, err := os.ReadFile("/proc/self/net/fib_trie"); err == nil {
		if !slices.Contains(ParseFibTrieLocal(b), netip.MustParseAddr("127.0.0.1")) {
			t.Errorf("127.0.0.1 not among the local addresses of /proc/self/net/fib_trie")
		}
	}
}

func TestForwardOf(t *testing.T) {
	procs := []Process{{ProcessInfo: &ProcessInfo{
		Name: "docker-proxy",
		Cmdline: []string{"/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "0.0.0.0",
			"-host-port", "8080", "-container-ip", "172.17.0.2", "-container-port", "80"},
	}}}
	f, ok := forwardOf(procs)
	if !ok || f.Proto != TCP || f.Address != netip.MustParseAddr("172.17.0.2") || f.Port != 80 {
		t.Errorf("forwardOf = %+v, %v", f, ok)
	}
	if _, ok := forwardOf([]Process{{ProcessInfo: &ProcessInfo{Name: "nginx", Cmdline: []string{"nginx"}}}}); ok {
		t.Error("nginx taken for docker-proxy")
	}
}

func FuzzParseFibTrieLocal(f *testing.F) {
	f.Add([]byte(fibTrie))
	f.Add([]byte("|-- 10.0.0.1\n/32 host LOCAL\n|-- zz\n/32 host LOCAL\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, a := range ParseFibTrieLocal(b) {
			if !a.IsValid() {
				t.Errorf("invalid address from %q", b)
			}
		}
	})
}
