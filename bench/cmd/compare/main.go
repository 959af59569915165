// Command bench-compare runs the load scenarios against Junction, RabbitMQ
// and Mosquitto side by side on this machine and writes the comparison to
// results/DATE.md (results/DATE-quick.md with -quick), with a PNG chart and
// the raw runs as JSON beside it. `make bench-compare` builds what it needs
// and runs it; see the Benchmarks section of the README.
//
// Each broker starts from a fresh data directory on its own ports. Every
// scenario runs -runs times against every broker that speaks its protocol,
// the brokers taking turns run by run, so a change in the machine's load
// hits all of them alike; each run is a separate loadgen process. An
// idle-connections scenario runs on a freshly started broker each time, so
// that memory left over from earlier runs cannot hold the connections. The
// exit status is 1 when a Junction run failed or lost an acknowledged
// message.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/junction-broker/junction/bench/broker"
	"github.com/junction-broker/junction/bench/load"
	"github.com/junction-broker/junction/bench/proc"
	"github.com/junction-broker/junction/bench/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

type config struct {
	quick       bool
	pin         bool
	runs        int
	duration    time.Duration
	drain       time.Duration
	scenarios   []load.Scenario
	brokers     []string
	junction    string
	junctionRev string
	loadgen     string
	out         string
	name        string
	work        string
	keep        bool
	maxRSS      int64
	settle      time.Duration
	conns       int           // idle scenarios: connections; 0: the scenario's
	rssSettle   time.Duration // idle scenarios: longest wait for the broker's memory to settle
	args        []string
}

// idleMaxRSS is the memory cap during idle-connection runs, at least: RabbitMQ
// 3.10 takes about 215 KiB per MQTT connection, 4.3 GB for 20,000.
const idleMaxRSS = 8 << 30

func parse(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("bench-compare", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{args: args}
	var scen, brokers string
	var maxRSS int64
	fs.BoolVar(&c.quick, "quick", false, "short runs (2 s each): the whole comparison in under 5 minutes")
	fs.BoolVar(&c.pin, "pin", false, "pin the brokers to CPU 0 and the load generator to CPU 1 (taskset)")
	fs.IntVar(&c.runs, "runs", 3, "runs per scenario and broker; the report shows the median")
	fs.DurationVar(&c.duration, "duration", 0, "how long producers publish in each run (default 10s, 2s with -quick)")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "longest wait for deliveries after producers stop")
	fs.StringVar(&scen, "scenarios", "", "comma-separated scenario names or prefixes (amqp, mqtt-fanin); default all")
	fs.StringVar(&brokers, "brokers", "junction,rabbitmq,mosquitto", "brokers to compare")
	fs.StringVar(&c.junction, "junction", "../bin/junction", "the junction binary")
	fs.StringVar(&c.junctionRev, "junction-rev", "", "what to call the junction binary in the report (default: git describe of its directory)")
	fs.StringVar(&c.loadgen, "loadgen", "../bin/loadgen", "the loadgen binary")
	fs.StringVar(&c.out, "out", "results", "directory for the report, chart and raw JSON")
	fs.StringVar(&c.name, "name", "", "report file name without extension (default DATE, DATE-quick with -quick)")
	fs.StringVar(&c.work, "work", "", "directory for the brokers' data and logs (default a new temporary one)")
	fs.BoolVar(&c.keep, "keep", false, "keep the brokers' data and logs afterwards")
	fs.Int64Var(&maxRSS, "max-rss-mib", 4096, "kill a broker whose resident memory passes this many MiB (and restart it)")
	fs.DurationVar(&c.settle, "settle", 15*time.Second, "longest wait between runs for every broker to go idle")
	fs.IntVar(&c.conns, "conns", 0, "idle-connection scenarios: connections to open (default the scenario's, 20,000, or fewer if the open-files limit is lower)")
	fs.DurationVar(&c.rssSettle, "rss-settle", 0, "idle-connection scenarios: longest wait for a broker's memory to settle once connected (default 60s, 30s with -quick)")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	c.maxRSS = maxRSS << 20
	if c.duration == 0 {
		c.duration = 10 * time.Second
		if c.quick {
			c.duration = 2 * time.Second
		}
	}
	if c.quick && c.drain == 30*time.Second {
		c.drain = 15 * time.Second
	}
	if c.rssSettle == 0 {
		c.rssSettle = 60 * time.Second
		if c.quick {
			c.rssSettle = 30 * time.Second
		}
	}
	for _, s := range load.Scenarios {
		if scen == "" || matches(s.Name, scen) {
			c.scenarios = append(c.scenarios, s)
		}
	}
	if len(c.scenarios) == 0 {
		return nil, fmt.Errorf("-scenarios %q matches none", scen)
	}
	for _, b := range strings.Split(brokers, ",") {
		if b = strings.TrimSpace(b); b != "" {
			if _, ok := broker.DefaultPorts[b]; !ok {
				return nil, fmt.Errorf("-brokers: unknown broker %q", b)
			}
			c.brokers = append(c.brokers, b)
		}
	}
	if c.name == "" {
		c.name = time.Now().Format("2006-01-02")
		if c.quick {
			c.name += "-quick"
		}
	}
	return c, nil
}

func matches(name, list string) bool {
	for _, p := range strings.Split(list, ",") {
		if p = strings.TrimSpace(p); p != "" && (name == p || strings.HasPrefix(name, p+"-") || strings.HasPrefix(name, p)) {
			return true
		}
	}
	return false
}

// bench is one comparison in progress.
type bench struct {
	c      *config
	stderr io.Writer

	mu        sync.Mutex
	brokers   map[string]*broker.Broker
	restarts  map[string]int
	fresh     int             // fresh starts for idle runs, for their directories
	pristine  map[string]bool // started fresh and not run against since
	incidents []string
	notes     []string                  // how this comparison departs from the scenarios as written
	killed    map[*broker.Broker]string // by the memory watchdog, and why
	rssCap    int64                     // the watchdog's cap now
	conns     map[string]int            // idle scenario → connections its runs open
	// loadgenCmds is each scenario's first loadgen command line.
	loadgenCmds map[string][]string
}

func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(b.stderr, "bench-compare: "+format+"\n", args...)
}

func (b *bench) incident(format string, args ...any) {
	s := fmt.Sprintf(format, args...)
	b.mu.Lock()
	b.incidents = append(b.incidents, s)
	b.mu.Unlock()
	b.logf("%s", firstLine(s))
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i]
	}
	return s
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 2
	}
	b := &bench{c: c, stderr: stderr, brokers: map[string]*broker.Broker{}, restarts: map[string]int{},
		killed: map[*broker.Broker]string{}, rssCap: c.maxRSS, conns: map[string]int{}, loadgenCmds: map[string][]string{},
		pristine: map[string]bool{}}
	code, err := b.compare(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "bench-compare: %v\n", err)
		return 1
	}
	return code
}

func (b *bench) compare(ctx context.Context) (int, error) {
	c := b.c
	var err error
	if c.junction, err = filepath.Abs(c.junction); err != nil {
		return 1, err
	}
	if c.loadgen, err = filepath.Abs(c.loadgen); err != nil {
		return 1, err
	}
	if _, err := os.Stat(c.loadgen); err != nil {
		return 1, fmt.Errorf("loadgen: %w (make bench-compare builds it)", err)
	}
	needed := map[string]bool{}
	for _, s := range c.scenarios {
		for _, br := range c.brokers {
			if s.Runs(br) {
				needed[br] = true
			}
		}
	}
	var names []string
	for _, br := range c.brokers {
		if needed[br] {
			if err := broker.Check(br, c.junction); err != nil {
				return 1, fmt.Errorf("%w (make bench-compare installs it; or leave it out with -brokers)", err)
			}
			names = append(names, br)
		}
	}
	if c.pin && runtime.NumCPU() < 2 {
		return 1, fmt.Errorf("-pin needs 2 CPUs, this machine has %d", runtime.NumCPU())
	}
	// The brokers and the load generator inherit this limit: idle
	// connections need one descriptor each on both sides, where a shell's
	// default soft limit is 1,024.
	limit, err := proc.RaiseFileLimit(1 << 20)
	if err != nil {
		return 1, err
	}
	for _, s := range c.scenarios {
		if !s.Idle() {
			continue
		}
		want := s.Conns
		if c.conns > 0 {
			want = c.conns
		}
		n, why := load.IdleConns(want, limit)
		if n <= 0 {
			return 1, fmt.Errorf("%s: the open-files limit (%d) leaves no room for idle connections", s.Name, limit)
		}
		b.conns[s.Name] = n
		if why != "" {
			b.notes = append(b.notes, fmt.Sprintf("**%s ran %s.**", s.Name, why))
			b.logf("%s: %s", s.Name, why)
		}
	}
	if c.work == "" {
		if c.work, err = os.MkdirTemp("", "junction-bench-"); err != nil {
			return 1, err
		}
	}
	if !c.keep {
		defer os.RemoveAll(c.work)
	}
	epmdBefore := epmdRunning()
	startLoad := loadavg()
	started := time.Now()

	defer func() { // after stopAll, deferred below
		if !epmdBefore && epmdRunning() {
			_ = exec.Command("epmd", "-kill").Run() // RabbitMQ started it for us
		}
	}()
	defer b.stopAll()
	for _, name := range names {
		if err := b.start(ctx, name); err != nil {
			return 1, err
		}
	}
	wctx, wstop := context.WithCancel(ctx)
	go b.watchdog(wctx)

	results := map[string]map[string][]load.Result{} // scenario → broker → runs
	for _, s := range c.scenarios {
		results[s.Name] = map[string][]load.Result{}
		for i := range c.runs {
			for _, name := range names {
				if !s.Runs(name) {
					continue
				}
				if ctx.Err() != nil {
					wstop()
					return 1, ctx.Err()
				}
				res := b.runOnce(ctx, s, name, i)
				results[s.Name][name] = append(results[s.Name][name], res)
			}
		}
	}
	wstop()
	b.stopAll()
	endLoad := loadavg()

	rep := b.report(results, startLoad, endLoad, time.Since(started))
	if err := os.MkdirAll(c.out, 0o755); err != nil {
		return 1, err
	}
	base := filepath.Join(c.out, c.name)
	var png bytes.Buffer
	if err := report.WriteChart(&png, rep); err != nil {
		return 1, err
	}
	if err := os.WriteFile(base+".png", png.Bytes(), 0o644); err != nil {
		return 1, err
	}
	var md bytes.Buffer
	if err := report.WriteMarkdown(&md, rep); err != nil {
		return 1, err
	}
	if err := os.WriteFile(base+".md", md.Bytes(), 0o644); err != nil {
		return 1, err
	}
	raw, _ := json.MarshalIndent(results, "", "  ")
	if err := os.WriteFile(base+".json", raw, 0o644); err != nil {
		return 1, err
	}
	b.logf("wrote %s.md, %s.png and %s.json in %v", base, base, base, time.Since(started).Round(time.Second))

	code := 0
	for _, s := range c.scenarios {
		for _, r := range results[s.Name]["junction"] {
			if r.Error != "" {
				b.logf("JUNCTION FAILED: %s run: %s", s.Name, r.Error)
				code = 1
			}
		}
	}
	return code, nil
}

func (b *bench) pinArgs(cpu int) []string {
	if !b.c.pin {
		return nil
	}
	return []string{"taskset", "-c", strconv.Itoa(cpu)}
}

func (b *bench) start(ctx context.Context, name string) error {
	b.mu.Lock()
	n := b.restarts[name]
	b.mu.Unlock()
	root := b.c.work
	if n > 0 {
		root = filepath.Join(b.c.work, "restart-"+strconv.Itoa(n))
	}
	return b.startIn(ctx, name, root)
}

// startFresh stops broker name and starts it again from a fresh data
// directory.
func (b *bench) startFresh(ctx context.Context, name string) error {
	b.mu.Lock()
	br := b.brokers[name]
	delete(b.brokers, name)
	b.fresh++
	root := filepath.Join(b.c.work, "fresh-"+strconv.Itoa(b.fresh))
	b.mu.Unlock()
	if br != nil {
		if err := br.Stop(60 * time.Second); err != nil {
			b.logf("stop %s: %v", name, err)
		}
	}
	if err := b.startIn(ctx, name, root); err != nil {
		return err
	}
	b.mu.Lock()
	b.pristine[name] = true
	b.mu.Unlock()
	return nil
}

func (b *bench) startIn(ctx context.Context, name, root string) error {
	b.logf("starting %s", name)
	br, err := broker.Start(ctx, name, root, broker.Options{Junction: b.c.junction, Pin: b.pinArgs(0)})
	if err != nil {
		return err
	}
	b.mu.Lock()
	b.brokers[name] = br
	b.mu.Unlock()
	return nil
}

func (b *bench) stopAll() {
	b.mu.Lock()
	brs := b.brokers
	b.brokers = map[string]*broker.Broker{}
	b.mu.Unlock()
	for name, br := range brs {
		if err := br.Stop(60 * time.Second); err != nil {
			b.logf("stop %s: %v", name, err)
		}
	}
}

// watchdog kills a broker whose memory passes the cap, so that a runaway
// broker cannot take the machine down; the next run restarts it.
func (b *bench) watchdog(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		b.mu.Lock()
		brs := maps(b.brokers)
		limit := b.rssCap
		b.mu.Unlock()
		for _, br := range brs {
			if done, _ := br.Exited(); done {
				continue
			}
			if rss := proc.RSS(br.PIDs()); rss > limit {
				why := fmt.Sprintf("resident memory %d MiB passed the %d MiB cap (-max-rss-mib; at least %d MiB for idle connections)",
					rss>>20, limit>>20, idleMaxRSS>>20)
				b.mu.Lock()
				b.killed[br] = why
				b.mu.Unlock()
				br.Kill()
			}
		}
	}
}

func maps(m map[string]*broker.Broker) []*broker.Broker {
	var out []*broker.Broker
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// ensure restarts broker name if it has died, recording why.
func (b *bench) ensure(ctx context.Context, name, when string) *broker.Broker {
	b.mu.Lock()
	br := b.brokers[name]
	b.mu.Unlock()
	if br == nil {
		return nil
	}
	done, err := br.Exited()
	if !done {
		return br
	}
	b.mu.Lock()
	why, killed := b.killed[br]
	b.restarts[name]++
	b.mu.Unlock()
	if !killed {
		why = fmt.Sprintf("exited (%v)", err)
	}
	detail := "Last lines of its log:\n\n```\n" + br.LogTail(15) + "\n```"
	if st := br.BusyStacks(3, 24); st != "" {
		detail = "Its running goroutines when it was stopped (SIGQUIT):\n\n```\n" + st + "\n```"
	}
	b.incident("**%s %s %s**; restarted from a fresh data directory. %s", name, why, when, detail)
	if err := b.start(ctx, name); err != nil {
		b.incident("**%s could not be restarted**: %v", name, err)
		b.mu.Lock()
		delete(b.brokers, name)
		b.mu.Unlock()
		return nil
	}
	b.mu.Lock()
	br = b.brokers[name]
	b.mu.Unlock()
	return br
}

// settle waits until no broker uses more than 5 % of a CPU, so one run's
// aftermath (RabbitMQ's schedulers spinning down, a compaction) is not
// charged to the next; it gives up after -settle.
func (b *bench) settle(ctx context.Context) string {
	deadline := time.Now().Add(b.c.settle)
	const window = 300 * time.Millisecond
	for {
		b.mu.Lock()
		brs := b.brokers
		b.mu.Unlock()
		before := map[string]time.Duration{}
		pids := map[string][]int{}
		for name, br := range brs {
			pids[name] = br.PIDs()
			before[name] = proc.CPU(pids[name])
		}
		began := time.Now()
		select {
		case <-ctx.Done():
			return ""
		case <-time.After(window):
		}
		elapsed := time.Since(began) // longer than window on an overloaded machine
		busy := ""
		for name := range brs {
			if use := float64(proc.CPU(pids[name])-before[name]) / float64(elapsed); use > 0.05 {
				busy += fmt.Sprintf("%s at %.0f%% CPU; ", name, use*100)
			}
		}
		if busy == "" || time.Now().After(deadline) {
			return strings.TrimSuffix(busy, "; ")
		}
	}
}

func (b *bench) runOnce(ctx context.Context, s load.Scenario, name string, i int) load.Result {
	res := load.Result{Scenario: s.Name, Broker: name}
	br := b.ensure(ctx, name, "before run "+strconv.Itoa(i+1)+" of "+s.Name)
	if br == nil {
		res.Error = "broker not running"
		return res
	}
	b.mu.Lock()
	pristine := b.pristine[name]
	b.pristine[name] = false
	b.mu.Unlock()
	if s.Idle() {
		// Memory an earlier run left in the broker's heap would hold
		// connections without the resident set growing.
		if !pristine {
			if err := b.startFresh(ctx, name); err != nil {
				b.incident("**%s could not be restarted fresh** for %s: %v", name, s.Name, err)
				res.Error = "broker not running"
				return res
			}
			b.mu.Lock()
			b.pristine[name] = false
			b.mu.Unlock()
		}
		b.mu.Lock()
		br = b.brokers[name]
		b.rssCap = max(b.c.maxRSS, idleMaxRSS)
		b.mu.Unlock()
		// Afterwards, a fresh broker again: RabbitMQ holds gigabytes (past
		// the usual cap) and spends a minute closing the connections.
		defer func() {
			if err := b.startFresh(ctx, name); err != nil {
				b.incident("**%s could not be restarted fresh** after %s: %v", name, s.Name, err)
			}
			b.mu.Lock()
			b.rssCap = b.c.maxRSS
			b.mu.Unlock()
		}()
	}
	if busy := b.settle(ctx); busy != "" {
		b.incident("Still busy %v after the previous run, before run %d of %s on %s: %s.", b.c.settle, i+1, s.Name, name, busy)
		for _, other := range []string{"junction", "rabbitmq", "mosquitto"} {
			if other != name {
				b.ensure(ctx, other, "while "+name+" waited to run "+s.Name) // the watchdog may have just killed it
			}
		}
	}
	// The other brokers sleep through this run: whatever they still do in
	// the background must not be charged to this one.
	b.mu.Lock()
	for other, ob := range b.brokers {
		if other != name {
			ob.Freeze()
			defer ob.Thaw()
		}
	}
	b.mu.Unlock()
	t := br.Target()
	argv := append(b.pinArgs(1), b.loadgenArgs(s, t)...)
	b.mu.Lock()
	if _, ok := b.loadgenCmds[s.Name]; !ok {
		b.loadgenCmds[s.Name] = argv
	}
	b.mu.Unlock()
	limit := b.c.duration + b.c.drain + 2*time.Minute
	if s.Idle() {
		limit = b.c.rssSettle + 15*time.Second + 10*time.Minute // connecting: RabbitMQ takes ~1.4 ms per connection, 30 s per handshake at worst
	}
	rctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	cmd := exec.CommandContext(rctx, argv[0], argv[1:]...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	began := time.Now()
	err := cmd.Run()
	took := time.Since(began)
	if jerr := json.Unmarshal(stdout.Bytes(), &res); jerr != nil {
		res.Error = fmt.Sprintf("loadgen: %v: %s", err, strings.TrimSpace(stderr.String()))
	} else if err != nil && res.Error == "" {
		res.Error = fmt.Sprintf("loadgen: %v", err)
	}
	res.Scenario, res.Broker = s.Name, name
	b.mu.Lock()
	killed, isKilled := b.killed[br] // the watchdog may still be waiting for it to exit
	b.mu.Unlock()
	switch done, _ := br.Exited(); {
	case isKilled:
		res.Error = strings.TrimSuffix("broker killed during the run: "+killed+"; "+res.Error, "; ")
	case done:
		res.Error = strings.TrimSuffix("broker died during the run; "+res.Error, "; ")
	}
	status := fmt.Sprintf("%.0f msg/s, p99 %.2f ms, lost %d", res.MsgPerSec, res.P99, res.Lost)
	if s.Idle() {
		status = fmt.Sprintf("%d connections in %.1f s, %.2f KiB each", res.Conns, res.ConnectSeconds, res.BytesPerConn/1024)
		if res.Unsettled {
			status += " (memory not settled)"
		}
	}
	if res.Error != "" {
		status += ": " + res.Error
	}
	b.logf("%-17s %-9s run %d/%d (%4.1fs): %s", s.Name, name, i+1, b.c.runs, took.Seconds(), status)
	return res
}

// loadgenArgs is the loadgen command line for one run of s against t.
func (b *bench) loadgenArgs(s load.Scenario, t load.Target) []string {
	argv := []string{b.c.loadgen, "-json", "-scenario", s.Name, "-broker", t.Broker,
		"-amqp", t.AMQP, "-mqtt", t.MQTT, "-stomp", t.STOMP, "-pids", strconv.Itoa(t.PIDs[0])}
	if s.Idle() {
		return append(argv, "-conns", strconv.Itoa(b.conns[s.Name]), "-settle", b.c.rssSettle.String())
	}
	return append(argv, "-duration", b.c.duration.String(), "-drain", b.c.drain.String())
}

func (b *bench) report(results map[string]map[string][]load.Result, startLoad, endLoad string, took time.Duration) *report.Report {
	c := b.c
	mode := "full"
	if c.quick {
		mode = "quick"
	}
	pin := "not pinned: brokers and load generator share both cores"
	if c.pin {
		pin = "pinned with taskset: brokers on CPU 0, load generator on CPU 1"
	}
	var versions []string
	for _, name := range []string{"junction", "rabbitmq", "mosquitto"} {
		if slices.ContainsFunc(c.scenarios, func(s load.Scenario) bool { return s.Runs(name) }) && slices.Contains(c.brokers, name) {
			v := broker.Version(name, c.junction)
			if name == "junction" && c.junctionRev != "" {
				v = "Junction " + c.junctionRev
			}
			versions = append(versions, v)
		}
	}
	versions = append(versions, "load generator and harness "+runtime.Version()+
		": its own pipelining clients for AMQP 0-9-1 (on Junction's frame codec), MQTT 3.1.1 and STOMP 1.2, "+
		"and a minimal MQTT client for idle connections")
	rep := &report.Report{
		Title: fmt.Sprintf("Junction vs RabbitMQ and Mosquitto, %s (%s)", time.Now().Format("2006-01-02"), mode),
		Header: []string{
			"**Caveat:** this machine may be loaded by other work running at the same time (CI, builds, other sessions); " +
				"the brokers take turns run by run so such load falls on all of them alike, but absolute figures can be low and noisy. " +
				fmt.Sprintf("Load average before: %s; after: %s.", startLoad, endLoad),
			fmt.Sprintf("Mode: %s, %d runs of %v per scenario and broker (median shown), %s. Took %v.",
				mode, c.runs, c.duration, pin, took.Round(time.Second)),
		},
		Machine:   report.Machine(),
		Versions:  versions,
		Commands:  b.commands(),
		Notes:     b.notes,
		Incidents: b.incidents,
		Chart:     c.name + ".png",
		Method: []string{
			"Closed loop, as the baseline in shared/reference/baseline.md: producers publish as fast as flow control lets them (TCP back-pressure, " +
				"100 publisher confirms or 20 unacknowledged MQTT QoS ≥ 1 messages in flight per producer where the scenario says so) " +
				"and pause while 1,000 deliveries are outstanding end to end. After the run's duration they stop, the generator waits for every " +
				"delivery owed (up to the drain limit, or until nothing arrives for 2 s) and counts.",
			"Every payload carries its send time (monotonic ns), producer and sequence number: latency is publish call to delivery in the consumer; " +
				"received counts distinct deliveries; lost is deliveries owed (sent × queues or subscribers; for reliable modes only messages the broker " +
				"acknowledged) that never came. msg/s is distinct deliveries from the first publish to the last delivery.",
			"Broker CPU is utime+stime of the broker's process tree (/proc/PID/stat) over the run; peak RSS is the sum of VmHWM (/proc/PID/status) " +
				"over that tree, reset with /proc/PID/clear_refs at the start of each run; loadgen CPU is the generator's own (getrusage). " +
				"Each figure in a table is the median over the runs that completed; lost is the largest of any run.",
			"RabbitMQ runs with its defaults (its own config file sets only the listeners; plugins rabbitmq_mqtt and rabbitmq_stomp); Mosquitto with " +
				"`persistence true` and `max_queued_messages 10000`; Junction with its defaults. Between runs the harness waits (up to -settle) for " +
				"every broker to go idle, and during a run the other brokers are frozen (SIGSTOP), so none is charged for another's background work.",
		},
	}
	if slices.ContainsFunc(c.scenarios, func(s load.Scenario) bool { return s.Cross() }) {
		rep.Method = append(rep.Method,
			"Cross-protocol scenarios (x-…) meet on amq.topic or on a queue in the default exchange, as their titles say; each runs against the brokers "+
				"that speak both protocols. A message acknowledged to its publisher (MQTT PUBACK) that never reaches the consumer of the other protocol is a loss; "+
				"the STOMP and transient AMQP publishers get no acknowledgement, so a message of theirs that never arrives fails the run as a stall. "+
				"An MQTT subscriber counts deliveries that arrive below the QoS the title states. STOMP subscribers confirm their SUBSCRIBE with a "+
				"RECEIPT (for a SEND after it on the same connection) before any producer starts.")
	}
	if slices.ContainsFunc(c.scenarios, func(s load.Scenario) bool { return s.Idle() }) {
		rep.Method = append(rep.Method,
			"Idle connections (mqtt-idle): every run is on a freshly started broker (a new data directory), so that memory left from earlier runs cannot hold "+
				"the connections, and the broker is started afresh again after it; the harness waits until the broker is idle. The generator samples the broker's resident set (VmRSS summed over its process tree) until "+
				"steady, opens the connections 32 at a time (each waits for its CONNACK and SUBACK before the next dial, so no broker sees more than 32 "+
				"handshakes pending) from 127.0.0.1–127.0.0.4, then samples VmRSS every 500 ms until 6 samples in a row lie within max(1 MiB, 1 % of the "+
				"growth), up to -rss-settle (\"not settled\" otherwise). KiB/conn = (RSS after − RSS before) / connections. It then checks, without "+
				"reading, that every connection is still open and that the broker sent nothing on any. Broker CPU and peak RSS cover connecting and settling. "+
				"The harness raises its open-files limit to the hard limit, and the brokers and generator inherit it.")
	}
	for _, s := range c.scenarios {
		sr := report.Scenario{Scenario: s, Skipped: map[string]string{}}
		for _, name := range s.Brokers() {
			if !slices.Contains(c.brokers, name) {
				continue
			}
			if why, skip := s.Skip[name]; skip {
				sr.Skipped[name] = why
				continue
			}
			if runs := results[s.Name][name]; len(runs) > 0 {
				sr.Rows = append(sr.Rows, report.Aggregate(name, runs))
			}
		}
		rep.Scenarios = append(rep.Scenarios, sr)
	}
	return rep
}

// commands are the exact commands behind the report: how the binaries are
// built (as `make bench-compare` builds them), this comparison's command
// line, and the first loadgen command line of each scenario (the other
// runs differ only in -broker and the broker's addresses and PID).
func (b *bench) commands() []string {
	wd, _ := os.Getwd()
	out := []string{
		"make build   # bin/junction: CGO_ENABLED=0 go build -o bin/junction ./cmd/junction",
		"cd bench && CGO_ENABLED=0 go build -o ../bin/loadgen ./cmd/loadgen && CGO_ENABLED=0 go build -o ../bin/bench-compare ./cmd/compare",
		"cd " + shellQuote(wd) + " && " + shellJoin(append([]string{os.Args[0]}, b.c.args...)),
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, s := range b.c.scenarios {
		if argv, ok := b.loadgenCmds[s.Name]; ok {
			out = append(out, "#   "+shellJoin(argv))
		}
	}
	return out
}

func shellJoin(argv []string) string {
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = shellQuote(a)
	}
	return strings.Join(q, " ")
}

// shellQuote quotes s for a POSIX shell if it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=,@+") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "?"
	}
	return strings.Join(f[:3], " ")
}

func epmdRunning() bool {
	return exec.Command("epmd", "-names").Run() == nil
}
