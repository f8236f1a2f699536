#!/usr/bin/env bash
# Runs every fuzz target for a while (default 20s each) and copies a few new
# interesting inputs into the package's committed seed corpus
# (testdata/fuzz/NAME), so plain `go test` replays them.
#   scripts/fuzz.sh [seconds] [package-pattern]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
pattern=${2:-./...}
cache=$(go env GOCACHE)/fuzz
for pkg in $(go list $pattern); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for fn in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $fn (${secs}s)"
		go test -run='^$' -fuzz="^${fn}\$" -fuzztime="${secs}s" "$pkg" >/dev/null
		mkdir -p "$dir/testdata/fuzz/$fn"
		if [ -d "$cache/$pkg/$fn" ]; then
			ls -t "$cache/$pkg/$fn" | head -8 | while read -r f; do cp -n "$cache/$pkg/$fn/$f" "$dir/testdata/fuzz/$fn/" ; done
		fi
	done
done
