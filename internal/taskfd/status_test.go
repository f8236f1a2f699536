package taskfd

import (
	"testing"

	"github.com/porteiro/porteiro/internal/procfs"
)

func TestCanLoad(t *testing.T) {
	for _, tc := range []struct {
		name   string
		capEff uint64
		want   bool
	}{
		{"root", 0x1ffffffffff, true},
		{"none", 0, false},
		{"CAP_BPF and CAP_PERFMON", 0xc000000000, true},
		{"CAP_BPF without CAP_PERFMON", 0x8000000000, false},
		{"CAP_SYS_ADMIN alone", 0x200000, true},
	} {
		if got := canLoad(procfs.Status{CapEff: tc.capEff, CapEffKnown: true}); got != tc.want {
			t.Errorf("%s (%#x): canLoad = %v, want %v", tc.name, tc.capEff, got, tc.want)
		}
	}
}
