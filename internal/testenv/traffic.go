package testenv

import (
	"io"
	"net"
	"sync/atomic"
	"time"
)

// Drain accepts every connection of ln and reads each to its end, until ln
// is closed: a server that data can be pushed into.
func Drain(ln net.Listener) {
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
}

// Push writes chunk to c every interval, adding what it wrote to written,
// until stop is closed or a write fails; then it closes c. The rate is
// len(chunk) per interval, which the tests compare with what porteiro top
// measures.
func Push(c net.Conn, chunk []byte, every time.Duration, written *atomic.Int64, stop <-chan struct{}) {
	defer c.Close()
	tk := time.NewTicker(every)
	defer tk.Stop()
	for {
		select {
		case <-stop:
			return
		case <-tk.C:
			n, err := c.Write(chunk)
			written.Add(int64(n))
			if err != nil {
				return
			}
		}
	}
}
