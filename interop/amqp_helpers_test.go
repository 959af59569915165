package interop

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"slices"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	jamqp "github.com/junction-broker/junction/protocols/amqp"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// Bounds of every wait in the AMQP tests: how long something that must
// happen may take, and how long we watch for something that must not.
const (
	waitFor = 10 * time.Second
	quiet   = 150 * time.Millisecond
)

// amqpBroker is an in-process Junction serving only AMQP on 127.0.0.1:0: a
// router over memstore, so tests can reach into the router (alarms) and
// restart the broker over the same store (durability).
type amqpBroker struct {
	t    testing.TB
	cfg  jamqp.Config
	st   *memstore.Store
	rt   *router.Router
	srv  *transport.Server
	addr string
}

// startBroker starts an in-process AMQP broker; opts adjust the adapter's
// configuration (frame-max, channel-max, heartbeat). Cleanup shuts it
// down and fails the test if a session panicked.
func startBroker(t testing.TB, opts ...func(*jamqp.Config)) *amqpBroker {
	t.Helper()
	b := &amqpBroker{t: t, st: memstore.New(), cfg: jamqp.Config{Log: slog.New(slog.DiscardHandler)}}
	for _, o := range opts {
		o(&b.cfg)
	}
	t.Cleanup(func() {
		b.stop()
		_ = b.st.Close()
	})
	b.boot()
	return b
}

// boot builds a router over the broker's store (recovering what is durable
// in it) and serves it on a fresh port.
func (b *amqpBroker) boot() {
	b.t.Helper()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: b.st, Log: log})
	if err != nil {
		b.t.Fatal(err)
	}
	cfg := b.cfg
	cfg.Router = rt
	srv := transport.New(transport.Config{
		Listeners: []transport.Listener{{Name: "amqp", Addr: "127.0.0.1:0", Adapter: jamqp.New(cfg)}},
	}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		b.t.Fatal(err)
	}
	b.rt, b.srv, b.addr = rt, srv, srv.Addrs()["amqp"]
}

// stop shuts the transport down (clients get connection.close 320).
func (b *amqpBroker) stop() {
	if b.srv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := b.srv.Shutdown(ctx); err != nil {
		b.t.Errorf("shutdown: %v", err)
	}
	if n := b.srv.Panics(); n != 0 {
		b.t.Errorf("%d panics in sessions", n)
	}
	b.srv = nil
}

// restart stops the broker and starts a new router over the same store,
// as a restart of the binary would.
func (b *amqpBroker) restart() {
	b.t.Helper()
	b.stop()
	b.boot()
}

// url is the amqp:// URL of the broker for userinfo ("guest:guest") and
// the default vhost.
func (b *amqpBroker) url(userinfo string) string { return "amqp://" + userinfo + "@" + b.addr + "/" }

// guest is the broker's URL with the default credentials.
func (b *amqpBroker) guest() string { return b.url("guest:guest") }

// dialConfig opens an amqp091-go connection with cfg; cleanup closes it.
// amqp091-go's synchronous calls wait for their reply without a deadline,
// so a watchdog cuts the socket of a connection still open after
// hangAfter: a call the broker never answers then fails instead of
// hanging the test binary.
func dialConfig(t testing.TB, url string, cfg amqp.Config) *amqp.Connection {
	t.Helper()
	conn, err := dialWatched(t, url, cfg)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// hangAfter bounds how long a test may keep one amqp091-go connection.
const hangAfter = 30 * time.Second

// dialWatched dials with a watchdog (see dialConfig); on failure it
// returns a nil connection and the error.
func dialWatched(t testing.TB, url string, cfg amqp.Config) (*amqp.Connection, error) {
	var nc net.Conn
	var mu sync.Mutex
	dial := amqp.DefaultDial(waitFor)
	cfg.Dial = func(network, addr string) (net.Conn, error) {
		c, err := dial(network, addr)
		mu.Lock()
		nc = c
		mu.Unlock()
		return c, err
	}
	conn, err := amqp.DialConfig(url, cfg)
	if err != nil {
		return nil, err
	}
	watchdog := time.AfterFunc(hangAfter, func() {
		t.Errorf("AMQP connection still open after %v: cutting it to end a call the broker never answered", hangAfter)
		mu.Lock()
		_ = nc.Close()
		mu.Unlock()
	})
	t.Cleanup(func() { watchdog.Stop() })
	return conn, nil
}

// newChannel opens a channel on conn.
func newChannel(t testing.TB, conn *amqp.Connection) *amqp.Channel {
	t.Helper()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return ch
}

// must fails the test on err.
func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// declareQueue declares a non-durable queue (server-named when name is "").
func declareQueue(t testing.TB, ch *amqp.Channel, name string, args amqp.Table) string {
	t.Helper()
	q, err := ch.QueueDeclare(name, false, false, false, false, args)
	if err != nil {
		t.Fatalf("queue.declare %q: %v", name, err)
	}
	return q.Name
}

// publish publishes body on ch.
func publish(t testing.TB, ch *amqp.Channel, exchange, key, body string) {
	t.Helper()
	publishMsg(t, ch, exchange, key, amqp.Publishing{Body: []byte(body)})
}

func publishMsg(t testing.TB, ch *amqp.Channel, exchange, key string, p amqp.Publishing) {
	t.Helper()
	if err := ch.PublishWithContext(context.Background(), exchange, key, false, false, p); err != nil {
		t.Fatalf("publish to %q/%q: %v", exchange, key, err)
	}
}

// consume starts a consumer with a client-chosen tag and manual acks.
func consume(t testing.TB, ch *amqp.Channel, queue string) <-chan amqp.Delivery {
	t.Helper()
	msgs, err := ch.Consume(queue, "", false, false, false, false, nil)
	if err != nil {
		t.Fatalf("basic.consume %q: %v", queue, err)
	}
	return msgs
}

// recvN takes n deliveries, failing after waitFor.
func recvN(t testing.TB, c <-chan amqp.Delivery, n int) []amqp.Delivery {
	t.Helper()
	out := make([]amqp.Delivery, 0, n)
	timeout := time.After(waitFor)
	for len(out) < n {
		select {
		case d, ok := <-c:
			if !ok {
				t.Fatalf("delivery channel closed after %d of %d deliveries", len(out), n)
			}
			out = append(out, d)
		case <-timeout:
			t.Fatalf("timed out after %d of %d deliveries (%q)", len(out), n, bodies(out))
		}
	}
	return out
}

// noDelivery fails if c yields a delivery within the quiet window.
func noDelivery(t testing.TB, c <-chan amqp.Delivery) {
	t.Helper()
	select {
	case d, ok := <-c:
		if ok {
			t.Fatalf("unexpected delivery %q (tag %d)", d.Body, d.DeliveryTag)
		}
	case <-time.After(quiet):
	}
}

// bodies lists the bodies of ds as strings.
func bodies(ds []amqp.Delivery) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = string(d.Body)
	}
	return out
}

// wantBodies fails unless ds carry exactly want, in order.
func wantBodies(t testing.TB, ds []amqp.Delivery, want ...string) {
	t.Helper()
	if got := bodies(ds); !slices.Equal(got, want) {
		t.Fatalf("bodies %q, want %q", got, want)
	}
}

// queueCount is the number of ready messages in queue, from a passive
// declare on a channel of its own.
func queueCount(t testing.TB, conn *amqp.Connection, queue string) int {
	t.Helper()
	ch := newChannel(t, conn)
	defer ch.Close()
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive queue.declare %q: %v", queue, err)
	}
	return q.Messages
}

// eventually polls cond until it holds, failing after waitFor.
func eventually(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tick.C
	}
}

// codeOf is the reply code of an *amqp.Error in err's chain, or 0.
func codeOf(err error) int {
	var ae *amqp.Error
	if errors.As(err, &ae) {
		return ae.Code
	}
	return 0
}

// wantCode fails unless err is a server-sent AMQP error with code.
func wantCode(t testing.TB, err error, code int) {
	t.Helper()
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("got error %v, want reply code %d", err, code)
	}
}

// wantClose waits for a close notification (channel or connection) with
// code.
func wantClose(t testing.TB, c <-chan *amqp.Error, code int) *amqp.Error {
	t.Helper()
	select {
	case e, ok := <-c:
		if !ok || e == nil {
			t.Fatalf("closed without an error, want reply code %d", code)
		}
		if e.Code != code {
			t.Fatalf("closed with %d %q, want reply code %d", e.Code, e.Reason, code)
		}
		return e
	case <-time.After(waitFor):
		t.Fatalf("not closed within %v, want reply code %d", waitFor, code)
	}
	return nil
}

// stillUsable fails unless conn can open a channel and do a round trip.
func stillUsable(t testing.TB, conn *amqp.Connection) {
	t.Helper()
	if conn.IsClosed() {
		t.Fatal("connection closed")
	}
	ch := newChannel(t, conn)
	defer ch.Close()
	q := declareQueue(t, ch, "", nil)
	publish(t, ch, "", q, "still-usable")
	d := recvN(t, consume(t, ch, q), 1)
	wantBodies(t, d, "still-usable")
	must(t, d[0].Ack(false))
}

// bystander is a connection opened before a misbehaving one; check shows
// that it still publishes and consumes after the bad one was closed.
type bystander struct {
	ch   *amqp.Channel
	q    string
	msgs <-chan amqp.Delivery
}

func newBystander(t testing.TB, url string) *bystander {
	t.Helper()
	conn := dialConfig(t, url, amqp.Config{})
	ch := newChannel(t, conn)
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	must(t, err)
	return &bystander{ch: ch, q: q.Name, msgs: consume(t, ch, q.Name)}
}

func (b *bystander) check(t testing.TB) {
	t.Helper()
	publish(t, b.ch, "", b.q, "bystander")
	d := recvN(t, b.msgs, 1)
	wantBodies(t, d, "bystander")
	must(t, d[0].Ack(false))
}
