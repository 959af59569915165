package interop

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The crash campaign: the real broker binary, kill -9'd at random moments
// while publishers of all three protocols run in their reliable modes and
// consumers acknowledge at random, restarted on the same data directory
// cycle after cycle. At the end every message its publisher was told is
// safe (AMQP confirm, MQTT PUBACK or PUBCOMP, STOMP RECEIPT) must have been
// delivered, nothing never published may appear, per-publisher order within
// a queue holds, and a QoS 2 publish is routed once (no duplicate that is
// not marked redelivered).
//
// CHAOS_CYCLES sets the number of cycles (default 10, what CI runs);
// CHAOS_SEED the random seed (default: time).
//
// The streams:
//
//	amqp   AMQP confirms, persistent       → durable queue chaos-amqp      → AMQP consumer
//	stomp  STOMP persistent:true + receipt → /queue/chaos-stomp            → STOMP consumer, client-individual
//	q1     MQTT QoS 1, PUBACK               → amq.topic chaos.q1 → MQTT persistent session (QoS 1)
//	q2     MQTT QoS 2, PUBCOMP              → amq.topic chaos.q2 → durable queue chaos-q2 → AMQP consumer
func TestCrashCampaign(t *testing.T) {
	cycles := 10
	if v := os.Getenv("CHAOS_CYCLES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			t.Fatalf("CHAOS_CYCLES=%q: want a positive number", v)
		}
		cycles = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("CHAOS_SEED"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			t.Fatalf("CHAOS_SEED=%q: %v", v, err)
		}
		seed = n
	}
	t.Logf("crash campaign: %d cycles, CHAOS_SEED=%d", cycles, seed)
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))

	cb := &chaosBroker{t: t, bin: buildBroker(t), dir: t.TempDir()}
	ledger := newChaosLedger()
	for cycle := 1; cycle <= cycles; cycle++ {
		cb.start()
		if cycle == 1 {
			chaosTopology(t, cb)
		}
		run := 150*time.Millisecond + time.Duration(rng.IntN(500))*time.Millisecond
		chaosCycle(t, cb, ledger, rng, run)
		if t.Failed() {
			t.Fatalf("cycle %d failed (CHAOS_SEED=%d)", cycle, seed)
		}
	}

	// The last start: nothing is killed any more; consumers drain until
	// every message acknowledged to its publisher has arrived.
	cb.start()
	ledger.drain(t, cb)
	cb.stop()
	ledger.check(t)
	if t.Failed() {
		t.Logf("CHAOS_SEED=%d", seed)
	}
}

// chaosBroker is the broker binary with all three protocols on fresh
// loopback ports at every start, over one data directory.
type chaosBroker struct {
	t                 *testing.T
	bin, dir          string
	amqp, mqtt, stomp string
	cmd               *exec.Cmd
	exited            chan error
	logs              *bytes.Buffer
}

func freePort(t testing.TB) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func (cb *chaosBroker) start() {
	t := cb.t
	t.Helper()
	cb.amqp, cb.mqtt, cb.stomp = freePort(t), freePort(t), freePort(t)
	cb.logs = new(bytes.Buffer)
	cb.cmd = exec.Command(cb.bin, "--data-dir", cb.dir,
		"--amqp-listen", cb.amqp, "--mqtt-listen", cb.mqtt, "--stomp-listen", cb.stomp)
	cb.cmd.Env = []string{}
	cb.cmd.Stderr = cb.logs
	if err := cb.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, exited := cb.cmd, make(chan error, 1)
	cb.exited = exited
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(cb.kill)
	deadline := time.Now().Add(30 * time.Second)
	for _, addr := range []string{cb.amqp, cb.mqtt, cb.stomp} {
		for {
			c, err := net.DialTimeout("tcp", addr, time.Second)
			if err == nil {
				_ = c.Close()
				break
			}
			select {
			case err := <-exited:
				cb.exited = nil
				t.Fatalf("broker exited on start: %v\n%s", err, cb.logs)
			case <-time.After(20 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				cb.kill()
				t.Fatalf("broker not listening on %s after 30s\n%s", addr, cb.logs)
			}
		}
	}
}

// kill is kill -9.
func (cb *chaosBroker) kill() {
	if cb.exited == nil {
		return
	}
	_ = cb.cmd.Process.Kill()
	<-cb.exited
	cb.exited = nil
}

// stop is a clean shutdown (SIGTERM), which must succeed.
func (cb *chaosBroker) stop() {
	t := cb.t
	if cb.exited == nil {
		return
	}
	_ = cb.cmd.Process.Signal(os.Interrupt)
	select {
	case err := <-cb.exited:
		cb.exited = nil
		if err != nil {
			t.Errorf("broker exited with %v on SIGINT\n%s", err, cb.logs)
		}
	case <-time.After(30 * time.Second):
		cb.kill()
		t.Errorf("broker did not stop within 30s of SIGINT")
	}
}

func (cb *chaosBroker) amqpURL() string { return "amqp://guest:guest@" + cb.amqp + "/" }

// chaosTopology declares the durable queues and the binding that carries
// the QoS 2 stream, and the MQTT subscriber's persistent session.
func chaosTopology(t *testing.T, cb *chaosBroker) {
	conn, err := amqp.Dial(cb.amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{"chaos-amqp", "chaos-q2"} {
		if _, err := ch.QueueDeclare(q, true, false, false, false, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.QueueBind("chaos-q2", "chaos.q2", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	c, err := chaosMQTT(cb, "chaos-sub", false)
	if err != nil {
		t.Fatal(err)
	}
	if tok := c.Subscribe("chaos/q1", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe chaos/q1: %v", tok.Error())
	}
	c.Disconnect(100)
}

func chaosMQTT(cb *chaosBroker, id string, clean bool) (mqtt3.Client, error) {
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + cb.mqtt).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(clean).SetAutoReconnect(false).
		SetConnectRetry(false).SetKeepAlive(30 * time.Second).SetWriteTimeout(5 * time.Second)
	c := mqtt3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return nil, fmt.Errorf("mqtt connect %s: %v", id, tok.Error())
	}
	return c, nil
}

// chaosLedger is what the campaign knows: per stream, what was published
// and acknowledged to the publisher, and what consumers received.
type chaosLedger struct {
	mu      sync.Mutex
	next    map[string]int          // next sequence number per stream
	sent    map[string]map[int]bool // attempted
	safe    map[string]map[int]bool // acknowledged to the publisher
	got     map[string]map[int]int  // deliveries per message
	fresh   map[string]map[int]int  // deliveries not marked redelivered (AMQP streams)
	order   map[string][]int        // first deliveries, in arrival order
	invents []string
}

var chaosStreams = []string{"amqp", "stomp", "q1", "q2"}

func newChaosLedger() *chaosLedger {
	l := &chaosLedger{next: map[string]int{}, sent: map[string]map[int]bool{}, safe: map[string]map[int]bool{},
		got: map[string]map[int]int{}, fresh: map[string]map[int]int{}, order: map[string][]int{}}
	for _, s := range chaosStreams {
		l.sent[s], l.safe[s], l.got[s], l.fresh[s] = map[int]bool{}, map[int]bool{}, map[int]int{}, map[int]int{}
	}
	return l
}

// publish takes the next sequence number of stream and returns its body.
func (l *chaosLedger) publish(stream string) (int, string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := l.next[stream]
	l.next[stream] = n + 1
	l.sent[stream][n] = true
	return n, stream + "-" + strconv.Itoa(n)
}

func (l *chaosLedger) acked(stream string, n int) {
	l.mu.Lock()
	l.safe[stream][n] = true
	l.mu.Unlock()
}

// received records a delivery of body on stream.
func (l *chaosLedger) received(stream, body string, redelivered bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	n, err := strconv.Atoi(strings.TrimPrefix(body, stream+"-"))
	if err != nil || !strings.HasPrefix(body, stream+"-") || !l.sent[stream][n] {
		l.invents = append(l.invents, stream+": "+body)
		return
	}
	if l.got[stream][n] == 0 {
		l.order[stream] = append(l.order[stream], n)
	}
	l.got[stream][n]++
	if !redelivered {
		l.fresh[stream][n]++
	}
}

// missing counts the messages acknowledged to their publishers that no
// consumer has received yet.
func (l *chaosLedger) missing() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, s := range chaosStreams {
		for m := range l.safe[s] {
			if l.got[s][m] == 0 {
				n++
			}
		}
	}
	return n
}

func (l *chaosLedger) check(t *testing.T) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range chaosStreams {
		var lost []int
		dups := 0
		for m := range l.safe[s] {
			if l.got[s][m] == 0 {
				lost = append(lost, m)
			}
		}
		for _, c := range l.got[s] {
			dups += max(c-1, 0)
		}
		slices.Sort(lost)
		t.Logf("%-5s published %d, acknowledged to the publisher %d, delivered %d distinct, %d duplicate deliveries, lost %d",
			s, len(l.sent[s]), len(l.safe[s]), len(l.got[s]), dups, len(lost))
		if len(l.safe[s]) == 0 {
			t.Errorf("%s: no message was ever acknowledged to its publisher: the campaign tested nothing", s)
		}
		if len(lost) > 0 {
			t.Errorf("%s: %d acknowledged messages lost, first %v", s, len(lost), lost[:min(len(lost), 10)])
		}
		if !slices.IsSorted(l.order[s]) {
			t.Errorf("%s: first deliveries out of publish order: %v", s, firstInversion(l.order[s]))
		}
	}
	for m, c := range l.fresh["q2"] {
		if c > 1 {
			t.Errorf("q2: QoS 2 message %d routed %d times (deliveries not marked redelivered)", m, c)
		}
	}
	if len(l.invents) > 0 {
		t.Errorf("deliveries of messages never published: %v", l.invents[:min(len(l.invents), 10)])
	}
}

func firstInversion(s []int) string {
	for i := 1; i < len(s); i++ {
		if s[i] < s[i-1] {
			return fmt.Sprintf("%d after %d", s[i], s[i-1])
		}
	}
	return ""
}

// chaosCycle runs every publisher and consumer against the running broker
// for run, kill -9s the broker, and waits for the clients to give up.
func chaosCycle(t *testing.T, cb *chaosBroker, l *chaosLedger, rng *rand.Rand, run time.Duration) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// Consumers acknowledge at random: each has its own generator, since
	// rand.Rand is not safe for concurrent use.
	seeds := [3]uint64{rng.Uint64(), rng.Uint64(), rng.Uint64()}
	wg.Go(func() { chaosAMQPConsumer(ctx, cb, l, "chaos-amqp", "amqp", seeds[0]) })
	wg.Go(func() { chaosAMQPConsumer(ctx, cb, l, "chaos-q2", "q2", seeds[1]) })
	wg.Go(func() { chaosSTOMPConsumer(ctx, cb, l, seeds[2]) })
	wg.Go(func() { chaosMQTTSubscriber(ctx, cb, l) })
	wg.Go(func() { chaosAMQPPublisher(ctx, cb, l) })
	wg.Go(func() { chaosSTOMPPublisher(ctx, cb, l) })
	wg.Go(func() { chaosMQTTPublisher(ctx, cb, l, "q1", 1) })
	wg.Go(func() { chaosMQTTPublisher(ctx, cb, l, "q2", 2) })

	time.Sleep(run) // the traffic runs; then the power goes
	cb.kill()
	cancel()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("clients still running 60s after the broker was killed")
	}
}

func chaosAMQPPublisher(ctx context.Context, cb *chaosBroker, l *chaosLedger) {
	conn, err := amqp.Dial(cb.amqpURL())
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil || ch.Confirm(false) != nil {
		return
	}
	for ctx.Err() == nil {
		n, body := l.publish("amqp")
		dc, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", "chaos-amqp", false, false,
			amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(body)})
		if err != nil {
			return
		}
		// Confirms come in order; waiting for each keeps the ledger exact.
		if ok, err := dc.WaitContext(ctx); err != nil {
			return
		} else if ok {
			l.acked("amqp", n)
		}
	}
}

func chaosAMQPConsumer(ctx context.Context, cb *chaosBroker, l *chaosLedger, queue, stream string, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 1))
	conn, err := amqp.Dial(cb.amqpURL())
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil || ch.Qos(50, 0, false) != nil {
		return
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-ds:
			if !ok {
				return
			}
			l.received(stream, string(d.Body), d.Redelivered)
			// Acknowledge most at once, some in a batch later, leave some
			// unacknowledged for the crash to redeliver.
			switch r := rng.IntN(10); {
			case r < 6:
				_ = d.Ack(false)
			case r < 8:
				_ = d.Ack(true)
			}
		}
	}
}

func chaosSTOMPPublisher(ctx context.Context, cb *chaosBroker, l *chaosLedger) {
	c, err := stomp.Dial("tcp", cb.stomp, stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"),
		stomp.ConnOpt.MsgSendTimeout(5*time.Second), stomp.ConnOpt.RcvReceiptTimeout(5*time.Second))
	if err != nil {
		return
	}
	defer c.MustDisconnect()
	for ctx.Err() == nil {
		n, body := l.publish("stomp")
		// With a receipt, Send returns once the RECEIPT is in: the message
		// is on disk.
		if err := c.Send("/queue/chaos-stomp", "text/plain", []byte(body),
			stomp.SendOpt.Receipt, stomp.SendOpt.Header("persistent", "true")); err != nil {
			return
		}
		l.acked("stomp", n)
	}
}

func chaosSTOMPConsumer(ctx context.Context, cb *chaosBroker, l *chaosLedger, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 2))
	c, s, err := chaosSTOMPSubscribe(cb)
	if err != nil {
		return
	}
	defer c.MustDisconnect()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-s.C:
			if !ok || m.Err != nil {
				return
			}
			l.received("stomp", string(m.Body), m.Header.Get("redelivered") == "true")
			if rng.IntN(10) < 8 {
				_ = c.Ack(m)
			}
		}
	}
}

func chaosMQTTPublisher(ctx context.Context, cb *chaosBroker, l *chaosLedger, stream string, qos byte) {
	c, err := chaosMQTT(cb, "chaos-pub-"+stream, true)
	if err != nil {
		return
	}
	defer c.Disconnect(0)
	for ctx.Err() == nil {
		n, body := l.publish(stream)
		// The token completes on PUBACK (QoS 1) or PUBCOMP (QoS 2).
		tok := c.Publish("chaos/"+stream, qos, false, body)
		select {
		case <-tok.Done():
		case <-ctx.Done():
			return
		}
		if tok.Error() != nil {
			return
		}
		l.acked(stream, n)
	}
}

func chaosMQTTSubscriber(ctx context.Context, cb *chaosBroker, l *chaosLedger) {
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + cb.mqtt).SetClientID("chaos-sub").
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(false).SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) {
			l.received("q1", string(m.Payload()), m.Duplicate())
		})
	c := mqtt3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		return
	}
	<-ctx.Done()
	c.Disconnect(0)
}

// drain connects consumers to the last, undisturbed broker and waits until
// every message acknowledged to its publisher has arrived (or a deadline).
func (l *chaosLedger) drain(t *testing.T, cb *chaosBroker) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	// These consumers acknowledge everything.
	wg.Go(func() { chaosDrainAMQP(ctx, cb, l, "chaos-amqp", "amqp") })
	wg.Go(func() { chaosDrainAMQP(ctx, cb, l, "chaos-q2", "q2") })
	wg.Go(func() { chaosDrainSTOMP(ctx, cb, l) })
	wg.Go(func() { chaosMQTTSubscriber(ctx, cb, l) })
	deadline := time.Now().Add(60 * time.Second)
	for l.missing() > 0 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond) // polling the ledger, bounded by deadline
	}
	if n := l.missing(); n > 0 {
		// For the failure report: what the broker still holds.
		if conn, err := amqp.Dial(cb.amqpURL()); err == nil {
			if ch, err := conn.Channel(); err == nil {
				for _, q := range []string{"chaos-amqp", "chaos-stomp", "chaos-q2", "mqtt-subscription-chaos-subqos1"} {
					qi, err := ch.QueueDeclarePassive(q, true, false, false, false, nil)
					t.Logf("after the drain, %d acknowledged messages missing; queue %s: %d ready, %d consumers (%v)",
						n, q, qi.Messages, qi.Consumers, err)
				}
			}
			_ = conn.Close()
		}
	}
	cancel()
	wg.Wait()
}

func chaosDrainAMQP(ctx context.Context, cb *chaosBroker, l *chaosLedger, queue, stream string) {
	conn, err := amqp.Dial(cb.amqpURL())
	if err != nil {
		return
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		return
	}
	ds, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case d, ok := <-ds:
			if !ok {
				return
			}
			l.received(stream, string(d.Body), d.Redelivered)
			_ = d.Ack(false)
		}
	}
}

func chaosDrainSTOMP(ctx context.Context, cb *chaosBroker, l *chaosLedger) {
	c, s, err := chaosSTOMPSubscribe(cb)
	if err != nil {
		return
	}
	defer c.MustDisconnect()
	for {
		select {
		case <-ctx.Done():
			return
		case m, ok := <-s.C:
			if !ok || m.Err != nil {
				return
			}
			l.received("stomp", string(m.Body), m.Header.Get("redelivered") == "true")
			_ = c.Ack(m)
		}
	}
}

// chaosSTOMPSubscribe subscribes to the STOMP stream's queue with a
// prefetch well inside go-stomp's outgoing queue: go-stomp hands MESSAGEs
// and writes ACKs on one goroutine, so a consumer that acks while the
// broker has more unacknowledged MESSAGEs in flight than that queue holds
// deadlocks in the client.
func chaosSTOMPSubscribe(cb *chaosBroker) (*stomp.Conn, *stomp.Subscription, error) {
	c, err := stomp.Dial("tcp", cb.stomp, stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"),
		stomp.ConnOpt.WriteChannelCapacity(64))
	if err != nil {
		return nil, nil, err
	}
	s, err := c.Subscribe("/queue/chaos-stomp", stomp.AckClientIndividual, stomp.SubscribeOpt.Header("prefetch-count", "10"))
	if err != nil {
		_ = c.MustDisconnect()
		return nil, nil, err
	}
	return c, s, nil
}
