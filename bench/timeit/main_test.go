//go:build unix

package main

import (
	"os"
	"testing"
	"time"
)

func TestSummarize(t *testing.T) {
	r := Result{
		Times:    []float64{0.3, 0.1, 0.2, 0.4},
		CPUTimes: []float64{0.2, 0.1, 0.3},
		MaxRSS:   []int64{30, 10, 20},
		User:     0.4,
		System:   0.8,
	}
	summarize(&r)
	if r.Median != 0.25 || r.CPUMedian != 0.2 || r.RSSMedian != 20 || r.Min != 0.1 || r.Max != 0.4 {
		t.Errorf("got median %v cpu %v rss %v min %v max %v", r.Median, r.CPUMedian, r.RSSMedian, r.Min, r.Max)
	}
	if r.User != 0.1 || r.System != 0.2 {
		t.Errorf("means: user %v system %v", r.User, r.System)
	}
}

func TestRunOnce(t *testing.T) {
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer null.Close()
	wall, _, rss, _, _, code, err := runOnce([]string{"sh", "-c", "exit 3"}, null, time.Minute)
	if err != nil {
		t.Skipf("no sh: %v", err)
	}
	if code != 3 || wall <= 0 || rss <= 0 {
		t.Errorf("wall %v rss %v code %d", wall, rss, code)
	}
}

func TestCmdFlag(t *testing.T) {
	var c cmdFlag
	for _, bad := range []string{"x", "::ls", "a::", "a::ls::0", "a::ls::x"} {
		if c.Set(bad) == nil {
			t.Errorf("Set(%q) accepted", bad)
		}
	}
	if err := c.Set("lsof::lsof -i -P::3"); err != nil || len(c) != 1 || c[0].runs != 3 || len(c[0].argv) != 3 {
		t.Errorf("Set: %v %+v", err, c)
	}
}
