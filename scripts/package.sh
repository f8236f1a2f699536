#!/usr/bin/env bash
# Builds porteiro's .deb and .rpm into dist/: both programs with their version
# baked in, the man pages and shell completions generated from the CLI, and
# the packages from packaging/nfpm.yaml.
#
#   scripts/package.sh                       # version from the latest v* tag, or 0.0.0~git...
#   PORTEIRO_VERSION=1.2.0 scripts/package.sh
#   GOARCH=arm64 scripts/package.sh          # cross-build
#
# Needs go and nfpm (scripts/install-test-deps.sh installs nfpm). The build
# is reproducible: dates come from the last commit (SOURCE_DATE_EPOCH).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$(go env GOPATH)/bin:$PATH"

commit=${PORTEIRO_COMMIT:-$(git rev-parse HEAD 2>/dev/null || echo unknown)}
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
date=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
if [ -z "${PORTEIRO_VERSION:-}" ]; then
	if tag=$(git describe --tags --exact-match --match 'v[0-9]*' 2>/dev/null); then
		PORTEIRO_VERSION=${tag#v}
	else
		# Sorts before any release in both dpkg and rpm.
		PORTEIRO_VERSION=0.0.0~git$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y%m%d%H%M%S).${commit:0:12}
	fi
fi
export PORTEIRO_VERSION
export PORTEIRO_ARCH=${GOARCH:-$(go env GOARCH)}

rm -rf dist
mkdir -p dist/man dist/completions
pkg=github.com/porteiro/porteiro/internal/version
ldflags="-s -w -X $pkg.Version=$PORTEIRO_VERSION -X $pkg.Commit=$commit -X $pkg.Date=$date"
echo "building porteiro $PORTEIRO_VERSION ($commit) for linux/$PORTEIRO_ARCH"
# Two programs by role: /usr/bin/porteiro, the client admins type, small and
# quick to start; /usr/sbin/porteirod, the daemon, with the event store,
# the mail client and the metrics. /usr/bin/porteiro-top is what
# "porteiro top" runs: the live view and its terminal libraries, which
# porteiro's other commands need not load.
for prog in porteiro porteiro-top porteirod; do
	CGO_ENABLED=0 GOOS=linux GOARCH=$PORTEIRO_ARCH go build -trimpath -ldflags "$ldflags" -o "dist/$prog" "./cmd/$prog"
done

# Man pages and completions of both, from their command trees, with the
# same version (the generator is a development tool, in neither program).
CGO_ENABLED=0 go run -trimpath -ldflags "$ldflags" ./internal/tools/gendocs -man dist/man -completions dist/completions
gzip -9n dist/man/*.1 dist/man/*.8

for packager in deb rpm; do
	nfpm package --config packaging/nfpm.yaml --packager "$packager" --target dist/
done
ls -l dist/*.deb dist/*.rpm
