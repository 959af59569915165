package report

import (
	"bytes"
	"image/png"
	"strings"
	"testing"

	"github.com/junction-broker/junction/bench/load"
)

func TestMedian(t *testing.T) {
	for _, tc := range []struct {
		in   []float64
		want float64
	}{
		{nil, 0},
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
	} {
		in := append([]float64(nil), tc.in...)
		if got := Median(tc.in); got != tc.want {
			t.Errorf("Median(%v) = %v, want %v", tc.in, got, tc.want)
		}
		for i := range in {
			if in[i] != tc.in[i] {
				t.Fatalf("Median modified its input")
			}
		}
	}
}

func TestAggregate(t *testing.T) {
	runs := []load.Result{
		{MsgPerSec: 100, P99: 9, Sent: 1000, Received: 1000},
		{MsgPerSec: 300, P99: 1, Sent: 3000, Received: 3000},
		{MsgPerSec: 200, P99: 5, Sent: 2000, Received: 1990, Lost: 10, Error: load.LostPrefix + " 10"},
		{Error: "setup: connection refused"},
	}
	row := Aggregate("junction", runs)
	if row.Usable != 3 || row.Med.MsgPerSec != 200 || row.Med.P99 != 5 || row.Lost != 10 || row.Med.Sent != 2000 {
		t.Fatalf("Aggregate = usable %d, msg/s %v, p99 %v, lost %d, sent %d; want 3, 200, 5, 10, 2000",
			row.Usable, row.Med.MsgPerSec, row.Med.P99, row.Lost, row.Med.Sent)
	}
	if len(row.Errors) != 2 {
		t.Errorf("Errors = %q, want both failures", row.Errors)
	}
}

func TestWriteReport(t *testing.T) {
	sc, _ := load.Lookup("amqp-1to1")
	fanin, _ := load.Lookup("mqtt-fanin-qos0")
	rep := &Report{
		Title: "test",
		Chart: "x.png",
		Scenarios: []Scenario{
			{Scenario: sc, Rows: []Row{
				Aggregate("junction", []load.Result{{MsgPerSec: 80000, P99: 10, BrokerCPU: 2, Received: 1000, BrokerPeakRSS: 100 << 20}}),
				Aggregate("rabbitmq", []load.Result{{MsgPerSec: 40000, P99: 40, BrokerCPU: 4, Received: 500, BrokerPeakRSS: 200 << 20}}),
			}},
			{Scenario: fanin, Rows: []Row{
				Aggregate("junction", []load.Result{{MsgPerSec: 90000, P99: 8}}),
				Aggregate("rabbitmq", []load.Result{{Error: "setup: refused"}}),
				Aggregate("mosquitto", []load.Result{{MsgPerSec: 60000, P99: 16}}),
			}},
		},
	}
	md := write(t, rep)
	for _, want := range []string{
		// The summary: every other broker's figure beside its ratio.
		"| [amqp-1to1](#amqp-1to1) | 80,000 | 40,000 | ×2.00 | — | — | 10.0 | 40.0 | ×0.25 | — | — | — |",
		"| [mqtt-fanin-qos0](#mqtt-fanin-qos0) | 90,000 | **failed** | — | 60,000 | ×1.50 | 8.00 | **failed** | — | 16.0 | ×0.50 | — |",
		"Junction/RabbitMQ: msg/s ×2.00, p99 ×0.25, broker CPU per message ×0.25",
		// Under each table, Junction's ratio for every figure that has one.
		"| *Junction ÷ RabbitMQ* | ×2.00 | — | — | ×0.25 | — |  |  |  | ×0.25 per msg | ×0.50 | — | |",
		"| *Junction ÷ Mosquitto* | ×1.50 |",
		"| rabbitmq | **failed** |",
		"- rabbitmq: setup: refused",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	chart(t, rep)
}

// TestWriteReportSetup checks that a report states the machine, the
// versions and the exact commands, and says so when one is missing.
func TestWriteReportSetup(t *testing.T) {
	rep := &Report{
		Title:    "test",
		Machine:  "2 × AMD EPYC, 24 GiB RAM, Linux 6.18.44, loopback only",
		Versions: []string{"Junction 740b9b5 (built with go1.26.8)", "RabbitMQ 3.10.8 (Erlang 25.2.3)", "Mosquitto 2.0.11", "load generator go1.26.8"},
		Commands: []string{"cd /w/bench && ../bin/bench-compare --quick", "#   /w/bin/loadgen -json -scenario mqtt-idle -conns 17500"},
		Notes:    []string{"**mqtt-idle ran 17,500 connections instead of 20,000.**"},
	}
	md := write(t, rep)
	for _, want := range []string{
		"## Setup",
		"Machine: 2 × AMD EPYC, 24 GiB RAM, Linux 6.18.44, loopback only.",
		"Versions: Junction 740b9b5 (built with go1.26.8); RabbitMQ 3.10.8 (Erlang 25.2.3); Mosquitto 2.0.11; load generator go1.26.8.",
		"```sh\ncd /w/bench && ../bin/bench-compare --quick\n#   /w/bin/loadgen -json -scenario mqtt-idle -conns 17500\n```",
		"**mqtt-idle ran 17,500 connections instead of 20,000.**",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	md = write(t, &Report{Title: "bare"})
	for _, want := range []string{"Machine: not recorded.", "Versions: not recorded.", "Commands: not recorded."} {
		if !strings.Contains(md, want) {
			t.Errorf("a report without setup lacks %q:\n%s", want, md)
		}
	}
}

func TestIdleReport(t *testing.T) {
	sc, _ := load.Lookup("mqtt-idle")
	idle := func(perConn float64, connect float64) load.Result {
		return load.Result{Conns: 20000, BytesPerConn: perConn, RSSBefore: 20 << 20,
			RSSAfter: 20<<20 + int64(perConn*20000), ConnectSeconds: connect, SettleSeconds: 3}
	}
	rows := []Row{
		Aggregate("junction", []load.Result{idle(1500, 2), idle(1200, 2.5), idle(1800, 3)}),
		Aggregate("rabbitmq", []load.Result{idle(215*1024, 30)}),
		Aggregate("mosquitto", []load.Result{idle(0.8*1024, 1), {Conns: 20000, BytesPerConn: 900, Unsettled: true}}),
	}
	if j := rows[0]; j.Med.BytesPerConn != 1500 || j.Med.ConnectSeconds != 2.5 || j.Med.Conns != 20000 || j.Unsettled {
		t.Errorf("Aggregate of idle runs: %+v", j.Med)
	}
	if !rows[2].Unsettled {
		t.Error("an unsettled run must mark the row")
	}
	rep := &Report{Title: "idle", Scenarios: []Scenario{{Scenario: sc, Rows: rows}}}
	md := write(t, rep)
	for _, want := range []string{
		"| scenario | connections | Junction KiB/conn | RabbitMQ KiB/conn | J/R | Mosquitto KiB/conn | J/M | goal |",
		"| [mqtt-idle](#mqtt-idle) | 20,000 | 1.46 | 215 | ×0.0068 | 0.84 (not settled) | ×1.74 | Junction ≤ 2.00 KiB per connection: **met** |",
		"| broker | connections | KiB/conn | RSS before MiB | RSS after MiB | connect s | settled after s |",
		"| junction | 20,000 | 1.46 | 20 | 49 | 2.50 | 3.00 | ",
		"| *Junction ÷ RabbitMQ* |  | ×0.0068 | ×1.00 | ×0.012 | ×0.083 |",
		"Goal: Junction ≤ 2.00 KiB per connection: **met** (1.46 KiB).",
		"Junction/Mosquitto: memory per connection ×1.74",
		"| 0.80, 0.88 (not settled) |",
		"Baseline: Mosquitto ≈ 0.8 KiB",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "msg/s |") {
		t.Errorf("an idle-only report has no msg/s tables:\n%s", md)
	}
	chart(t, rep)

	rep.Scenarios[0].Rows[0] = Aggregate("junction", []load.Result{idle(3000, 2)})
	if md := write(t, rep); !strings.Contains(md, "Goal: Junction ≤ 2.00 KiB per connection: **missed** (2.93 KiB).") {
		t.Errorf("goal missed not reported:\n%s", md)
	}
}

func TestGoalRatio(t *testing.T) {
	sc, _ := load.Lookup("x-mqtt-amqp")
	for _, tc := range []struct {
		name string
		j    load.Result
		want string
	}{
		{"met", load.Result{MsgPerSec: 64000, P99: 4}, "**met** (msg/s ×4.00, p99 ×0.80)"},
		{"too slow", load.Result{MsgPerSec: 48000, P99: 4}, "**missed** (msg/s ×3.00"},
		{"p99 not lower", load.Result{MsgPerSec: 80000, P99: 5}, "**missed** (msg/s ×5.00, p99 ×1.00)"},
		{"lost", load.Result{MsgPerSec: 80000, P99: 1, Lost: 1, Error: load.LostPrefix + " 1"}, "**missed**"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := Scenario{Scenario: sc, Rows: []Row{
				Aggregate("junction", []load.Result{tc.j}),
				Aggregate("rabbitmq", []load.Result{{MsgPerSec: 16000, P99: 5}}),
			}}
			if got := goal(s); !strings.Contains(got, "Goal: Junction ≥ ×4.00 RabbitMQ's msg/s, with a lower p99: "+tc.want) {
				t.Errorf("goal = %q, want %q", got, tc.want)
			}
		})
	}
	s := Scenario{Scenario: sc, Rows: []Row{Aggregate("junction", []load.Result{{MsgPerSec: 1}})}}
	if got := goalCell(s); got != "Junction ≥ ×4.00 RabbitMQ's msg/s, with a lower p99: —" {
		t.Errorf("goalCell without RabbitMQ = %q", got)
	}
}

func write(t *testing.T, rep *Report) string {
	t.Helper()
	var md bytes.Buffer
	if err := WriteMarkdown(&md, rep); err != nil {
		t.Fatal(err)
	}
	return md.String()
}

func chart(t *testing.T, rep *Report) {
	t.Helper()
	var img bytes.Buffer
	if err := WriteChart(&img, rep); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&img); err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
}
