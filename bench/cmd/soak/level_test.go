package main

import (
	"strings"
	"testing"
	"time"
)

// samples builds samples a minute apart from parallel figures.
func samples(rssMiB []float64, goroutines, fds []int) []Sample {
	out := make([]Sample, len(rssMiB))
	for i := range out {
		out[i] = Sample{At: time.Duration(i+1) * time.Minute, RSS: int64(rssMiB[i] * (1 << 20)), Goroutines: goroutines[i], FDs: fds[i]}
	}
	return out
}

func repeat[T any](v T, n int) []T {
	out := make([]T, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestLevelOff(t *testing.T) {
	flat := func() ([]float64, []int, []int) {
		// Warm-up in the first third, then flat with noise.
		rss := []float64{60, 120, 170, 171, 170, 172, 171, 173, 172}
		return rss, []int{21, 21, 21, 21, 23, 21, 21, 22, 21}, []int{30, 28, 44, 31, 38, 30, 47, 33, 29}
	}
	for _, tc := range []struct {
		name   string
		change func(rss []float64, g, fds []int)
		want   bool
		failed string // the check that fails
	}{
		{"flat after warm-up", func([]float64, []int, []int) {}, true, ""},
		{"warm-up far above: only middle and last count", func(rss []float64, _, _ []int) { rss[0] = 900 }, true, ""},
		{"memory at the bound", func(rss []float64, _, _ []int) { rss[8] = 172 * 1.1 }, true, ""}, // the middle third peaks at 172
		{"memory over the bound", func(rss []float64, _, _ []int) { rss[8] = 172*1.1 + 0.5 }, false, "resident memory"},
		{"memory growing steadily", func(rss []float64, _, _ []int) {
			for i := range rss {
				rss[i] = 100 + 8*float64(i)
			}
		}, false, "resident memory"},
		{"memory shrinking", func(rss []float64, _, _ []int) { rss[6], rss[7], rss[8] = 120, 110, 100 }, true, ""},
		{"goroutines at the bound", func(_ []float64, g, _ []int) { g[7] = 23 + goroutineSlack }, true, ""},
		{"a goroutine per run", func(_ []float64, g, _ []int) {
			for i := range g {
				g[i] = 21 + 4*i
			}
		}, false, "goroutines"},
		{"fds at the bound", func(_ []float64, _, fds []int) { fds[6] = 38 + 20 }, true, ""},
		{"fds over the bound", func(_ []float64, _, fds []int) { fds[6] = 38 + 21 }, false, "open files"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rss, g, fds := flat()
			tc.change(rss, g, fds)
			v := levelOff(samples(rss, g, fds), 20)
			if v.Levelled != tc.want || v.Why != "" || len(v.Checks) != 3 {
				t.Fatalf("levelled = %v (%q, %d checks), want %v: %+v", v.Levelled, v.Why, len(v.Checks), tc.want, v.Checks)
			}
			for _, c := range v.Checks {
				if c.OK == (c.Name == tc.failed) {
					t.Errorf("check %s: ok = %v; %+v", c.Name, c.OK, c)
				}
			}
		})
	}
}

func TestLevelOffThirds(t *testing.T) {
	// 9 samples: thirds 0-2, 3-5, 6-8; the peaks come from 3-5 and 6-8 only.
	rss := []float64{500, 500, 500, 100, 101, 102, 103, 104, 105}
	v := levelOff(samples(rss, repeat(21, 9), repeat(30, 9)), 20)
	if c := v.Checks[0]; c.Middle != 102 || c.Last != 105 || c.Bound != 102*1.1 || !c.OK {
		t.Fatalf("memory check = %+v; want middle 102, last 105, bound 112.2", c)
	}
	// 4 samples: thirds 0, 1, 2-3.
	v = levelOff(samples([]float64{1, 100, 105, 111}, repeat(21, 4), repeat(30, 4)), 20)
	if c := v.Checks[0]; c.Middle != 100 || c.Last != 111 || c.OK {
		t.Fatalf("4 samples: memory check = %+v; want middle 100, last 111, exceeded", c)
	}
}

func TestLevelOffTooFewSamples(t *testing.T) {
	for n := range minSamples {
		v := levelOff(samples(repeat(100.0, n), repeat(21, n), repeat(30, n)), 20)
		if v.Levelled || !strings.Contains(v.Why, "at least 3") || len(v.Checks) != 0 {
			t.Errorf("%d samples: %+v; want not judged", n, v)
		}
	}
}
