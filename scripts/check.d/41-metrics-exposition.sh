#!/usr/bin/env bash
# porteiro's /metrics page, as the metrics package serves it, passes
# `promtool check metrics` (names, units, help texts, types).
set -euo pipefail
cd "$(dirname "$0")/../.."
out=$(mktemp)
trap 'rm -f "$out"' EXIT
PORTEIRO_METRICS_EXPOSITION="$out" go test -count=1 -run '^TestWriteExposition$' ./internal/metrics/ >/dev/null
grep -q '^porteiro_listener_info{' "$out" || { echo "no porteiro_listener_info in the exposition" >&2; exit 1; }
promtool check metrics <"$out"
echo "promtool check metrics: $(grep -c '^porteiro_' "$out") porteiro series OK"
