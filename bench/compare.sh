#!/usr/bin/env bash
# Times porteiro against ss, netstat, lsof and fuser on the same synthetic
# load, and writes a table of medians and ratios to bench/results/.
#
#   bench/compare.sh [small|medium|large]      # default: medium
#
# Environment:
#   RUNS=N        timed runs per command (default: 20 small/medium, 10 large)
#   LSOF_RUNS=N   timed runs of lsof, which is slow (default: 5, 3 at large)
#   WARMUP=N      warm-up runs per command (default: 2)
#   LOADGEN_ARGS  extra loadgen flags, e.g. "-holder self"
#
# Needs root (to see every process's fds, as ss -p does), Go, hyperfine, jq,
# ss, netstat, lsof, fuser and GNU time; installs the last ones with apt-get
# when they are missing. The load is stopped on exit, including on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-medium}
case $preset in
small | medium) runs=${RUNS:-20} lsof_runs=${LSOF_RUNS:-5} ;;
large) runs=${RUNS:-10} lsof_runs=${LSOF_RUNS:-3} ;;
*)
	echo "usage: $0 [small|medium|large]" >&2
	exit 2
	;;
esac
warmup=${WARMUP:-2}

need_pkg=()
command -v hyperfine >/dev/null || need_pkg+=(hyperfine)
command -v jq >/dev/null || need_pkg+=(jq)
command -v ss >/dev/null || need_pkg+=(iproute2)
command -v netstat >/dev/null || need_pkg+=(net-tools)
command -v lsof >/dev/null || need_pkg+=(lsof)
command -v fuser >/dev/null || need_pkg+=(psmisc)
[ -x /usr/bin/time ] || need_pkg+=(time)
if [ ${#need_pkg[@]} -gt 0 ]; then
	echo "== installing ${need_pkg[*]}" >&2
	apt-get update -qq && apt-get install -y -qq "${need_pkg[@]}" >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
	echo "warning: not root: porteiro, ss -p, lsof and fuser will miss other users' processes" >&2
fi

mkdir -p bin bench/results
go build -o bin/porteiro ./cmd/porteiro
go build -o bin/loadgen ./bench/loadgen

tmp=$(mktemp -d)
lgpid=
cleanup() {
	if [ -n "$lgpid" ] && kill -0 "$lgpid" 2>/dev/null; then
		kill -TERM "$lgpid" 2>/dev/null || true
		wait "$lgpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== starting the $preset load" >&2
# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
bin/loadgen -preset "$preset" -duration 2h ${LOADGEN_ARGS:-} >"$tmp/loadgen.out" 2>"$tmp/loadgen.err" &
lgpid=$!
for _ in $(seq 1200); do
	grep -qs '^ready' "$tmp/loadgen.out" && break
	if ! kill -0 "$lgpid" 2>/dev/null; then
		cat "$tmp/loadgen.err" >&2
		echo "loadgen exited before it was ready" >&2
		exit 1
	fi
	sleep 0.5
done
ready=$(grep '^ready' "$tmp/loadgen.out") || {
	echo "loadgen was not ready after 10 minutes" >&2
	exit 1
}
echo "$ready" >&2
port=$(sed -n 's/.* who_port=\([0-9]*\).*/\1/p' <<<"$ready")
# Let the TIME-WAIT sockets of earlier runs expire, so both sides see the same load.
sleep 2

# What is on the host now, counted by ss and by porteiro (one line per socket).
ss_listen=$(ss -H -tuln | wc -l)
ss_all=$(ss -H -tuan | wc -l)
pt_listen=$(bin/porteiro list -o ndjson | wc -l)
pt_all=$(bin/porteiro list --all -o ndjson | wc -l)
procs=$(find /proc -maxdepth 1 -name '[0-9]*' | wc -l)
fds=$({ find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 2>/dev/null || true; } | wc -l)

echo "== timing ($runs runs, lsof $lsof_runs)" >&2
hf=(hyperfine -N --style basic)
"${hf[@]}" --warmup "$warmup" --runs "$runs" --export-json "$tmp/main.json" \
	-n "porteiro list" "bin/porteiro list" \
	-n "ss -tlnp" "ss -tlnp" \
	-n "porteiro list --all" "bin/porteiro list --all" \
	-n "ss -tunap" "ss -tunap" \
	-n "netstat -tulpn" "netstat -tulpn" \
	-n "porteiro who PORT" "bin/porteiro who $port" \
	-n "fuser PORT/tcp" "fuser $port/tcp" \
	-n "ss -tln (no owners)" "ss -tln" \
	-n "ss -tuan (no owners)" "ss -tuan" >&2
"${hf[@]}" --warmup 1 --runs "$lsof_runs" --export-json "$tmp/lsof.json" \
	-n "lsof -i -P -n" "lsof -i -P -n" >&2

# Peak RSS in KiB: median of 5 runs of GNU time.
rss() {
	for _ in 1 2 3 4 5; do
		/usr/bin/time -f %M "$@" 2>&1 >/dev/null | tail -1
	done | sort -n | sed -n 3p
}
rss_list=$(rss bin/porteiro list)
rss_all=$(rss bin/porteiro list --all)
rss_who=$(rss bin/porteiro who "$port")
rss_ss=$(rss ss -tlnp)
rss_ssa=$(rss ss -tunap)

med() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .median' "$tmp"/main.json "$tmp"/lsof.json; }
cpu() { jq -r --arg n "$1" '.results[] | select(.command == $n) | .user + .system' "$tmp"/main.json "$tmp"/lsof.json; }
ratio() { awk -v a="$(med "$1")" -v b="$(med "$2")" 'BEGIN { printf "%.2f", a / b }'; }
cpuratio() { awk -v a="$(cpu "$1")" -v b="$(cpu "$2")" 'BEGIN { printf "%.2f", a / b }'; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "met" : "MISSED") }'; }

case $preset in
large) t_list=0.35 t_all=0.15 ;;
*) t_list=0.5 t_all= ;;
esac
rss_mb=$(awk -v k="$rss_list" 'BEGIN { printf "%.1f", k / 1024 }')

out=bench/results/$preset-$(date -u +%Y%m%d-%H%M).md
{
	echo "# porteiro vs ss, netstat, lsof, fuser: $preset load"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), porteiro $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "- host: $(uname -r), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo)"
	echo "- load: \`$ready\`"
	echo "- on the host during the run: $procs processes, $fds fds;" \
		"ss sees $ss_listen listening and $ss_all TCP/UDP sockets, porteiro $pt_listen and $pt_all"
	echo "- $runs timed runs after $warmup warm-ups (lsof: $lsof_runs), output to /dev/null, \`hyperfine -N\`"
	echo
	echo "| command | median | mean ± σ | min | user | system |"
	echo "|---|---:|---:|---:|---:|---:|"
	jq -r 'def ms: . * 10000 | round / 10 | tostring + " ms";
		.results[] | "| `\(.command)` | \(.median | ms) | \(.mean | ms) ± \(.stddev // 0 | ms) | \(.min | ms) | \(.user | ms) | \(.system | ms) |"' \
		"$tmp/main.json" "$tmp/lsof.json"
	echo
	echo "The ratios compare medians of wall time; the CPU column compares mean user+system"
	echo "time, which a busy machine disturbs less."
	echo
	echo "| ratio | wall (median) | CPU (mean) | target (wall) | |"
	echo "|---|---:|---:|---:|---|"
	row() { # name a b target
		local r
		r=$(ratio "$2" "$3")
		echo "| $1 | $r | $(cpuratio "$2" "$3") | ${4:+≤ $4} | ${4:+$(verdict "$r" "$4")} |"
	}
	row "porteiro list / ss -tlnp" "porteiro list" "ss -tlnp" "$t_list"
	row "porteiro list --all / ss -tunap" "porteiro list --all" "ss -tunap" "$t_all"
	row "porteiro who / fuser" "porteiro who PORT" "fuser PORT/tcp" 0.5
	row "porteiro list / netstat -tulpn" "porteiro list" "netstat -tulpn" ""
	row "porteiro list / lsof -i" "porteiro list" "lsof -i -P -n" ""
	row "ss -tln / ss -tlnp (kernel share of ss)" "ss -tln (no owners)" "ss -tlnp" ""
	echo
	echo "| peak RSS (median of 5) | |"
	echo "|---|---:|"
	if [ "$preset" = large ]; then
		echo "| porteiro list | $rss_mb MB |"
	else
		echo "| porteiro list | $rss_mb MB (target < 25 MB: $(awk -v m="$rss_mb" 'BEGIN { print (m < 25 ? "met" : "MISSED") }')) |"
	fi
	echo "| porteiro list --all | $(awk -v k="$rss_all" 'BEGIN { printf "%.1f", k / 1024 }') MB |"
	echo "| porteiro who PORT | $(awk -v k="$rss_who" 'BEGIN { printf "%.1f", k / 1024 }') MB |"
	echo "| ss -tlnp | $(awk -v k="$rss_ss" 'BEGIN { printf "%.1f", k / 1024 }') MB |"
	echo "| ss -tunap | $(awk -v k="$rss_ssa" 'BEGIN { printf "%.1f", k / 1024 }') MB |"
} >"$out"
jq -s '{results: (.[0].results + .[1].results)}' "$tmp/main.json" "$tmp/lsof.json" >"${out%.md}.json"
cat "$out"
echo >&2
echo "written to $out" >&2
