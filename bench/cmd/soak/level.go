package main

import "fmt"

// The level-off rule. The samples taken under load are cut into three
// consecutive thirds; the first holds the warm-up (Pebble's memtable and
// block cache filling, the heap growing to its working size), and the
// broker has levelled off when the last third's peak of each figure stays
// within a bound of the middle third's:
//
//   - resident memory: at most rssGrowth (10%) above the middle peak;
//   - goroutines: at most goroutineSlack (10) above it, room for the
//     store's background work (flushes, compactions) and the debug
//     listener's own request;
//   - open files: at most fdSlack above it, the most connections one run of
//     the mix holds open: a sample lands at any point of a run, so two
//     samples may differ by one run's connections without anything leaking.
//
// A leak of one descriptor or goroutine per run, or memory growing by a
// tenth over a third of the soak, breaks the bound.
const (
	rssGrowth      = 0.10
	goroutineSlack = 10
	minSamples     = 3 // one per third
)

// Check is one figure's comparison of the middle and last thirds.
type Check struct {
	Name         string  // "resident memory"
	Unit         string  // "MiB", "" for a count
	Middle, Last float64 // each third's peak
	Bound        float64 // the most Last may be
	Rule         string  // how Bound follows from Middle
	OK           bool
}

// Verdict is the level-off rule's answer.
type Verdict struct {
	Levelled bool
	Why      string  // when the rule could not be applied: too few samples
	Checks   []Check // resident memory, goroutines, open files
}

// levelOff applies the rule to the samples taken under load (the baseline,
// taken before any, is not one of them) in time order; fdSlack is the most
// connections one run opens.
func levelOff(under []Sample, fdSlack int) Verdict {
	n := len(under)
	if n < minSamples {
		return Verdict{Why: fmt.Sprintf("%d samples under load, the rule needs at least %d (one per third): use a longer -duration or a shorter -interval", n, minSamples)}
	}
	middle, last := under[n/3:2*n/3], under[2*n/3:]
	peak := func(ss []Sample, f func(Sample) float64) float64 {
		m := f(ss[0])
		for _, s := range ss[1:] {
			m = max(m, f(s))
		}
		return m
	}
	check := func(name, unit string, f func(Sample) float64, bound func(float64) float64, rule string) Check {
		c := Check{Name: name, Unit: unit, Middle: peak(middle, f), Last: peak(last, f), Rule: rule}
		c.Bound = bound(c.Middle)
		c.OK = c.Last <= c.Bound
		return c
	}
	v := Verdict{Levelled: true, Checks: []Check{
		check("resident memory", "MiB", func(s Sample) float64 { return float64(s.RSS) / (1 << 20) },
			func(m float64) float64 { return m * (1 + rssGrowth) }, fmt.Sprintf("middle + %.0f%%", rssGrowth*100)),
		check("goroutines", "", func(s Sample) float64 { return float64(s.Goroutines) },
			func(m float64) float64 { return m + goroutineSlack }, fmt.Sprintf("middle + %d", goroutineSlack)),
		check("open files", "", func(s Sample) float64 { return float64(s.FDs) },
			func(m float64) float64 { return m + float64(fdSlack) }, fmt.Sprintf("middle + %d (one run's connections)", fdSlack)),
	}}
	for _, c := range v.Checks {
		v.Levelled = v.Levelled && c.OK
	}
	return v
}
