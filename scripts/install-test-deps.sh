#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
# the oracles (ss, lsof, netstat, fuser), Prometheus, promtool, Alertmanager,
# mailpit, nfpm, and clang, llvm and libbpf-dev for the BPF programs. Safe to
# run again: it skips what is already there.
set -euo pipefail

need_apt=()
for pair in ss:iproute2 fuser:psmisc netstat:net-tools lsof:lsof ps:procps \
	prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
	hyperfine:hyperfine systemd-analyze:systemd clang:clang llvm-strip:llvm; do
	bin=${pair%%:*} pkg=${pair##*:}
	command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# scripts/check.d/20-bpf-generate.sh compiles the BPF programs: clang, llvm-strip
# and libbpf's headers.
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
fi

GOBIN=${GOBIN:-$(go env GOPATH)/bin}
export PATH="$GOBIN:$PATH"
command -v mailpit >/dev/null 2>&1 || go install github.com/axllent/mailpit@v1.33.1
command -v nfpm >/dev/null 2>&1 || go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.44.0
echo "test dependencies present: ss fuser netstat lsof prometheus promtool prometheus-alertmanager mailpit nfpm clang llvm libbpf-dev"
