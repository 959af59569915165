package interop

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junction-broker/junction/protocols"
	jamqp "github.com/junction-broker/junction/protocols/amqp"
	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	jstomp "github.com/junction-broker/junction/protocols/stomp"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// The hostile-input catalogue (hostile_{amqp,mqtt,stomp}_test.go) runs
// every case against one in-process broker with tight limits, while a
// well-behaved client of the same protocol (the bystander) makes a round
// trip through the broker every few milliseconds. Around every case the
// harness checks what holds for all of them:
//
//   - the broker's heap never grows by more than hostileMemBound while the
//     case runs (sampled every 10 ms), so no declared size is believed;
//   - every bystander round trip made during the case completes within
//     hostileLatencyBound and none fails: the attack does not stall others;
//   - afterwards the broker's connection count is back to what it was
//     before the case (the bystander's), so nothing of the attack lingers;
//   - no session panicked (startHostile's cleanup).
//
// The case itself asserts the protocol's own error and that the server
// closed the offending connection.

// Limits of the catalogue's broker.
const (
	hostileMaxMessage = 1 << 20  // router.max_message_size, AMQP and STOMP
	hostileMaxPacket  = 64 << 10 // MQTT maximum packet size
	hostileMaxInbound = 2 << 20  // transport.max_inbound
	hostileOutbound   = 1 << 20  // transport.max_outbound
	hostileMemBound   = 48 << 20 // heap growth allowed during one case
	hostileTick       = 50 * time.Millisecond
)

// hostileLatencyBound is the slowest bystander round trip accepted during
// a case: generous, for race builds on a loaded two-core CI machine, and
// still far below what a stalled event loop or a blocked router shows.
const hostileLatencyBound = 2 * time.Second

// hostileEnv is the catalogue's broker.
type hostileEnv struct {
	srv *transport.Server
	rt  *router.Router
}

// addr returns the listen address of protocol ("amqp", "mqtt", "stomp").
func (e *hostileEnv) addr(protocol string) string { return e.srv.Addrs()[protocol] }

// startHostile starts the catalogue's broker: memstore, tight limits, a
// fast tick. Cleanup shuts it down and fails the test on a session panic.
func startHostile(t *testing.T) *hostileEnv {
	t.Helper()
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log, MemoryBudget: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, st, transport.Config{
		TickInterval: hostileTick,
		EventLoops:   2,
		Limits:       protocols.Limits{MaxInbound: hostileMaxInbound, OutboundHighWater: hostileOutbound},
		Listeners: []transport.Listener{
			{Name: "amqp", Addr: "127.0.0.1:0", Adapter: jamqp.New(jamqp.Config{Router: rt, Log: log, MaxMessageSize: hostileMaxMessage, HandshakeTimeout: hostileAMQPHandshake, MaxTxBytes: hostileAMQPTxBytes})},
			{Name: "mqtt", Addr: "127.0.0.1:0", Adapter: jmqtt.New(jmqtt.Config{Router: rt, Log: log, MaxPacketSize: hostileMaxPacket, HandshakeTimeout: hostileMQTTHandshake})},
			{Name: "stomp", Addr: "127.0.0.1:0", Adapter: jstomp.New(jstomp.Config{Router: rt, Log: log, MaxFrameSize: hostileMaxMessage, HandshakeTimeout: hostileStompHandshake, MaxTxBytes: hostileStompTxBytes})},
		},
	})
	return &hostileEnv{srv: srv, rt: rt}
}

// hostileCase is one entry of a catalogue. run attacks the broker at e and
// asserts the protocol's error and the close of its own connection(s).
type hostileCase struct {
	name string
	run  func(t *testing.T, e *hostileEnv)
}

// runHostile runs cases one after the other against a fresh broker, with
// a bystander of protocol, and the checks described at the top of the file.
func runHostile(t *testing.T, protocol string, cases []hostileCase) {
	t.Helper()
	names := map[string]bool{}
	for _, c := range cases {
		if names[c.name] {
			t.Fatalf("case %q listed twice", c.name)
		}
		names[c.name] = true
	}
	e := startHostile(t)
	b := startWatcher(t, protocol, e.addr(protocol))
	baseConns := e.srv.Stats().Conns
	for _, c := range cases {
		ok := t.Run(c.name, func(t *testing.T) {
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			base := ms.HeapAlloc
			peak := atomic.Uint64{}
			stop := make(chan struct{})
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				tk := time.NewTicker(10 * time.Millisecond)
				defer tk.Stop()
				for {
					var ms runtime.MemStats
					runtime.ReadMemStats(&ms)
					if ms.HeapAlloc > peak.Load() {
						peak.Store(ms.HeapAlloc)
					}
					select {
					case <-stop:
						return
					case <-tk.C:
					}
				}
			}()
			b.mark()
			c.run(t, e)
			close(stop)
			wg.Wait()
			if p := peak.Load(); p > base && p-base > hostileMemBound {
				t.Errorf("heap grew by %d MiB during the case (bound %d MiB)", (p-base)>>20, hostileMemBound>>20)
			}
			if err := b.check(); err != nil {
				t.Errorf("bystander: %v", err)
			}
		})
		// Connections the case opened and closed on its side may take
		// the event loop a moment to notice.
		deadline := time.Now().Add(10 * time.Second)
		for e.srv.Stats().Conns != baseConns && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond) // polling a counter, bounded by the deadline
		}
		if n := e.srv.Stats().Conns; n != baseConns {
			t.Errorf("after %s: %d connections open, want %d (the bystander's)", c.name, n, baseConns)
		}
		if !ok && testing.Short() {
			break
		}
	}
}

// watcher makes round trips through the broker in the background and
// records how long each took.
type watcher struct {
	mu    sync.Mutex
	lat   []time.Duration // since the last mark
	err   error           // first failure since the last mark
	count int             // round trips since the last mark
}

func (b *watcher) record(d time.Duration, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.count++
	if err != nil && b.err == nil {
		b.err = err
	}
	if err == nil {
		b.lat = append(b.lat, d)
	}
}

// mark starts a new observation window.
func (b *watcher) mark() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.lat, b.err, b.count = b.lat[:0], nil, 0
}

// check judges the window since the last mark. A round trip still in
// flight counts too: the window waits for it, up to the bound.
func (b *watcher) check() error {
	deadline := time.Now().Add(hostileLatencyBound + time.Second)
	for {
		b.mu.Lock()
		n, err := b.count, b.err
		b.mu.Unlock()
		if n > 0 || err != nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond) // polling, bounded by the deadline
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err != nil {
		return b.err
	}
	if b.count == 0 {
		return fmt.Errorf("no round trip completed within %v", hostileLatencyBound)
	}
	worst := slices.Max(b.lat)
	if worst > hostileLatencyBound {
		return fmt.Errorf("slowest round trip %v of %d (bound %v)", worst, len(b.lat), hostileLatencyBound)
	}
	return nil
}

// roundTripper sends one message to itself through the broker and waits
// for it, failing after timeout.
type roundTripper func(timeout time.Duration) error

// startWatcher connects a well-behaved client of protocol and starts its
// round trips, one every 5 ms; cleanup stops them.
func startWatcher(t *testing.T, protocol, addr string) *watcher {
	t.Helper()
	var rt roundTripper
	switch protocol {
	case "amqp":
		rt = amqpRoundTripper(t, addr)
	case "mqtt":
		rt = mqttRoundTripper(t, addr)
	case "stomp":
		rt = stompRoundTripper(t, addr)
	default:
		t.Fatalf("no bystander for %q", protocol)
	}
	b := &watcher{}
	// One round trip before the first case: the bystander works at all.
	if err := rt(5 * time.Second); err != nil {
		t.Fatalf("bystander's first round trip: %v", err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			start := time.Now()
			err := rt(hostileLatencyBound + time.Second)
			b.record(time.Since(start), err)
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	return b
}

func amqpRoundTripper(t *testing.T, addr string) roundTripper {
	t.Helper()
	conn, err := amqp.Dial("amqp://guest:guest@" + addr + "/")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, true, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	return func(timeout time.Duration) error {
		n++
		body := fmt.Appendf(nil, "ping %d", n)
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: body}); err != nil {
			return err
		}
		for {
			select {
			case d, ok := <-deliveries:
				if !ok {
					return fmt.Errorf("amqp bystander: consumer closed")
				}
				if string(d.Body) == string(body) {
					return nil
				}
			case <-ctx.Done():
				return fmt.Errorf("amqp bystander: no delivery within %v", timeout)
			}
		}
	}
}

func mqttRoundTripper(t *testing.T, addr string) roundTripper {
	t.Helper()
	got := make(chan string, 16)
	opts := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("hostile-bystander").
		SetCleanSession(true).SetAutoReconnect(false).SetKeepAlive(30 * time.Second)
	c := mqtt3.NewClient(opts)
	if tok := c.Connect(); !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt bystander connect: %v", tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	tok := c.Subscribe("bystander/ping", 1, func(_ mqtt3.Client, m mqtt3.Message) { got <- string(m.Payload()) })
	if !tok.WaitTimeout(5*time.Second) || tok.Error() != nil {
		t.Fatalf("mqtt bystander subscribe: %v", tok.Error())
	}
	n := 0
	return func(timeout time.Duration) error {
		n++
		body := fmt.Sprintf("ping %d", n)
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		tok := c.Publish("bystander/ping", 1, false, body)
		select {
		case <-tok.Done():
			if tok.Error() != nil {
				return tok.Error()
			}
		case <-timer.C:
			return fmt.Errorf("mqtt bystander: no PUBACK within %v", timeout)
		}
		for {
			select {
			case s := <-got:
				if s == body {
					return nil
				}
			case <-timer.C:
				return fmt.Errorf("mqtt bystander: no delivery within %v", timeout)
			}
		}
	}
}

func stompRoundTripper(t *testing.T, addr string) roundTripper {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := stomp.Connect(nc, stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"), stomp.ConnOpt.HeartBeat(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Disconnect() })
	sub, err := c.Subscribe("/queue/hostile-bystander", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	return func(timeout time.Duration) error {
		n++
		body := fmt.Sprintf("ping %d", n)
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		if err := c.Send("/queue/hostile-bystander", "text/plain", []byte(body)); err != nil {
			return err
		}
		for {
			select {
			case m, ok := <-sub.C:
				if !ok {
					return fmt.Errorf("stomp bystander: subscription closed")
				}
				if m.Err != nil {
					return m.Err
				}
				if string(m.Body) == body {
					return nil
				}
			case <-timer.C:
				return fmt.Errorf("stomp bystander: no delivery within %v", timeout)
			}
		}
	}
}
