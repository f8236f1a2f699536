#!/usr/bin/env bash
# Times the full audit of the host namespace (262,140 bind probes, TCP and
# UDP, IPv4 and IPv6, plus every view, three rounds; --probe-host-only, as
# unhide-tcp probes only its own namespace) against unhide-tcp
# (TCP and UDP, IPv4 only) in the same run, alternating the two so that
# load from elsewhere falls on both. Prints each median and the ratio.
#
# Needs root, and unhide (apt-get install unhide). Usage:
#   sudo bench/audit/bench.sh [runs]      # 5 runs by default
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=${1:-5}
[ "$(id -u)" = 0 ] || { echo "bench/audit: needs root (the probe binds ports below 1024)" >&2; exit 2; }
command -v unhide-tcp >/dev/null || { echo "bench/audit: unhide-tcp not found: apt-get install unhide" >&2; exit 2; }

bin=$(mktemp -d)/porteiro
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -trimpath -ldflags='-s -w' -o "$bin" ./cmd/porteiro

ms() { # run a command, print its wall time in milliseconds
	local t0 t1
	t0=$(date +%s%N)
	"$@" >/dev/null 2>&1 || true
	t1=$(date +%s%N)
	echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : int((a[NR/2]+a[NR/2+1])/2)}'; }

p=() u=()
for ((i = 1; i <= runs; i++)); do
	p+=("$(ms "$bin" audit --probe-host-only)")
	u+=("$(ms unhide-tcp)")
	echo "run $i: porteiro audit ${p[-1]} ms, unhide-tcp ${u[-1]} ms"
done
pm=$(printf '%s\n' "${p[@]}" | median)
um=$(printf '%s\n' "${u[@]}" | median)
echo "median: porteiro audit ${pm} ms (262,140 probes, 3 rounds), unhide-tcp ${um} ms (131,070 probes)"
awk -v p="$pm" -v u="$um" 'BEGIN {printf "ratio porteiro/unhide-tcp: %.2f (cores: %d)\n", p/u, '"$(nproc)"'}'
