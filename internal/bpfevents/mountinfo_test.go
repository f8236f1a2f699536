package bpfevents

import (
	"errors"
	"testing"
)

func TestCgroup2Root(t *testing.T) {
	const hybrid = `30 22 0:27 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:28 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`
	const unified = `25 20 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
`
	const subtreeFirst = `50 20 0:22 /user.slice /mnt/sub rw - cgroup2 cgroup2 rw
51 20 0:22 / /mnt/with\040space rw master:1 - cgroup2 none rw
`
	const onlySubtree = `50 20 0:22 /system.slice /mnt/sub rw - cgroup2 cgroup2 rw
`
	for _, tc := range []struct{ name, in, want string }{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified"},
		{"unified with optional fields", unified, "/sys/fs/cgroup"},
		{"root preferred, octal escapes", subtreeFirst, "/mnt/with space"},
		{"only a subtree", onlySubtree, "/mnt/sub"},
	} {
		got, err := Cgroup2Root([]byte(tc.in))
		if err != nil || got != tc.want {
			t.Errorf("%s: got %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	if _, err := Cgroup2Root([]byte("31 30 0:28 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n")); !errors.Is(err, errNoCgroup2) {
		t.Errorf("v1 only: err = %v", err)
	}
	if _, err := Cgroup2Root(nil); !errors.Is(err, errNoCgroup2) {
		t.Errorf("empty: err = %v", err)
	}
}

func FuzzCgroup2Root(f *testing.F) {
	f.Add([]byte("40 30 0:37 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n"))
	f.Add([]byte("51 20 0:22 / /mnt/a\\040b\\ rw - cgroup2 none rw\n"))
	f.Add([]byte(" - cgroup2\n - \n\\"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p, err := Cgroup2Root(b)
		if err == nil && p == "" {
			t.Fatal("empty mount point without an error")
		}
	})
}
