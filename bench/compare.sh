#!/usr/bin/env bash
# Times porteiro against ss, netstat, lsof and fuser on the same synthetic
# load, and writes a table of medians and ratios to bench/results/.
#
#   bench/compare.sh [small|medium|large]      # default: medium
#   bench/compare.sh netns                     # 100 ip netns namespaces of 5 listeners
#
# netns times porteiro list, which reads every namespace in one scan, against
# the loop an admin runs today, one `ip netns exec NS ss -tlnp` per namespace.
#
# Environment:
#   RUNS=N        timed runs per command (default: 20; 10 at large)
#   LSOF_RUNS=N   timed runs of lsof, which is slow (default: 5; 3 at large)
#   WARMUP=N      warm-up runs per command (default: 2)
#   LOADGEN_ARGS  extra loadgen flags, e.g. "-holder self"
#   ALLOW_OTHER_LOAD=1  run even though another loadgen is running
#   NETNS=N PER_NETNS=M the netns load (default: 100 namespaces of 5 listeners)
#   BASELINE_REV=REV    also time porteiro list built from git revision REV
#                       (e.g. 64ef889, before namespaces were read), paired
#   QUICK=1       time only porteiro list, the same with the /proc walk
#                 (PORTEIRO_OWNERS=procfs) and ss -tlnp (and the baseline)
#   OUT=FILE      the report (default: bench/results/PRESET-DATE-TIME.md)
#
# The commands run in interleaved rounds (bench/timeit): each round runs every
# command once, so a noisy neighbour slows all of them alike. Each pair that is
# compared runs back to back, and the ratio is also given as the median of the
# per-round ratios. Output goes to /dev/null; peak RSS comes from rusage.
#
# Needs root (to see every process's fds, as ss -p does), Go, jq, ss, netstat,
# lsof and fuser; installs the missing ones with apt-get. The load is stopped
# on exit, including on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

preset=${1:-medium}
case $preset in
small | medium | netns) runs=${RUNS:-20} lsof_runs=${LSOF_RUNS:-5} ;;
large) runs=${RUNS:-10} lsof_runs=${LSOF_RUNS:-3} ;;
*)
	echo "usage: $0 [small|medium|large|netns]" >&2
	exit 2
	;;
esac
warmup=${WARMUP:-2}

need_pkg=()
command -v jq >/dev/null || need_pkg+=(jq)
command -v ss >/dev/null || need_pkg+=(iproute2)
command -v netstat >/dev/null || need_pkg+=(net-tools)
command -v lsof >/dev/null || need_pkg+=(lsof)
command -v fuser >/dev/null || need_pkg+=(psmisc)
if [ ${#need_pkg[@]} -gt 0 ]; then
	echo "== installing ${need_pkg[*]}" >&2
	apt-get update -qq && apt-get install -y -qq "${need_pkg[@]}" >/dev/null
fi
if [ "$(id -u)" != 0 ]; then
	echo "warning: not root: porteiro, ss -p, lsof and fuser will miss other users' processes" >&2
fi

base_socks=$(ss -H -tuan | wc -l)
base_procs=$({ find /proc -maxdepth 1 -name '[0-9]*' 2>/dev/null || true; } | wc -l)
if others=$(pgrep -x loadgen); then
	if [ -z "${ALLOW_OTHER_LOAD:-}" ]; then
		echo "another loadgen is running (pid $(echo $others)): its load would add to this one." >&2
		echo "Wait for it to end, or set ALLOW_OTHER_LOAD=1 to time the sum." >&2
		exit 1
	fi
	echo "warning: another loadgen is running; its load adds to this one" >&2
fi
tmp=$(mktemp -d)
lgpid=
tipid=
cleanup() {
	if [ -n "$tipid" ] && kill -0 "$tipid" 2>/dev/null; then
		kill -TERM "$tipid" 2>/dev/null || true
		wait "$tipid" 2>/dev/null || true
	fi
	if [ -n "$lgpid" ] && kill -0 "$lgpid" 2>/dev/null; then
		kill -TERM "$lgpid" 2>/dev/null || true
		wait "$lgpid" 2>/dev/null || true
	fi
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The binaries go to a private directory, so that a second run, or someone
# using bin/, does not disturb this one.
bin=$tmp/bin
mkdir -p "$bin" bench/results
# Time the binary the package installs as /usr/bin/porteiro, stripped, as
# scripts/package.sh builds it.
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/porteiro" ./cmd/porteiro
go build -o "$bin/loadgen" ./bench/loadgen
go build -o "$bin/timeit" ./bench/timeit
if [ -n "${BASELINE_REV:-}" ]; then
	# The same build of another revision, from its own tree.
	base=$(git rev-parse --short "$BASELINE_REV^{commit}")
	mkdir -p "$tmp/base"
	git archive "$base" | tar -x -C "$tmp/base"
	(cd "$tmp/base" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "$bin/porteiro-base" ./cmd/porteiro)
fi
loadargs=(-preset "$preset")
if [ "$preset" = netns ]; then
	loadargs=(-netns "${NETNS:-100}" -per-netns "${PER_NETNS:-5}")
	# The admin's loop, as typed today (ip netns list prints "NAME (id: N)").
	printf '%s\n' 'for ns in $(ip netns list | cut -d" " -f1); do ip netns exec "$ns" ss -tlnp; done' >"$tmp/nsloop.sh"
fi

echo "== starting the $preset load" >&2
# shellcheck disable=SC2086 # LOADGEN_ARGS is a list of flags
"$bin/loadgen" "${loadargs[@]}" -duration 2h -pidfile "$tmp/pids" ${LOADGEN_ARGS:-} >"$tmp/loadgen.out" 2>"$tmp/loadgen.err" &
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
# `porteiro pid` asks about one holder: the first after loadgen itself, a
# process with a handful of sockets, as a service is.
holder=$(sed -n 2p "$tmp/pids")
holder_socks=$(ss -H -tuanp | grep -c "pid=$holder,") || true
netns_count=$(ip netns list | wc -l)
sleep 2

# What is on the host now, counted by ss and by porteiro (one line per socket).
ss_listen=$(ss -H -tuln | wc -l)
ss_all=$(ss -H -tuan | wc -l)
pt_listen=$("$bin/porteiro" list -o ndjson | wc -l)
pt_all=$("$bin/porteiro" list --all -o ndjson | wc -l)
resolver=$("$bin/porteiro" list -o json | jq -r '.resolver // "none"')
procs=$({ find /proc -maxdepth 1 -name '[0-9]*' 2>/dev/null || true; } | wc -l)
fds=$({ find /proc/[0-9]*/fd -mindepth 1 -maxdepth 1 2>/dev/null || true; } | wc -l)
load_before=$(cut -d' ' -f1-3 /proc/loadavg)

echo "== timing: $runs interleaved rounds after $warmup warm-ups (lsof: $lsof_runs)" >&2
timed=()
if [ -n "${BASELINE_REV:-}" ]; then
	timed+=(-c "porteiro list @$base::$bin/porteiro-base list")
fi
if [ "$preset" = netns ]; then
	timed+=(-c "porteiro list::$bin/porteiro list"
		-c "ip netns exec NS ss -tlnp, every NS::bash $tmp/nsloop.sh"
		-c "porteiro list --netns host::$bin/porteiro list --netns host"
		-c "ss -tlnp::ss -tlnp"
		-c "ss -tln (no owners)::ss -tln")
elif [ -n "${QUICK:-}" ]; then
	timed+=(-c "porteiro list::$bin/porteiro list" -c "ss -tlnp::ss -tlnp"
		-c "porteiro list, /proc walk::env PORTEIRO_OWNERS=procfs $bin/porteiro list")
else
	timed+=(
		-c "porteiro list::$bin/porteiro list"
		-c "ss -tlnp::ss -tlnp"
		-c "porteiro list -o json::$bin/porteiro list -o json"
		-c "porteiro list -o ndjson::$bin/porteiro list -o ndjson"
		-c "porteiro pid PID::$bin/porteiro pid $holder"
		-c "porteiro list --all::$bin/porteiro list --all"
		-c "ss -tunap::ss -tunap"
		-c "porteiro who PORT::$bin/porteiro who $port"
		-c "porteiro list, /proc walk::env PORTEIRO_OWNERS=procfs $bin/porteiro list"
		-c "porteiro list --all, /proc walk::env PORTEIRO_OWNERS=procfs $bin/porteiro list --all"
		-c "fuser PORT/tcp::fuser $port/tcp"
		-c "netstat -tulpn::netstat -tulpn"
		-c "ss -tln (no owners)::ss -tln"
		-c "ss -tuan (no owners)::ss -tuan"
		-c "lsof -i -P -n::lsof -i -P -n::$lsof_runs")
fi
"$bin/timeit" -runs "$runs" -warmup "$warmup" -json "$tmp/t.json" "${timed[@]}" &
# In the background with wait, so that a signal stops the run at once.
tipid=$!
wait "$tipid"
tipid=
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

j() { jq -r --arg a "$1" --arg b "${2:-}" "$3" "$tmp/t.json"; }
# ratio A B: of the medians; paired A B: median of the per-round ratios;
# cpu A B: of the median CPU times.
f2() { awk '{ printf "%.2f", $1 }'; }
ratio() { j "$1" "$2" '(.results[] | select(.command == $a) | .median) / (.results[] | select(.command == $b) | .median)' | f2; }
cpuratio() { j "$1" "$2" '(.results[] | select(.command == $a) | .cpu_median) / (.results[] | select(.command == $b) | .cpu_median)' | f2; }
paired() {
	j "$1" "$2" '[(.results[] | select(.command == $a) | .times) as $x | (.results[] | select(.command == $b) | .times) as $y
		| range([$x, $y] | map(length) | min) | $x[.] / $y[.]] | sort | .[length / 2 | floor]' | f2
}
verdict() { awk -v r="$1" -v t="$2" 'BEGIN { print (r <= t ? "met" : "MISSED") }'; }
mb() { j "$1" "" '.results[] | select(.command == $a) | .max_rss_kib_median / 1024 * 10 | round / 10'; }

# The targets of issue #15 (speed at every size and in every output).
case $preset in
large) t_list=0.1 t_all= t_pid=0.05 t_walk= ;;
medium) t_list=0.2 t_all= t_pid= t_walk=0.5 ;;
*) t_list= t_all= t_pid= t_walk= ;;
esac

out=${OUT:-bench/results/$preset-$(date -u +%Y%m%d-%H%M).md}
{
	echo "# porteiro vs ss, netstat, lsof, fuser: $preset load"
	echo
	echo "- date: $(date -u '+%Y-%m-%d %H:%M UTC'), porteiro $(git rev-parse --short HEAD 2>/dev/null || echo '?')"
	echo "- host: $(uname -r), $(nproc) cores, $(awk '/MemTotal/ { printf "%.0f GiB", $2 / 1048576 }' /proc/meminfo);" \
		"load average $load_before before, $load_after after"
	echo "- load: \`$ready\`"
	echo "- on the host before the load: $base_procs processes, $base_socks TCP/UDP sockets"
	echo "- network namespaces under /run/netns (ip netns list): $netns_count"
	echo "- on the host during the run: $procs processes, $fds fds;" \
		"ss sees $ss_listen listening and $ss_all TCP/UDP sockets, porteiro $pt_listen and $pt_all"
	echo "- \`porteiro pid PID\` asks about pid $holder, a holder of $holder_socks TCP/UDP sockets"
	echo "- porteiro finds owners with: $resolver (\`taskfd\`: the kernel's task-file iterator;" \
		"the \`/proc walk\` rows force the walk that runs without CAP_BPF)"
	echo "- $runs interleaved rounds after $warmup warm-ups (lsof: $lsof_runs), output to /dev/null (\`bench/timeit\`)"
	echo
	echo "| command | median | mean ± σ | min | CPU (median) | peak RSS |"
	echo "|---|---:|---:|---:|---:|---:|"
	jq -r 'def ms: . * 10000 | round / 10 | tostring + " ms";
		.results[] | "| `\(.command)` | \(.median | ms) | \(.mean | ms) ± \(.stddev | ms) | \(.min | ms) | \(.cpu_median | ms) | \(.max_rss_kib_median / 1024 * 10 | round / 10) MB |"' \
		"$tmp/t.json"
	echo
	echo "Ratios: of the wall-time medians; the median of the per-round ratios (the two"
	echo "commands run back to back in each round); and of the median CPU times (user +"
	echo "system), which a busy machine disturbs least."
	echo
	echo "| ratio | wall | wall, paired | CPU | target | |"
	echo "|---|---:|---:|---:|---:|---|"
	row() { # label A B target
		local r
		r=$(ratio "$2" "$3")
		echo "| $1 | $r | $(paired "$2" "$3") | $(cpuratio "$2" "$3") | ${4:+≤ $4} | ${4:+$(verdict "$r" "$4")} |"
	}
	if [ -n "${BASELINE_REV:-}" ] && [ "$preset" = netns ]; then
		row "porteiro list / porteiro list @$base (which reads the host only)" "porteiro list" "porteiro list @$base" ""
	elif [ -n "${BASELINE_REV:-}" ]; then
		row "porteiro list / porteiro list @$base (not slower)" "porteiro list" "porteiro list @$base" 1
	fi
	if [ "$preset" = netns ]; then
		row "porteiro list (every namespace) / the ip netns exec loop" "porteiro list" "ip netns exec NS ss -tlnp, every NS" 0.1
		row "porteiro list / ss -tlnp (the host only)" "porteiro list" "ss -tlnp" ""
		row "porteiro list --netns host / ss -tlnp" "porteiro list --netns host" "ss -tlnp" ""
		row "porteiro list / porteiro list --netns host (cost of the namespaces)" "porteiro list" "porteiro list --netns host" ""
	elif [ -n "${QUICK:-}" ]; then
		row "porteiro list / ss -tlnp" "porteiro list" "ss -tlnp" "$t_list"
		row "porteiro list, /proc walk / ss -tlnp (without CAP_BPF)" "porteiro list, /proc walk" "ss -tlnp" "$t_walk"
	else
		row "porteiro list / ss -tlnp" "porteiro list" "ss -tlnp" "$t_list"
		row "porteiro list -o json / porteiro list" "porteiro list -o json" "porteiro list" 1.2
		row "porteiro list -o ndjson / porteiro list" "porteiro list -o ndjson" "porteiro list" 1.2
		row "porteiro list --all / ss -tunap" "porteiro list --all" "ss -tunap" "$t_all"
		row "porteiro pid PID / ss -tlnp" "porteiro pid PID" "ss -tlnp" "$t_pid"
		row "porteiro who / fuser" "porteiro who PORT" "fuser PORT/tcp" 0.5
		row "porteiro list, /proc walk / ss -tlnp (without CAP_BPF)" "porteiro list, /proc walk" "ss -tlnp" "$t_walk"
		row "porteiro list --all, /proc walk / ss -tunap" "porteiro list --all, /proc walk" "ss -tunap" ""
		row "porteiro list / netstat -tulpn" "porteiro list" "netstat -tulpn" ""
		row "porteiro list / lsof -i" "porteiro list" "lsof -i -P -n" ""
		row "ss -tln / ss -tlnp (kernel share of ss)" "ss -tln (no owners)" "ss -tlnp" ""
	fi
	echo
	rss=$(mb "porteiro list")
	if [ "$preset" = medium ]; then
		echo "Peak RSS of \`porteiro list\`: $rss MB (target < 25 MB: $(awk -v m="$rss" 'BEGIN { print (m < 25 ? "met" : "MISSED") }'))."
	else
		echo "Peak RSS of \`porteiro list\`: $rss MB."
	fi
	echo "Peak RSS of \`porteiro pid PID\`: $(mb "porteiro pid PID") MB."
	if [ -z "${QUICK:-}" ] && [ "$preset" != netns ]; then
		json=$(mb "porteiro list -o json")
		all=$(mb "porteiro list --all")
		echo "Peak RSS of \`porteiro list -o json\`: $json MB, $(awk -v a="$json" -v b="$rss" 'BEGIN { printf "%.2f", a / b }')x the table's" \
			"(target ≤ 1.5x: $(awk -v a="$json" -v b="$rss" 'BEGIN { print (a <= 1.5 * b ? "met" : "MISSED") }'))."
		if [ "$preset" = large ]; then
			echo "Peak RSS of \`porteiro list --all\`: $all MB (target ≤ 60 MB: $(awk -v m="$all" 'BEGIN { print (m <= 60 ? "met" : "MISSED") }'))."
		else
			echo "Peak RSS of \`porteiro list --all\`: $all MB."
		fi
	fi
} >"$out"
cp "$tmp/t.json" "${out%.md}.json"
cat "$out"
echo >&2
echo "written to $out" >&2
