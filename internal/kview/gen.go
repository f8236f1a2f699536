package kview

// The flags are pinned so that every machine with the same clang produces
// the same bytes; scripts/check.d/20-bpf-generate.sh checks it.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go@v0.22.0 -cc clang -cflags "-O2 -g -Wall -Werror -std=gnu11 -fno-ident" -target bpfel,bpfeb kview bpf/kview.c -- -I/usr/include
