package procnet

import (
	"bytes"
	"testing"
)

func TestCountSockets(t *testing.T) {
	in := "sockets: used 290\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1\nUDP: inuse 3 mem 0\nUDPLITE: inuse 9\nRAW: inuse 1\nFRAG: inuse 0 memory 0\n"
	if n := CountSockets([]byte(in)); n != 10 {
		t.Errorf("sockstat: %d, want 10 (5 + 2 + 3)", n)
	}
	if n := CountSockets([]byte("TCP6: inuse 4\nUDP6: inuse 1\nRAW6: inuse 0\n")); n != 5 {
		t.Errorf("sockstat6: %d, want 5", n)
	}
	if n := CountSockets([]byte("TCP: inuse x tw\n: :\n")); n != 0 {
		t.Errorf("garbage: %d", n)
	}
}

func FuzzCountSockets(f *testing.F) {
	f.Add([]byte("TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1\nUDP: inuse 3 mem 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if CountSockets(b) < 0 {
			t.Fatal("negative count")
		}
	})
}

func TestInUse(t *testing.T) {
	in := []byte("sockets: used 290\nTCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1\nUDP: inuse 3 mem 0\n")
	if n, ok := InUse(in, "TCP"); !ok || n != 5 {
		t.Errorf("TCP: %d %v, want 5", n, ok)
	}
	if n, ok := InUse([]byte("TCP6: inuse 4\nUDP6: inuse 1\n"), "TCP6"); !ok || n != 4 {
		t.Errorf("TCP6: %d %v, want 4", n, ok)
	}
	for _, bad := range []string{"", "TCP: inuse x\n", "TCP: inuse -3\n", "TCP6: inuse 4\n", "TCPX: inuse 4\n", "TCP inuse 4\n"} {
		if n, ok := InUse([]byte(bad), "TCP"); ok {
			t.Errorf("%q: %d, want no count", bad, n)
		}
	}
}

func FuzzInUse(f *testing.F) {
	f.Add([]byte("TCP: inuse 5 orphan 0 tw 2 alloc 7 mem 1\nUDP: inuse 3 mem 0\n"))
	f.Add([]byte("TCP6: inuse 4\nUDP6: inuse 1\nRAW6: inuse 0\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := InUse(b, "TCP")
		if n < 0 || (!ok && n != 0) {
			t.Fatalf("InUse = %d, %v", n, ok)
		}
		if ok && !bytes.Contains(b, []byte("TCP: ")) {
			t.Fatalf("a count without a TCP line: %d", n)
		}
	})
}
