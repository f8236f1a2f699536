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
go build -o bin/ ./cmd/...
export PORTEIRO_BIN="$PWD/bin/porteiro" PORTEIROD_BIN="$PWD/bin/porteirod"
log=$(mktemp /tmp/porteiro-test.XXXXXX.log)
set +e
# -v goes to the log, for the counts below; the terminal gets the package
# lines and every failure.
#
# Three packages run after the others, each on its own. The audits that
# several packages' tests run bind every port of every network namespace
# of the host for a moment, hundreds of thousands of binds: the listener
# events' tests (bpfevents) would see their ring fill with them and count
# drops, and the end-to-end tests' whole-host checks (porteiro check
# against a baseline) would see those sockets. The audit's own tests
# expect exact findings of the whole host, which the namespaces other
# packages' tests make meanwhile would add to.
alone='/(e2e|internal/bpfevents|internal/audit)$'
go test -race -count=1 -timeout 40m -v $(go list ./... | grep -Ev "$alone") > "$log" 2>&1
status=$?
for pkg in ./internal/audit ./internal/bpfevents ./e2e; do
	go test -race -count=1 -timeout 40m -v "$pkg" >> "$log" 2>&1 || status=$?
done
set -e
grep -E '^(ok|FAIL|panic:)|^\s*--- FAIL' "$log" || true
if [ "$status" -ne 0 ]; then
	echo "go test failed; full log: $log"
	grep -B2 -A30 -E '^(--- FAIL|panic:)' "$log" | head -300 || true
fi
# A failing check does not stop the others, nor the counts below.
checks_failed=()
for f in scripts/check.d/*.sh; do
	[ -e "$f" ] || continue
	echo "== $f"
	if ! bash "$f"; then
		echo "FAIL: $f"
		checks_failed+=("$f")
	fi
done
passed=$(grep -cE '^\s*--- PASS' "$log" || true)
failed=$(grep -cE '^\s*--- FAIL' "$log" || true)
skipped=$(grep -cE '^\s*--- SKIP' "$log" || true)
echo "skipped tests:"
# go test -v prints the reason ("file_test.go:12: needs root") on the line
# before "--- SKIP: TestName (0.00s)".
awk '/^[[:space:]]*--- SKIP: /{sub(/^[[:space:]]+/, "", prev); print "  " $3 ": " prev} {prev=$0}' "$log" | head -40 || true
echo "checks: $(( $(ls scripts/check.d/*.sh | wc -l) - ${#checks_failed[@]} )) passed, ${#checks_failed[@]} failed${checks_failed:+ (${checks_failed[*]})}"
echo "tests: $passed passed, $failed failed, $skipped skipped"
if [ "$status" -eq 0 ] && [ ${#checks_failed[@]} -gt 0 ]; then
	status=1
fi
exit "$status"
