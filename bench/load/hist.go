package load

import (
	"math"
	"math/bits"
)

// histSub is the number of linear sub-buckets per power of two: values are
// kept to within 1/histSub (0.8 %) of their true value.
const (
	histSubBits = 7
	histSub     = 1 << histSubBits
	histMaxBits = 42 // values are capped at 2^42 ns (73 minutes)
	histLen     = (histMaxBits - histSubBits + 1) * histSub
)

// Histogram counts non-negative durations in nanoseconds in log-linear
// buckets, like HdrHistogram: exact below 128 ns, within 0.8 % above. The
// zero value is empty and ready; Record does not allocate. It is not safe for
// concurrent use: each consumer goroutine owns one and they are merged after.
type Histogram struct {
	counts [histLen]uint64
	total  uint64
	max    int64
}

func bucket(v int64) int {
	if v < histSub {
		if v < 0 {
			return 0
		}
		return int(v)
	}
	if v >= 1<<histMaxBits {
		v = 1<<histMaxBits - 1
	}
	e := bits.Len64(uint64(v)) - histSubBits - 1 // v>>e is in [histSub, 2*histSub)
	return (e+1)*histSub + int(v>>e) - histSub
}

// bucketValue is the midpoint of bucket i's range.
func bucketValue(i int) int64 {
	if i < histSub {
		return int64(i)
	}
	e := i/histSub - 1
	lo := int64(i%histSub+histSub) << e
	return lo + (int64(1)<<e)/2
}

// Record adds one value v, in nanoseconds; negative values count as 0.
func (h *Histogram) Record(v int64) {
	h.counts[bucket(v)]++
	h.total++
	if v > h.max {
		h.max = v
	}
}

// Merge adds every value recorded in o to h.
func (h *Histogram) Merge(o *Histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.total += o.total
	h.max = max(h.max, o.max)
}

// Count is the number of values recorded.
func (h *Histogram) Count() uint64 { return h.total }

// Max is the largest value recorded, exactly.
func (h *Histogram) Max() int64 { return h.max }

// Quantile returns the value at quantile q (0 < q ≤ 1): the smallest
// recorded value such that at least q of all values are at or below it, to
// within the bucket precision. It is 0 when nothing was recorded.
func (h *Histogram) Quantile(q float64) int64 {
	if h.total == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.total)))
	rank = min(max(rank, 1), h.total)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return min(bucketValue(i), h.max)
		}
	}
	return h.max
}
