package main

import (
	"strings"
	"testing"
	"time"

	"github.com/junction-broker/junction/bench/load"
)

// testReport is a 30-minute soak sampled each minute, plus the sample after
// the last run, with two runs of one scenario and one of another.
func testReport() *soakReport {
	r := &soakReport{
		Started: time.Date(2026, 11, 22, 1, 0, 0, 0, time.UTC), Planned: 30 * time.Minute, Elapsed: 30*time.Minute + 15*time.Second,
		Interval: time.Minute, RunFor: 20 * time.Second, Machine: "2 × test CPU", Version: "Junction abc123",
		Command: "soak -duration 30m", Scenarios: []string{"amqp-1to1", "x-mqtt-amqp"}, FDSlack: 18, Chart: "soak-x.png",
		Samples: []Sample{{At: 0, RSS: 24 << 20, Goroutines: 19, FDs: 12}},
	}
	for m := 1; m <= 30; m++ {
		r.Samples = append(r.Samples, Sample{At: time.Duration(m) * time.Minute, RSS: int64(170+m%3) << 20, Goroutines: 21, FDs: 30 + m%5, During: "amqp-1to1"})
	}
	r.Samples = append(r.Samples, Sample{At: 30*time.Minute + 20*time.Second, RSS: 171 << 20, Goroutines: 21, FDs: 14})
	r.Runs = []runRecord{
		{Scenario: "amqp-1to1", Res: load.Result{Sent: 1000, Received: 1000, MsgPerSec: 50000, P99: 2}},
		{Scenario: "x-mqtt-amqp", At: 22 * time.Second, Res: load.Result{Sent: 500, Received: 500, MsgPerSec: 20000, P99: 4, Reliable: true}},
		{Scenario: "amqp-1to1", At: 44 * time.Second, Res: load.Result{Sent: 3000, Received: 3000, MsgPerSec: 70000, P99: 3}},
	}
	r.Verdict = levelOff(r.under(), r.FDSlack)
	return r
}

func write(t *testing.T, r *soakReport) string {
	t.Helper()
	var b strings.Builder
	if err := writeReport(&b, r); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func contains(t *testing.T, md string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(md, w) {
			t.Errorf("report lacks %q", w)
		}
	}
	if t.Failed() {
		t.Logf("report:\n%s", md)
	}
}

func TestWriteReportPassed(t *testing.T) {
	r := testReport()
	if !r.Passed() {
		t.Fatalf("the test soak does not pass: %+v", r.Verdict)
	}
	md := write(t, r)
	contains(t, md,
		"# Soak: 30m0s of mixed load on Junction",
		"Result: **passed**. Memory, goroutines and open files: **levelled off**. Runs: 3, failed 0; acknowledged messages lost: 0 (in 0 runs).",
		"![resident memory, goroutines and open files over the soak](soak-x.png)",
		// Baseline, min, max, then minutes 1, 10, 30 and the last sample.
		"| figure | baseline | min | max | at 1:00 | at 10:00 | at 30:00 | at 30:20 |",
		"| resident memory, MiB | 24.0 | 170.0 | 172.0 | 171.0 | 171.0 | 170.0 | 171.0 |",
		"| goroutines | 19 | 21 | 21 | 21 | 21 | 21 | 21 |",
		"| open files | 12 | 14 | 34 | 31 | 30 | 30 | 14 |",
		"| resident memory | 172.0 MiB | 172.0 MiB | 189.2 MiB (middle + 10%) | ok |",
		"| open files | 34 | 34 | 52 (middle + 18 (one run's connections)) | ok |",
		"| amqp-1to1 | 2 | 0 | 4000 | 4000 | 0 | 0 | 60000 | 2.50 |",
		"| x-mqtt-amqp | 1 | 0 | 500 | 500 | 0 | 0 | 20000 | 4.00 |",
		"| 0:00 | 24.0 | 19 | 12 | baseline, before the load |",
		"| 15:00 | 170.0 | 21 | 30 | amqp-1to1 |",
		"| 30:20 | 171.0 | 21 | 14 | after the last run |",
		"Machine: 2 × test CPU.", "Broker: Junction abc123", "soak -duration 30m",
	)
	if n := strings.Count(md, "\n| ") - strings.Count(md, "\n|---"); n < 32 {
		t.Errorf("only %d table rows; want a row per sample (32) and more", n)
	}
}

func TestWriteReportLoss(t *testing.T) {
	r := testReport()
	r.Runs[1].Res.Received, r.Runs[1].Res.Lost = 497, 3
	r.Runs[1].Err = load.LostPrefix + " 3 acknowledged deliveries of 500 owed"
	if r.Passed() {
		t.Fatal("a soak that lost messages passed")
	}
	md := write(t, r)
	contains(t, md,
		"Result: **failed**. Memory, goroutines and open files: **levelled off**. Runs: 3, failed 1; acknowledged messages lost: 3 (in 1 runs).",
		"| x-mqtt-amqp | 1 | 1 | 500 | 497 | 3 | 0 |",
		"- 0:22 x-mqtt-amqp: LOST 3 acknowledged deliveries of 500 owed",
	)
}

func TestWriteReportNotLevelled(t *testing.T) {
	r := testReport()
	for i := range r.Samples[21:] {
		r.Samples[21+i].FDs += 10 * i // a leak in the last third
	}
	r.Verdict = levelOff(r.under(), r.FDSlack)
	if r.Passed() {
		t.Fatal("a soak that did not level off passed")
	}
	contains(t, write(t, r), "Result: **failed**. Memory, goroutines and open files: **not levelled off**.", "| open files | 34 | 120 | 52 (middle + 18 (one run's connections)) | **exceeded** |")
}

func TestWriteReportShortAndIncidents(t *testing.T) {
	r := testReport()
	r.Planned, r.Samples = 3*time.Minute, r.Samples[:3] // baseline, 1:00, 2:00
	r.Verdict = levelOff(r.under(), r.FDSlack)
	r.Incidents = []string{"the broker exited during amqp-1to1 at 2:10: signal: killed\n==> junction.log <==\npanic: boom"}
	if r.Passed() {
		t.Fatal("a soak with an incident passed")
	}
	contains(t, write(t, r),
		"**not judged**: 2 samples under load, the rule needs at least 3",
		"| figure | baseline | min | max | at 1:00 | at 2:00 |",
		"- the broker exited during amqp-1to1 at 2:10: signal: killed\n  ==> junction.log <==\n  panic: boom",
	)
}
