package load

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-broker/junction/bench/proc"
)

// HeaderLen is the size of the header every payload starts with: the send
// time in monotonic nanoseconds since the run began (8 bytes, little
// endian), the producer's index (4) and the message's sequence number within
// that producer (8). The rest of the payload is filler.
const HeaderLen = 20

// LostPrefix starts the error of a run that completed but lost messages the
// broker had acknowledged: its figures still stand, beside the loss.
const LostPrefix = "LOST"

// Target says where one broker listens, and which processes are it.
type Target struct {
	Broker string // "junction", "rabbitmq", "mosquitto"
	AMQP   string // amqp://user:pass@host:port/ ("" if the broker speaks no AMQP)
	MQTT   string // host:port
	STOMP  string // host:port
	PIDs   []int  // roots of the broker's process tree, for CPU and memory; may be empty
}

// Options tune one run.
type Options struct {
	Duration time.Duration // how long producers publish
	Drain    time.Duration // longest wait for deliveries after producers stop; default 30s
	Quiet    time.Duration // the drain also ends when nothing arrives for this long; default 2s

	// Idle scenarios.
	Conns  int           // connections to open instead of the scenario's Conns; 0: the scenario's
	Settle time.Duration // longest wait for the broker's memory to settle once all are connected; default 60s
}

// Result is what one run measured. Latencies are in milliseconds, from the
// publish call to the consumer's receipt of the delivery.
type Result struct {
	Scenario string `json:"scenario"`
	Broker   string `json:"broker"`
	Error    string `json:"error,omitempty"`

	Seconds    float64 `json:"seconds"`    // from the first publish to the last delivery
	Sent       int64   `json:"sent"`       // messages published
	Confirmed  int64   `json:"confirmed"`  // of those, acknowledged to the publisher (reliable modes)
	Nacked     int64   `json:"nacked"`     // refused by the broker (basic.nack)
	Expected   int64   `json:"expected"`   // deliveries owed: (confirmed if reliable, else sent) × sinks
	Received   int64   `json:"received"`   // distinct deliveries
	Duplicates int64   `json:"duplicates"` // deliveries of a message a sink already had
	Lost       int64   `json:"lost"`       // deliveries owed and never made
	Malformed  int64   `json:"malformed"`  // deliveries too short for the header or naming no producer of this run
	Downgraded int64   `json:"downgraded"` // deliveries that reached an MQTT subscriber below the scenario's DeliveryQoS
	Reliable   bool    `json:"reliable"`   // lost must be 0

	MsgPerSec float64 `json:"msg_per_sec"` // distinct deliveries per second
	MBPerSec  float64 `json:"mb_per_sec"`  // payload megabytes (10^6) delivered per second
	P50       float64 `json:"p50_ms"`
	P99       float64 `json:"p99_ms"`
	P999      float64 `json:"p999_ms"`
	Max       float64 `json:"max_ms"`

	BrokerCPU     float64 `json:"broker_cpu_s"`     // broker user+system CPU seconds over the run
	BrokerPeakRSS int64   `json:"broker_peak_rss"`  // bytes: sum of VmHWM over the broker's processes
	PeakIsRunOnly bool    `json:"peak_is_run_only"` // VmHWM was reset at the start of the run (else: since broker start)
	LoadgenCPU    float64 `json:"loadgen_cpu_s"`    // this generator's CPU seconds over the run

	// Idle scenarios: the broker's resident memory (sum of VmRSS over its
	// process tree) before connecting and with Conns connections open,
	// once it has settled; BytesPerConn is the difference over Conns.
	// BrokerCPU and BrokerPeakRSS then cover connecting and settling.
	Conns          int64   `json:"conns,omitempty"`
	RSSBefore      int64   `json:"rss_before,omitempty"`
	RSSAfter       int64   `json:"rss_after,omitempty"`
	BytesPerConn   float64 `json:"bytes_per_conn,omitempty"`
	ConnectSeconds float64 `json:"connect_s,omitempty"` // from the first dial to the last CONNACK (and SUBACK)
	SettleSeconds  float64 `json:"settle_s,omitempty"`  // from then until RSS was stable
	Unsettled      bool    `json:"unsettled,omitempty"` // RSS was still moving at the deadline: RSSAfter is the last sample
}

// run is the state one scenario run shares between its producer and
// consumer goroutines.
type run struct {
	sc     *Scenario
	id     string // unique per run: names queues, topics and client IDs
	t0     time.Time
	fan    int64
	window int64

	sent     atomic.Int64 // publishes begun, all producers
	received atomic.Int64 // deliveries, duplicates included: frees window slots
	unique   atomic.Int64 // deliveries new to the consumer that got them
	lastRecv atomic.Int64 // ns since t0

	stopping atomic.Bool // producers stop publishing
	closing  atomic.Bool // connections are being closed on purpose
	waiting  atomic.Int32
	mu       sync.Mutex
	cond     sync.Cond

	prods []*producer
	cons  []*consumer
	wg    sync.WaitGroup // consumer goroutines

	errMu  sync.Mutex
	err    error
	cancel context.CancelFunc
}

// producer is one publishing connection's record; its goroutine owns it.
type producer struct {
	idx    uint32
	sent   uint64 // sequence numbers 0..sent-1 were published
	nacked int64
	acked  bitset // reliable modes: sequence numbers the broker acknowledged
}

// consumer is one consuming connection's record. Its goroutine owns it; mu
// is for client libraries that may call back on more than one goroutine.
type consumer struct {
	mu   sync.Mutex
	sink int
	seen []bitset // per producer
	hist Histogram
	bad  int64 // deliveries without our header
	low  int64 // deliveries below the scenario's DeliveryQoS (MQTT)
}

func newRun(sc *Scenario) *run {
	r := &run{
		sc:     sc,
		id:     strconv.FormatInt(time.Now().UnixNano()%1e12, 36),
		fan:    int64(sc.Sinks),
		window: int64(sc.Window),
	}
	if r.window <= 0 {
		r.window = 1000
	}
	r.cond.L = &r.mu
	for i := range sc.Producers {
		r.prods = append(r.prods, &producer{idx: uint32(i)})
	}
	for c := range sc.Consumers {
		r.cons = append(r.cons, &consumer{sink: c % sc.Sinks, seen: make([]bitset, sc.Producers)})
	}
	r.t0 = time.Now()
	return r
}

// now is the run's monotonic clock, in nanoseconds.
func (r *run) now() int64 { return int64(time.Since(r.t0)) }

func (r *run) outstanding() int64 { return r.sent.Load()*r.fan - r.received.Load() }

// acquire waits until the end-to-end window has room for one more message
// and counts it as sent; false once the producers must stop.
func (r *run) acquire() bool {
	for r.outstanding() >= r.window && !r.stopping.Load() {
		r.mu.Lock()
		r.waiting.Add(1)
		for r.outstanding() >= r.window && !r.stopping.Load() {
			r.cond.Wait()
		}
		r.waiting.Add(-1)
		r.mu.Unlock()
	}
	if r.stopping.Load() {
		return false
	}
	r.sent.Add(1)
	return true
}

// stop tells every producer to finish.
func (r *run) stop() {
	r.stopping.Store(true)
	r.mu.Lock()
	r.cond.Broadcast()
	r.mu.Unlock()
}

// fail records the run's first error and stops it.
func (r *run) fail(err error) {
	if err == nil {
		return
	}
	r.errMu.Lock()
	if r.err == nil {
		r.err = err
	}
	r.errMu.Unlock()
	r.stop()
	if r.cancel != nil {
		r.cancel()
	}
}

func (r *run) failed() error {
	r.errMu.Lock()
	defer r.errMu.Unlock()
	return r.err
}

// stamp writes the header into buf.
func (r *run) stamp(buf []byte, p *producer, seq uint64) {
	binary.LittleEndian.PutUint64(buf, uint64(r.now()))
	binary.LittleEndian.PutUint32(buf[8:], p.idx)
	binary.LittleEndian.PutUint64(buf[12:], seq)
}

// record accounts for one delivery of body to consumer c.
func (r *run) record(c *consumer, body []byte) {
	now := r.now()
	if len(body) < HeaderLen {
		c.bad++
		return
	}
	sentAt := int64(binary.LittleEndian.Uint64(body))
	p := binary.LittleEndian.Uint32(body[8:])
	seq := binary.LittleEndian.Uint64(body[12:])
	if int(p) >= len(c.seen) {
		c.bad++
		return
	}
	c.hist.Record(now - sentAt)
	if c.seen[p].add(seq) {
		r.unique.Add(1)
	}
	r.lastRecv.Store(now)
	r.received.Add(1)
	if r.waiting.Load() > 0 && r.outstanding() < r.window {
		r.mu.Lock()
		r.cond.Broadcast()
		r.mu.Unlock()
	}
}

// side says which connections a driver makes: a single-protocol run has
// one driver for both sides, a cross-protocol run one per side.
type side uint8

const (
	bothSides side = iota
	consumerSide
	producerSide
)

func (s side) consumers() bool { return s != producerSide }
func (s side) producers() bool { return s != consumerSide }

// driver is one protocol's side of a run.
type driver interface {
	// setup connects every consumer and producer of its side (all, for
	// a single-protocol run), declares what they need, and starts the
	// consumer goroutines (r.wg). Once it returns, every consumer's
	// subscription is in place: a message published then reaches it.
	setup(ctx context.Context, r *run) error
	// produce publishes as producer i until r stops, then waits for the
	// broker to acknowledge what it published (reliable modes).
	produce(ctx context.Context, r *run, i int) error
	// close closes every connection, which ends the consumer goroutines.
	close()
	// teardown deletes what setup declared, on a fresh connection.
	teardown(ctx context.Context, r *run) error
}

// Run runs scenario sc once against t and returns what it measured. An error
// means the run could not be measured (the broker refused or dropped a
// connection, or stalled); a run that lost acknowledged messages returns its
// Result with Lost > 0 and an error.
func Run(ctx context.Context, sc Scenario, t Target, o Options) (Result, error) {
	if o.Drain <= 0 {
		o.Drain = 30 * time.Second
	}
	if o.Quiet <= 0 {
		o.Quiet = 2 * time.Second
	}
	if sc.Idle() {
		return runIdle(ctx, sc, t, o)
	}
	if sc.Size < HeaderLen {
		return Result{}, fmt.Errorf("load: %s: payload %d B is shorter than the %d B header", sc.Name, sc.Size, HeaderLen)
	}
	res := Result{Scenario: sc.Name, Broker: t.Broker, Reliable: sc.Reliable()}
	d, err := newDriver(&sc, t)
	if err != nil {
		return res, err
	}
	r := newRun(&sc)
	ctx, r.cancel = context.WithCancel(ctx)
	defer r.cancel()

	// Setup and teardown get their own bounded contexts: a stalled broker
	// must not hang the generator.
	sctx, scancel := context.WithTimeout(ctx, 60*time.Second)
	err = d.setup(sctx, r)
	scancel()
	defer func() {
		tctx, tcancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		defer tcancel()
		_ = d.teardown(tctx, r)
	}()
	if err != nil {
		r.closing.Store(true)
		d.close()
		return res, fmt.Errorf("setup: %w", err)
	}

	// A failure closes every connection, so nothing stays blocked on one.
	unwatch := context.AfterFunc(ctx, d.close)
	defer unwatch()

	var pids []int
	for _, p := range t.PIDs {
		pids = append(pids, proc.Tree(p)...)
	}
	res.PeakIsRunOnly = proc.ResetPeak(pids) == nil
	cpu0, self0 := proc.CPU(pids), proc.SelfCPU()
	start := r.now()

	var pw sync.WaitGroup
	for i := range sc.Producers {
		pw.Go(func() { r.fail(d.produce(ctx, r, i)) })
	}
	stopTimer := time.AfterFunc(o.Duration, r.stop)
	hard := time.AfterFunc(o.Duration+o.Drain, func() { r.fail(errors.New("producers did not finish: broker stalled")) })
	pw.Wait()
	hard.Stop()
	stopTimer.Stop()
	r.stop()
	drainErr := r.drain(ctx, o.Drain, o.Quiet)
	end := r.now()

	res.BrokerCPU = (proc.CPU(pids) - cpu0).Seconds()
	res.BrokerPeakRSS = proc.PeakRSS(pids)
	res.LoadgenCPU = (proc.SelfCPU() - self0).Seconds()

	r.closing.Store(true)
	d.close()
	r.wg.Wait()
	r.tally(&res, start, end)
	if err := r.failed(); err != nil {
		return res, err
	}
	if drainErr != nil {
		return res, drainErr
	}
	switch {
	case res.Malformed > 0:
		return res, fmt.Errorf("%d malformed deliveries: payloads corrupted or from elsewhere", res.Malformed)
	case res.Lost == 0 || sc.MayDrop():
	case res.Reliable:
		return res, fmt.Errorf("%s %d acknowledged deliveries of %d owed", LostPrefix, res.Lost, res.Expected)
	default:
		return res, fmt.Errorf("stalled: %d of %d deliveries owed never arrived; the last came %.3f s into the run",
			res.Lost, res.Expected, res.Seconds)
	}
	return res, nil
}

// newDriver returns the driver for sc against t: one protocol's for both
// sides, or a crossDriver pairing the consumers' protocol's with the
// producers'.
func newDriver(sc *Scenario, t Target) (driver, error) {
	one := func(p Protocol, s side) (driver, error) {
		switch p {
		case AMQP:
			return &amqpDriver{url: t.AMQP, side: s}, nil
		case MQTT:
			return &mqttDriver{addr: t.MQTT, side: s}, nil
		case STOMP:
			return &stompDriver{addr: t.STOMP, amqpURL: t.AMQP, side: s}, nil
		}
		return nil, fmt.Errorf("load: unknown protocol %q", p)
	}
	if !sc.Cross() {
		return one(sc.Proto, bothSides)
	}
	if sc.Route == RouteNative {
		return nil, fmt.Errorf("load: %s: a cross-protocol scenario needs a Route", sc.Name)
	}
	cons, err := one(sc.ConsumerProto(), consumerSide)
	if err != nil {
		return nil, err
	}
	prod, err := one(sc.Proto, producerSide)
	if err != nil {
		return nil, err
	}
	return &crossDriver{cons: cons, prod: prod}, nil
}

// crossDriver runs a cross-protocol scenario: cons connects the consumers
// (and declares what they read), then prod the producers.
type crossDriver struct{ cons, prod driver }

func (d *crossDriver) setup(ctx context.Context, r *run) error {
	if err := d.cons.setup(ctx, r); err != nil {
		return err
	}
	return d.prod.setup(ctx, r)
}

func (d *crossDriver) produce(ctx context.Context, r *run, i int) error {
	return d.prod.produce(ctx, r, i)
}

func (d *crossDriver) close() {
	d.prod.close()
	d.cons.close()
}

func (d *crossDriver) teardown(ctx context.Context, r *run) error {
	return errors.Join(d.prod.teardown(ctx, r), d.cons.teardown(ctx, r))
}

// The names a run's Route gives its destination.
func (r *run) routeQueue() string { return "bench-" + r.id }
func (r *run) routeKey() string   { return "bench." + r.id + ".x" }
func (r *run) routeTopic() string { return "bench/" + r.id + "/x" } // routeKey as MQTT sees it

// drain waits until every delivery owed has arrived, or nothing has arrived
// for quiet, or limit passes.
func (r *run) drain(ctx context.Context, limit, quiet time.Duration) error {
	deadline := time.Now().Add(limit)
	last, lastChange := r.received.Load(), time.Now()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for r.unique.Load() < r.sent.Load()*r.fan {
		select {
		case <-ctx.Done():
			return r.failed()
		case <-tick.C:
		}
		if n := r.received.Load(); n != last {
			last, lastChange = n, time.Now()
		}
		if time.Since(lastChange) > quiet {
			return nil // the rest is counted as lost
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("drain: still receiving after %v (%d of %d)", limit, r.unique.Load(), r.sent.Load()*r.fan)
		}
	}
	return nil
}

// tally fills in res from the producers' and consumers' records, once every
// goroutine is done.
func (r *run) tally(res *Result, start, end int64) {
	var hist Histogram
	sinks := make([][]bitset, r.sc.Sinks)
	for s := range sinks {
		sinks[s] = make([]bitset, len(r.prods))
	}
	for _, c := range r.cons {
		c.mu.Lock()
		hist.Merge(&c.hist)
		res.Malformed += c.bad
		res.Downgraded += c.low
		for p, seen := range c.seen {
			res.Duplicates += int64(sinks[c.sink][p].union(seen))
		}
		c.mu.Unlock()
	}
	res.Duplicates += r.received.Load() - r.unique.Load()
	for _, p := range r.prods {
		res.Sent += int64(p.sent)
		res.Nacked += p.nacked
		res.Confirmed += int64(p.acked.count())
	}
	for s := range sinks {
		for pi, p := range r.prods {
			got := sinks[s][pi]
			res.Received += int64(got.count())
			if res.Reliable {
				res.Lost += int64(got.missing(p.acked))
			}
		}
	}
	if res.Reliable {
		res.Expected = res.Confirmed * r.fan
	} else {
		res.Expected = res.Sent * r.fan
		res.Lost = max(res.Expected-res.Received, 0)
	}
	last := r.lastRecv.Load()
	if last <= start {
		last = end
	}
	res.Seconds = time.Duration(last - start).Seconds()
	if res.Seconds > 0 {
		res.MsgPerSec = float64(res.Received) / res.Seconds
		res.MBPerSec = res.MsgPerSec * float64(r.sc.Size) / 1e6
	}
	ms := func(ns int64) float64 { return float64(ns) / 1e6 }
	res.P50, res.P99, res.P999 = ms(hist.Quantile(0.50)), ms(hist.Quantile(0.99)), ms(hist.Quantile(0.999))
	res.Max = ms(hist.Max())
}

// payload returns a buffer of n bytes with filler after the header.
func payload(n int) []byte {
	b := make([]byte, n)
	for i := HeaderLen; i < n; i++ {
		b[i] = 'a' + byte(i%26)
	}
	return b
}
