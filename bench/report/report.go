// Package report turns load runs into the comparison's results: the median
// of each scenario's runs per broker, a Markdown file with one table per
// scenario and the Junction/RabbitMQ ratios, and a PNG chart.
package report

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/junction-broker/junction/bench/load"
)

// Median returns the median of xs (the mean of the middle two for an even
// count), or 0 for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	m := len(s) / 2
	if len(s)%2 == 1 {
		return s[m]
	}
	return (s[m-1] + s[m]) / 2
}

// Usable reports whether r's figures mean something: it completed, or it
// completed and lost messages (which the report shows, loudly).
func Usable(r load.Result) bool {
	return r.Error == "" || r.Lost > 0 && strings.HasPrefix(r.Error, load.LostPrefix)
}

// Row is one broker's line in a scenario's table.
type Row struct {
	Broker string
	Runs   []load.Result
	Med    load.Result // the median of each figure over the usable runs; Sent and Received from the median-throughput run
	Usable int         // runs that count
	Lost   int64       // the most lost in any run: a loss is never hidden by a median
	Errors []string    // why runs failed
}

// Aggregate summarises one broker's runs of one scenario.
func Aggregate(broker string, runs []load.Result) Row {
	row := Row{Broker: broker, Runs: runs}
	var ok []load.Result
	for _, r := range runs {
		row.Lost = max(row.Lost, r.Lost)
		if r.Error != "" {
			row.Errors = append(row.Errors, r.Error)
		}
		if Usable(r) {
			ok = append(ok, r)
		}
	}
	row.Usable = len(ok)
	if len(ok) == 0 {
		return row
	}
	med := func(f func(load.Result) float64) float64 {
		xs := make([]float64, len(ok))
		for i, r := range ok {
			xs[i] = f(r)
		}
		return Median(xs)
	}
	byRate := slices.Clone(ok)
	slices.SortFunc(byRate, func(a, b load.Result) int {
		switch {
		case a.MsgPerSec < b.MsgPerSec:
			return -1
		case a.MsgPerSec > b.MsgPerSec:
			return 1
		}
		return 0
	})
	m := byRate[len(byRate)/2]
	m.MsgPerSec = med(func(r load.Result) float64 { return r.MsgPerSec })
	m.MBPerSec = med(func(r load.Result) float64 { return r.MBPerSec })
	m.P50 = med(func(r load.Result) float64 { return r.P50 })
	m.P99 = med(func(r load.Result) float64 { return r.P99 })
	m.P999 = med(func(r load.Result) float64 { return r.P999 })
	m.BrokerCPU = med(func(r load.Result) float64 { return r.BrokerCPU })
	m.BrokerPeakRSS = int64(med(func(r load.Result) float64 { return float64(r.BrokerPeakRSS) }))
	m.LoadgenCPU = med(func(r load.Result) float64 { return r.LoadgenCPU })
	m.Lost = row.Lost
	m.Error = ""
	row.Med = m
	return row
}

// Scenario is one scenario's rows, in Brokers order.
type Scenario struct {
	load.Scenario
	Rows    []Row
	Skipped map[string]string // broker → why it was not run
}

// Find returns the row for broker, if any usable.
func (s *Scenario) Find(broker string) (Row, bool) {
	for _, r := range s.Rows {
		if r.Broker == broker && r.Usable > 0 {
			return r, true
		}
	}
	return Row{}, false
}

// Report is a whole comparison.
type Report struct {
	Title     string
	Header    []string // paragraphs before the tables: machine, versions, caveats
	Scenarios []Scenario
	Incidents []string // broker crashes, kills and failed runs, with log excerpts
	Chart     string   // file name of the PNG, relative to the Markdown file; "" for none
	Method    []string // how it was measured
}

// ratio formats a/b as "×1.23", or "—".
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "—"
	}
	return fmt.Sprintf("×%.2f", a/b)
}

func num(x float64) string {
	switch {
	case x >= 100:
		return commas(int64(x + 0.5))
	case x >= 10:
		return fmt.Sprintf("%.1f", x)
	default:
		return fmt.Sprintf("%.2f", x)
	}
}

func commas(n int64) string {
	s := fmt.Sprint(n)
	if n < 0 {
		return "-" + commas(-n)
	}
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func mib(n int64) string { return fmt.Sprintf("%.0f", float64(n)/(1<<20)) }

// WriteMarkdown writes rep as Markdown.
func WriteMarkdown(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", rep.Title)
	for _, p := range rep.Header {
		fmt.Fprintf(&b, "%s\n\n", p)
	}
	// The summary: the two figures that matter most, side by side.
	b.WriteString("## Summary\n\n")
	b.WriteString("Median of the runs; p99 is end-to-end latency (publish call to delivery) in ms. Ratios are Junction ÷ RabbitMQ (msg/s: higher is better for Junction; p99: lower is).\n\n")
	b.WriteString("| scenario | Junction msg/s | RabbitMQ msg/s | J/R msg/s | Junction p99 | RabbitMQ p99 | J/R p99 | Mosquitto msg/s (p99) |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|\n")
	for _, s := range rep.Scenarios {
		j, jok := s.Find("junction")
		r, rok := s.Find("rabbitmq")
		m, mok := s.Find("mosquitto")
		cell := func(ok bool, row Row, f func(load.Result) float64) string {
			if !ok {
				return failCell(s, row.Broker)
			}
			return num(f(row.Med)) + lossMark(row)
		}
		rate := func(x load.Result) float64 { return x.MsgPerSec }
		p99 := func(x load.Result) float64 { return x.P99 }
		j.Broker, r.Broker, m.Broker = "junction", "rabbitmq", "mosquitto"
		mcell := "—"
		if s.Runs("mosquitto") {
			mcell = failCell(s, "mosquitto")
			if mok {
				mcell = fmt.Sprintf("%s (%s)%s", num(m.Med.MsgPerSec), num(m.Med.P99), lossMark(m))
			}
		}
		rr, rp := "—", "—"
		if jok && rok {
			rr, rp = ratio(j.Med.MsgPerSec, r.Med.MsgPerSec), ratio(j.Med.P99, r.Med.P99)
		}
		rcell, rpcell := cell(rok, r, rate), cell(rok, r, p99)
		if !s.Runs("rabbitmq") {
			rcell, rpcell = "—", "—"
		}
		fmt.Fprintf(&b, "| [%s](#%s) | %s | %s | %s | %s | %s | %s | %s |\n", s.Name, s.Name,
			cell(jok, j, rate), rcell, rr, cell(jok, j, p99), rpcell, rp, mcell)
	}
	b.WriteString("\n")
	if rep.Chart != "" {
		fmt.Fprintf(&b, "![msg/s and p99 per scenario and broker](%s)\n\n", rep.Chart)
	}
	for _, s := range rep.Scenarios {
		fmt.Fprintf(&b, "## %s\n\n<a id=\"%s\"></a>%s.", s.Name, s.Name, s.Title)
		if s.Reliable() {
			b.WriteString(" Reliable: every acknowledged message must arrive; a loss fails the run.")
		}
		b.WriteString("\n\n")
		b.WriteString("| broker | msg/s | MB/s | p50 ms | p99 ms | p99.9 ms | sent | received | lost | broker CPU s | broker peak RSS MiB | loadgen CPU s | runs (msg/s) |\n")
		b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
		for _, row := range s.Rows {
			if row.Usable == 0 {
				fmt.Fprintf(&b, "| %s | **failed** | | | | | | | %s | | | | %s |\n", row.Broker, lostCell(row), runsCell(row))
				continue
			}
			m := row.Med
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", row.Broker,
				num(m.MsgPerSec), num(m.MBPerSec), num(m.P50), num(m.P99), num(m.P999),
				commas(m.Sent), commas(m.Received), lostCell(row),
				num(m.BrokerCPU), mib(m.BrokerPeakRSS), num(m.LoadgenCPU), runsCell(row))
		}
		for broker, why := range s.Skipped {
			fmt.Fprintf(&b, "| %s | not run: %s | | | | | | | | | | | |\n", broker, why)
		}
		b.WriteString("\n")
		j, jok := s.Find("junction")
		for _, other := range []string{"rabbitmq", "mosquitto"} {
			o, ok := s.Find(other)
			if jok && ok {
				fmt.Fprintf(&b, "Junction/%s: msg/s %s, p99 %s, broker CPU per message %s.\n\n", title(other),
					ratio(j.Med.MsgPerSec, o.Med.MsgPerSec), ratio(j.Med.P99, o.Med.P99),
					ratio(j.Med.BrokerCPU/float64(max(j.Med.Received, 1)), o.Med.BrokerCPU/float64(max(o.Med.Received, 1))))
			}
		}
		for _, row := range s.Rows {
			for _, e := range row.Errors {
				fmt.Fprintf(&b, "- %s: %s\n", row.Broker, e)
			}
		}
		b.WriteString("\n")
	}
	if len(rep.Incidents) > 0 {
		b.WriteString("## Incidents\n\n")
		for _, in := range rep.Incidents {
			fmt.Fprintf(&b, "%s\n\n", in)
		}
	}
	if len(rep.Method) > 0 {
		b.WriteString("## How this was measured\n\n")
		for _, p := range rep.Method {
			fmt.Fprintf(&b, "%s\n\n", p)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func title(broker string) string {
	switch broker {
	case "rabbitmq":
		return "RabbitMQ"
	case "mosquitto":
		return "Mosquitto"
	case "junction":
		return "Junction"
	}
	return broker
}

func failCell(s Scenario, broker string) string {
	if why, ok := s.Skipped[broker]; ok {
		_ = why
		return "not run"
	}
	if !s.Runs(broker) {
		return "—"
	}
	return "**failed**"
}

func lossMark(row Row) string {
	if row.Lost > 0 {
		return fmt.Sprintf(" **(lost %s)**", commas(row.Lost))
	}
	return ""
}

func lostCell(row Row) string {
	if row.Lost == 0 {
		return "0"
	}
	return "**" + commas(row.Lost) + "**"
}

func runsCell(row Row) string {
	var parts []string
	for _, r := range row.Runs {
		switch {
		case Usable(r) && r.Lost > 0:
			parts = append(parts, num(r.MsgPerSec)+" (lost "+commas(r.Lost)+")")
		case Usable(r):
			parts = append(parts, num(r.MsgPerSec))
		default:
			parts = append(parts, "failed")
		}
	}
	return strings.Join(parts, ", ")
}
