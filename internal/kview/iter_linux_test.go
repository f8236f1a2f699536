package kview

import (
	"context"
	"net"
	"os"
	"os/exec"
	"testing"
	"time"
)

func TestIteratorsSeeRealSockets(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading BPF iterators needs root")
	}
	p, err := Open()
	if err != nil {
		t.Skipf("kernel view not available here: %v", err)
	}
	defer p.Close()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	uc, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer uc.Close()
	tport := uint16(ln.Addr().(*net.TCPAddr).Port)
	uport := uint16(uc.LocalAddr().(*net.UDPAddr).Port)
	var sawTCP, sawUDP, sawFile, sawTask bool
	if err := p.Sockets(context.Background(), func(r Record) {
		if r.Kind == KindTCP && r.Local.Port() == tport && r.State == 10 && r.Inode != 0 {
			sawTCP = true
		}
		if r.Kind == KindUDP && r.Local.Port() == uport && r.Family == 10 && r.Inode != 0 {
			sawUDP = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	// The listener handed to a child, which must then show as its holder.
	// (net.Listen makes an MPTCP socket: the program must count it as TCP.)
	lf, err := ln.(*net.TCPListener).File()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command("sleep", "30")
	child.ExtraFiles = []*os.File{lf}
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	defer func() { child.Process.Kill(); child.Wait() }()
	// The child may not have reached exec yet: poll.
	for deadline := time.Now().Add(3 * time.Second); !sawFile && time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if err := p.TaskFiles(context.Background(), func(r Record) {
			if r.TGID == uint32(child.Process.Pid) && r.Local.Port() == tport && r.NetNS != 0 && r.FD == 3 && r.Comm == "sleep" {
				sawFile = true
			}
		}); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Tasks(context.Background(), func(r Record) {
		if r.TGID == uint32(os.Getpid()) && r.Comm != "" {
			sawTask = true
		}
	}); err != nil {
		t.Fatal(err)
	}
	if !sawTCP || !sawUDP || !sawFile || !sawTask {
		t.Fatalf("tcp %v udp %v task_file %v task %v", sawTCP, sawUDP, sawFile, sawTask)
	}
}
