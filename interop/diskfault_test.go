package interop

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	jamqp "github.com/junction-broker/junction/protocols/amqp"
	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	jstomp "github.com/junction-broker/junction/protocols/stomp"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/pebblestore"
)

// TestDiskFault (issue 8): with the write-ahead log's writes or fsyncs
// failing, every protocol answers a persistent publish into a durable
// queue negatively (AMQP basic.nack or a failed tx.commit, MQTT 5 PUBACK
// or PUBREC 0x80, MQTT 3.1.1 a close without PUBACK or PUBREC, STOMP an
// ERROR with the receipt-id instead of the RECEIPT), never positively.
// The store then reports itself failed and the broker stops cleanly, as
// cmd/junction's run does. Started again on the same directory with a
// healthy disk, it delivers every message it acknowledged, before the fault
// or during it, and nothing else than what was published, byte for byte.
//
// Each case gets its own broker: a failed store stays failed until the
// restart. Messages are few and small, so that Pebble never rotates its
// memtable over the failed WAL (see pebblestore's package doc).
func TestDiskFault(t *testing.T) {
	cases := []struct {
		name string
		run  func(t *testing.T, b *faultBroker)
	}{
		{"amqp-confirm", diskFaultAMQPConfirm},
		{"amqp-tx", diskFaultAMQPTx},
		{"mqtt5", diskFaultMQTT5},
		{"mqtt311", diskFaultMQTT311},
		{"stomp-send", diskFaultSTOMPSend},
		{"stomp-commit", diskFaultSTOMPCommit},
	}
	for _, f := range []struct {
		name string
		op   pebblestore.FileOp
	}{{"write", pebblestore.FileWrite}, {"fsync", pebblestore.FileSync}} {
		t.Run(f.name, func(t *testing.T) {
			for _, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					c.run(t, startFaultBroker(t, t.TempDir(), &diskFault{op: f.op}))
				})
			}
		})
	}
}

// errDiskFault is what a failing disk returns.
var errDiskFault = errors.New("injected disk fault")

// diskFault fails every op (write or fsync) on the store's write-ahead log
// once it is switched on.
type diskFault struct {
	op   pebblestore.FileOp
	on   atomic.Bool
	hits atomic.Int64
}

func (f *diskFault) inject(op pebblestore.FileOp, path string) error {
	if op == f.op && f.on.Load() && strings.HasSuffix(path, ".log") {
		f.hits.Add(1)
		return errDiskFault
	}
	return nil
}

// faultBroker is an in-process Junction over pebblestore in dir, serving
// AMQP, MQTT and STOMP on 127.0.0.1:0.
type faultBroker struct {
	t     *testing.T
	dir   string
	fault *diskFault // nil: a healthy disk
	st    *pebblestore.Store
	rt    *router.Router
	srv   *transport.Server
}

// startFaultBroker opens the store in dir (with fault's filesystem hook
// unless fault is nil) and serves it. Cleanup stops it.
func startFaultBroker(t *testing.T, dir string, fault *diskFault) *faultBroker {
	t.Helper()
	b := &faultBroker{t: t, dir: dir, fault: fault}
	opts := pebblestore.Options{MemTableSize: 4 << 20, CacheSize: 8 << 20}
	if fault != nil {
		opts.Fault = fault.inject
	}
	st, err := pebblestore.Open(dir, opts)
	if err != nil && fault == nil {
		// The failed store may have left Pebble open: a panic in Pebble's
		// commit path can leave its commit mutex held, and then Close does
		// not close Pebble (pebblestore's package doc), whose directory
		// lock this process still holds. A new process would find on disk
		// what a copy of the directory holds.
		t.Logf("opening %s again: %v; opening a copy of it", dir, err)
		cp := t.TempDir()
		if cerr := os.CopyFS(cp, os.DirFS(dir)); cerr != nil {
			t.Fatalf("copying %s: %v", dir, cerr)
		}
		b.dir = cp
		st, err = pebblestore.Open(cp, opts)
	}
	if err != nil {
		t.Fatalf("pebblestore.Open: %v", err)
	}
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log})
	if err != nil {
		_ = st.Close()
		t.Fatalf("router.New: %v", err)
	}
	srv := transport.New(transport.Config{
		Listeners: []transport.Listener{
			{Name: "amqp", Addr: "127.0.0.1:0", Adapter: jamqp.New(jamqp.Config{Router: rt, Log: log})},
			{Name: "mqtt", Addr: "127.0.0.1:0", Adapter: jmqtt.New(jmqtt.Config{Router: rt, Store: st, Log: log})},
			{Name: "stomp", Addr: "127.0.0.1:0", Adapter: jstomp.New(jstomp.Config{Router: rt, Log: log})},
		},
	}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		_ = st.Close()
		t.Fatalf("start: %v", err)
	}
	b.st, b.rt, b.srv = st, rt, srv
	t.Cleanup(func() {
		if err := b.stop(); err != nil && fault == nil {
			t.Errorf("closing the store: %v", err)
		}
	})
	return b
}

func (b *faultBroker) amqpURL() string { return "amqp://guest:guest@" + b.srv.Addrs()["amqp"] + "/" }
func (b *faultBroker) mqtt() string    { return b.srv.Addrs()["mqtt"] }
func (b *faultBroker) stomp() string   { return b.srv.Addrs()["stomp"] }

// stop shuts the transport down (every client gets its protocol's close)
// and closes the store, returning the store's error. Once stopped, it does
// nothing.
func (b *faultBroker) stop() error {
	if b.srv == nil {
		return nil
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
	closed := make(chan error, 1)
	go func() { closed <- b.st.Close() }()
	select {
	case err := <-closed:
		return err
	case <-time.After(waitFor):
		b.t.Fatal("closing the store hung")
	}
	return nil
}

// restart checks that the fault was hit and that the store reported
// itself failed, stops the broker as cmd/junction's run does on a failed
// store, and starts a new one on the same directory with a healthy disk.
func (b *faultBroker) restart() *faultBroker {
	b.t.Helper()
	if b.fault.hits.Load() == 0 {
		b.t.Fatal("no fault was injected: the case never reached the disk")
	}
	select {
	case <-b.st.Failed():
	case <-time.After(waitFor):
		b.t.Fatal("the store did not report itself failed after a disk fault")
	}
	if err := b.stop(); !errors.Is(err, storage.ErrFailed) {
		b.t.Errorf("closing the failed store: %v, want an error wrapping storage.ErrFailed", err)
	}
	return startFaultBroker(b.t, b.dir, nil)
}

// ready is the number of ready messages in queue, which must exist.
func (b *faultBroker) ready(queue string) int {
	b.t.Helper()
	q := b.rt.VHost("/").Queue(queue)
	if q == nil {
		b.t.Fatalf("queue %q did not survive the restart", queue)
	}
	n, _ := q.Counts()
	return n
}

// dfBody is message i of stream name: distinct, and long enough that a
// torn or mixed-up record would show.
func dfBody(name string, i int) string {
	return fmt.Sprintf("%s-%03d:", name, i) + strings.Repeat(string(rune('a'+i%26)), 200)
}

// ledger is what one case published and what the broker acknowledged.
type ledger struct {
	published map[string]bool
	acked     []string
}

func newLedger() *ledger { return &ledger{published: map[string]bool{}} }

// publish records body as sent and returns it.
func (l *ledger) publish(body string) string {
	l.published[body] = true
	return body
}

// check fails unless got, what the restarted broker delivered, holds every
// acknowledged message once and nothing that was not published.
// Unacknowledged messages may be there or not: a failed fsync does not
// say whether the bytes reached the disk.
func (l *ledger) check(t *testing.T, got []string) {
	t.Helper()
	seen := map[string]bool{}
	for _, b := range got {
		switch {
		case !l.published[b]:
			t.Errorf("delivered %.40q..., which was never published", b)
		case seen[b]:
			t.Errorf("delivered %.40q... twice", b)
		}
		seen[b] = true
	}
	lost := 0
	for _, b := range l.acked {
		if !seen[b] {
			lost++
			t.Errorf("acknowledged %.40q... was lost", b)
		}
	}
	t.Logf("%d published, %d acknowledged, %d delivered after the restart, %d lost", len(l.published), len(l.acked), len(got), lost)
}

// diskFaultAMQPConfirm: in confirm mode, every persistent publish sent
// after the disk breaks gets basic.nack, and so does every one in flight
// then whose fsync had not completed; none gets a basic.ack after the
// first basic.nack. Transient publishes to a
// non-durable queue still get basic.ack, as in RabbitMQ: a confirm for a
// transient message promises only that the queues took it, and they hold
// it in memory, which the disk does not touch (it is lost on a restart
// either way).
func diskFaultAMQPConfirm(t *testing.T, b *faultBroker) {
	const queue, pre, mid, post = "df.confirm", 20, 30, 30
	l := newLedger()
	conn := dialConfig(t, b.amqpURL(), amqp.Config{})
	ch := newChannel(t, conn)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, pre+mid+post))
	tch := newChannel(t, conn)
	transient := declareQueue(t, tch, "df.transient", nil)
	must(t, tch.Confirm(false))
	tconfirms := tch.NotifyPublish(make(chan amqp.Confirmation, 5))

	pub := func(body string) {
		t.Helper()
		publishMsg(t, ch, "", queue, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(l.publish(body))})
	}
	for i := range pre {
		pub(dfBody("pre", i))
	}
	for _, c := range confirmsN(t, confirms, pre) {
		if !c.Ack {
			t.Fatalf("publish %d before the fault: basic.nack", c.DeliveryTag)
		}
		l.acked = append(l.acked, dfBody("pre", int(c.DeliveryTag)-1))
	}

	// The disk breaks with publishes in flight.
	for i := range mid {
		pub(dfBody("mid", i))
		if i == mid/2 {
			b.fault.on.Store(true)
		}
	}
	for i := range post {
		pub(dfBody("post", i))
	}
	var nacked, ackedLate, ackedAfterNack []int
	for _, c := range confirmsN(t, confirms, mid+post) {
		tag := int(c.DeliveryTag)
		if !c.Ack {
			nacked = append(nacked, tag)
			continue
		}
		if i := tag - pre - 1; i < mid {
			l.acked = append(l.acked, dfBody("mid", i))
		} else {
			l.acked = append(l.acked, dfBody("post", i-mid))
		}
		if tag > pre+mid/2+1 {
			ackedLate = append(ackedLate, tag)
		}
		if len(nacked) > 0 {
			ackedAfterNack = append(ackedAfterNack, tag)
		}
	}
	if len(ackedLate) > 0 {
		t.Errorf("publishes %v, sent after the disk broke, got basic.ack", ackedLate)
	}
	if len(ackedAfterNack) > 0 {
		t.Errorf("publishes %v got basic.ack after publish %d got basic.nack", ackedAfterNack, nacked[0])
	}
	t.Logf("the disk broke after publish %d; basic.nack for %d publishes", pre+mid/2+1, len(nacked))

	// Transient messages to a non-durable queue: basic.ack, and delivered.
	for i := range 5 {
		publishMsg(t, tch, "", transient, amqp.Publishing{DeliveryMode: amqp.Transient, Body: []byte(dfBody("transient", i))})
	}
	for _, c := range confirmsN(t, tconfirms, 5) {
		if !c.Ack {
			t.Errorf("transient publish %d to a non-durable queue: basic.nack", c.DeliveryTag)
		}
	}
	ds := recvN(t, consume(t, tch, transient), 5)
	for i, d := range ds {
		if string(d.Body) != dfBody("transient", i) {
			t.Errorf("transient message %d: %.40q...", i, d.Body)
		}
	}

	b = b.restart()
	n := b.ready(queue)
	ch = newChannel(t, dialConfig(t, b.amqpURL(), amqp.Config{}))
	ds = recvN(t, consume(t, ch, queue), n)
	noDelivery(t, consume(t, ch, queue))
	l.check(t, bodies(ds))
}

// confirmsN takes n publisher confirms, failing after waitFor.
func confirmsN(t *testing.T, c <-chan amqp.Confirmation, n int) []amqp.Confirmation {
	t.Helper()
	out := make([]amqp.Confirmation, 0, n)
	timeout := time.After(waitFor)
	for len(out) < n {
		select {
		case cf, ok := <-c:
			if !ok {
				t.Fatalf("confirms closed after %d of %d", len(out), n)
			}
			out = append(out, cf)
		case <-timeout:
			t.Fatalf("%d of %d confirms came", len(out), n)
		}
	}
	slices.SortFunc(out, func(a, b amqp.Confirmation) int { return int(a.DeliveryTag) - int(b.DeliveryTag) })
	return out
}

// diskFaultAMQPTx: a tx.commit of persistent publishes over a broken disk
// gets no tx.commit-ok but connection.close 541 INTERNAL_ERROR (a hard
// error in AMQP 0-9-1, as RabbitMQ sends it); a transaction committed
// before the fault survives.
func diskFaultAMQPTx(t *testing.T, b *faultBroker) {
	const queue = "df.tx"
	l := newLedger()
	conn := dialConfig(t, b.amqpURL(), amqp.Config{})
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	ch := newChannel(t, conn)
	if _, err := ch.QueueDeclare(queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	must(t, ch.Tx())
	var held []string
	for i := range 5 {
		held = append(held, l.publish(dfBody("tx-pre", i)))
		publishMsg(t, ch, "", queue, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(held[i])})
	}
	must(t, ch.TxCommit())
	l.acked = append(l.acked, held...)

	b.fault.on.Store(true)
	for i := range 5 {
		publishMsg(t, ch, "", queue, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte(l.publish(dfBody("tx", i)))})
	}
	wantCode(t, ch.TxCommit(), amqp.InternalError)
	wantClose(t, closed, amqp.InternalError)

	b = b.restart()
	n := b.ready(queue)
	ch = newChannel(t, dialConfig(t, b.amqpURL(), amqp.Config{}))
	ds := recvN(t, consume(t, ch, queue), n)
	l.check(t, bodies(ds))
}

// diskFaultMQTT5: an MQTT 5 publisher's QoS 1 publishes get PUBACK 0x80
// and its QoS 2 publishes PUBREC 0x80 once the disk is broken; an offline
// persistent session (Session Expiry Interval, clean start 0) gets what
// was acknowledged before, after the restart.
func diskFaultMQTT5(t *testing.T, b *faultBroker) {
	const sid = "df5-sub"
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	l := newLedger()
	exp := uint32(3600)
	subConnect := &paho.Connect{ClientID: sid, CleanStart: false, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
	sub := open5(ctx, t, b.mqtt(), subConnect, opts5{})
	sub5(ctx, t, sub, paho.SubscribeOptions{Topic: "df/5/#", QoS: 2})
	_ = sub.Disconnect(&paho.Disconnect{})

	pub := open5(ctx, t, b.mqtt(), &paho.Connect{ClientID: "df5-pub", CleanStart: true, KeepAlive: 30}, opts5{})
	for i := range 10 {
		body := l.publish(dfBody("pre5", i))
		pub5(ctx, t, pub, &paho.Publish{Topic: "df/5/pre", QoS: byte(1 + i%2), Payload: []byte(body)})
		l.acked = append(l.acked, body)
	}

	b.fault.on.Store(true)
	for i := range 6 {
		qos := byte(1 + i%2)
		r, err := pub.Publish(ctx, &paho.Publish{Topic: "df/5/fault", QoS: qos, Payload: []byte(l.publish(dfBody("fault5", i)))})
		switch {
		case r == nil:
			t.Fatalf("QoS %d publish over a broken disk: no PUBACK or PUBREC (%v)", qos, err)
		case r.ReasonCode < 0x80:
			l.acked = append(l.acked, dfBody("fault5", i))
			fallthrough
		case r.ReasonCode != 0x80:
			t.Errorf("QoS %d publish over a broken disk: reason code %#x, want 0x80 (unspecified error)", qos, r.ReasonCode)
		}
	}

	b = b.restart()
	n := b.ready("mqtt-subscription-" + sid + "qos1")
	sub = open5(ctx, t, b.mqtt(), subConnect, opts5{})
	if !sub.ack.SessionPresent {
		t.Fatal("the persistent session did not survive the restart")
	}
	var got []string
	for range n {
		got = append(got, string(next5(t, sub).Payload))
	}
	none5(t, sub)
	l.check(t, got)
}

// diskFaultMQTT311: MQTT 3.1.1 has no negative acknowledgement, so a QoS 1
// or QoS 2 publish over a broken disk ends the connection without PUBACK
// or PUBREC, and the client knows the message is not taken.
func diskFaultMQTT311(t *testing.T, b *faultBroker) {
	const sid = "df3-sub"
	l := newLedger()
	msgs := make(chan mqtt3.Message, 100)
	sub, _ := open3(t, opts3(b.mqtt(), sid, 4, false, msgs))
	wait3(t, "subscribe", sub.Subscribe("df/3/#", 2, nil))
	sub.Disconnect(100)

	pub, _ := open3(t, opts3(b.mqtt(), "df3-pub", 4, true, nil))
	for i := range 10 {
		body := l.publish(dfBody("pre3", i))
		wait3(t, "publish", pub.Publish("df/3/pre", byte(1+i%2), false, body))
		l.acked = append(l.acked, body)
	}

	b.fault.on.Store(true)
	for qos := byte(1); qos <= 2; qos++ {
		if qos == 2 {
			pub, _ = open3(t, opts3(b.mqtt(), "df3-pub2", 4, true, nil))
		}
		tok := pub.Publish("df/3/fault", qos, false, l.publish(dfBody("fault3", int(qos))))
		if !tok.WaitTimeout(waitFor) {
			t.Fatalf("QoS %d publish over a broken disk: neither acknowledged nor refused", qos)
		}
		if tok.Error() == nil {
			l.acked = append(l.acked, dfBody("fault3", int(qos)))
			t.Errorf("QoS %d publish over a broken disk: acknowledged", qos)
		}
		eventually(t, "the broker to close the connection", func() bool { return !pub.IsConnectionOpen() })
	}

	b = b.restart()
	n := b.ready("mqtt-subscription-" + sid + "qos1")
	sub, tok := open3(t, opts3(b.mqtt(), sid, 4, false, msgs))
	if !tok.SessionPresent() {
		t.Fatal("the persistent session did not survive the restart")
	}
	var got []string
	for range n {
		got = append(got, string(next3(t, msgs).Payload()))
	}
	select {
	case m := <-msgs:
		t.Errorf("message %.40q... beyond the %d queued", m.Payload(), n)
	case <-time.After(quiet):
	}
	sub.Disconnect(100)
	l.check(t, got)
}

// diskFaultSTOMPSend: a persistent SEND with a receipt over a broken disk
// gets an ERROR carrying the receipt-id, saying the store failed, instead
// of the RECEIPT.
func diskFaultSTOMPSend(t *testing.T, b *faultBroker) {
	const dest = "/queue/df.stomp"
	l := newLedger()
	c := stompDial(t, b.stomp(), stomp.V12)
	for i := range 5 {
		body := l.publish(dfBody("pre-send", i))
		stompSend(t, c, dest, body, "persistent", "true")
		l.acked = append(l.acked, body)
	}

	b.fault.on.Store(true)
	err := c.Send(dest, "", []byte(l.publish(dfBody("send", 0))),
		stomp.SendOpt.Header("persistent", "true"), stomp.SendOpt.Header("receipt", "df-send"))
	wantStoreError(t, err, "df-send")
	stompGone(c)

	b = b.restart()
	stompCheckQueue(t, b, "df.stomp", l)
}

// diskFaultSTOMPCommit: a COMMIT of persistent SENDs with a receipt over a
// broken disk gets an ERROR carrying the receipt-id instead of the
// RECEIPT; a transaction committed before survives.
func diskFaultSTOMPCommit(t *testing.T, b *faultBroker) {
	const dest = "/queue/df.stomptx"
	l := newLedger()
	c := stompDial(t, b.stomp(), stomp.V12)
	send := func(name string) (*stomp.Transaction, []string) {
		tx, err := c.BeginWithError()
		if err != nil {
			t.Fatal(err)
		}
		var held []string
		for i := range 3 {
			held = append(held, l.publish(dfBody(name, i)))
			if err := tx.Send(dest, "", []byte(held[i]), stomp.SendOpt.Header("persistent", "true")); err != nil {
				t.Fatal(err)
			}
		}
		return tx, held
	}
	tx, held := send("pre-commit")
	if err := tx.CommitWithReceipt(); err != nil {
		t.Fatalf("COMMIT before the fault: %v", err)
	}
	l.acked = append(l.acked, held...)

	tx, _ = send("commit")
	b.fault.on.Store(true)
	wantStoreError(t, tx.CommitWithReceipt(), "")
	stompGone(c)

	b = b.restart()
	stompCheckQueue(t, b, "df.stomptx", l)
}

// wantStoreError fails unless err is an ERROR frame for receipt (any
// receipt if ""), saying that the store failed.
func wantStoreError(t *testing.T, err error, receipt string) {
	t.Helper()
	if err == nil {
		t.Fatal("RECEIPT over a broken disk")
	}
	f := stompErrorFrame(t, err)
	got, ok := f.Header.Contains("receipt-id")
	if !ok || receipt != "" && got != receipt {
		t.Errorf("ERROR with receipt-id %q (present: %v), want %q", got, ok, receipt)
	}
	if msg := f.Header.Get("message"); msg != "Storage failed" || !strings.Contains(string(f.Body), "store failed") {
		t.Errorf("ERROR %q: %q; want message Storage failed and the store's error", msg, f.Body)
	}
}

// stompCheckQueue takes what queue holds through a STOMP subscription of
// the restarted broker and checks it against l.
func stompCheckQueue(t *testing.T, b *faultBroker, queue string, l *ledger) {
	t.Helper()
	n := b.ready(queue)
	c := stompDial(t, b.stomp(), stomp.V12)
	s, err := c.Subscribe("/queue/"+queue, stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	_, got := stompTake(t, s, n)
	stompNothing(t, s)
	l.check(t, got)
}
