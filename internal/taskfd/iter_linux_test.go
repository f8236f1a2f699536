package taskfd

import (
	"context"
	"testing"
	"time"
)

func TestIteratorSmoke(t *testing.T) {
	t0 := time.Now()
	it, err := Open()
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	t1 := time.Now()
	b, err := it.Read(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t2 := time.Now()
	b, err = it.Read(context.Background(), b)
	t3 := time.Now()
	t.Logf("open %v read %v read2 %v records %d", t1.Sub(t0), t2.Sub(t1), t3.Sub(t2), len(b)/RecordSize)
}
