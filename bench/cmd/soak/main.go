// Command soak runs Junction under a long mixed load and checks that its
// resident memory, goroutines and open files level off (`make soak`):
//
//	soak -junction bin/junction -duration 30m -interval 1m
//
// It starts the broker from an empty temporary data directory on free
// loopback ports, with its debug listener (--debug-listen) on one more,
// then runs the load scenarios of bench/load in turn until -duration has
// passed: AMQP transient and persistent with confirms, MQTT QoS 0, 1 and 2,
// STOMP queue and topic, and the three cross-protocol flows. Each run
// publishes for -run, as fast as its closed loop allows, on connections it
// opens at its start and closes at its end. Every -interval it samples the
// broker's resident memory and open files (/proc) and its goroutines (the
// debug listener's goroutine profile).
//
// At the end it writes -out.md, a Markdown report (the samples, their
// range, the runs, and the verdict of the level-off rule in level.go), and
// -out.png, the samples over time. The exit status is 1 when the soak
// failed: a run lost an acknowledged message or failed otherwise, a sample
// could not be taken, the broker exited or did not stop cleanly, or the
// figures did not level off; 2 for a malformed command line.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/junction-broker/junction/bench/broker"
	"github.com/junction-broker/junction/bench/load"
	"github.com/junction-broker/junction/bench/report"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(code)
}

// defaultScenarios is the mix: every protocol, transient and persistent,
// every MQTT QoS, and the three cross-protocol flows.
var defaultScenarios = []string{
	"amqp-1to1", "amqp-persistent",
	"mqtt-fanin-qos0", "mqtt-fanin-qos1", "mqtt-fanin-qos2", "mqtt-fanout-qos0",
	"stomp-queue", "stomp-topic",
	"x-mqtt-amqp", "x-amqp-stomp", "x-stomp-mqtt",
}

type config struct {
	junction  string
	duration  time.Duration
	interval  time.Duration
	runFor    time.Duration
	drain     time.Duration
	scenarios []load.Scenario
	ports     broker.Ports
	debugPort int
	out       string
	work      string
	keep      bool
	command   string
}

func parse(args []string, stderr io.Writer) (*config, error) {
	fs := flag.NewFlagSet("soak", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &config{command: strings.Join(append([]string{"soak"}, args...), " ")}
	var scen string
	fs.StringVar(&c.junction, "junction", "bin/junction", "the junction binary")
	fs.DurationVar(&c.duration, "duration", 30*time.Minute, "how long to keep starting runs")
	fs.DurationVar(&c.interval, "interval", time.Minute, "time between samples")
	fs.DurationVar(&c.runFor, "run", 20*time.Second, "how long each run publishes")
	fs.DurationVar(&c.drain, "drain", 30*time.Second, "longest wait for a run's deliveries after its producers stop")
	fs.StringVar(&scen, "scenarios", strings.Join(defaultScenarios, ","), "comma-separated bench/load scenarios, run in turn")
	fs.IntVar(&c.ports.AMQP, "amqp-port", 0, "AMQP port on 127.0.0.1 (default a free one)")
	fs.IntVar(&c.ports.MQTT, "mqtt-port", 0, "MQTT port on 127.0.0.1 (default a free one)")
	fs.IntVar(&c.ports.STOMP, "stomp-port", 0, "STOMP port on 127.0.0.1 (default a free one)")
	fs.IntVar(&c.debugPort, "debug-port", 0, "the broker's debug listener port on 127.0.0.1 (default a free one)")
	fs.StringVar(&c.out, "out", "bench/results/soak-"+time.Now().Format("2006-01-02"), "report path without extension: writes OUT.md and OUT.png")
	fs.StringVar(&c.work, "work", "", "directory for the broker's data and log (default a new temporary one)")
	fs.BoolVar(&c.keep, "keep", false, "keep the broker's data and log afterwards")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if c.duration <= 0 || c.interval <= 0 || c.runFor <= 0 || c.drain <= 0 {
		return nil, errors.New("-duration, -interval, -run and -drain must be positive")
	}
	for name := range strings.SplitSeq(scen, ",") {
		if name = strings.TrimSpace(name); name == "" {
			continue
		}
		sc, ok := load.Lookup(name)
		if !ok {
			return nil, fmt.Errorf("-scenarios: unknown scenario %q (bin/loadgen -list lists them)", name)
		}
		if sc.Idle() || !sc.Runs("junction") {
			return nil, fmt.Errorf("-scenarios: %s is not a message flow Junction runs", name)
		}
		c.scenarios = append(c.scenarios, sc)
	}
	if len(c.scenarios) == 0 {
		return nil, errors.New("-scenarios: none given")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stderr io.Writer) int {
	c, err := parse(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 2
	}
	s := &soak{c: c, stderr: stderr}
	rep, err := s.run(ctx)
	if err != nil {
		fmt.Fprintf(stderr, "soak: %v\n", err)
		return 1
	}
	lost, _ := rep.lost()
	fmt.Fprintf(stderr, "soak: %d runs, %d failed, %d acknowledged messages lost; levelled off: %v; report %s.md\n",
		len(rep.Runs), rep.failedRuns(), lost, rep.Verdict.Levelled, c.out)
	if !rep.Passed() {
		fmt.Fprintln(stderr, "soak: FAILED")
		return 1
	}
	return 0
}

// soak is one soak in progress.
type soak struct {
	c      *config
	stderr io.Writer

	mu      sync.Mutex
	samples []Sample
	during  string // the scenario running now
	rep     soakReport
}

func (s *soak) logf(format string, args ...any) {
	fmt.Fprintf(s.stderr, "soak: "+format+"\n", args...)
}

func (s *soak) incident(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.mu.Lock()
	s.rep.Incidents = append(s.rep.Incidents, msg)
	s.mu.Unlock()
	s.logf("%s", msg)
}

// run starts the broker, loads and samples it, stops it and writes the
// report. An error means there is no report: the soak could not start, or
// the report could not be written.
func (s *soak) run(ctx context.Context) (*soakReport, error) {
	c := s.c
	junction, err := filepath.Abs(c.junction)
	if err != nil {
		return nil, err
	}
	if err := broker.Check("junction", junction); err != nil {
		return nil, fmt.Errorf("%w (make soak builds it)", err)
	}
	for _, p := range []*int{&c.ports.AMQP, &c.ports.MQTT, &c.ports.STOMP, &c.debugPort} {
		if *p == 0 {
			if *p, err = freePort(); err != nil {
				return nil, err
			}
		}
	}
	if c.work == "" {
		if c.work, err = os.MkdirTemp("", "junction-soak-"); err != nil {
			return nil, err
		}
	}
	if !c.keep {
		defer os.RemoveAll(c.work)
	}
	debugAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(c.debugPort))
	b, err := broker.Start(ctx, "junction", c.work, broker.Options{Junction: junction, Ports: &c.ports,
		Args: []string{"--debug-listen", debugAddr}})
	if err != nil {
		return nil, err
	}
	stopped := false
	defer func() {
		if !stopped {
			_ = b.Stop(30 * time.Second)
		}
	}()
	target := b.Target()
	smp := newSampler(target.PIDs[0], debugAddr)
	if err := smp.waitReady(ctx, 30*time.Second); err != nil {
		return nil, err
	}
	s.logf("junction (pid %d) on AMQP %d, MQTT %d, STOMP %d, debug %d; data and log in %s",
		target.PIDs[0], c.ports.AMQP, c.ports.MQTT, c.ports.STOMP, c.debugPort, b.Dir)

	s.rep = soakReport{Started: time.Now(), Planned: c.duration, Interval: c.interval, RunFor: c.runFor,
		Machine: report.Machine(), Version: broker.Version("junction", junction), Command: c.command, FDSlack: fdSlack(c.scenarios)}
	for _, sc := range c.scenarios {
		s.rep.Scenarios = append(s.rep.Scenarios, sc.Name)
	}
	base, err := smp.take(ctx, 0, "")
	if err != nil {
		return nil, err
	}
	s.samples = append(s.samples, base)
	s.logSample(base)

	start := time.Now()
	sctx, stopSampling := context.WithCancel(ctx)
	var sampling sync.WaitGroup
	sampling.Go(func() { s.sample(sctx, smp, start) })
	s.load(ctx, target, b, start)
	elapsed := time.Since(start)
	stopSampling()
	sampling.Wait()
	// One more after the last run has closed its connections: what stays
	// open then is the broker's own.
	if exited, _ := b.Exited(); !exited {
		if last, err := smp.take(context.WithoutCancel(ctx), time.Since(start), ""); err != nil {
			s.incident("%v", err)
		} else {
			s.samples = append(s.samples, last)
			s.logSample(last)
		}
	}
	if ctx.Err() != nil {
		s.incident("interrupted after %s", clock(time.Since(start)))
	}
	stopped = true
	if err := b.Stop(30 * time.Second); err != nil {
		s.incident("%v\n%s", err, b.LogTail(20))
	}

	rep := &s.rep
	rep.Elapsed = elapsed
	rep.Samples = s.samples
	rep.Verdict = levelOff(rep.under(), rep.FDSlack)
	return rep, s.write(rep)
}

// load runs the scenarios in turn until the soak's duration has passed,
// the broker exits or ctx ends.
func (s *soak) load(ctx context.Context, target load.Target, b *broker.Broker, start time.Time) {
	c := s.c
	for i := 0; time.Since(start) < c.duration && ctx.Err() == nil; i++ {
		sc := c.scenarios[i%len(c.scenarios)]
		s.mu.Lock()
		s.during = sc.Name
		s.mu.Unlock()
		at := time.Since(start)
		res, err := load.Run(ctx, sc, target, load.Options{Duration: c.runFor, Drain: c.drain})
		s.mu.Lock()
		s.during = ""
		s.mu.Unlock()
		if ctx.Err() != nil {
			return // interrupted: this run's figures are not a run's
		}
		rec := runRecord{Scenario: sc.Name, At: at, Res: res}
		if err != nil {
			rec.Err = err.Error()
		}
		s.mu.Lock()
		s.rep.Runs = append(s.rep.Runs, rec)
		s.mu.Unlock()
		status := "ok"
		if err != nil {
			status = "FAILED: " + err.Error()
		}
		s.logf("%s-%s %-16s %9.0f msg/s, sent %d, received %d, lost %d: %s",
			clock(at), clock(time.Since(start)), sc.Name, res.MsgPerSec, res.Sent, res.Received, res.Lost, status)
		if exited, werr := b.Exited(); exited {
			s.incident("the broker exited during %s at %s: %v\n%s", sc.Name, clock(time.Since(start)), werr, b.LogTail(20))
			return
		}
	}
}

// sample samples the broker every interval until ctx ends.
func (s *soak) sample(ctx context.Context, smp *sampler, start time.Time) {
	t := time.NewTicker(s.c.interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.mu.Lock()
		during := s.during
		s.mu.Unlock()
		sm, err := smp.take(ctx, time.Since(start), during)
		if ctx.Err() != nil {
			return // the load ended while sampling: the final sample follows
		}
		if err != nil {
			s.incident("%v", err)
			continue
		}
		s.mu.Lock()
		s.samples = append(s.samples, sm)
		s.mu.Unlock()
		s.logSample(sm)
	}
}

func (s *soak) logSample(sm Sample) {
	s.logf("%s sample: resident %s MiB, %d goroutines, %d open files", clock(sm.At), mib(sm.RSS), sm.Goroutines, sm.FDs)
}

// write writes the report and its chart to c.out.md and c.out.png.
func (s *soak) write(rep *soakReport) error {
	out := s.c.out
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	if len(rep.Samples) > 1 {
		xs := make([]float64, len(rep.Samples))
		rss := make([]float64, len(rep.Samples))
		gs := make([]float64, len(rep.Samples))
		fds := make([]float64, len(rep.Samples))
		for i, sm := range rep.Samples {
			xs[i], rss[i], gs[i], fds[i] = sm.At.Minutes(), float64(sm.RSS)/(1<<20), float64(sm.Goroutines), float64(sm.FDs)
		}
		var png bytes.Buffer
		title := fmt.Sprintf("Junction soak: %s of mixed load, sampled every %s (%s)", rep.Planned, rep.Interval, rep.Started.Format("2006-01-02"))
		err := report.WriteSeries(&png, title, "minutes", xs, []report.Series{
			{Name: "resident memory", Unit: "MiB", Values: rss},
			{Name: "goroutines", Unit: "count", Values: gs},
			{Name: "open files", Unit: "count", Values: fds},
		})
		if err != nil {
			return err
		}
		if err := os.WriteFile(out+".png", png.Bytes(), 0o644); err != nil {
			return err
		}
		rep.Chart = filepath.Base(out) + ".png"
	}
	var md bytes.Buffer
	if err := writeReport(&md, rep); err != nil {
		return err
	}
	return os.WriteFile(out+".md", md.Bytes(), 0o644)
}

// fdSlack is the most connections one run of scenarios holds open: its
// producers and consumers, and one more for its setup or teardown.
func fdSlack(scenarios []load.Scenario) int {
	n := 0
	for _, sc := range scenarios {
		n = max(n, sc.Producers+sc.Consumers+1)
	}
	return n
}

// freePort returns a loopback port nothing listens on now. Another process
// may take it before the broker does; the broker then fails to start, and
// says so.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
