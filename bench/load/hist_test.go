package load

import (
	"math/rand/v2"
	"slices"
	"testing"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	if got := h.Quantile(0.99); got != 0 {
		t.Fatalf("empty: Quantile(0.99) = %d, want 0", got)
	}
	var all []int64
	rng := rand.New(rand.NewPCG(1, 2))
	for range 100_000 {
		v := int64(rng.ExpFloat64() * 2e6) // ~2 ms mean, in ns
		all = append(all, v)
		h.Record(v)
	}
	slices.Sort(all)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := all[int(q*float64(len(all))+0.5)-1]
		got := h.Quantile(q)
		if d := float64(got-exact) / float64(exact); d > 0.01 || d < -0.01 {
			t.Errorf("Quantile(%v) = %d, exact %d: off by %.2f%%", q, got, exact, d*100)
		}
	}
	if h.Max() != all[len(all)-1] || h.Count() != uint64(len(all)) {
		t.Errorf("Max, Count = %d, %d; want %d, %d", h.Max(), h.Count(), all[len(all)-1], len(all))
	}
}

func TestHistogramSmallAndMerge(t *testing.T) {
	var a, b Histogram
	for v := range int64(100) {
		a.Record(v) // exact below 128
	}
	b.Record(-5) // counts as 0
	b.Record(1 << 50)
	a.Merge(&b)
	if got := a.Quantile(0.5); got != 49 {
		t.Errorf("median of 0..99 and two more = %d, want 49", got)
	}
	if a.Count() != 102 || a.Max() != 1<<50 {
		t.Errorf("Count, Max = %d, %d", a.Count(), a.Max())
	}
	if got := a.Quantile(1); got < 1<<41 {
		t.Errorf("Quantile(1) = %d: a capped value must still land in the top bucket", got)
	}
}

func TestBucketRoundTrip(t *testing.T) {
	for _, v := range []int64{0, 1, 127, 128, 129, 255, 256, 1000, 123456789, 1<<42 - 1} {
		got := bucketValue(bucket(v))
		if d := float64(got-v) / float64(max(v, 1)); d > 1.0/histSub || d < -1.0/histSub {
			t.Errorf("bucketValue(bucket(%d)) = %d", v, got)
		}
	}
}

func TestBitset(t *testing.T) {
	var a, b bitset
	for _, s := range []uint64{0, 63, 64, 100_000} {
		if !a.add(s) || a.add(s) {
			t.Fatalf("add(%d): want new then old", s)
		}
	}
	b.add(63)
	b.add(7)
	if n := a.missing(b); n != 1 {
		t.Errorf("missing = %d, want 1 (7)", n)
	}
	if n := a.union(b); n != 1 || a.count() != 5 || !a.has(7) {
		t.Errorf("union overlap %d, count %d", n, a.count())
	}
}
