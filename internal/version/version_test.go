package version

import (
	"runtime"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuild(t *testing.T) {
	vcs := &debug.BuildInfo{
		GoVersion: "go1.99.1",
		Main:      debug.Module{Path: "github.com/porteiro/porteiro", Version: "v1.4.0"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "0123456789abcdef0123"},
			{Key: "vcs.time", Value: "2026-01-02T03:04:05Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	tests := []struct {
		name            string
		v, commit, date string
		bi              *debug.BuildInfo
		want            Info
	}{
		{
			name: "ldflags win over the toolchain",
			v:    "v2.0.0", commit: "feedface", date: "2026-03-04T00:00:00Z", bi: vcs,
			want: Info{Version: "2.0.0", Commit: "feedface", Date: "2026-03-04T00:00:00Z", Modified: true, GoVersion: "go1.99.1"},
		},
		{
			name: "go install records the module version and vcs",
			bi:   vcs,
			want: Info{Version: "1.4.0", Commit: "0123456789abcdef0123", Date: "2026-01-02T03:04:05Z", Modified: true, GoVersion: "go1.99.1"},
		},
		{
			name: "a checkout build without vcs stamping",
			bi:   &debug.BuildInfo{Main: debug.Module{Version: "(devel)"}},
			want: Info{Version: "devel", Commit: Unknown, Date: Unknown, GoVersion: runtime.Version()},
		},
		{
			name: "no build info at all",
			want: Info{Version: "devel", Commit: Unknown, Date: Unknown, GoVersion: runtime.Version()},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := build(tt.v, tt.commit, tt.date, tt.bi)
			tt.want.Platform = runtime.GOOS + "/" + runtime.GOARCH
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestString(t *testing.T) {
	i := Info{Version: "1.2.0", Commit: "0123456789abcdef", Date: "2026-01-02T03:04:05Z", Modified: true, GoVersion: "go1.26.8", Platform: "linux/amd64"}
	want := "porteiro 1.2.0 (commit 0123456789ab+dirty, built 2026-01-02T03:04:05Z, go1.26.8 linux/amd64)"
	if got := i.String(); got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

func TestGetUsesLinkerValues(t *testing.T) {
	old := [3]string{Version, Commit, Date}
	t.Cleanup(func() { Version, Commit, Date = old[0], old[1], old[2] })
	Version, Commit, Date = "9.9.9", "abc", "2026-05-06T07:08:09Z"
	got := Get()
	if got.Version != "9.9.9" || got.Commit != "abc" || got.Date != "2026-05-06T07:08:09Z" {
		t.Errorf("Get() = %+v, want the linker values", got)
	}
	if !strings.HasPrefix(got.GoVersion, "go") {
		t.Errorf("GoVersion = %q", got.GoVersion)
	}
}
