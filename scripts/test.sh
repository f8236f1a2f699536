#!/usr/bin/env bash
# The one command that runs every test: installs what the tests need, then
# runs vet, the race-enabled unit and integration tests (with the fuzz seed
# corpora), and the end-to-end checks against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/install-test-deps.sh
export PATH="$(go env GOPATH)/bin:$PATH"
# Missing servers fail the run instead of skipping tests.
export PORTEIRO_REQUIRE_SERVERS=1
go vet ./...
go build -o bin/porteiro ./cmd/porteiro
export PORTEIRO_BIN="$PWD/bin/porteiro"
set +e
go test -race -count=1 -timeout 40m ./...
status=$?
set -e
for f in scripts/check.d/*.sh; do
	[ -e "$f" ] || continue
	echo "== $f"
	bash "$f"
done
exit "$status"
