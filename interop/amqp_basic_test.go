package interop

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// The basic class: publish, consume, get, acknowledgements, qos, and
// RabbitMQ's extensions to it (consumer priorities, direct reply-to).

// publishN publishes prefix0..prefix(n-1) to queue through the default
// exchange.
func publishN(t testing.TB, ch *amqp.Channel, queue, prefix string, n int) {
	t.Helper()
	for i := range n {
		publish(t, ch, "", queue, fmt.Sprintf("%s%d", prefix, i))
	}
}

// TestAMQPMandatoryReturn: a mandatory message no queue takes comes back
// with basic.return 312 NO_ROUTE; a non-mandatory one is dropped.
func TestAMQPMandatoryReturn(t *testing.T) {
	b := startBroker(t)
	ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	returns := ch.NotifyReturn(make(chan amqp.Return, 4))
	must(t, ch.ExchangeDeclare("ret.fanout", "fanout", false, false, false, false, nil))
	ctx := context.Background()
	for i, tc := range []struct{ exchange, key string }{
		{"amq.direct", "nobody"},
		{"", "no-such-queue"},
		{"ret.fanout", "any"},
	} {
		must(t, ch.PublishWithContext(ctx, tc.exchange, tc.key, false, false, amqp.Publishing{Body: []byte("dropped")}))
		body := fmt.Sprintf("returned-%d", i)
		must(t, ch.PublishWithContext(ctx, tc.exchange, tc.key, true, false, amqp.Publishing{CorrelationId: "c", Body: []byte(body)}))
		select {
		case r := <-returns:
			if r.ReplyCode != amqp.NoRoute || r.ReplyText != "NO_ROUTE" || r.Exchange != tc.exchange ||
				r.RoutingKey != tc.key || string(r.Body) != body || r.CorrelationId != "c" {
				t.Fatalf("basic.return %d %q %q/%q body %q, want 312 NO_ROUTE %q/%q %q",
					r.ReplyCode, r.ReplyText, r.Exchange, r.RoutingKey, r.Body, tc.exchange, tc.key, body)
			}
		case <-time.After(waitFor):
			t.Fatalf("no basic.return for %q/%q", tc.exchange, tc.key)
		}
	}
}

// TestAMQPConsumeExclusive: an exclusive consumer keeps every other
// consumer off its queue (403), and cannot start beside another.
func TestAMQPConsumeExclusive(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "exclusive-consume", nil)
	_, err := ch.Consume(q, "only", false, true, false, false, nil)
	must(t, err)
	for _, exclusive := range []bool{false, true} {
		other := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
		_, err = other.Consume(q, "", false, exclusive, false, false, nil)
		wantCode(t, err, amqp.AccessRefused)
	}
	must(t, ch.Cancel("only", false))

	_, err = ch.Consume(q, "shared", false, false, false, false, nil)
	must(t, err)
	other := newChannel(t, conn)
	_, err = other.Consume(q, "", false, true, false, false, nil)
	wantCode(t, err, amqp.AccessRefused)
	stillUsable(t, conn)
}

// TestAMQPNoAck: no-ack deliveries are settled when sent: nothing comes
// back when the channel closes.
func TestAMQPNoAck(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "noack", nil)
	publishN(t, ch, q, "m", 3)
	cons := newChannel(t, conn)
	msgs, err := cons.Consume(q, "", true, false, false, false, nil)
	must(t, err)
	wantBodies(t, recvN(t, msgs, 3), "m0", "m1", "m2")
	must(t, cons.Close())
	if n := queueCount(t, conn, q); n != 0 {
		t.Fatalf("%d no-ack deliveries came back after the channel closed", n)
	}
}

// TestAMQPConsumerTags: the server makes up amq.ctag- tags for consumers
// that give none, deliveries carry the tag, and reusing a tag on a channel
// is a connection error (530, as in RabbitMQ).
func TestAMQPConsumerTags(t *testing.T) {
	b := startBroker(t)
	r := dialRaw(t, b.addr)
	r.handshake(rawOpts{})
	r.openChannel(1)
	r.declareQueue(1, "tags")
	tags := map[string]bool{}
	for range 2 {
		r.send(amqpMethodFrame(1, amqpMethod(classBasic, 20).u16(0).str("tags").str("").u8(0).table()))
		p := r.expect(1, classBasic, 21).payload[4:]
		tag := string(p[1 : 1+p[0]])
		if !strings.HasPrefix(tag, "amq.ctag-") || len(tag) <= len("amq.ctag-") || tags[tag] {
			t.Fatalf("server-generated consumer tag %q (seen before: %v)", tag, tags[tag])
		}
		tags[tag] = true
	}

	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "", nil)
	msgs, err := ch.Consume(q, "my-tag", false, false, false, false, nil)
	must(t, err)
	publish(t, ch, "", q, "tagged")
	if d := recvN(t, msgs, 1)[0]; d.ConsumerTag != "my-tag" {
		t.Fatalf("delivery for consumer %q, want my-tag", d.ConsumerTag)
	}
	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	_, err = ch.Consume(q, "my-tag", false, false, false, false, nil)
	if err == nil {
		t.Fatal("a second consumer with the same tag started")
	}
	wantClose(t, closed, amqp.NotAllowed)
}

// TestAMQPConsumerPriority: deliveries go to the highest x-priority
// consumer that can take them; lower ones get what it cannot.
func TestAMQPConsumerPriority(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	pub := newChannel(t, conn)
	q := declareQueue(t, pub, "prio-consumers", nil)

	hiCh, loCh := newChannel(t, conn), newChannel(t, conn)
	must(t, hiCh.Qos(3, 0, false))
	lo, err := loCh.Consume(q, "lo", false, false, false, false, amqp.Table{"x-priority": int32(1)})
	must(t, err)
	hi, err := hiCh.Consume(q, "hi", false, false, false, false, amqp.Table{"x-priority": int32(10)})
	must(t, err)

	publishN(t, pub, q, "m", 3)
	hiGot := recvN(t, hi, 3)
	wantBodies(t, hiGot, "m0", "m1", "m2")
	// hi is now at its prefetch limit: the rest go to lo.
	publishN(t, pub, q, "n", 4)
	wantBodies(t, recvN(t, lo, 4), "n0", "n1", "n2", "n3")
	noDelivery(t, hi)
	must(t, hiGot[2].Ack(true))
	publish(t, pub, "", q, "back to hi")
	wantBodies(t, recvN(t, hi, 1), "back to hi")
	noDelivery(t, lo)
}

// TestAMQPCancel: after basic.cancel the consumer gets nothing more and
// new messages stay queued.
func TestAMQPCancel(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "cancel", nil)
	msgs, err := ch.Consume(q, "c", true, false, false, false, nil)
	must(t, err)
	publish(t, ch, "", q, "before")
	wantBodies(t, recvN(t, msgs, 1), "before")
	must(t, ch.Cancel("c", false))
	publish(t, ch, "", q, "after")
	select {
	case d, ok := <-msgs:
		if ok {
			t.Fatalf("delivery %q after basic.cancel", d.Body)
		}
	case <-time.After(waitFor):
		t.Fatal("amqp091-go did not close the deliveries of a cancelled consumer")
	}
	if got := getBody(t, ch, q); got != "after" {
		t.Fatalf("queue holds %q, want the message published after the cancel", got)
	}
}

// TestAMQPServerCancel: deleting a queue cancels its consumers with a
// server-sent basic.cancel (consumer_cancel_notify); the channel stays
// open.
func TestAMQPServerCancel(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "server-cancel", nil)
	cancels := ch.NotifyCancel(make(chan string, 1))
	msgs, err := ch.Consume(q, "doomed", false, false, false, false, nil)
	must(t, err)

	_, err = newChannel(t, conn).QueueDelete(q, false, false, false)
	must(t, err)
	select {
	case tag := <-cancels:
		if tag != "doomed" {
			t.Fatalf("basic.cancel for %q, want doomed", tag)
		}
	case <-time.After(waitFor):
		t.Fatal("no basic.cancel from the server after the queue was deleted")
	}
	select {
	case _, ok := <-msgs:
		if ok {
			t.Fatal("delivery after the server cancelled the consumer")
		}
	case <-time.After(waitFor):
		t.Fatal("deliveries of the cancelled consumer not closed")
	}
	if ch.IsClosed() {
		t.Fatal("server cancel closed the channel")
	}
	declareQueue(t, ch, "server-cancel-2", nil) // the channel still works
}

// TestAMQPGet: basic.get answers get-empty on an empty queue and get-ok
// with the message, its routing and the count of messages left.
func TestAMQPGet(t *testing.T) {
	b := startBroker(t)
	ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	q := declareQueue(t, ch, "get", nil)
	if _, ok, err := ch.Get(q, false); err != nil || ok {
		t.Fatalf("get on an empty queue: ok=%v err=%v", ok, err)
	}
	must(t, ch.QueueBind(q, "get.key", "amq.direct", false, nil))
	publish(t, ch, "amq.direct", "get.key", "g0")
	publishN(t, ch, q, "x", 3)
	d, ok, err := ch.Get(q, false)
	if err != nil || !ok {
		t.Fatalf("get: ok=%v err=%v", ok, err)
	}
	if string(d.Body) != "g0" || d.Exchange != "amq.direct" || d.RoutingKey != "get.key" || d.MessageCount != 3 || d.Redelivered {
		t.Fatalf("get-ok %q exchange %q key %q count %d redelivered %v", d.Body, d.Exchange, d.RoutingKey, d.MessageCount, d.Redelivered)
	}
	must(t, d.Nack(false, true))
	d, ok, err = ch.Get(q, true)
	if err != nil || !ok || string(d.Body) != "g0" || !d.Redelivered || d.MessageCount != 3 {
		t.Fatalf("get after requeue: %q redelivered %v count %d (ok=%v err=%v)", d.Body, d.Redelivered, d.MessageCount, ok, err)
	}
}

// TestAMQPAckMultiple: ack with multiple settles every delivery up to the
// tag; the others come back when the channel closes.
func TestAMQPAckMultiple(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "ack-multiple", nil)
	publishN(t, ch, q, "m", 5)
	cons := newChannel(t, conn)
	ds := recvN(t, consume(t, cons, q), 5)
	must(t, cons.Ack(ds[2].DeliveryTag, true))
	must(t, cons.Close())
	got := drain(t, ch, q)
	if strings.Join(got, ",") != "m3,m4" {
		t.Fatalf("after ack multiple of the third and close: queue holds %q, want m3,m4", got)
	}
}

// TestAMQPNackMultiple: nack with multiple and requeue puts every delivery
// up to the tag back in order, marked redelivered; without requeue they
// are dropped.
func TestAMQPNackMultiple(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "nack-multiple", nil)
	publishN(t, ch, q, "m", 4)
	msgs := consume(t, ch, q)
	ds := recvN(t, msgs, 4)
	must(t, ch.Nack(ds[2].DeliveryTag, true, true))
	again := recvN(t, msgs, 3)
	wantBodies(t, again, "m0", "m1", "m2")
	for _, d := range again {
		if !d.Redelivered {
			t.Fatalf("requeued %q not marked redelivered", d.Body)
		}
	}
	must(t, ch.Nack(again[2].DeliveryTag, true, false)) // drop m0..m2
	must(t, ch.Ack(ds[3].DeliveryTag, false))
	if n := queueCount(t, conn, q); n != 0 {
		t.Fatalf("%d messages left after nack without requeue", n)
	}
	noDelivery(t, msgs)
}

// TestAMQPReject: reject with requeue redelivers, without drops.
func TestAMQPReject(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "reject", nil)
	publishN(t, ch, q, "m", 2)
	msgs := consume(t, ch, q)
	ds := recvN(t, msgs, 2)
	must(t, ds[0].Reject(true))
	d := recvN(t, msgs, 1)[0]
	if string(d.Body) != "m0" || !d.Redelivered {
		t.Fatalf("after reject with requeue: %q redelivered %v", d.Body, d.Redelivered)
	}
	must(t, d.Reject(false))
	must(t, ds[1].Reject(false))
	noDelivery(t, msgs)
	if n := queueCount(t, conn, q); n != 0 {
		t.Fatalf("%d messages left after reject without requeue", n)
	}
}

// TestAMQPRecover: basic.recover requeue=true redelivers every
// unacknowledged delivery of the channel; requeue=false is not implemented
// by RabbitMQ (540).
func TestAMQPRecover(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "recover", nil)
	publishN(t, ch, q, "m", 3)
	msgs := consume(t, ch, q)
	ds := recvN(t, msgs, 3)
	must(t, ds[1].Ack(false))
	//lint:ignore SA1019 basic.recover is what this tests
	must(t, ch.Recover(true))
	again := recvN(t, msgs, 2)
	wantBodies(t, again, "m0", "m2")
	for _, d := range again {
		if !d.Redelivered {
			t.Fatalf("recovered %q not marked redelivered", d.Body)
		}
		must(t, d.Ack(false))
	}
	noDelivery(t, msgs)

	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	//lint:ignore SA1019 basic.recover is what this tests
	_ = ch.Recover(false)
	wantClose(t, closed, amqp.NotImplemented)
}

// recvEither takes n deliveries from a and b together, failing after
// waitFor.
func recvEither(t testing.TB, n int, a, b <-chan amqp.Delivery) []amqp.Delivery {
	t.Helper()
	var out []amqp.Delivery
	timeout := time.After(waitFor)
	for len(out) < n {
		select {
		case d := <-a:
			out = append(out, d)
		case d := <-b:
			out = append(out, d)
		case <-timeout:
			t.Fatalf("timed out after %d of %d deliveries", len(out), n)
		}
	}
	return out
}

// TestAMQPQos: RabbitMQ's basic.qos: global=false limits each consumer
// created after it on the channel, global=true all consumers of the
// channel together.
func TestAMQPQos(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	pub := newChannel(t, conn)
	setup := func(name string) (q1, q2 string) {
		q1, q2 = declareQueue(t, pub, name+".1", nil), declareQueue(t, pub, name+".2", nil)
		publishN(t, pub, q1, "a", 5)
		publishN(t, pub, q2, "b", 5)
		return q1, q2
	}

	t.Run("per consumer", func(t *testing.T) {
		q1, q2 := setup("qos-consumer")
		ch := newChannel(t, conn)
		must(t, ch.Qos(2, 0, false))
		c1, c2 := consume(t, ch, q1), consume(t, ch, q2)
		recvN(t, c1, 2)
		last := recvN(t, c2, 2)
		noDelivery(t, c1)
		noDelivery(t, c2)
		if n1, n2 := queueCount(t, conn, q1), queueCount(t, conn, q2); n1 != 3 || n2 != 3 {
			t.Fatalf("ready after prefetch 2 per consumer: %d and %d, want 3 and 3", n1, n2)
		}
		must(t, last[0].Ack(false)) // not multiple: that would ack c1's too
		must(t, last[1].Ack(false))
		recvN(t, c2, 2)
		noDelivery(t, c1)
	})

	t.Run("global", func(t *testing.T) {
		q1, q2 := setup("qos-global")
		ch := newChannel(t, conn)
		must(t, ch.Qos(3, 0, true))
		c1, c2 := consume(t, ch, q1), consume(t, ch, q2)
		got := recvEither(t, 3, c1, c2)
		noDelivery(t, c1)
		noDelivery(t, c2)
		if n := queueCount(t, conn, q1) + queueCount(t, conn, q2); n != 7 {
			t.Fatalf("%d ready after a channel-wide prefetch of 3, want 7", n)
		}
		must(t, ch.Ack(got[0].DeliveryTag, false))
		recvEither(t, 1, c1, c2)
		noDelivery(t, c1)
		noDelivery(t, c2)
	})

	t.Run("per consumer applies to later consumers", func(t *testing.T) {
		q1, q2 := setup("qos-later")
		ch := newChannel(t, conn)
		unlimited := consume(t, ch, q1)
		must(t, ch.Qos(1, 0, false))
		limited := consume(t, ch, q2)
		recvN(t, unlimited, 5)
		recvN(t, limited, 1)
		noDelivery(t, limited)
	})
}

// TestAMQPExpiration: a message whose expiration passes in the queue is
// never delivered; a malformed expiration is refused with 406.
func TestAMQPExpiration(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	q := declareQueue(t, ch, "expiration", nil)
	publishMsg(t, ch, "", q, amqp.Publishing{Expiration: "30", Body: []byte("short-lived")})
	publishMsg(t, ch, "", q, amqp.Publishing{Expiration: "600000", Body: []byte("long-lived")})
	publish(t, ch, "", q, "immortal")
	eventually(t, "the 30ms message to expire", func() bool { return queueCount(t, conn, q) == 2 })
	got := drain(t, ch, q)
	if strings.Join(got, ",") != "long-lived,immortal" {
		t.Fatalf("after expiry: %q", got)
	}

	bad := newChannel(t, conn)
	closed := bad.NotifyClose(make(chan *amqp.Error, 1))
	publishMsg(t, bad, "", q, amqp.Publishing{Expiration: "soon", Body: []byte("x")})
	wantClose(t, closed, amqp.PreconditionFailed)
}

// TestAMQPPriority: a queue with x-max-priority delivers higher priorities
// first, FIFO within one; priorities above the maximum count as the
// maximum.
func TestAMQPPriority(t *testing.T) {
	b := startBroker(t)
	ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	q := declareQueue(t, ch, "priority", amqp.Table{"x-max-priority": int32(5)})
	for _, m := range []struct {
		prio uint8
		body string
	}{{1, "p1"}, {5, "p5a"}, {0, "p0"}, {3, "p3"}, {9, "p9"}, {5, "p5b"}} {
		publishMsg(t, ch, "", q, amqp.Publishing{Priority: m.prio, Body: []byte(m.body)})
	}
	ds := recvN(t, consume(t, ch, q), 6)
	wantBodies(t, ds, "p5a", "p9", "p5b", "p3", "p1", "p0")
	if ds[1].Priority != 9 {
		t.Fatalf("priority property %d, want the published 9", ds[1].Priority)
	}
}

// TestAMQPDeliveryMode: the delivery mode reaches the consumer as
// published (persistence across a restart: TestAMQPDurability).
func TestAMQPDeliveryMode(t *testing.T) {
	b := startBroker(t)
	ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	q, err := ch.QueueDeclare("delivery-mode", true, false, false, false, nil)
	must(t, err)
	for _, mode := range []uint8{amqp.Transient, amqp.Persistent, 0} {
		publishMsg(t, ch, "", q.Name, amqp.Publishing{DeliveryMode: mode, Body: []byte{mode}})
	}
	ds := recvN(t, consume(t, ch, q.Name), 3)
	for i, mode := range []uint8{amqp.Transient, amqp.Persistent, 0} {
		if ds[i].DeliveryMode != mode {
			t.Errorf("delivery mode %d arrived as %d", mode, ds[i].DeliveryMode)
		}
	}
}

// TestAMQPDirectReplyTo: RabbitMQ's direct reply-to: a requester consumes
// amq.rabbitmq.reply-to with no-ack, publishes with that reply-to, and the
// server's reply to the rewritten name comes straight back.
func TestAMQPDirectReplyTo(t *testing.T) {
	const replyTo = "amq.rabbitmq.reply-to"
	b := startBroker(t)

	srvConn := dialConfig(t, b.guest(), amqp.Config{})
	srv := newChannel(t, srvConn)
	rpc := declareQueue(t, srv, "rpc", nil)
	requests := consume(t, srv, rpc)

	conn := dialConfig(t, b.guest(), amqp.Config{})
	client := newChannel(t, conn)
	replies, err := client.Consume(replyTo, "", true, false, false, false, nil)
	must(t, err)
	for i := range 3 {
		corr := fmt.Sprintf("req-%d", i)
		publishMsg(t, client, "", rpc, amqp.Publishing{ReplyTo: replyTo, CorrelationId: corr, Body: []byte("ping")})
		req := recvN(t, requests, 1)[0]
		if !strings.HasPrefix(req.ReplyTo, replyTo+".") {
			t.Fatalf("request reply-to %q, want it rewritten to %s.<name>", req.ReplyTo, replyTo)
		}
		publishMsg(t, srv, "", req.ReplyTo, amqp.Publishing{CorrelationId: req.CorrelationId, Body: []byte("pong")})
		must(t, req.Ack(false))
		rep := recvN(t, replies, 1)[0]
		if string(rep.Body) != "pong" || rep.CorrelationId != corr {
			t.Fatalf("reply %q correlation %q, want pong %s", rep.Body, rep.CorrelationId, corr)
		}
	}

	t.Run("consume with acks", func(t *testing.T) {
		ch := newChannel(t, conn)
		_, err := ch.Consume(replyTo, "", false, false, false, false, nil)
		wantCode(t, err, amqp.PreconditionFailed)
	})
	t.Run("publish without the consumer", func(t *testing.T) {
		ch := newChannel(t, conn)
		closed := ch.NotifyClose(make(chan *amqp.Error, 1))
		publishMsg(t, ch, "", rpc, amqp.Publishing{ReplyTo: replyTo, Body: []byte("no one listens")})
		wantClose(t, closed, amqp.PreconditionFailed)
		if n := queueCount(t, srvConn, rpc); n != 0 {
			t.Fatalf("the refused request was enqueued (%d)", n)
		}
	})
}

// TestAMQPRequeueOnClose: unacknowledged deliveries (m0, m2, m3) go back
// to their queue in their original order, marked redelivered, ahead of
// what was never delivered, when their channel or their connection closes.
func TestAMQPRequeueOnClose(t *testing.T) {
	b := startBroker(t)
	observer := dialConfig(t, b.guest(), amqp.Config{})
	for _, how := range []string{"channel", "connection"} {
		t.Run(how, func(t *testing.T) {
			q := declareQueue(t, newChannel(t, observer), "requeue-"+how, nil)
			conn := dialConfig(t, b.guest(), amqp.Config{})
			ch := newChannel(t, conn)
			publishN(t, ch, q, "m", 6)
			must(t, ch.Qos(3, 0, false))
			msgs := consume(t, ch, q)
			ds := recvN(t, msgs, 3)
			must(t, ds[1].Ack(false))
			wantBodies(t, recvN(t, msgs, 1), "m3") // the freed prefetch slot
			if how == "channel" {
				must(t, ch.Close())
			} else {
				must(t, conn.Close())
			}
			again := recvN(t, consume(t, newChannel(t, observer), q), 5)
			wantBodies(t, again, "m0", "m2", "m3", "m4", "m5")
			for i, d := range again {
				if d.Redelivered != (i < 3) {
					t.Fatalf("%q redelivered=%v", d.Body, d.Redelivered)
				}
			}
		})
	}
}
