// Package bench holds porteiro's speed benchmarks: Go benchmarks of the
// inventory engine, the command line and the kernel's per-fd cost on the
// real host (scan_linux_test.go, fdwalk_linux_test.go), the load generator
// (bench/loadgen), the interleaved timer (bench/timeit) and the comparison
// with ss, netstat, lsof and fuser (bench/compare.sh). See
// docs/performance.md.
//
// The Go benchmarks run only with -bench:
//
//	go test ./bench -run '^$' -bench . -benchtime 20x
//	PORTEIRO_BENCH_LOAD=medium go test ./bench -run '^$' -bench . -benchtime 20x
//
// With PORTEIRO_BENCH_LOAD set to small, medium or large, the benchmark
// binary builds that load first (with sleep holders) and stops it at the end.
// To measure against a load that is already running instead, leave it unset
// and name that load's who port and first holder:
//
//	PORTEIRO_BENCH_PORT=34781 PORTEIRO_BENCH_PID=12660 \
//	    go test ./bench -run '^$' -bench . -benchmem -count 5
//
// Besides ns/op, B/op and allocs/op, the benchmarks report allocs/socket
// (per socket of the query on the host) and allocs/fd (per open fd of the
// host, for the paths that walk /proc).
package bench
