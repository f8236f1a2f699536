package top

import (
	"context"
	"testing"
)

// BenchmarkSample is one refresh of "porteiro top" on this host, as it
// runs after the first: the listener scan (incremental owners), the
// connection dump and the rates. Run it beside bench/loadgen for the
// figures of docs/top.md.
func BenchmarkSample(b *testing.B) {
	s := NewSampler("", false)
	defer s.Close()
	m := NewModel(Options{})
	ctx := context.Background()
	smp, err := s.Sample(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m.Update(smp)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		smp, err := s.Sample(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m.Update(smp)
	}
}
