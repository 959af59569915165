package amqp

import (
	"strings"
	"testing"
	"time"

	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
)

func (h *harness) expectChanClose(ch uint16, code uint16, text string) {
	h.t.Helper()
	m := expect[*frame.ChannelClose](h, ch)
	if m.ReplyCode != code || !strings.Contains(m.ReplyText, text) {
		h.t.Fatalf("channel.close %d %q, want %d containing %q", m.ReplyCode, m.ReplyText, code, text)
	}
	h.method(ch, &frame.ChannelCloseOk{})
}

func (h *harness) getBody(ch uint16, q string, noAck bool) (string, uint64, bool) {
	h.t.Helper()
	h.method(ch, &frame.BasicGet{Queue: q, NoAck: noAck})
	r := h.next()
	switch m := r.m.(type) {
	case *frame.BasicGetEmpty:
		return "", 0, false
	case *frame.BasicGetOk:
		return string(r.body), m.DeliveryTag, true
	}
	h.t.Fatalf("got %s, want basic.get-ok or get-empty", name(r))
	return "", 0, false
}

func TestTransactions(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "d", Durable: true})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.TxCommit{})
	h.expectChanClose(1, frame.PreconditionFailed, "channel is not transactional")

	h.openChannel(1)
	h.method(1, &frame.TxSelect{})
	expect[*frame.TxSelectOk](h, 1)
	persistent := &frame.Properties{Flags: frame.FlagDeliveryMode, DeliveryMode: 2}
	h.publish(1, &frame.BasicPublish{RoutingKey: "d"}, persistent, []byte("one"))
	h.publish(1, &frame.BasicPublish{RoutingKey: "nowhere", Mandatory: true}, nil, []byte("lost"))
	h.openChannel(2)
	if b, _, ok := h.getBody(2, "d", true); ok {
		t.Fatalf("uncommitted publish visible: %q", b)
	}
	// commit-ok waits for the disk; the mandatory return comes first.
	h.store.Hold()
	h.method(1, &frame.TxCommit{})
	if r := expect[*frame.BasicReturn](h, 1); r.ReplyCode != frame.NoRoute {
		t.Fatalf("return %+v", r)
	}
	h.quiet()
	h.store.Release()
	expect[*frame.TxCommitOk](h, 1)
	if b, _, ok := h.getBody(2, "d", true); !ok || b != "one" {
		t.Fatalf("after commit got %q %v", b, ok)
	}

	// A rolled-back publish never arrives.
	h.publish(1, &frame.BasicPublish{RoutingKey: "d"}, nil, []byte("two"))
	h.method(1, &frame.TxRollback{})
	expect[*frame.TxRollbackOk](h, 1)
	h.method(1, &frame.TxCommit{})
	expect[*frame.TxCommitOk](h, 1)
	if b, _, ok := h.getBody(2, "d", true); ok {
		t.Fatalf("rolled-back publish arrived: %q", b)
	}

	// Acks: rolled back, the message stays unacknowledged; committed, gone.
	h.publish(2, &frame.BasicPublish{RoutingKey: "d"}, nil, []byte("three"))
	_, tag, ok := h.getBody(1, "d", false)
	if !ok {
		t.Fatal("nothing to get")
	}
	h.method(1, &frame.BasicAck{DeliveryTag: tag})
	h.method(1, &frame.TxRollback{})
	expect[*frame.TxRollbackOk](h, 1)
	q := h.rt.VHost("/").Queue("d")
	if q.Unacked() != 1 {
		t.Fatalf("after rollback %d unacked, want 1", q.Unacked())
	}
	h.method(1, &frame.BasicAck{DeliveryTag: tag})
	h.method(1, &frame.TxCommit{})
	expect[*frame.TxCommitOk](h, 1)
	if n, _ := q.Counts(); q.Unacked() != 0 || n != 0 {
		t.Fatalf("after commit %d unacked, %d ready", q.Unacked(), n)
	}
	h.method(1, &frame.ConfirmSelect{})
	h.expectChanClose(1, frame.PreconditionFailed, "cannot switch from tx to confirm mode")
	h.method(2, &frame.ConfirmSelect{})
	expect[*frame.ConfirmSelectOk](h, 2)
	h.method(2, &frame.TxSelect{})
	h.expectChanClose(2, frame.PreconditionFailed, "cannot switch from confirm to tx mode")
}

func TestDirectReplyTo(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	req := func(body string) {
		h.publish(1, &frame.BasicPublish{RoutingKey: "svc"}, &frame.Properties{Flags: frame.FlagReplyTo, ReplyTo: "amq.rabbitmq.reply-to"}, []byte(body))
	}
	req("too early")
	h.expectChanClose(1, frame.PreconditionFailed, "fast reply consumer does not exist")
	h.openChannel(1)
	h.method(1, &frame.BasicConsume{Queue: "amq.rabbitmq.reply-to"})
	h.expectChanClose(1, frame.PreconditionFailed, "reply consumer cannot acknowledge")

	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "svc"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.QueueDeclare{Queue: "amq.rabbitmq.reply-to", Passive: true})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.BasicConsume{Queue: "amq.rabbitmq.reply-to", ConsumerTag: "replies", NoAck: true})
	expect[*frame.BasicConsumeOk](h, 1)
	req("ping")

	// The service, on another connection, answers to the rewritten reply-to.
	svc := openHarness(t, h.a, h.store)
	svc.handshake(0)
	svc.openChannel(1)
	svc.method(1, &frame.BasicGet{Queue: "svc", NoAck: true})
	_, r := expectContent[*frame.BasicGetOk](svc, 1)
	to := r.props.ReplyTo
	if !strings.HasPrefix(to, router.ReplyQueuePrefix) {
		t.Fatalf("reply-to %q not rewritten", to)
	}
	svc.method(1, &frame.QueueDeclare{Queue: to, Passive: true})
	expect[*frame.QueueDeclareOk](svc, 1)
	svc.publish(1, &frame.BasicPublish{RoutingKey: to}, nil, []byte("pong"))
	d, dr := expectContent[*frame.BasicDeliver](h, 1)
	if d.ConsumerTag != "replies" || string(dr.body) != "pong" {
		t.Fatalf("reply %+v %q", d, dr.body)
	}
	// Once the requester cancels, the reply address is gone.
	h.method(1, &frame.BasicCancel{ConsumerTag: "replies"})
	expect[*frame.BasicCancelOk](h, 1)
	svc.method(1, &frame.QueueDeclare{Queue: to, Passive: true})
	svc.expectChanClose(1, frame.NotFound, "no queue")
}

func TestBlockedUnderAlarm(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, []byte("before"))

	h.rt.SetAlarm(router.AlarmDisk, true)
	if b := expect[*frame.ConnectionBlocked](h, 0); b.Reason != "low on disk" {
		t.Fatalf("blocked reason %q", b.Reason)
	}
	h.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, []byte("held"))
	h.quiet()
	if n, _ := h.rt.VHost("/").Queue("q").Counts(); n != 1 {
		t.Fatalf("%d messages in the queue while blocked, want 1", n)
	}
	// The client's heartbeats wait behind the publish too: no missed-
	// heartbeat close while blocked.
	if h.s.heartbeat = time.Second; h.s.Tick(time.Unix(0, 0)) != nil || h.s.Tick(time.Unix(10, 0)) != nil {
		t.Fatal("a blocked connection timed out on heartbeats")
	}
	h.s.heartbeat = 0
	h.pump()
	for len(h.got) > 0 && h.got[0].m == nil {
		h.got = h.got[1:] // our heartbeats
	}
	// Consumers on other connections go on draining (everything this
	// client sent after the held publish waits behind it, as in RabbitMQ,
	// which stops reading the socket).
	other := openHarness(t, h.a, h.store)
	other.handshake(0)
	other.openChannel(1)
	other.method(1, &frame.BasicGet{Queue: "q", NoAck: true})
	expectContent[*frame.BasicGetOk](other, 1)

	h.rt.SetAlarm(router.AlarmDisk, false)
	expect[*frame.ConnectionUnblocked](h, 0)
	h.pump() // the transport offers the held input again after the wake
	if n, _ := h.rt.VHost("/").Queue("q").Counts(); n != 1 {
		t.Fatalf("%d messages in the queue after unblocking, want the held one", n)
	}
	// A connection that never published is told only when it does.
	quiet := openHarness(t, h.a, h.store)
	quiet.handshake(0)
	quiet.openChannel(1)
	h.rt.SetAlarm(router.AlarmMemory, true)
	expect[*frame.ConnectionBlocked](h, 0)
	quiet.quiet()
	quiet.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, []byte("x"))
	if b := expect[*frame.ConnectionBlocked](quiet, 0); b.Reason != "low on memory" {
		t.Fatalf("blocked reason %q", b.Reason)
	}
	h.rt.SetAlarm(router.AlarmMemory, false)
}

func TestUpdateSecret(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.method(0, &frame.ConnectionUpdateSecret{NewSecret: "guest", Reason: "rotation"})
	expect[*frame.ConnectionUpdateSecretOk](h, 0)
	h.method(0, &frame.ConnectionUpdateSecret{NewSecret: "wrong", Reason: "rotation"})
	h.expectConnClose(frame.NotAllowed, "New secret was refused")
}

// A client closing a channel the server is closing still owes, and sends,
// close-ok for the server's close; frames it sent meanwhile and that
// close-ok must not reach an unknown channel (amqp091-go's Issue43 test).
func TestSimultaneousChannelClose(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.openChannel(2)
	h.publish(1, &frame.BasicPublish{Exchange: "missing"}, nil, []byte("x"))
	h.method(1, &frame.ChannelClose{ReplyCode: 200})
	if c := expect[*frame.ChannelClose](h, 1); c.ReplyCode != frame.NotFound {
		t.Fatalf("close %+v", c)
	}
	expect[*frame.ChannelCloseOk](h, 1)
	h.method(1, &frame.BasicAck{DeliveryTag: 1}) // in flight before the client saw our close
	h.method(1, &frame.ChannelCloseOk{})
	h.method(2, &frame.ExchangeDeclare{Exchange: "x", Type: "direct"})
	expect[*frame.ExchangeDeclareOk](h, 2)
	h.openChannel(1)
}

// TestTxBytesPerConnection: Config.MaxTxBytes bounds the uncommitted
// publishes of all the connection's transactions together, empty messages
// included; what a transaction held is given back when it commits, rolls
// back or its channel closes.
func TestTxBytesPerConnection(t *testing.T) {
	h := newHarness(t, Config{MaxTxBytes: 10 << 10})
	h.handshake(0)
	for ch := uint16(1); ch <= 3; ch++ {
		h.openChannel(ch)
		h.method(ch, &frame.TxSelect{})
		expect[*frame.TxSelectOk](h, ch)
	}
	body := make([]byte, 4<<10)
	h.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, body)
	h.publish(2, &frame.BasicPublish{RoutingKey: "q"}, nil, body)
	h.quiet()
	// 8 KiB held: a third 4 KiB on another channel is over the bound.
	h.publish(3, &frame.BasicPublish{RoutingKey: "q"}, nil, body)
	h.expectChanClose(3, frame.PreconditionFailed, "at most 10 KiB of uncommitted messages")
	// Rolling back channel 2 makes room.
	h.method(2, &frame.TxRollback{})
	expect[*frame.TxRollbackOk](h, 2)
	h.publish(2, &frame.BasicPublish{RoutingKey: "q"}, nil, body)
	h.quiet()
	// Empty messages count too.
	for range (2 << 10) / txPubOverhead {
		h.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, nil)
	}
	h.expectChanClose(1, frame.PreconditionFailed, "uncommitted messages")
	// Channel 1's close gave its share back: 4 KiB fit again.
	h.publish(2, &frame.BasicPublish{RoutingKey: "q"}, nil, body)
	h.quiet()
	if h.s.txBytes > 10<<10 {
		t.Fatalf("%d bytes held, bound %d", h.s.txBytes, 10<<10)
	}
}
