#!/usr/bin/env bash
# The committed BPF objects and their Go bindings (internal/bpfevents/
# listener_bpf{el,eb}.{o,go}, internal/kview/kview_bpf{el,eb}.{o,go}) are
# exactly what the C sources compile to.
# It regenerates them with clang through bpf2go, twice, and fails when the
# two runs differ (generation is not deterministic) or when the result
# differs from what is committed (someone changed bpf/*.c without running
# `go generate ./internal/bpfevents/...`, or the other way round).
#
# Needs clang, llvm (llvm-strip) and libbpf-dev (bpf/bpf_helpers.h), and the
# clang major version the objects were made with: another version compiles
# to other bytes.
set -euo pipefail
cd "$(dirname "$0")/../.."

want_clang=14 # Debian 12's clang; change it together with the committed objects
pkgs=(internal/bpfevents internal/kview)
generated=(internal/bpfevents/listener_bpfel.o internal/bpfevents/listener_bpfel.go
	internal/bpfevents/listener_bpfeb.o internal/bpfevents/listener_bpfeb.go
	internal/kview/kview_bpfel.o internal/kview/kview_bpfel.go
	internal/kview/kview_bpfeb.o internal/kview/kview_bpfeb.go)

for tool in clang llvm-strip; do
	command -v "$tool" >/dev/null || { echo "20-bpf-generate: $tool not found: apt-get install clang llvm libbpf-dev" >&2; exit 1; }
done
[ -f /usr/include/bpf/bpf_helpers.h ] || { echo "20-bpf-generate: /usr/include/bpf/bpf_helpers.h not found: apt-get install libbpf-dev" >&2; exit 1; }
have_clang=$(clang -dumpversion | cut -d. -f1)
if [ "$have_clang" != "$want_clang" ]; then
	echo "20-bpf-generate: clang $have_clang here, but the objects are made with clang $want_clang: install clang-$want_clang (or regenerate and commit with clang $have_clang, and change want_clang)" >&2
	exit 1
fi
for f in "${generated[@]}"; do
	git ls-files --error-unmatch "$f" >/dev/null 2>&1 || { echo "20-bpf-generate: $f is not committed" >&2; exit 1; }
done

generate() { for pkg in "${pkgs[@]}"; do go generate ./"$pkg"/...; done; }
generate
first=$(sha256sum "${generated[@]}")
generate
second=$(sha256sum "${generated[@]}")
if [ "$first" != "$second" ]; then
	echo "20-bpf-generate: two runs of go generate gave different bytes:" >&2
	diff <(echo "$first") <(echo "$second") >&2 || true
	exit 1
fi
if ! git diff --exit-code --stat -- "${generated[@]}"; then
	echo "20-bpf-generate: the committed BPF objects do not match the C sources (${pkgs[*]/%//bpf/*.c}): run 'go generate' in the package and commit the result" >&2
	exit 1
fi
echo "20-bpf-generate: ${#generated[@]} generated files match ${pkgs[*]/%//bpf/*.c} (clang $have_clang)"
