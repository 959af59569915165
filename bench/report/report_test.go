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
	rep := &Report{
		Title: "test",
		Chart: "x.png",
		Scenarios: []Scenario{{Scenario: sc, Rows: []Row{
			Aggregate("junction", []load.Result{{MsgPerSec: 80000, P99: 10}}),
			Aggregate("rabbitmq", []load.Result{{MsgPerSec: 40000, P99: 40}}),
		}}},
	}
	var md bytes.Buffer
	if err := WriteMarkdown(&md, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| [amqp-1to1](#amqp-1to1) | 80,000 | 40,000 | ×2.00 | 10.0 | 40.0 | ×0.25 | — |", "Junction/RabbitMQ: msg/s ×2.00, p99 ×0.25"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	var img bytes.Buffer
	if err := WriteChart(&img, rep); err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(&img); err != nil {
		t.Fatalf("chart is not a PNG: %v", err)
	}
}
