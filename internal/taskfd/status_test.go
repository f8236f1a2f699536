package taskfd

import (
	"strings"
	"testing"
)

func TestParseStatus(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		want     Status
		canLoad  bool
		err      string
	}{
		{name: "root in the initial namespace", in: "Name:\tbash\nNSpid:\t1234\nCapEff:\t000001ffffffffff\n",
			want: Status{Level: 0, CapEff: 0x1ffffffffff}, canLoad: true},
		{name: "nested two deep", in: "NSpid:\t9000\t300\t7\nCapEff:\t0000000000000000\n",
			want: Status{Level: 2}},
		{name: "CAP_BPF and CAP_PERFMON only", in: "NSpid:\t5\nCapEff:\t000000c000000000\n",
			want: Status{CapEff: 0xc000000000}, canLoad: true},
		{name: "CAP_BPF without CAP_PERFMON", in: "NSpid:\t5\nCapEff:\t0000008000000000\n",
			want: Status{CapEff: 0x8000000000}},
		{name: "CAP_SYS_ADMIN alone", in: "NSpid:\t5\nCapEff:\t0000000000200000\n",
			want: Status{CapEff: 0x200000}, canLoad: true},
		{name: "no NSpid", in: "CapEff:\t0\n", err: "no NSpid"},
		{name: "no CapEff", in: "NSpid:\t1\n", err: "no CapEff"},
		{name: "empty NSpid", in: "NSpid:\t\nCapEff:\t0\n", err: "empty NSpid"},
		{name: "bad CapEff", in: "NSpid:\t1\nCapEff:\tzz\n", err: "CapEff"},
		{name: "no trailing newline", in: "NSpid:\t1\t2\nCapEff:\t1", want: Status{Level: 1, CapEff: 1}},
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
			if got.CanLoad() != tc.canLoad {
				t.Fatalf("CanLoad() = %v, want %v", got.CanLoad(), tc.canLoad)
			}
		})
	}
}

func FuzzParseStatus(f *testing.F) {
	f.Add([]byte("Name:\tbash\nNSpid:\t1234\t5\nCapEff:\t000001ffffffffff\n"))
	f.Add([]byte("NSpid:\n"))
	f.Add([]byte("CapEff:\tffffffffffffffffff\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStatus(b)
		if err == nil && (s.Level < 0 || s.Level > len(b)) {
			t.Fatalf("level %d from %d bytes", s.Level, len(b))
		}
	})
}
