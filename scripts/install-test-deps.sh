#!/usr/bin/env bash
# Installs everything the test suite needs on a fresh Debian machine:
# the oracles (ss, lsof, netstat, fuser, ps), Prometheus, promtool and
# Alertmanager (the tests start their own on loopback), hyperfine (bench),
# systemd-analyze (unit checks), podman, runc and busybox-static (a real
# container, run from a local image, for the container naming test), clang, llvm and libbpf-dev (to regenerate
# the BPF programs and check them against the committed objects), mailpit
# and nfpm. Safe to run again: it skips what is already there.
#
# Debian's packages of servers start and enable their service when
# installed. Here they must not: a policy-rc.d refuses every start during
# the install, and the services the install enabled are disabled again, so
# the machine runs nothing at boot that it did not run before.
set -euo pipefail

need_apt=()
for pair in ss:iproute2 fuser:psmisc netstat:net-tools lsof:lsof ps:procps \
	prometheus:prometheus promtool:prometheus prometheus-alertmanager:prometheus-alertmanager \
	hyperfine:hyperfine systemd-analyze:systemd clang:clang llvm-strip:llvm \
	podman:podman runc:runc busybox:busybox-static unshare:util-linux setpriv:util-linux; do
	bin=${pair%%:*} pkg=${pair##*:}
	command -v "$bin" >/dev/null 2>&1 || need_apt+=("$pkg")
done
# scripts/check.d/20-bpf-generate.sh compiles the BPF programs: clang, llvm-strip
# and libbpf's headers.
[ -f /usr/include/bpf/bpf_helpers.h ] || need_apt+=(libbpf-dev)
if [ ${#need_apt[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	rcd=/usr/sbin/policy-rc.d
	had_rcd=0
	[ -e "$rcd" ] && had_rcd=1
	if [ "$had_rcd" = 0 ]; then
		printf '#!/bin/sh\n# porteiro install-test-deps.sh: no service starts during the install\nexit 101\n' >"$rcd"
		chmod 0755 "$rcd"
		trap 'rm -f "$rcd"' EXIT
	fi
	apt-get update -qq
	apt-get install -y -qq --no-install-recommends "${need_apt[@]}" >/dev/null
	if command -v systemctl >/dev/null 2>&1; then
		for svc in prometheus prometheus-alertmanager prometheus-node-exporter podman podman-restart podman-auto-update podman-clean-transient; do
			systemctl disable "$svc.service" >/dev/null 2>&1 || true
		done
		systemctl disable podman.socket podman-auto-update.timer >/dev/null 2>&1 || true
	fi
	if [ "$had_rcd" = 0 ]; then
		rm -f "$rcd"
		trap - EXIT
	fi
fi

GOBIN=${GOBIN:-$(go env GOPATH)/bin}
export PATH="$GOBIN:$PATH"
command -v mailpit >/dev/null 2>&1 || go install github.com/axllent/mailpit@v1.33.1
command -v nfpm >/dev/null 2>&1 || go install github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.44.0
echo "test dependencies present: ss fuser netstat lsof prometheus promtool prometheus-alertmanager podman runc busybox mailpit nfpm clang llvm libbpf-dev"
