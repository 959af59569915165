// Package report turns load runs into the comparison's results: the median
// of each scenario's runs per broker, a Markdown file with the machine,
// versions and commands, one table per scenario with every figure's ratio
// to Junction's, and a PNG chart. Message-flow scenarios report msg/s and
// latency; idle-connection scenarios the broker's memory per connection.
package report

import (
	"fmt"
	"io"
	"maps"
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
	// Med is the median of each figure over the usable runs; Sent,
	// Received and Conns come from the median run (by msg/s, or by bytes
	// per connection for idle runs).
	Med        load.Result
	Usable     int      // runs that count
	Lost       int64    // the most lost in any run: a loss is never hidden by a median
	Downgraded int64    // the most deliveries below the scenario's QoS in any run
	Unsettled  bool     // idle: some usable run's memory had not settled
	Errors     []string // why runs failed
}

// Aggregate summarises one broker's runs of one scenario.
func Aggregate(broker string, runs []load.Result) Row {
	row := Row{Broker: broker, Runs: runs}
	var ok []load.Result
	for _, r := range runs {
		row.Lost = max(row.Lost, r.Lost)
		row.Downgraded = max(row.Downgraded, r.Downgraded)
		if r.Error != "" {
			row.Errors = append(row.Errors, r.Error)
		}
		if Usable(r) {
			ok = append(ok, r)
			row.Unsettled = row.Unsettled || r.Unsettled
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
	// The primary figure: msg/s, or bytes per idle connection.
	primary := func(r load.Result) float64 { return r.MsgPerSec }
	if ok[0].Conns > 0 {
		primary = func(r load.Result) float64 { return r.BytesPerConn }
	}
	byPrimary := slices.Clone(ok)
	slices.SortFunc(byPrimary, func(a, b load.Result) int {
		switch pa, pb := primary(a), primary(b); {
		case pa < pb:
			return -1
		case pa > pb:
			return 1
		}
		return 0
	})
	m := byPrimary[len(byPrimary)/2]
	m.MsgPerSec = med(func(r load.Result) float64 { return r.MsgPerSec })
	m.MBPerSec = med(func(r load.Result) float64 { return r.MBPerSec })
	m.P50 = med(func(r load.Result) float64 { return r.P50 })
	m.P99 = med(func(r load.Result) float64 { return r.P99 })
	m.P999 = med(func(r load.Result) float64 { return r.P999 })
	m.BrokerCPU = med(func(r load.Result) float64 { return r.BrokerCPU })
	m.BrokerPeakRSS = int64(med(func(r load.Result) float64 { return float64(r.BrokerPeakRSS) }))
	m.LoadgenCPU = med(func(r load.Result) float64 { return r.LoadgenCPU })
	m.BytesPerConn = med(func(r load.Result) float64 { return r.BytesPerConn })
	m.RSSBefore = int64(med(func(r load.Result) float64 { return float64(r.RSSBefore) }))
	m.RSSAfter = int64(med(func(r load.Result) float64 { return float64(r.RSSAfter) }))
	m.ConnectSeconds = med(func(r load.Result) float64 { return r.ConnectSeconds })
	m.SettleSeconds = med(func(r load.Result) float64 { return r.SettleSeconds })
	m.Lost = row.Lost
	m.Downgraded = row.Downgraded
	m.Unsettled = row.Unsettled
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
	Title  string
	Header []string // paragraphs before everything else: caveats, mode
	// The setup, each written under its own heading; "not recorded" when
	// empty, so a report never omits one silently.
	Machine   string   // CPU model, cores, RAM, kernel
	Versions  []string // Junction's commit, RabbitMQ's, Erlang's, Mosquitto's, Go's
	Commands  []string // the exact commands that produced the report, one per line
	Notes     []string // where this run departs from the scenarios as written
	Scenarios []Scenario
	Incidents []string // broker crashes, kills and failed runs, with log excerpts
	Chart     string   // file name of the PNG, relative to the Markdown file; "" for none
	Method    []string // how it was measured
}

// ratio formats a/b as "×1.23" (two significant digits below 0.1:
// "×0.0068"), or "—".
func ratio(a, b float64) string {
	if a <= 0 || b <= 0 {
		return "—"
	}
	if a/b < 0.1 {
		return fmt.Sprintf("×%.2g", a/b)
	}
	return fmt.Sprintf("×%.2f", a/b)
}

func num(x float64) string {
	switch {
	case x >= 100 || x <= -100:
		return commas(int64(x + 0.5))
	case x >= 10 || x <= -10:
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

func kib(bytes float64) string { return num(bytes / 1024) }

// others are the brokers Junction is compared with, in report order.
var others = []string{"rabbitmq", "mosquitto"}

// WriteMarkdown writes rep as Markdown.
func WriteMarkdown(w io.Writer, rep *Report) error {
	var b strings.Builder
	fmt.Fprintf(&b, "# %s\n\n", rep.Title)
	for _, p := range rep.Header {
		fmt.Fprintf(&b, "%s\n\n", p)
	}
	writeSetup(&b, rep)
	var flows, idle []Scenario
	for _, s := range rep.Scenarios {
		if s.Idle() {
			idle = append(idle, s)
		} else {
			flows = append(flows, s)
		}
	}
	b.WriteString("## Summary\n\n")
	if len(flows) > 0 {
		writeFlowSummary(&b, flows)
	}
	if len(idle) > 0 {
		writeIdleSummary(&b, idle)
	}
	if rep.Chart != "" {
		fmt.Fprintf(&b, "![msg/s and p99 per scenario and broker; memory per idle connection](%s)\n\n", rep.Chart)
	}
	for _, s := range rep.Scenarios {
		fmt.Fprintf(&b, "## %s\n\n<a id=\"%s\"></a>%s.", s.Name, s.Name, s.Title)
		if s.Reliable() {
			b.WriteString(" Reliable: every acknowledged message must arrive; a loss fails the run.")
		}
		b.WriteString("\n\n")
		if s.Baseline != "" {
			fmt.Fprintf(&b, "Baseline: %s.\n\n", s.Baseline)
		}
		if s.Idle() {
			writeIdleTable(&b, s)
		} else {
			writeFlowTable(&b, s)
		}
		if g := goal(s); g != "" {
			fmt.Fprintf(&b, "%s\n\n", g)
		}
		for _, row := range s.Rows {
			for _, e := range row.Errors {
				fmt.Fprintf(&b, "- %s: %s\n", row.Broker, e)
			}
			if row.Downgraded > 0 {
				fmt.Fprintf(&b, "- %s: %s deliveries reached the MQTT subscriber below QoS %d in one run\n",
					row.Broker, commas(row.Downgraded), s.DeliveryQoS())
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

func writeSetup(b *strings.Builder, rep *Report) {
	or := func(s string) string {
		if s == "" {
			return "not recorded"
		}
		return s
	}
	b.WriteString("## Setup\n\n")
	fmt.Fprintf(b, "Machine: %s.\n\n", or(rep.Machine))
	fmt.Fprintf(b, "Versions: %s.\n\n", or(strings.Join(rep.Versions, "; ")))
	if len(rep.Commands) == 0 {
		b.WriteString("Commands: not recorded.\n\n")
	} else {
		b.WriteString("Commands:\n\n```sh\n")
		for _, c := range rep.Commands {
			fmt.Fprintf(b, "%s\n", c)
		}
		b.WriteString("```\n\n")
	}
	for _, n := range rep.Notes {
		fmt.Fprintf(b, "%s\n\n", n)
	}
}

// writeFlowSummary writes the two figures that matter most for the
// message-flow scenarios, side by side, with their ratios.
func writeFlowSummary(b *strings.Builder, flows []Scenario) {
	b.WriteString("Median of the runs; p99 is end-to-end latency (publish call to delivery) in ms. Ratios are Junction ÷ the other broker " +
		"(J/R: RabbitMQ, J/M: Mosquitto; msg/s: higher is better for Junction; p99: lower is).\n\n")
	b.WriteString("| scenario | Junction msg/s | RabbitMQ msg/s | J/R msg/s | Mosquitto msg/s | J/M msg/s | Junction p99 | RabbitMQ p99 | J/R p99 | Mosquitto p99 | J/M p99 | goal |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|---|\n")
	rate := func(x load.Result) float64 { return x.MsgPerSec }
	p99 := func(x load.Result) float64 { return x.P99 }
	for _, s := range flows {
		j, jok := s.Find("junction")
		cells := []string{fmt.Sprintf("[%s](#%s)", s.Name, s.Name), cell(s, "junction", rate)}
		for _, o := range others {
			cells = append(cells, cell(s, o, rate), ratioCell(s, j, jok, o, rate))
		}
		cells = append(cells, cell(s, "junction", p99))
		for _, o := range others {
			cells = append(cells, cell(s, o, p99), ratioCell(s, j, jok, o, p99))
		}
		cells = append(cells, goalCell(s))
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
	b.WriteString("\n")
}

// writeIdleSummary writes the memory per idle connection of each broker.
func writeIdleSummary(b *strings.Builder, idle []Scenario) {
	b.WriteString("Memory per idle connection: the growth of the broker's resident set (KiB, 1,024 bytes) from before connecting to all " +
		"connections open, divided by their number; median of the runs, each on a freshly started broker. Ratios are Junction ÷ the other broker (lower is better for Junction).\n\n")
	b.WriteString("| scenario | connections | Junction KiB/conn | RabbitMQ KiB/conn | J/R | Mosquitto KiB/conn | J/M | goal |\n")
	b.WriteString("|---|--:|--:|--:|--:|--:|--:|---|\n")
	per := func(x load.Result) float64 { return x.BytesPerConn / 1024 }
	for _, s := range idle {
		j, jok := s.Find("junction")
		conns := "—"
		if jok {
			conns = commas(j.Med.Conns)
		}
		cells := []string{fmt.Sprintf("[%s](#%s)", s.Name, s.Name), conns, cell(s, "junction", per)}
		for _, o := range others {
			cells = append(cells, cell(s, o, per), ratioCell(s, j, jok, o, per))
		}
		cells = append(cells, goalCell(s))
		fmt.Fprintf(b, "| %s |\n", strings.Join(cells, " | "))
	}
	b.WriteString("\n")
}

// cell is broker's median figure f in s, or why there is none.
func cell(s Scenario, broker string, f func(load.Result) float64) string {
	row, ok := s.Find(broker)
	if !ok {
		return failCell(s, broker)
	}
	v := num(f(row.Med)) + lossMark(row)
	if row.Unsettled {
		v += " (not settled)"
	}
	return v
}

func ratioCell(s Scenario, j Row, jok bool, other string, f func(load.Result) float64) string {
	o, ok := s.Find(other)
	if !jok || !ok {
		return "—"
	}
	return ratio(f(j.Med), f(o.Med))
}

// column is one figure of a scenario's table: its heading, its value in a
// row, and its ratio between Junction's row and another's ("" for none).
type column struct {
	head  string
	value func(Row) string
	ratio func(j, o Row) string
}

func figure(head string, f func(load.Result) float64, format func(float64) string) column {
	return column{head: head,
		value: func(r Row) string { return format(f(r.Med)) },
		ratio: func(j, o Row) string { return ratio(f(j.Med), f(o.Med)) }}
}

func plain(head string, value func(Row) string) column {
	return column{head: head, value: value, ratio: func(Row, Row) string { return "" }}
}

var flowColumns = []column{
	figure("msg/s", func(r load.Result) float64 { return r.MsgPerSec }, num),
	figure("MB/s", func(r load.Result) float64 { return r.MBPerSec }, num),
	figure("p50 ms", func(r load.Result) float64 { return r.P50 }, num),
	figure("p99 ms", func(r load.Result) float64 { return r.P99 }, num),
	figure("p99.9 ms", func(r load.Result) float64 { return r.P999 }, num),
	plain("sent", func(r Row) string { return commas(r.Med.Sent) }),
	plain("received", func(r Row) string { return commas(r.Med.Received) }),
	plain("lost", lostCell),
	{head: "broker CPU s", value: func(r Row) string { return num(r.Med.BrokerCPU) },
		ratio: func(j, o Row) string {
			if r := ratio(cpuPerMsg(j), cpuPerMsg(o)); r != "—" {
				return r + " per msg"
			}
			return "—"
		}},
	figure("broker peak RSS MiB", func(r load.Result) float64 { return float64(r.BrokerPeakRSS) }, func(x float64) string { return mib(int64(x)) }),
	figure("loadgen CPU s", func(r load.Result) float64 { return r.LoadgenCPU }, num),
}

var idleColumns = []column{
	plain("connections", func(r Row) string { return commas(r.Med.Conns) }),
	figure("KiB/conn", func(r load.Result) float64 { return r.BytesPerConn }, kib),
	figure("RSS before MiB", func(r load.Result) float64 { return float64(r.RSSBefore) }, func(x float64) string { return mib(int64(x)) }),
	figure("RSS after MiB", func(r load.Result) float64 { return float64(r.RSSAfter) }, func(x float64) string { return mib(int64(x)) }),
	figure("connect s", func(r load.Result) float64 { return r.ConnectSeconds }, num),
	{head: "settled after s", value: func(r Row) string {
		if r.Unsettled {
			return num(r.Med.SettleSeconds) + " **(not settled)**"
		}
		return num(r.Med.SettleSeconds)
	}, ratio: func(Row, Row) string { return "" }},
	figure("broker CPU s", func(r load.Result) float64 { return r.BrokerCPU }, num),
	figure("broker peak RSS MiB", func(r load.Result) float64 { return float64(r.BrokerPeakRSS) }, func(x float64) string { return mib(int64(x)) }),
	figure("loadgen CPU s", func(r load.Result) float64 { return r.LoadgenCPU }, num),
}

func cpuPerMsg(r Row) float64 { return r.Med.BrokerCPU / float64(max(r.Med.Received, 1)) }

func writeFlowTable(b *strings.Builder, s Scenario) {
	writeTable(b, s, flowColumns, "runs (msg/s)", func(r load.Result) string { return num(r.MsgPerSec) })
	j, jok := s.Find("junction")
	for _, other := range others {
		o, ok := s.Find(other)
		if jok && ok {
			fmt.Fprintf(b, "Junction/%s: msg/s %s, p99 %s, broker CPU per message %s.\n\n", title(other),
				ratio(j.Med.MsgPerSec, o.Med.MsgPerSec), ratio(j.Med.P99, o.Med.P99), ratio(cpuPerMsg(j), cpuPerMsg(o)))
		}
	}
}

func writeIdleTable(b *strings.Builder, s Scenario) {
	writeTable(b, s, idleColumns, "runs (KiB/conn)", func(r load.Result) string {
		v := kib(r.BytesPerConn)
		if r.Unsettled {
			v += " (not settled)"
		}
		return v
	})
	j, jok := s.Find("junction")
	for _, other := range others {
		o, ok := s.Find(other)
		if jok && ok {
			fmt.Fprintf(b, "Junction/%s: memory per connection %s, time to connect %s.\n\n", title(other),
				ratio(j.Med.BytesPerConn, o.Med.BytesPerConn), ratio(j.Med.ConnectSeconds, o.Med.ConnectSeconds))
		}
	}
}

// writeTable writes one row per broker and, under them, a row of
// Junction's ratio to each other broker for every figure that has one.
func writeTable(b *strings.Builder, s Scenario, cols []column, runsHead string, run func(load.Result) string) {
	b.WriteString("| broker |")
	for _, c := range cols {
		fmt.Fprintf(b, " %s |", c.head)
	}
	fmt.Fprintf(b, " %s |\n|---|", runsHead)
	for range cols {
		b.WriteString("--:|")
	}
	b.WriteString("---|\n")
	blank := strings.Repeat(" |", len(cols))
	for _, row := range s.Rows {
		if row.Usable == 0 {
			fmt.Fprintf(b, "| %s | **failed** |%s %s |\n", row.Broker, blank[2:], runsCell(row, run))
			continue
		}
		fmt.Fprintf(b, "| %s |", row.Broker)
		for _, c := range cols {
			fmt.Fprintf(b, " %s |", c.value(row))
		}
		fmt.Fprintf(b, " %s |\n", runsCell(row, run))
	}
	for _, broker := range slices.Sorted(maps.Keys(s.Skipped)) {
		fmt.Fprintf(b, "| %s | not run: %s |%s |\n", broker, s.Skipped[broker], blank[2:])
	}
	j, jok := s.Find("junction")
	for _, other := range others {
		o, ok := s.Find(other)
		if !jok || !ok {
			continue
		}
		fmt.Fprintf(b, "| *Junction ÷ %s* |", title(other))
		for _, c := range cols {
			fmt.Fprintf(b, " %s |", c.ratio(j, o))
		}
		b.WriteString(" |\n")
	}
	b.WriteString("\n")
}

// goalMet reports whether Junction met s's goal, and whether that can be
// told: it needs a usable Junction run (and RabbitMQ run, for a ratio).
func goalMet(s Scenario) (met, known bool) {
	j, jok := s.Find("junction")
	switch {
	case !jok:
		return false, false
	case s.GoalPerConn > 0:
		return j.Med.BytesPerConn <= float64(s.GoalPerConn) && !j.Unsettled, true
	case s.GoalRatio > 0:
		r, rok := s.Find("rabbitmq")
		if !rok {
			return false, false
		}
		return j.Med.MsgPerSec >= s.GoalRatio*r.Med.MsgPerSec && j.Med.P99 < r.Med.P99 && j.Lost == 0, true
	}
	return false, false
}

// goalText states s's goal briefly; "" if it has none.
func goalText(s Scenario) string {
	switch {
	case s.GoalPerConn > 0:
		return "Junction ≤ " + kib(float64(s.GoalPerConn)) + " KiB per connection"
	case s.GoalRatio > 0:
		return "Junction ≥ ×" + num(s.GoalRatio) + " RabbitMQ's msg/s, with a lower p99"
	}
	return ""
}

// goal says whether Junction met the scenario's goal, with the figures
// that decide it; "" if it has none.
func goal(s Scenario) string {
	g := goalText(s)
	if g == "" {
		return ""
	}
	met, known := goalMet(s)
	if !known {
		return "Goal: " + g + ": no usable runs to tell."
	}
	j, _ := s.Find("junction")
	if s.GoalPerConn > 0 {
		return fmt.Sprintf("Goal: %s: %s (%s KiB).", g, verdict(met), kib(j.Med.BytesPerConn))
	}
	r, _ := s.Find("rabbitmq")
	return fmt.Sprintf("Goal: %s: %s (msg/s %s, p99 %s).", g, verdict(met),
		ratio(j.Med.MsgPerSec, r.Med.MsgPerSec), ratio(j.Med.P99, r.Med.P99))
}

func goalCell(s Scenario) string {
	g := goalText(s)
	if g == "" {
		return "—"
	}
	if met, known := goalMet(s); known {
		return g + ": " + verdict(met)
	}
	return g + ": —"
}

func verdict(met bool) string {
	if met {
		return "**met**"
	}
	return "**missed**"
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
	if _, ok := s.Skipped[broker]; ok {
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

func runsCell(row Row, figure func(load.Result) string) string {
	var parts []string
	for _, r := range row.Runs {
		switch {
		case Usable(r) && r.Lost > 0:
			parts = append(parts, figure(r)+" (lost "+commas(r.Lost)+")")
		case Usable(r):
			parts = append(parts, figure(r))
		default:
			parts = append(parts, "failed")
		}
	}
	return strings.Join(parts, ", ")
}
