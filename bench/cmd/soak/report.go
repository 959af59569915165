package main

import (
	"cmp"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/junction-broker/junction/bench/load"
	"github.com/junction-broker/junction/bench/report"
)

// runRecord is one scenario run of the soak.
type runRecord struct {
	Scenario string
	At       time.Duration // when it began, since the load began
	Res      load.Result
	Err      string // "" if it passed
}

// soakReport is everything the Markdown report says.
type soakReport struct {
	Started   time.Time
	Planned   time.Duration // -duration
	Elapsed   time.Duration // from the first run's start to the last one's end
	Interval  time.Duration
	RunFor    time.Duration // each run's publishing time
	Machine   string
	Version   string
	Command   string
	Scenarios []string
	FDSlack   int
	Samples   []Sample // Samples[0] is the baseline, taken before the load
	Runs      []runRecord
	Incidents []string // the broker exiting, failed samples, an interruption
	Chart     string   // the PNG's file name, beside the report; "" for none
	Verdict   Verdict
}

// lost is the acknowledged messages the runs lost, and how many runs lost
// any.
func (r *soakReport) lost() (msgs int64, runs int) {
	for _, run := range r.Runs {
		if run.Res.Lost > 0 && run.Res.Reliable {
			msgs += run.Res.Lost
			runs++
		}
	}
	return msgs, runs
}

// failedRuns counts the runs that ended in an error, losses included.
func (r *soakReport) failedRuns() int {
	n := 0
	for _, run := range r.Runs {
		if run.Err != "" {
			n++
		}
	}
	return n
}

// Passed reports whether the soak passed: no run lost an acknowledged
// message or failed otherwise, nothing went wrong beside the runs, and the
// broker levelled off.
func (r *soakReport) Passed() bool {
	return r.failedRuns() == 0 && len(r.Incidents) == 0 && r.Verdict.Levelled && len(r.Runs) > 0
}

// under is the samples taken under load: all but the baseline.
func (r *soakReport) under() []Sample {
	if len(r.Samples) == 0 {
		return nil
	}
	return r.Samples[1:]
}

func mib(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// figure formats a check's value: one decimal for MiB, none for counts.
func figure(c Check, v float64) string {
	if c.Unit == "" {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.1f %s", v, c.Unit)
}

// writeReport writes r as Markdown.
func writeReport(w io.Writer, r *soakReport) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# Soak: %s of mixed load on Junction\n\n", r.Planned)
	lostMsgs, lostRuns := r.lost()
	result := "**passed**"
	if !r.Passed() {
		result = "**failed**"
	}
	level := "**levelled off**"
	if !r.Verdict.Levelled {
		level = "**not levelled off**"
		if r.Verdict.Why != "" {
			level = "**not judged**: " + r.Verdict.Why
		}
	}
	fmt.Fprintf(&b, "Result: %s. Memory, goroutines and open files: %s. Runs: %d, failed %d; acknowledged messages lost: %d (in %d runs).\n\n",
		result, level, len(r.Runs), r.failedRuns(), lostMsgs, lostRuns)
	if len(r.Incidents) > 0 {
		b.WriteString("Incidents:\n\n")
		for _, s := range r.Incidents {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(strings.TrimSpace(s), "\n", "\n  "))
		}
		b.WriteString("\n")
	}
	if r.Chart != "" {
		fmt.Fprintf(&b, "![resident memory, goroutines and open files over the soak](%s)\n\n", r.Chart)
	}

	under := r.under()
	b.WriteString("## Summary\n\n")
	if len(under) > 0 {
		b.WriteString("| figure | baseline | min | max | " + strings.Join(markHeads(under), " | ") + " |\n")
		b.WriteString("|---|--:|--:|--:|" + strings.Repeat("--:|", len(markHeads(under))) + "\n")
		base := r.Samples[0]
		marks := markSamples(under)
		row := func(name string, f func(Sample) string, less func(x, y Sample) int) {
			lo, hi := slices.MinFunc(under, less), slices.MaxFunc(under, less)
			fmt.Fprintf(&b, "| %s | %s | %s | %s |", name, f(base), f(lo), f(hi))
			for _, s := range marks {
				fmt.Fprintf(&b, " %s |", f(s))
			}
			b.WriteString("\n")
		}
		row("resident memory, MiB", func(s Sample) string { return mib(s.RSS) }, func(x, y Sample) int { return cmp.Compare(x.RSS, y.RSS) })
		row("goroutines", func(s Sample) string { return fmt.Sprint(s.Goroutines) }, func(x, y Sample) int { return cmp.Compare(x.Goroutines, y.Goroutines) })
		row("open files", func(s Sample) string { return fmt.Sprint(s.FDs) }, func(x, y Sample) int { return cmp.Compare(x.FDs, y.FDs) })
		b.WriteString("\nBaseline: after start, before any load. The minute columns are the samples nearest minutes 1, 10 and 30 (those the soak reached) and the last.\n\n")
	} else {
		b.WriteString("No samples were taken under load.\n\n")
	}

	b.WriteString("## Level-off rule\n\n")
	fmt.Fprintf(&b, "The %d samples taken under load are cut into three consecutive thirds; the first holds the warm-up. "+
		"The broker has levelled off when the last third's peak stays within a bound of the middle third's: resident memory at most %.0f%% above it, "+
		"goroutines at most %d above it, open files at most %d above it (the most connections one run of the mix opens, as a sample may land anywhere in a run).\n\n",
		len(under), rssGrowth*100, goroutineSlack, r.FDSlack)
	if len(r.Verdict.Checks) > 0 {
		b.WriteString("| figure | middle third's peak | last third's peak | bound | |\n|---|--:|--:|--:|---|\n")
		for _, c := range r.Verdict.Checks {
			ok := "ok"
			if !c.OK {
				ok = "**exceeded**"
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s (%s) | %s |\n", c.Name, figure(c, c.Middle), figure(c, c.Last), figure(c, c.Bound), c.Rule, ok)
		}
		b.WriteString("\n")
	} else {
		fmt.Fprintf(&b, "Not applied: %s.\n\n", r.Verdict.Why)
	}

	b.WriteString("## Runs\n\n")
	fmt.Fprintf(&b, "The scenarios ran in turn, %s of publishing each (then the drain), each on connections of its own that it opens at its start and closes at its end. "+
		"A run fails when it loses a message the broker acknowledged (publisher confirm, PUBACK, PUBCOMP), stalls, or cannot connect.\n\n", r.RunFor)
	b.WriteString("| scenario | runs | failed | sent | received | lost | duplicates | median msg/s | median p99 ms |\n|---|--:|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, name := range r.Scenarios {
		var n, failed int
		var sent, recv, lost, dup int64
		var rates, p99s []float64
		for _, run := range r.Runs {
			if run.Scenario != name {
				continue
			}
			n++
			if run.Err != "" {
				failed++
			}
			sent += run.Res.Sent
			recv += run.Res.Received
			dup += run.Res.Duplicates
			if run.Res.Reliable {
				lost += run.Res.Lost
			}
			rates, p99s = append(rates, run.Res.MsgPerSec), append(p99s, run.Res.P99)
		}
		if n == 0 {
			continue
		}
		fmt.Fprintf(&b, "| %s | %d | %d | %d | %d | %d | %d | %.0f | %.2f |\n",
			name, n, failed, sent, recv, lost, dup, report.Median(rates), report.Median(p99s))
	}
	b.WriteString("\nLost counts acknowledged messages only; scenarios whose protocols allow drops (MQTT QoS 0) count none.\n\n")
	if r.failedRuns() > 0 {
		b.WriteString("Failed runs:\n\n")
		for _, run := range r.Runs {
			if run.Err != "" {
				fmt.Fprintf(&b, "- %s %s: %s\n", clock(run.At), run.Scenario, run.Err)
			}
		}
		b.WriteString("\n")
	}

	b.WriteString("## Samples\n\n| time | resident memory, MiB | goroutines | open files | during |\n|--:|--:|--:|--:|---|\n")
	for i, s := range r.Samples {
		during := s.During
		switch {
		case i == 0:
			during = "baseline, before the load"
		case during == "":
			during = "after the last run"
		}
		fmt.Fprintf(&b, "| %s | %s | %d | %d | %s |\n", clock(s.At), mib(s.RSS), s.Goroutines, s.FDs, during)
	}
	b.WriteString("\n")

	b.WriteString("## Setup\n\n")
	fmt.Fprintf(&b, "Started %s; load for %s (planned %s: runs start until it has passed), sampled every %s.\n\n",
		r.Started.UTC().Format("2006-01-02 15:04 MST"), r.Elapsed.Round(time.Second), r.Planned, r.Interval)
	fmt.Fprintf(&b, "Machine: %s.\n\nBroker: %s, started from an empty data directory with its debug listener on loopback; "+
		"resident memory is its VmRSS, open files the entries of /proc/PID/fd, goroutines the total of /debug/pprof/goroutine.\n\n", r.Machine, r.Version)
	fmt.Fprintf(&b, "Scenarios (bench/load): %s.\n\n", strings.Join(r.Scenarios, ", "))
	fmt.Fprintf(&b, "Command:\n\n```sh\n%s\n```\n", r.Command)
	_, err := io.WriteString(w, b.String())
	return err
}

// markMinutes are the minutes whose samples the summary shows.
var markMinutes = []int{1, 10, 30}

// markSamples returns, of the samples under load, the one nearest each of
// markMinutes that the soak reached, then the last.
func markSamples(under []Sample) []Sample {
	var out []Sample
	last := under[len(under)-1]
	for _, m := range markMinutes {
		at := time.Duration(m) * time.Minute
		if last.At < at-30*time.Second {
			break // not reached
		}
		best := slices.MinFunc(under, func(a, b Sample) int { return cmp.Compare(absDur(a.At-at), absDur(b.At-at)) })
		out = append(out, best)
	}
	if len(out) == 0 || out[len(out)-1].At != last.At {
		out = append(out, last)
	}
	return out
}

// markHeads are markSamples' column heads.
func markHeads(under []Sample) []string {
	var hs []string
	for _, s := range markSamples(under) {
		hs = append(hs, "at "+clock(s.At))
	}
	return hs
}

func absDur(d time.Duration) time.Duration { return max(d, -d) }
