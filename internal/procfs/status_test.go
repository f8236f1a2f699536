package procfs

import (
	"os"
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Status
		err      string
	}{
		{name: "root in the initial namespace", in: "Name:\tbash\nUid:\t0\t0\t0\t0\nNSpid:\t1234\nCapEff:\t000001ffffffffff\n",
			want: Status{Name: "bash", NameKnown: true, UIDKnown: true, LevelKnown: true, CapEff: 0x1ffffffffff, CapEffKnown: true}},
		{name: "effective uid is the second", in: "Name:\tsshd\nState:\tS (sleeping)\nUid:\t0\t33\t33\t33\nGid:\t0\t0\t0\t0\n",
			want: Status{Name: "sshd", NameKnown: true, State: "S", StateKnown: true, UID: 33, UIDKnown: true}},
		{name: "escaped name, parent", in: "Name:\ta\\nb\\\\c \x1b[31m\t:x\nPPid:\t42\n",
			want: Status{Name: "a\nb\\c \x1b[31m\t:x", NameKnown: true, PPID: 42, PPIDKnown: true}},
		{name: "a backslash before another letter stays", in: "Name:\t\\t\\\n", want: Status{Name: "\\t\\", NameKnown: true}},
		{name: "bad PPid", in: "PPid:\t-3\n", err: "PPid"},
		{name: "empty State", in: "State:\t\n", err: "State"},
		{name: "nested two deep", in: "NSpid:\t9000\t300\t7\nCapEff:\t0000000000000000\n",
			want: Status{Level: 2, LevelKnown: true, CapEffKnown: true}},
		{name: "no trailing newline", in: "NSpid:\t1\t2\nCapEff:\t1", want: Status{Level: 1, LevelKnown: true, CapEff: 1, CapEffKnown: true}},
		{name: "nothing porteiro reads", in: "Tgid:\t7\nGid:\t0\t0\t0\t0\n"},
		{name: "short Uid", in: "Uid:\t0\n", err: "short Uid"},
		{name: "bad Uid", in: "Uid:\t0\t-1\t0\t0\n", err: "effective uid"},
		{name: "Uid over 32 bits", in: "Uid:\t0\t4294967296\t0\t0\n", err: "effective uid"},
		{name: "empty NSpid", in: "NSpid:\t\nCapEff:\t0\n", err: "empty NSpid"},
		{name: "bad CapEff", in: "NSpid:\t1\nCapEff:\tzz\n", err: "CapEff"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseStatus([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one containing %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestHasCap(t *testing.T) {
	s := Status{CapEff: 1<<CapBPF | 1<<CapPerfmon}
	if !s.HasCap(CapBPF) || !s.HasCap(CapPerfmon) || s.HasCap(CapSysAdmin) || s.HasCap(CapSysPtrace) || s.HasCap(64) {
		t.Errorf("HasCap wrong for %#x", s.CapEff)
	}
}

// TestParseStatusSelf reads this process's own status file.
func TestParseStatusSelf(t *testing.T) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	s, err := ParseStatus(b)
	if err != nil {
		t.Fatal(err)
	}
	if !s.UIDKnown || s.UID != uint32(os.Geteuid()) || !s.CapEffKnown {
		t.Errorf("got %+v, want uid %d and a CapEff line", s, os.Geteuid())
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tbash\nUid:\t0\t0\t0\t0\nNSpid:\t1234\t5\nCapEff:\t000001ffffffffff\n"))
	f.Add([]byte("NSpid:\n"))
	f.Add([]byte("Uid:\t1\n"))
	f.Add([]byte("CapEff:\tffffffffffffffffff\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err != nil {
			return
		}
		if s.Level < 0 || s.Level > len(b) {
			t.Fatalf("level %d from %d bytes", s.Level, len(b))
		}
		if (s.Level != 0 && !s.LevelKnown) || (s.UID != 0 && !s.UIDKnown) || (s.CapEff != 0 && !s.CapEffKnown) {
			t.Fatalf("a value without its line: %+v", s)
		}
	})
}
