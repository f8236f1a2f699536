// Package version says which porteiro this is. Release builds set Version,
// Commit and Date with -ldflags (scripts/package.sh does); a plain `go build`
// or `go install` falls back to what the Go toolchain recorded in the binary.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set at link time, for example:
//
//	go build -ldflags "-X github.com/porteiro/porteiro/internal/version.Version=1.2.0
//	  -X github.com/porteiro/porteiro/internal/version.Commit=0123abc
//	  -X github.com/porteiro/porteiro/internal/version.Date=2026-01-02T03:04:05Z"
var (
	// Version is the release, without a leading "v": "1.2.0".
	Version = ""
	// Commit is the source revision.
	Commit = ""
	// Date is when the binary was built, in RFC 3339.
	Date = ""
)

// Info describes one build of porteiro.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	Modified  bool   `json:"modified,omitempty"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Unknown is what a field holds when neither the linker nor the toolchain
// recorded it.
const Unknown = "unknown"

// Get returns the running binary's build information.
func Get() Info {
	bi, _ := debug.ReadBuildInfo()
	return build(Version, Commit, Date, bi)
}

// build merges the link-time values with the toolchain's record; the
// link-time values win, because a release build sets them on purpose.
func build(v, commit, date string, bi *debug.BuildInfo) Info {
	info := Info{
		Version:   strings.TrimPrefix(v, "v"),
		Commit:    commit,
		Date:      date,
		GoVersion: runtime.Version(),
		Platform:  runtime.GOOS + "/" + runtime.GOARCH,
	}
	if bi != nil {
		if bi.GoVersion != "" {
			info.GoVersion = bi.GoVersion
		}
		// `go install module@v1.2.0` records the module version; a build
		// from a checkout records "(devel)".
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = strings.TrimPrefix(bi.Main.Version, "v")
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				if info.Commit == "" {
					info.Commit = s.Value
				}
			case "vcs.time":
				if info.Date == "" {
					info.Date = s.Value
				}
			case "vcs.modified":
				info.Modified = s.Value == "true"
			}
		}
	}
	if info.Version == "" {
		info.Version = "devel"
	}
	if info.Commit == "" {
		info.Commit = Unknown
	}
	if info.Date == "" {
		info.Date = Unknown
	}
	return info
}

// ShortCommit returns the first 12 characters of the commit.
func (i Info) ShortCommit() string {
	if len(i.Commit) > 12 {
		return i.Commit[:12]
	}
	return i.Commit
}

// String is the one line `porteiro --version` prints:
// "porteiro 1.2.0 (commit 0123abcdef01, built 2026-01-02T03:04:05Z, go1.26.8 linux/amd64)".
func (i Info) String() string {
	commit := i.ShortCommit()
	if i.Modified {
		commit += "+dirty"
	}
	return fmt.Sprintf("porteiro %s (commit %s, built %s, %s %s)", i.Version, commit, i.Date, i.GoVersion, i.Platform)
}
