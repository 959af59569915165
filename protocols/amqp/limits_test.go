package amqp

import (
	"errors"
	"strings"
	"testing"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// TestConnLimitRefusal: a connection the transport accepted beyond its
// limit is refused at connection.open with RabbitMQ's answer for a vhost
// connection limit, and closed.
func TestConnLimitRefusal(t *testing.T) {
	h := newHarness(t, Config{})
	h.c.SetRefusal(&protocols.ConnLimitError{Limit: 3})
	h.send([]byte(frame.ProtocolHeader))
	expect[*frame.ConnectionStart](h, 0)
	h.method(0, &frame.ConnectionStartOk{Mechanism: "PLAIN", Response: plain("guest", "guest"), Locale: "en_US"})
	expect[*frame.ConnectionTune](h, 0)
	h.method(0, &frame.ConnectionTuneOk{ChannelMax: 100, FrameMax: 131072})
	h.method(0, &frame.ConnectionOpen{VirtualHost: "/"})
	cl := expect[*frame.ConnectionClose](h, 0)
	want := "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (3) is reached"
	if cl.ReplyCode != frame.NotAllowed || cl.ReplyText != want ||
		cl.ClassID != frame.ClassConnection || cl.MethodID != frame.MethodConnectionOpen {
		t.Fatalf("connection.close %d %q %d.%d, want 530 %q on connection.open", cl.ReplyCode, cl.ReplyText, cl.ClassID, cl.MethodID, want)
	}
	if !h.c.IsClosed() || !errors.Is(h.c.CloseErr(), protocols.ErrConnLimit) {
		t.Fatalf("closed %v with %v, want closed with ErrConnLimit", h.c.IsClosed(), h.c.CloseErr())
	}
	if h.s.vhost != nil {
		t.Fatal("a refused connection opened its vhost")
	}
	h.method(1, &frame.ChannelOpen{})
	h.quiet()
}

// TestChannelMaxCount: the negotiated channel_max bounds the channels open
// at once, refused with RabbitMQ's words; a closed channel frees its place.
func TestChannelMaxCount(t *testing.T) {
	h := newHarness(t, Config{})
	h.send([]byte(frame.ProtocolHeader))
	expect[*frame.ConnectionStart](h, 0)
	h.method(0, &frame.ConnectionStartOk{Mechanism: "PLAIN", Response: plain("guest", "guest"), Locale: "en_US"})
	expect[*frame.ConnectionTune](h, 0)
	h.method(0, &frame.ConnectionTuneOk{ChannelMax: 3, FrameMax: 131072})
	h.method(0, &frame.ConnectionOpen{VirtualHost: "/"})
	expect[*frame.ConnectionOpenOk](h, 0)
	for ch := uint16(1); ch <= 3; ch++ {
		h.openChannel(ch)
	}
	h.method(2, &frame.ChannelClose{ReplyCode: 200})
	expect[*frame.ChannelCloseOk](h, 2)
	h.openChannel(2)
	h.method(4, &frame.ChannelOpen{})
	cl := h.expectConnClose(frame.NotAllowed, "")
	if want := "NOT_ALLOWED - number of channels opened (3) has reached the negotiated channel_max (3)"; cl.ReplyText != want {
		t.Fatalf("reply-text %q, want %q", cl.ReplyText, want)
	}
	if cl.ClassID != frame.ClassChannel || cl.MethodID != frame.MethodChannelOpen {
		t.Fatalf("failing method %d.%d, want channel.open", cl.ClassID, cl.MethodID)
	}
}

// TestSlowConsumerFail: the transport's slow-consumer close is AMQP's
// connection.close 320 CONNECTION_FORCED.
func TestSlowConsumerFail(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.out = append(h.out, h.s.Fail(protocols.ErrSlowConsumer)...)
	h.parse()
	h.expectConnClose(frame.ConnectionForced, "CONNECTION_FORCED - slow consumer")
}

// TestQueueLimit: a queue.declare beyond the vhost's queue limit closes the
// channel with 406 and RabbitMQ's text; redeclaring goes on working.
func TestQueueLimit(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	rt, err := router.New(router.Config{Store: st, MaxQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	h := openHarness(t, New(Config{Router: rt}), st)
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q1"})
	expect[*frame.QueueDeclareOk](h, 1)
	for _, q := range []*frame.QueueDeclare{
		{Queue: "q2", Durable: true},
		{Exclusive: true, AutoDelete: true}, // server-named
	} {
		h.method(1, q)
		cl := expect[*frame.ChannelClose](h, 1)
		if cl.ReplyCode != frame.PreconditionFailed || cl.ClassID != frame.ClassQueue || cl.MethodID != frame.MethodQueueDeclare ||
			!strings.HasPrefix(cl.ReplyText, "PRECONDITION_FAILED - cannot declare queue '") ||
			!strings.HasSuffix(cl.ReplyText, "': queue limit in vhost '/' (1) is reached") {
			t.Fatalf("channel.close %d %q %d.%d", cl.ReplyCode, cl.ReplyText, cl.ClassID, cl.MethodID)
		}
		h.method(1, &frame.ChannelCloseOk{})
		h.openChannel(1)
	}
	h.method(1, &frame.QueueDeclare{Queue: "q1"})
	expect[*frame.QueueDeclareOk](h, 1)
	if h.c.IsClosed() {
		t.Fatal("a queue limit closed the connection")
	}
}
