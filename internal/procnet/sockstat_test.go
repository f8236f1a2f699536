package procnet

import "testing"

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
