package interop

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Exchanges, queues and bindings (AMQP 0-9-1 exchange and queue classes,
// RabbitMQ's semantics).

// getBody takes one message from queue with basic.get and no-ack; "" when
// the queue is empty.
func getBody(t testing.TB, ch *amqp.Channel, queue string) string {
	t.Helper()
	d, ok, err := ch.Get(queue, true)
	if err != nil {
		t.Fatalf("basic.get %q: %v", queue, err)
	}
	if !ok {
		return ""
	}
	return string(d.Body)
}

// drain empties queue with basic.get and returns the bodies in order.
func drain(t testing.TB, ch *amqp.Channel, queue string) []string {
	t.Helper()
	var out []string
	for {
		b := getBody(t, ch, queue)
		if b == "" {
			return out
		}
		out = append(out, b)
	}
}

// gone reports whether queue (or exchange, when exchange is true) no
// longer exists, from a passive declare on a channel of its own.
func gone(t testing.TB, conn *amqp.Connection, name string, exchange bool) bool {
	t.Helper()
	ch := newChannel(t, conn)
	defer ch.Close()
	var err error
	if exchange {
		err = ch.ExchangeDeclarePassive(name, "direct", false, false, false, false, nil)
	} else {
		_, err = ch.QueueDeclarePassive(name, false, false, false, false, nil)
	}
	switch codeOf(err) {
	case 0:
		if err != nil {
			t.Fatal(err)
		}
		return false
	case amqp.ResourceLocked: // another connection's exclusive queue
		return false
	case amqp.NotFound:
		return true
	}
	t.Fatalf("passive declare %q: %v", name, err)
	return false
}

// TestAMQPDeclarePassive: a passive declare reports the ready messages and
// consumers of a queue and creates nothing.
func TestAMQPDeclarePassive(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "passive.q", nil)
	for _, m := range []string{"a", "b", "c"} {
		publish(t, ch, "", q, m)
	}
	got, err := ch.QueueDeclarePassive(q, false, false, false, false, nil)
	must(t, err)
	if got.Messages != 3 || got.Consumers != 0 {
		t.Fatalf("passive declare: %d messages %d consumers, want 3 and 0", got.Messages, got.Consumers)
	}
	cons := newChannel(t, conn)
	must(t, cons.Qos(1, 0, false))
	recvN(t, consume(t, cons, q), 1) // one unacknowledged: not ready
	got, err = ch.QueueDeclarePassive(q, false, false, false, false, nil)
	must(t, err)
	if got.Messages != 2 || got.Consumers != 1 {
		t.Fatalf("passive declare with a consumer: %d messages %d consumers, want 2 and 1", got.Messages, got.Consumers)
	}
	must(t, ch.ExchangeDeclarePassive("amq.topic", "topic", true, false, false, false, nil))

	for range 2 { // the second look sees what the first one did
		if !gone(t, conn, "passive.missing", false) {
			t.Fatal("a passive declare created the queue")
		}
		if !gone(t, conn, "passive.missing", true) {
			t.Fatal("a passive declare created the exchange")
		}
	}
}

// TestAMQPServerNamedQueue: queue.declare with an empty name makes a
// unique amq.gen- queue, and an empty name then means the channel's last
// declared queue.
func TestAMQPServerNamedQueue(t *testing.T) {
	b := startBroker(t)
	ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	seen := map[string]bool{}
	for range 5 {
		q, err := ch.QueueDeclare("", false, true, true, false, nil)
		must(t, err)
		if !strings.HasPrefix(q.Name, "amq.gen-") || len(q.Name) <= len("amq.gen-") || seen[q.Name] {
			t.Fatalf("server-named queue %q (seen before: %v)", q.Name, seen[q.Name])
		}
		seen[q.Name] = true
	}
	q := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind("", "last", "amq.direct", false, nil)) // "" is the last declared queue
	publish(t, ch, "amq.direct", "last", "to-last")
	if got := getBody(t, ch, q); got != "to-last" {
		t.Fatalf("binding of the last declared queue: got %q", got)
	}
}

// TestAMQPDurability: durable exchanges, queues and bindings and the
// persistent messages in durable queues survive a restart; transient
// ones do not.
func TestAMQPDurability(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	must(t, ch.ExchangeDeclare("dur.x", "direct", true, false, false, false, nil))
	must(t, ch.ExchangeDeclare("dur.transient-x", "direct", false, false, false, false, nil))
	_, err := ch.QueueDeclare("dur.q", true, false, false, false, nil)
	must(t, err)
	_, err = ch.QueueDeclare("dur.transient-q", false, false, false, false, nil)
	must(t, err)
	must(t, ch.QueueBind("dur.q", "k", "dur.x", false, nil))
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 3))
	for _, p := range []amqp.Publishing{
		{DeliveryMode: amqp.Persistent, Body: []byte("p1")},
		{DeliveryMode: amqp.Transient, Body: []byte("t1")},
		{DeliveryMode: amqp.Persistent, Body: []byte("p2")},
	} {
		publishMsg(t, ch, "dur.x", "k", p)
	}
	for range 3 {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("nack %+v", c)
			}
		case <-time.After(waitFor):
			t.Fatal("confirm missing")
		}
	}

	b.restart()
	conn = dialConfig(t, b.guest(), amqp.Config{})
	ch = newChannel(t, conn)
	if gone(t, conn, "dur.q", false) || gone(t, conn, "dur.x", true) {
		t.Fatal("a durable queue or exchange did not survive the restart")
	}
	if !gone(t, conn, "dur.transient-q", false) || !gone(t, conn, "dur.transient-x", true) {
		t.Fatal("a transient queue or exchange survived the restart")
	}
	var got []string
	for {
		d, ok, err := ch.Get("dur.q", true)
		must(t, err)
		if !ok {
			break
		}
		if d.DeliveryMode != amqp.Persistent || !d.Redelivered {
			t.Fatalf("recovered %q: delivery mode %d redelivered %v", d.Body, d.DeliveryMode, d.Redelivered)
		}
		got = append(got, string(d.Body))
	}
	if strings.Join(got, ",") != "p1,p2" {
		t.Fatalf("after the restart dur.q holds %q, want the persistent p1, p2", got)
	}
	publish(t, ch, "dur.x", "k", "after") // the binding survived too
	if b := getBody(t, ch, "dur.q"); b != "after" {
		t.Fatalf("durable binding: got %q", b)
	}
}

// TestAMQPAutoDelete: an auto-delete queue goes when its last consumer
// does, not before it had one; an auto-delete exchange goes when its last
// binding does.
func TestAMQPAutoDelete(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	_, err := ch.QueueDeclare("ad.q", false, true, false, false, nil)
	must(t, err)
	if gone(t, conn, "ad.q", false) {
		t.Fatal("auto-delete queue deleted before it had a consumer")
	}
	cons := newChannel(t, conn)
	_, err = cons.Consume("ad.q", "c1", false, false, false, false, nil)
	must(t, err)
	_, err = cons.Consume("ad.q", "c2", false, false, false, false, nil)
	must(t, err)
	must(t, cons.Cancel("c1", false))
	if gone(t, conn, "ad.q", false) {
		t.Fatal("auto-delete queue deleted while a consumer was left")
	}
	must(t, cons.Cancel("c2", false))
	eventually(t, "auto-delete queue deleted after its last consumer", func() bool { return gone(t, conn, "ad.q", false) })

	must(t, ch.ExchangeDeclare("ad.x", "fanout", false, true, false, false, nil))
	q := declareQueue(t, ch, "", nil)
	q2 := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(q, "", "ad.x", false, nil))
	must(t, ch.QueueBind(q2, "", "ad.x", false, nil))
	must(t, ch.QueueUnbind(q, "", "ad.x", nil))
	if gone(t, conn, "ad.x", true) {
		t.Fatal("auto-delete exchange deleted while a binding was left")
	}
	must(t, ch.QueueUnbind(q2, "", "ad.x", nil))
	eventually(t, "auto-delete exchange deleted after its last binding", func() bool { return gone(t, conn, "ad.x", true) })
}

// TestAMQPInternalExchange: nobody may publish to an internal exchange
// (403, in TestAMQPSoftErrors), but exchanges bound to it route into it.
func TestAMQPInternalExchange(t *testing.T) {
	b := startBroker(t)
	ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	must(t, ch.ExchangeDeclare("int.x", "fanout", false, false, true, false, nil))
	must(t, ch.ExchangeDeclare("pub.x", "fanout", false, false, false, false, nil))
	must(t, ch.ExchangeBind("int.x", "", "pub.x", false, nil))
	q := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(q, "", "int.x", false, nil))
	publish(t, ch, "pub.x", "", "via-public")
	if got := getBody(t, ch, q); got != "via-public" {
		t.Fatalf("through the internal exchange: got %q", got)
	}
}

// TestAMQPQueueArguments: x-max-length drops from the head, x-message-ttl
// expires messages, x-expires deletes an unused queue.
func TestAMQPQueueArguments(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)

	q := declareQueue(t, ch, "args.max-length", amqp.Table{"x-max-length": int32(2)})
	for _, m := range []string{"1", "2", "3"} {
		publish(t, ch, "", q, m)
	}
	if got := drain(t, ch, q); strings.Join(got, ",") != "2,3" {
		t.Fatalf("x-max-length 2 kept %q, want 2,3", got)
	}

	q = declareQueue(t, ch, "args.ttl", amqp.Table{"x-message-ttl": int32(30)})
	publish(t, ch, "", q, "short-lived")
	eventually(t, "x-message-ttl to expire the message", func() bool { return queueCount(t, conn, q) == 0 })
	if got := getBody(t, ch, q); got != "" {
		t.Fatalf("expired message delivered: %q", got)
	}

	// A passive declare renews an x-expires lease (RabbitMQ's stat resets
	// the expiry timer), so look less often than the lease lasts.
	q = declareQueue(t, ch, "args.expires", amqp.Table{"x-expires": int32(50)})
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for ; !gone(t, conn, q, false); <-tick.C {
		if time.Now().After(deadline) {
			t.Fatal("x-expires did not delete the unused queue")
		}
	}
}

// TestAMQPDelete: queue.delete returns the message count and honours
// if-unused and if-empty; exchange.delete honours if-unused; deleting what
// does not exist succeeds (RabbitMQ).
func TestAMQPDelete(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "del.q", nil)
	publish(t, ch, "", q, "m1")
	publish(t, ch, "", q, "m2")

	try := func(do func(ch *amqp.Channel) error) error {
		ch := newChannel(t, conn)
		err := do(ch)
		if err == nil {
			_ = ch.Close()
		}
		return err
	}
	err := try(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, false, true, false); return err })
	wantCode(t, err, amqp.PreconditionFailed)

	cons := newChannel(t, conn)
	_, err = cons.Consume(q, "del.c", true, false, false, false, nil)
	must(t, err)
	err = try(func(ch *amqp.Channel) error { _, err := ch.QueueDelete(q, true, false, false); return err })
	wantCode(t, err, amqp.PreconditionFailed)
	must(t, cons.Cancel("del.c", false))
	// The consumer took m1 and m2 with no-ack; publish two more to count.
	publish(t, ch, "", q, "m3")
	publish(t, ch, "", q, "m4")
	eventually(t, "two messages in del.q", func() bool { return queueCount(t, conn, q) == 2 })
	n, err := ch.QueueDelete(q, true, false, false)
	must(t, err)
	if n != 2 {
		t.Fatalf("queue.delete-ok message count %d, want 2", n)
	}
	if !gone(t, conn, q, false) {
		t.Fatal("deleted queue still there")
	}

	must(t, ch.ExchangeDeclare("del.x", "direct", false, false, false, false, nil))
	q = declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(q, "k", "del.x", false, nil))
	err = try(func(ch *amqp.Channel) error { return ch.ExchangeDelete("del.x", true, false) })
	wantCode(t, err, amqp.PreconditionFailed)
	must(t, ch.QueueUnbind(q, "k", "del.x", nil))
	must(t, ch.ExchangeDelete("del.x", true, false))
	if !gone(t, conn, "del.x", true) {
		t.Fatal("deleted exchange still there")
	}

	n, err = ch.QueueDelete("del.never-was", false, false, false)
	if err != nil || n != 0 {
		t.Fatalf("deleting a missing queue: %d, %v", n, err)
	}
	must(t, ch.ExchangeDelete("del.never-was", false, false))

	// Deleting a queue deletes its bindings.
	q = declareQueue(t, ch, "del.bound", nil)
	must(t, ch.QueueBind(q, "k", "amq.direct", false, nil))
	_, err = ch.QueueDelete(q, false, false, false)
	must(t, err)
	q = declareQueue(t, ch, "del.bound", nil)
	publish(t, ch, "amq.direct", "k", "stale binding")
	if got := getBody(t, ch, q); got != "" {
		t.Fatalf("a binding of the deleted queue routed %q into its successor", got)
	}
}

// TestAMQPBindings: bindings route by exchange type and unbinding stops
// the routing.
func TestAMQPBindings(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	must(t, ch.ExchangeDeclare("bind.direct", "direct", false, false, false, false, nil))
	must(t, ch.ExchangeDeclare("bind.topic", "topic", false, false, false, false, nil))
	must(t, ch.ExchangeDeclare("bind.fanout", "fanout", false, false, false, false, nil))
	must(t, ch.ExchangeDeclare("bind.headers", "headers", false, false, false, false, nil))
	q := declareQueue(t, ch, "bind.q", nil)
	must(t, ch.QueueBind(q, "k1", "bind.direct", false, nil))
	must(t, ch.QueueBind(q, "a.*.c", "bind.topic", false, nil))
	must(t, ch.QueueBind(q, "x.#", "bind.topic", false, nil))
	must(t, ch.QueueBind(q, "ignored", "bind.fanout", false, nil))
	must(t, ch.QueueBind(q, "", "bind.headers", false, amqp.Table{"x-match": "all", "h": "v", "n": int32(1)}))

	for _, tc := range []struct {
		exchange, key string
		headers       amqp.Table
		want          bool
	}{
		{"bind.direct", "k1", nil, true},
		{"bind.direct", "k2", nil, false},
		{"bind.topic", "a.b.c", nil, true},
		{"bind.topic", "a.b.b.c", nil, false},
		{"bind.topic", "x", nil, true},
		{"bind.topic", "x.y.z", nil, true},
		{"bind.topic", "y.x", nil, false},
		{"bind.fanout", "anything", nil, true},
		{"bind.headers", "", amqp.Table{"h": "v", "n": int32(1), "extra": "e"}, true},
		{"bind.headers", "", amqp.Table{"h": "v"}, false},
		{"", q, nil, true}, // the default exchange
	} {
		body := tc.exchange + "/" + tc.key
		publishMsg(t, ch, tc.exchange, tc.key, amqp.Publishing{Headers: tc.headers, Body: []byte(body)})
		got := getBody(t, ch, q)
		if (got == body) != tc.want || (!tc.want && got != "") {
			t.Errorf("publish to %q key %q headers %v: queue got %q, routed want %v", tc.exchange, tc.key, tc.headers, got, tc.want)
		}
	}

	must(t, ch.QueueUnbind(q, "k1", "bind.direct", nil))
	must(t, ch.QueueUnbind(q, "a.*.c", "bind.topic", nil))
	publish(t, ch, "bind.direct", "k1", "after unbind")
	publish(t, ch, "bind.topic", "a.b.c", "after unbind")
	publish(t, ch, "bind.topic", "x.still", "x.still")
	if got := drain(t, ch, q); strings.Join(got, ",") != "x.still" {
		t.Fatalf("after unbinding: queue got %q, want only x.still", got)
	}
}

// TestAMQPExchangeBindings: exchange.bind routes from source to
// destination by the binding's key, then on by the destination's own
// bindings; exchange.unbind stops it.
func TestAMQPExchangeBindings(t *testing.T) {
	b := startBroker(t)
	ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	must(t, ch.ExchangeDeclare("e2e.src", "topic", false, false, false, false, nil))
	must(t, ch.ExchangeDeclare("e2e.dst", "direct", false, false, false, false, nil))
	must(t, ch.ExchangeBind("e2e.dst", "orders.*", "e2e.src", false, nil))
	q := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(q, "orders.new", "e2e.dst", false, nil))
	other := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(other, "orders.old", "e2e.dst", false, nil))

	for _, key := range []string{"orders.new", "orders.old", "orders.new.eu", "invoices.new"} {
		publish(t, ch, "e2e.src", key, key)
	}
	if got := drain(t, ch, q); strings.Join(got, ",") != "orders.new" {
		t.Fatalf("through the exchange binding %s got %q, want orders.new", q, got)
	}
	if got := drain(t, ch, other); strings.Join(got, ",") != "orders.old" {
		t.Fatalf("through the exchange binding %s got %q, want orders.old", other, got)
	}

	must(t, ch.ExchangeUnbind("e2e.dst", "orders.*", "e2e.src", false, nil))
	publish(t, ch, "e2e.src", "orders.new", "after unbind")
	publish(t, ch, "e2e.dst", "orders.new", "direct")
	if got := drain(t, ch, q); strings.Join(got, ",") != "direct" {
		t.Fatalf("after exchange.unbind got %q, want only the direct publish", got)
	}
}

// TestAMQPPurge: queue.purge removes the ready messages and returns their
// count; unacknowledged deliveries are not purged.
func TestAMQPPurge(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "purge.q", nil)
	for _, m := range []string{"1", "2", "3", "4", "5"} {
		publish(t, ch, "", q, m)
	}
	held, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("get: %v %v", ok, err)
	}
	n, err := ch.QueuePurge(q, false)
	must(t, err)
	if n != 4 {
		t.Fatalf("queue.purge-ok message count %d, want 4 (one is unacknowledged)", n)
	}
	if queueCount(t, conn, q) != 0 {
		t.Fatal("messages left after purge")
	}
	must(t, held.Nack(false, true))
	if got := drain(t, ch, q); strings.Join(got, ",") != "1" {
		t.Fatalf("after purge and requeue: %q, want the unacknowledged 1", got)
	}
}

// TestAMQPExclusiveQueueGoesWithConnection: an exclusive queue is deleted
// when its connection closes, and its name is free again. RabbitMQ deletes
// them before it sends connection.close-ok (rabbit_reader maybe_close:
// close_connection, which waits for the queue collector, then close-ok),
// so a client that reconnects can redeclare its exclusive queue at once.
func TestAMQPExclusiveQueueGoesWithConnection(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})

	t.Run("gone by close-ok", func(t *testing.T) {
		r := dialRaw(t, b.addr)
		r.handshake(rawOpts{})
		r.openChannel(1)
		r.send(amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).str("excl.raw").u8(0x04).table())) // exclusive
		r.expect(1, classQueue, 11)
		r.send(amqpMethodFrame(0, amqpMethod(classConnection, 50).u16(200).str("bye").u16(0).u16(0)))
		r.expect(0, classConnection, 51)
		// The client has close-ok and has not hung up yet.
		if !gone(t, conn, "excl.raw", false) {
			t.Fatal("exclusive queue still there after connection.close-ok")
		}
		ch := newChannel(t, conn)
		_, err := ch.QueueDeclare("excl.raw", false, false, true, false, nil)
		must(t, err)
	})

	t.Run("amqp091-go", func(t *testing.T) {
		owner, err := dialWatched(t, b.guest(), amqp.Config{})
		must(t, err)
		och := newChannel(t, owner)
		_, err = och.QueueDeclare("excl.named", false, false, true, false, nil)
		must(t, err)
		gen, err := och.QueueDeclare("", false, false, true, false, nil)
		must(t, err)
		publish(t, och, "", "excl.named", "dies with the connection")
		must(t, owner.Close())
		for _, q := range []string{"excl.named", gen.Name} {
			eventually(t, "exclusive queue "+q+" deleted", func() bool { return gone(t, conn, q, false) })
		}
		ch := newChannel(t, conn)
		_, err = ch.QueueDeclare("excl.named", false, false, true, false, nil)
		must(t, err)
		if n := queueCount(t, conn, "excl.named"); n != 0 {
			t.Fatalf("new exclusive queue holds %d messages of its predecessor", n)
		}
	})
}

// TestAMQPNoWait: the nowait variants take effect without a reply, in
// order with what follows on the channel, and a failing one still closes
// the channel.
func TestAMQPNoWait(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	must(t, ch.ExchangeDeclare("nw.src", "fanout", false, false, false, true, nil))
	must(t, ch.ExchangeDeclare("nw.x", "direct", false, false, false, true, nil))
	_, err := ch.QueueDeclare("nw.q", false, false, false, true, nil)
	must(t, err)
	must(t, ch.QueueBind("nw.q", "k", "nw.x", true, nil))
	must(t, ch.ExchangeBind("nw.x", "", "nw.src", true, nil))
	must(t, ch.Confirm(false)) // amqp091-go waits for select-ok even with nowait; the raw test in amqp_tx_test.go covers it
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 4))
	msgs, err := ch.Consume("nw.q", "nw.c", false, false, false, true, nil)
	must(t, err)
	publish(t, ch, "nw.src", "k", "through nowait topology")
	d := recvN(t, msgs, 1)
	wantBodies(t, d, "through nowait topology")
	must(t, d[0].Ack(false))
	select {
	case c := <-confirms:
		if !c.Ack || c.DeliveryTag != 1 {
			t.Fatalf("confirm %+v", c)
		}
	case <-time.After(waitFor):
		t.Fatal("no confirm")
	}

	must(t, ch.Cancel("nw.c", true))
	publish(t, ch, "nw.src", "k", "after cancel")
	eventually(t, "the message published after the cancel to stay queued", func() bool { return queueCount(t, conn, "nw.q") == 1 })
	_, err = ch.QueuePurge("nw.q", true)
	must(t, err)
	must(t, ch.ExchangeUnbind("nw.x", "", "nw.src", true, nil))
	publish(t, ch, "nw.src", "k", "unbound")
	must(t, ch.QueueUnbind("nw.q", "k", "nw.x", nil)) // no nowait in queue.unbind
	if n := queueCount(t, conn, "nw.q"); n != 0 {
		t.Fatalf("nw.q holds %d messages after purge and unbind, want 0", n)
	}
	_, err = ch.QueueDelete("nw.q", false, false, true)
	must(t, err)
	must(t, ch.ExchangeDelete("nw.x", false, true))
	if !gone(t, conn, "nw.q", false) || !gone(t, conn, "nw.x", true) {
		t.Fatal("nowait deletes did not delete")
	}

	bad := newChannel(t, conn)
	closed := bad.NotifyClose(make(chan *amqp.Error, 1))
	_, err = bad.QueueDeclare("amq.nowait", false, false, false, true, nil)
	must(t, err)
	wantClose(t, closed, amqp.AccessRefused)
}
