package interop

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Publisher confirms and transactions (RabbitMQ's confirm class and the
// tx class with its semantics).

// TestAMQPConfirms: in confirm mode every publish is acknowledged, by its
// sequence number and in order, whether it went to a durable queue, a
// transient one or nowhere; channels count separately.
func TestAMQPConfirms(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	durable, err := ch.QueueDeclare("confirm.durable", true, false, false, false, nil)
	must(t, err)
	transient := declareQueue(t, ch, "confirm.transient", nil)
	must(t, ch.Confirm(false))
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 200))
	ch.NotifyReturn(make(chan amqp.Return, 200)) // mandatory returns must be drained
	other := newChannel(t, conn)
	must(t, other.Confirm(false))
	otherConfirms := other.NotifyPublish(make(chan amqp.Confirmation, 1))

	const n = 120
	for i := range n {
		if seq := ch.GetNextPublishSeqNo(); seq != uint64(i+1) {
			t.Fatalf("next publish sequence number %d, want %d", seq, i+1)
		}
		p := amqp.Publishing{Body: []byte(fmt.Sprint(i))}
		switch i % 4 {
		case 0:
			p.DeliveryMode = amqp.Persistent
			publishMsg(t, ch, "", durable.Name, p)
		case 1:
			publishMsg(t, ch, "", transient, p)
		case 2:
			publishMsg(t, ch, "amq.direct", "unroutable", p)
		case 3:
			must(t, ch.PublishWithContext(t.Context(), "amq.direct", "unroutable", true, false, p))
		}
	}
	publishMsg(t, other, "", transient, amqp.Publishing{Body: []byte("other")})
	for i := range n {
		select {
		case c := <-confirms:
			if !c.Ack || c.DeliveryTag != uint64(i+1) {
				t.Fatalf("confirmation %+v, want ack of %d", c, i+1)
			}
		case <-time.After(waitFor):
			t.Fatalf("confirmation of %d missing", i+1)
		}
	}
	select {
	case c := <-otherConfirms:
		if !c.Ack || c.DeliveryTag != 1 {
			t.Fatalf("second channel's confirmation %+v, want ack of 1", c)
		}
	case <-time.After(waitFor):
		t.Fatal("second channel's confirmation missing")
	}
	if got := queueCount(t, conn, durable.Name); got != n/4 {
		t.Fatalf("durable queue holds %d, want %d", got, n/4)
	}
}

// TestAMQPConfirmSelectNoWait: confirm.select with nowait gets no
// select-ok, and publishes are confirmed all the same (amqp091-go cannot
// send it without waiting for select-ok, so this is a raw client).
func TestAMQPConfirmSelectNoWait(t *testing.T) {
	b := startBroker(t)
	r := dialRaw(t, b.addr)
	r.handshake(rawOpts{})
	r.openChannel(1)
	r.declareQueue(1, "confirm.nowait")
	r.send(amqpMethodFrame(1, amqpMethod(85, 10).u8(1))) // confirm.select nowait
	r.send(publishFrames(1, "confirm.nowait", []byte("x"), 100))
	p := r.expect(1, classBasic, 80).payload[4:] // basic.ack, not select-ok first
	if tag := binary.BigEndian.Uint64(p); tag != 1 {
		t.Fatalf("basic.ack delivery-tag %d, want 1", tag)
	}
}

// TestAMQPTx: the tx class as RabbitMQ implements it: publishes and acks
// of a transaction take effect at tx.commit, are forgotten at
// tx.rollback, and the channel stays transactional.
func TestAMQPTx(t *testing.T) {
	b := startBroker(t)
	observer := dialConfig(t, b.guest(), amqp.Config{})
	obs := newChannel(t, observer)

	t.Run("publishes wait for commit", func(t *testing.T) {
		q := declareQueue(t, obs, "tx.commit", nil)
		ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
		must(t, ch.Tx())
		publishN(t, ch, q, "m", 3)
		must(t, ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil)) // a round trip after the publishes
		if n := queueCount(t, observer, q); n != 0 {
			t.Fatalf("%d uncommitted messages visible", n)
		}
		must(t, ch.TxCommit())
		if n := queueCount(t, observer, q); n != 3 {
			t.Fatalf("%d messages after commit, want 3", n)
		}
		publish(t, ch, "", q, "next")
		must(t, ch.ExchangeDeclarePassive("amq.direct", "direct", true, false, false, false, nil))
		if n := queueCount(t, observer, q); n != 3 {
			t.Fatalf("a publish after the commit is visible before the next one (%d)", n)
		}
		must(t, ch.TxCommit())
		if got := drain(t, obs, q); fmt.Sprint(got) != "[m0 m1 m2 next]" {
			t.Fatalf("committed %q", got)
		}
	})

	t.Run("rolled back publishes never arrive", func(t *testing.T) {
		q := declareQueue(t, obs, "tx.rollback", nil)
		ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
		must(t, ch.Tx())
		publishN(t, ch, q, "lost", 2)
		must(t, ch.TxRollback())
		publish(t, ch, "", q, "kept")
		must(t, ch.TxCommit())
		if got := drain(t, obs, q); fmt.Sprint(got) != "[kept]" {
			t.Fatalf("after rollback and commit: %q, want [kept]", got)
		}
	})

	t.Run("acks take effect at commit", func(t *testing.T) {
		q := declareQueue(t, obs, "tx.acks", nil)
		publishN(t, obs, q, "m", 4)
		ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
		must(t, ch.Tx())
		ds := recvN(t, consume(t, ch, q), 4)
		must(t, ch.Ack(ds[1].DeliveryTag, true))
		must(t, ch.TxCommit())
		must(t, ch.Close())
		if got := drain(t, obs, q); fmt.Sprint(got) != "[m2 m3]" {
			t.Fatalf("after committing ack multiple of m1 and closing: %q left, want [m2 m3]", got)
		}
	})

	t.Run("uncommitted acks are undone by close", func(t *testing.T) {
		q := declareQueue(t, obs, "tx.acks-open", nil)
		publishN(t, obs, q, "m", 2)
		ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
		must(t, ch.Tx())
		ds := recvN(t, consume(t, ch, q), 2)
		must(t, ch.Ack(ds[1].DeliveryTag, true))
		must(t, ch.Close())
		if got := drain(t, obs, q); fmt.Sprint(got) != "[m0 m1]" {
			t.Fatalf("after closing with uncommitted acks: %q left, want [m0 m1]", got)
		}
	})

	t.Run("rolled back acks leave messages unacked", func(t *testing.T) {
		q := declareQueue(t, obs, "tx.acks-rollback", nil)
		publishN(t, obs, q, "m", 3)
		ch := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
		must(t, ch.Tx())
		ds := recvN(t, consume(t, ch, q), 3)
		must(t, ds[0].Ack(false))
		must(t, ds[2].Ack(false))
		must(t, ch.TxRollback())
		if n := queueCount(t, observer, q); n != 0 {
			t.Fatalf("rollback requeued %d messages; they should stay unacknowledged", n)
		}
		must(t, ds[1].Ack(false))
		must(t, ch.TxCommit())
		must(t, ch.Close())
		again := recvN(t, consume(t, newChannel(t, observer), q), 2)
		wantBodies(t, again, "m0", "m2")
		if !again[0].Redelivered || !again[1].Redelivered {
			t.Fatal("requeued messages not marked redelivered")
		}
	})

	for _, tc := range []struct {
		name string
		do   func(t *testing.T, ch *amqp.Channel) error
	}{
		{"tx.commit without tx.select", func(t *testing.T, ch *amqp.Channel) error { return ch.TxCommit() }},
		{"tx.rollback without tx.select", func(t *testing.T, ch *amqp.Channel) error { return ch.TxRollback() }},
		{"confirm.select after tx.select", func(t *testing.T, ch *amqp.Channel) error {
			must(t, ch.Tx())
			return ch.Confirm(false)
		}},
		{"tx.select after confirm.select", func(t *testing.T, ch *amqp.Channel) error {
			must(t, ch.Confirm(false))
			return ch.Tx()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := newChannel(t, observer)
			wantCode(t, tc.do(t, ch), amqp.PreconditionFailed)
			stillUsable(t, observer)
		})
	}
}
