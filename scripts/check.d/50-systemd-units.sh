#!/usr/bin/env bash
# The systemd units keep their hardening: systemd-analyze's exposure score
# for each service must stay "OK" or better (at most 3.9 of 10).
set -euo pipefail
cd "$(dirname "$0")/../../packaging/systemd"
if ! command -v systemd-analyze >/dev/null 2>&1; then
	if [ "${PORTEIRO_REQUIRE_SERVERS:-}" = 1 ]; then
		echo "systemd-analyze is not installed; scripts/install-test-deps.sh installs it" >&2
		exit 1
	fi
	echo "systemd-analyze is not installed; skipping the unit security report"
	exit 0
fi
status=0
for unit in porteiro.service porteiro-check.service; do
	report=$(systemd-analyze security --offline=true --no-pager "$unit" 2>&1) || true
	line=$(printf '%s\n' "$report" | grep 'Overall exposure level' || true)
	if [ -z "$line" ]; then
		printf '%s\n' "$report" >&2
		echo "$unit: no exposure level in the report" >&2
		status=1
		continue
	fi
	echo "$line"
	score=$(printf '%s\n' "$line" | sed -E 's/.*: ([0-9]+\.[0-9]+) .*/\1/')
	if ! awk -v s="$score" 'BEGIN { exit !(s <= 3.9) }'; then
		printf '%s\n' "$report" | grep '✗' >&2
		echo "$unit: exposure $score is worse than OK (3.9)" >&2
		status=1
	fi
done
exit "$status"
