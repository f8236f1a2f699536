package audit

import (
	"net/netip"
	"reflect"
	"testing"
)

const hostNS = 4026531840

func tcp(local string, state uint8, inode uint64) Sock {
	return Sock{Proto: 6, Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort("0.0.0.0:0"), State: state, Inode: inode}
}

func roundWith(tables map[View][]Sock) *Round {
	return &Round{HostNS: hostNS, Namespaces: map[uint64]*Namespace{hostNS: {Inode: hostNS, Member: 1, Tables: tables}}}
}

func same(socks ...Sock) map[View][]Sock {
	return map[View][]Sock{ViewSockDiag: socks, ViewProcNet: socks, ViewBPFSock: socks}
}

func TestAgreeingViewsAreClean(t *testing.T) {
	s := []Sock{tcp("0.0.0.0:22", 10, 100), tcp("127.0.0.1:40000", 6, 0)}
	r := roundWith(same(s...))
	if f := Compare([]*Round{r, r, r}); len(f) != 0 {
		t.Fatalf("%+v", f)
	}
}

func TestMismatchNeedsEveryRound(t *testing.T) {
	ssh := tcp("0.0.0.0:22", 10, 100)
	lying := roundWith(map[View][]Sock{ViewSockDiag: {ssh}, ViewProcNet: {}, ViewBPFSock: {ssh}})
	honest := roundWith(same(ssh))
	if f := Compare([]*Round{lying, honest, lying}); len(f) != 0 {
		t.Fatalf("a difference one round did not see is churn: %+v", f)
	}
	lying.KernelFDs = []FD{{Owner: Owner{PID: 7, Comm: "sshd"}, NetNS: hostNS, Sock: ssh}}
	f := Compare([]*Round{lying, lying, lying})
	if len(f) != 1 {
		t.Fatalf("%+v", f)
	}
	got := f[0]
	if got.Kind != KindViewMismatch || got.Local != "0.0.0.0:22" || got.State != "LISTEN" || got.Proto != "tcp4" ||
		!reflect.DeepEqual(got.SeenBy, []View{ViewSockDiag, ViewBPFSock}) || !reflect.DeepEqual(got.MissedBy, []View{ViewProcNet}) ||
		len(got.Owners) != 1 || got.Owners[0].Comm != "sshd" {
		t.Fatalf("%+v", got)
	}
}

func TestOneViewComparesNothing(t *testing.T) {
	r := roundWith(map[View][]Sock{ViewSockDiag: {tcp("0.0.0.0:22", 10, 100)}})
	if f := Compare([]*Round{r, r}); len(f) != 0 {
		t.Fatalf("%+v", f)
	}
}

func TestExplains(t *testing.T) {
	v4 := tcp("0.0.0.0:80", 10, 1)
	dual := Sock{Proto: 6, Local: netip.MustParseAddrPort("[::]:80"), State: 10, Inode: 2}
	v6only := dual
	v6only.V6Only = true
	udp := v4
	udp.Proto = 17
	p4, p6 := Port{6, false, 80}, Port{6, true, 80}
	for _, c := range []struct {
		s    Sock
		p    Port
		want bool
	}{
		{v4, p4, true},
		{v4, p6, false},  // IPV6_V6ONLY probes do not collide with v4 sockets
		{dual, p4, true}, // dual-stack :: holds the v4 port
		{dual, p6, true},
		{v6only, p4, false},
		{v6only, p6, true},
		{udp, p4, false},
		{tcp("127.0.0.1:80", 6, 0), p4, true}, // TIME-WAIT refuses bind() too
		{tcp("0.0.0.0:81", 10, 1), p4, false},
	} {
		if got := Explains(c.s, c.p); got != c.want {
			t.Errorf("Explains(%v v6only=%v, %v) = %v", c.s.Local, c.s.V6Only, c.p, got)
		}
	}
}

func TestHiddenSocket(t *testing.T) {
	r := roundWith(same(tcp("0.0.0.0:22", 10, 100)))
	r.KernelFDs = []FD{}
	r.Busy = map[uint64][]Port{hostNS: {{6, false, 31337}}}
	f := Compare([]*Round{r, r})
	if len(f) != 1 || f[0].Kind != KindHiddenSocket || f[0].Local != "0.0.0.0:31337" ||
		!reflect.DeepEqual(f[0].MissedBy, []View{ViewSockDiag, ViewProcNet, ViewBPFSock, ViewBPFFile}) {
		t.Fatalf("%+v", f)
	}
	e := ExplainedBy(r, hostNS)
	if !e[Port{6, false, 22}] || e[Port{6, true, 22}] || e[Port{6, false, 31337}] {
		t.Fatalf("%v", e)
	}
}

func TestBoundNotListeningIsExplainedByTheFileTables(t *testing.T) {
	r := roundWith(same())
	r.KernelFDs = []FD{{Owner: Owner{PID: 9}, NetNS: hostNS, Sock: tcp("0.0.0.0:5000", 7, 55)}}
	if !ExplainedBy(r, hostNS)[Port{6, false, 5000}] {
		t.Fatal("a TCP socket bound but not listening is in no table, but a process holds it")
	}
}

func TestHiddenProcessAndOrphan(t *testing.T) {
	const orphan = 4026532999
	lst := tcp("0.0.0.0:4444", 10, 900)
	r := roundWith(same())
	r.Namespaces[orphan] = &Namespace{Inode: orphan, Tables: same(lst)}
	r.Namespaces[4026533000] = &Namespace{Inode: 4026533000, Mount: "/run/netns/cni-1"} // CNI leftover: named, empty
	fd := 3
	r.KernelFDs = []FD{{Owner: Owner{PID: 4242, Comm: "evil\x1b[2J", UID: 0, CgroupID: 5, FD: &fd}, NetNS: orphan, Sock: lst}}
	r.Tasks = map[uint32]Task{4242: {TGID: 4242, Comm: "evil\x1b[2J", CgroupID: 5}, 1: {TGID: 1, Comm: "init"}}
	r.ProcHidden = map[uint32]string{4242: "readdir does not list it", 99: "exited: not in the kernel's list"}
	f := Compare([]*Round{r, r, r})
	if len(f) != 2 {
		t.Fatalf("%+v", f)
	}
	hp, on := f[0], f[1]
	if hp.Kind != KindHiddenProcess || hp.PID != 4242 || hp.Owners[0].Comm != "evil\x1b[2J" || hp.Owners[0].CgroupID != 5 || len(hp.Sockets) != 1 {
		t.Fatalf("%+v", hp)
	}
	if on.Kind != KindOrphanNetNS || on.NetNS != orphan || len(on.Sockets) != 1 || on.Sockets[0].Local != "0.0.0.0:4444" || on.Owners[0].PID != 4242 {
		t.Fatalf("%+v", on)
	}
}

func TestProcFDMissing(t *testing.T) {
	fd := 5
	r := roundWith(same(tcp("0.0.0.0:22", 10, 100)))
	r.KernelFDs = []FD{{Owner: Owner{PID: 7, Comm: "sshd", FD: &fd}, NetNS: hostNS, Sock: tcp("0.0.0.0:22", 10, 100)}}
	r.ProcFDMissing = map[int]string{0: "no fd 5"}
	f := Compare([]*Round{r, r})
	if len(f) != 1 || f[0].Kind != KindViewMismatch || f[0].PID != 7 || !reflect.DeepEqual(f[0].MissedBy, []View{ViewProcFD}) {
		t.Fatalf("%+v", f)
	}
}

func TestNSMounts(t *testing.T) {
	in := "22 1 0:21 / /proc rw,nosuid - proc proc rw\n" +
		"36 35 0:4 net:[4026532280] /run/netns/blue rw shared:5 - nsfs nsfs rw\n" +
		"37 35 0:4 net:[4026532281] /run/netns/with\\040space rw - nsfs nsfs rw\n" +
		"38 35 0:4 mnt:[4026532282] /run/mntns rw - nsfs nsfs rw\n" +
		"39 35 0:4 net:[4026532280] /run/netns/again rw - nsfs nsfs rw\n" +
		"garbage\n- nsfs\n"
	got := NSMounts([]byte(in))
	want := map[uint64]string{4026532280: "/run/netns/blue", 4026532281: "/run/netns/with space"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%v", got)
	}
}

func FuzzNSMounts(f *testing.F) {
	f.Add([]byte("36 35 0:4 net:[4026532280] /run/netns/blue rw shared:5 - nsfs nsfs rw\n"))
	f.Add([]byte("1 2 3 net:[ /x\\04 - nsfs\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for ino, mp := range NSMounts(b) {
			if ino == 0 && mp == "" {
				t.Fatal("empty mount")
			}
		}
	})
}
