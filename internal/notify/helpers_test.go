package notify

import (
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

// sampleAlert is an unexpected listener on 0.0.0.0:port held by nc.
func sampleAlert(t testing.TB, id string, port uint16) Alert {
	t.Helper()
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	so := &inventory.Socket{
		Proto:     inventory.TCP,
		Family:    inventory.IPv4,
		State:     inventory.State("LISTEN"),
		Local:     inventory.Endpoint{Address: netip.MustParseAddr("0.0.0.0"), Port: port},
		Inode:     4242,
		Exposure:  inventory.ExposureAll,
		Listening: true,
		Processes: []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{
			PID:       31337,
			PPID:      1,
			Name:      "nc",
			Exe:       "/usr/bin/nc.openbsd",
			Cmdline:   []string{"nc", "-lk", "-p", "4444"},
			User:      "mallory",
			UID:       1001,
			StartTime: at.Add(-time.Minute),
			Unit:      "session-4.scope",
		}, FDs: []int{3}}},
	}
	return Alert{
		ID:         id,
		Kind:       "violation",
		Severity:   SeverityCritical,
		Host:       "web1",
		Time:       at,
		StartsAt:   at,
		Summary:    "unexpected listener tcp 0.0.0.0:" + strconv.Itoa(int(port)) + " held by nc",
		Listener:   "tcp 0.0.0.0:" + strconv.Itoa(int(port)),
		Socket:     so,
		Finding:    "unexpected",
		Rule:       "default-deny",
		RuleReason: "nothing else may listen on all interfaces",
	}
}
