package procfs

import (
	"os"
	"strings"
	"testing"
)

const mountinfoSample = `22 28 0:20 / /proc rw,nosuid,nodev,noexec,relatime shared:13 - proc proc rw
23 28 0:21 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
28 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw,errors=remount-ro
99 28 0:60 / /tmp/with\040space\134x rw,relatime - proc proc rw,hidepid=invisible,gid=4
100 28 0:61 / /srv/p rw master:7 propagate_from:1 - proc none rw,hidepid=2
640 28 0:4 net:[4026532280] /run/netns/blue rw shared:5 - nsfs nsfs rw
`

func TestParseMountInfo(t *testing.T) {
	ms, err := ParseMountInfo([]byte(mountinfoSample))
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 {
		t.Fatalf("%d mounts, want 6", len(ms))
	}
	want := []Mount{
		{ID: 22, Root: "/", MountPoint: "/proc", FSType: "proc", SuperOptions: "rw"},
		{ID: 99, Root: "/", MountPoint: `/tmp/with space\x`, FSType: "proc", SuperOptions: "rw,hidepid=invisible,gid=4"},
		{ID: 100, Root: "/", MountPoint: "/srv/p", FSType: "proc", SuperOptions: "rw,hidepid=2"},
		{ID: 640, Root: "net:[4026532280]", MountPoint: "/run/netns/blue", FSType: "nsfs", SuperOptions: "rw"},
	}
	for i, k := range []int{0, 3, 4, 5} {
		if ms[k] != want[i] {
			t.Errorf("mount %d = %+v, want %+v", k, ms[k], want[i])
		}
	}
	for _, bad := range []string{"22 28 0:20 / /proc rw shared:13 proc proc rw\n", "x 28 0:20 / /proc rw - proc proc rw\n", "22 28\n"} {
		if _, err := ParseMountInfo([]byte(bad)); err == nil || !strings.Contains(err.Error(), "line 1") {
			t.Errorf("ParseMountInfo(%q) = %v, want an error naming line 1", bad, err)
		}
	}
}

func TestParseMountInfoSelf(t *testing.T) {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Skipf("no /proc here: %v", err)
	}
	ms, err := ParseMountInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if m.FSType == "proc" {
			return
		}
	}
	t.Errorf("no proc mount among %d", len(ms))
}

func TestParseProcOptions(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want ProcOptions
	}{
		{"rw", ProcOptions{GID: -1}},
		{"rw,hidepid=2", ProcOptions{HidePID: HidePIDInvisible, GID: -1}},
		{"rw,hidepid=invisible,gid=4", ProcOptions{HidePID: HidePIDInvisible, GID: 4}},
		{"rw,hidepid=1", ProcOptions{HidePID: HidePIDNoAccess, GID: -1}},
		{"rw,hidepid=noaccess", ProcOptions{HidePID: HidePIDNoAccess, GID: -1}},
		{"rw,hidepid=ptraceable", ProcOptions{HidePID: HidePIDPtraceable, GID: -1}},
		{"rw,hidepid=off,subset=pid", ProcOptions{GID: -1}},
		{"rw,hidepid=7", ProcOptions{HidePID: HidePIDInvisible, GID: -1}},
		{"rw,gid=x", ProcOptions{GID: -1}},
	} {
		if got := ParseProcOptions(tc.in); got != tc.want {
			t.Errorf("ParseProcOptions(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
}

func FuzzParseMountInfo(f *testing.F) {
	f.Add([]byte(mountinfoSample))
	f.Add([]byte("1 2 3 4 5 6 - proc\n"))
	f.Add([]byte(`1 1 0:1 / /a\0 rw - proc p rw,hidepid=` + "\x1b[2J"))
	f.Fuzz(func(t *testing.T, b []byte) {
		ms, err := ParseMountInfo(b)
		if err != nil {
			return
		}
		for _, m := range ms {
			if m.ID < 0 || m.FSType == "" || len(m.MountPoint) > len(b) {
				t.Fatalf("accepted %+v", m)
			}
			o := ParseProcOptions(m.SuperOptions)
			if o.HidePID < 0 || o.HidePID > HidePIDPtraceable || o.GID < -1 {
				t.Fatalf("options %q gave %+v", m.SuperOptions, o)
			}
		}
	})
}
