package amqp

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/protocols/protocolstest"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// recv is one thing the server sent: a method (with its content) or a
// heartbeat (m == nil).
type recv struct {
	ch    uint16
	m     frame.Method
	props frame.Properties
	body  []byte
}

// harness drives one session from the test goroutine, as the transport's
// loop would.
type harness struct {
	t       testing.TB
	store   *memstore.Store
	rt      *router.Router
	a       *Adapter
	c       *protocolstest.Conn
	s       *session
	pending []byte // input the session has not taken yet
	out     []byte // output not parsed yet
	got     []recv
	feedErr error
}

var connIDs = struct {
	sync.Mutex
	n uint64
}{}

func newRouter(t testing.TB) (*router.Router, *memstore.Store) {
	t.Helper()
	st := memstore.New()
	rt, err := router.New(router.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return rt, st
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	rt, st := newRouter(t)
	cfg.Router = rt
	return openHarness(t, New(cfg), st)
}

func openHarness(t testing.TB, a *Adapter, st *memstore.Store) *harness {
	connIDs.Lock()
	connIDs.n++
	id := connIDs.n
	connIDs.Unlock()
	c := protocolstest.NewConn(id, "127.0.0.1:40000", "127.0.0.1:5672")
	h := &harness{t: t, store: st, rt: a.cfg.Router, a: a, c: c}
	h.s = a.Open(c).(*session)
	t.Cleanup(func() { h.s.Closed(nil) })
	return h
}

// send gives the session client bytes and collects what it answers.
func (h *harness) send(b []byte) {
	h.t.Helper()
	h.pending = append(h.pending, b...)
	h.pump()
}

func (h *harness) pump() {
	h.t.Helper()
	if len(h.pending) > 0 && h.feedErr == nil {
		n, err := h.s.Feed(h.pending)
		if n < 0 || n > len(h.pending) {
			h.t.Fatalf("Feed consumed %d of %d", n, len(h.pending))
		}
		h.pending = h.pending[n:]
		if err != nil {
			h.feedErr = err
		}
	}
	for {
		vec := h.s.Output(nil)
		if len(vec) == 0 {
			break
		}
		for _, b := range vec {
			h.out = append(h.out, b...)
		}
	}
	if h.feedErr != nil {
		h.out = append(h.out, h.s.Fail(h.feedErr)...)
	}
	h.parse()
}

func (h *harness) parse() {
	h.t.Helper()
	for {
		f, n, err := frame.ParseFrame(h.out, 0)
		if err != nil {
			h.t.Fatalf("server sent a bad frame: %v", err)
		}
		if n == 0 {
			return
		}
		// Content frames complete the last method.
		switch f.Type {
		case frame.FrameHeartbeat:
			h.got = append(h.got, recv{})
		case frame.FrameMethod:
			m, err := frame.DecodeMethod(f.Payload)
			if err != nil {
				h.t.Fatalf("server sent a bad method: %v", err)
			}
			h.got = append(h.got, recv{ch: f.Channel, m: m})
		case frame.FrameHeader:
			ch, err := frame.ParseContentHeader(f.Payload)
			if err != nil {
				h.t.Fatal(err)
			}
			r := &h.got[len(h.got)-1]
			if err := r.props.Decode(ch.RawProperties); err != nil {
				h.t.Fatal(err)
			}
			r.body = []byte{}
		case frame.FrameBody:
			r := &h.got[len(h.got)-1]
			r.body = append(r.body, f.Payload...)
		}
		h.out = h.out[n:]
	}
}

// next returns the next thing the server sent, waiting for wakes from
// storage goroutines up to a deadline.
func (h *harness) next() recv {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for len(h.got) == 0 {
		h.pump()
		if len(h.got) > 0 {
			break
		}
		select {
		case <-h.c.Woken():
		case <-deadline:
			h.t.Fatal("timed out waiting for the server")
		}
	}
	r := h.got[0]
	h.got = h.got[1:]
	// A method with content: make sure all of it arrived.
	if r.m != nil && r.m.HasContent() && r.body == nil {
		h.t.Fatalf("%s without content", r.m.Name())
	}
	return r
}

// quiet asserts the server has nothing more to say.
func (h *harness) quiet() {
	h.t.Helper()
	h.pump()
	if len(h.got) > 0 {
		h.t.Fatalf("unexpected %s on channel %d", name(h.got[0]), h.got[0].ch)
	}
}

func name(r recv) string {
	if r.m == nil {
		return "heartbeat"
	}
	return r.m.Name()
}

func expect[M frame.Method](h *harness, ch uint16) M {
	h.t.Helper()
	r := h.next()
	m, ok := r.m.(M)
	if !ok || r.ch != ch {
		var want M
		h.t.Fatalf("got %s on channel %d, want %T on channel %d (%+v)", name(r), r.ch, want, ch, r.m)
	}
	return m
}

func expectContent[M frame.Method](h *harness, ch uint16) (M, recv) {
	h.t.Helper()
	r := h.next()
	m, ok := r.m.(M)
	if !ok || r.ch != ch {
		var want M
		h.t.Fatalf("got %s on channel %d, want %T on channel %d (%+v)", name(r), r.ch, want, ch, r.m)
	}
	return m, r
}

func (h *harness) method(ch uint16, m frame.Method) {
	h.t.Helper()
	h.send(frame.AppendMethodFrame(nil, ch, m))
}

func (h *harness) publish(ch uint16, p *frame.BasicPublish, props *frame.Properties, body []byte) {
	h.t.Helper()
	b := frame.AppendMethodFrame(nil, ch, p)
	b = frame.AppendContent(b, ch, frame.ClassBasic, props, body, 4096)
	h.send(b)
}

func plain(user, pass string) string { return "\x00" + user + "\x00" + pass }

// handshake opens the connection as guest with heartbeat hb (seconds).
func (h *harness) handshake(hb uint16) {
	h.t.Helper()
	h.send([]byte(frame.ProtocolHeader))
	expect[*frame.ConnectionStart](h, 0)
	h.method(0, &frame.ConnectionStartOk{Mechanism: "PLAIN", Response: plain("guest", "guest"), Locale: "en_US",
		ClientProperties: frame.Table{{Key: "capabilities", Value: frame.Table{
			{Key: "consumer_cancel_notify", Value: true}, {Key: "connection.blocked", Value: true}}}}})
	expect[*frame.ConnectionTune](h, 0)
	h.method(0, &frame.ConnectionTuneOk{ChannelMax: 100, FrameMax: 131072, Heartbeat: hb})
	h.method(0, &frame.ConnectionOpen{VirtualHost: "/"})
	expect[*frame.ConnectionOpenOk](h, 0)
}

func (h *harness) openChannel(ch uint16) {
	h.t.Helper()
	h.method(ch, &frame.ChannelOpen{})
	expect[*frame.ChannelOpenOk](h, ch)
}

func (h *harness) expectConnClose(code uint16, text string) *frame.ConnectionClose {
	h.t.Helper()
	m := expect[*frame.ConnectionClose](h, 0)
	if m.ReplyCode != code || !strings.Contains(m.ReplyText, text) {
		h.t.Fatalf("connection.close %d %q, want %d containing %q", m.ReplyCode, m.ReplyText, code, text)
	}
	return m
}

func TestHandshake(t *testing.T) {
	h := newHarness(t, Config{})
	h.send([]byte("AMQP"))
	h.quiet()
	h.send([]byte("\x00\x00\x09\x01"))
	start := expect[*frame.ConnectionStart](h, 0)
	if start.VersionMajor != 0 || start.VersionMinor != 9 || start.Mechanisms != "PLAIN AMQPLAIN" || start.Locales != "en_US" {
		t.Fatalf("start %+v", start)
	}
	if p, _ := start.ServerProperties.Get("product"); p != "Junction" {
		t.Fatalf("product %v", p)
	}
	caps, _ := start.ServerProperties.Get("capabilities")
	for _, c := range []string{"publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
		"connection.blocked", "authentication_failure_close", "per_consumer_qos", "direct_reply_to"} {
		if v, _ := caps.(frame.Table).Get(c); v != true {
			t.Errorf("capability %s = %v", c, v)
		}
	}
	// AMQPLAIN: a table without its length prefix.
	resp := frame.AppendTable(nil, frame.Table{{Key: "LOGIN", Value: "guest"}, {Key: "PASSWORD", Value: "guest"}})[4:]
	h.method(0, &frame.ConnectionStartOk{Mechanism: "AMQPLAIN", Response: string(resp), Locale: "en_US"})
	tune := expect[*frame.ConnectionTune](h, 0)
	if tune.ChannelMax != DefaultChannelMax || tune.FrameMax != DefaultFrameMax || tune.Heartbeat != 60 {
		t.Fatalf("tune %+v", tune)
	}
	h.method(0, &frame.ConnectionTuneOk{ChannelMax: 0, FrameMax: 8192, Heartbeat: 0})
	h.method(0, &frame.ConnectionOpen{VirtualHost: "/"})
	expect[*frame.ConnectionOpenOk](h, 0)
	if h.s.frameMax != 8192 || h.s.channelMax != DefaultChannelMax || h.s.heartbeat != 0 {
		t.Fatalf("negotiated %d %d %v", h.s.frameMax, h.s.channelMax, h.s.heartbeat)
	}
	h.openChannel(1)
	h.method(0, &frame.ConnectionClose{ReplyCode: 200, ReplyText: "bye"})
	expect[*frame.ConnectionCloseOk](h, 0)
	// The client initiated the close: it hangs up once it has close-ok.
	// Frames it was still flushing are discarded, not answered, and the
	// socket stays open for it to close (amqplib writes frames queued
	// behind its close).
	if h.c.IsClosed() {
		t.Fatal("server closed the socket before the client could")
	}
	h.method(1, &frame.BasicAck{DeliveryTag: 1})
	h.quiet()
	now := time.Now()
	if err := h.s.Tick(now); err != nil {
		t.Fatal(err)
	}
	if err := h.s.Tick(now.Add(lingerTimeout + time.Second)); err != nil {
		t.Fatal(err)
	}
	if !h.c.IsClosed() {
		t.Fatal("connection not closed after the linger deadline")
	}
}

func TestWrongProtocolHeader(t *testing.T) {
	h := newHarness(t, Config{})
	n, err := h.s.Feed([]byte("AMQP\x01\x01\x00\x0a"))
	if err == nil || n > 8 {
		t.Fatalf("Feed %d %v", n, err)
	}
	if got := h.s.Fail(err); !bytes.Equal(got, []byte(frame.ProtocolHeader)) {
		t.Fatalf("Fail %q", got)
	}
}

func TestAuthFailure(t *testing.T) {
	refused := func(mech string) string {
		return "ACCESS_REFUSED - Login was refused using authentication mechanism " + mech
	}
	for _, tc := range []struct {
		name, mech, resp string
		code             uint16
		text             string
	}{
		{"wrong password", "PLAIN", plain("guest", "nope"), frame.AccessRefused, refused("PLAIN")},
		{"unknown user", "PLAIN", plain("bob", "guest"), frame.AccessRefused, refused("PLAIN")},
		{"malformed", "PLAIN", "guest", frame.SyntaxError, "SYNTAX_ERROR - the PLAIN response"},
		{"malformed AMQPLAIN", "AMQPLAIN", "\x05LOGIN", frame.SyntaxError, "SYNTAX_ERROR - the AMQPLAIN response"},
		{"unknown mechanism", "EXTERNAL", "", frame.CommandInvalid, "COMMAND_INVALID - unknown authentication mechanism 'EXTERNAL'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.send([]byte(frame.ProtocolHeader))
			expect[*frame.ConnectionStart](h, 0)
			h.method(0, &frame.ConnectionStartOk{Mechanism: tc.mech, Response: tc.resp})
			h.expectConnClose(tc.code, tc.text)
			if !h.c.IsClosed() {
				t.Fatal("connection not closed")
			}
		})
	}
}

func TestGuestOnlyFromLoopback(t *testing.T) {
	rt, st := newRouter(t)
	h := openHarness(t, New(Config{Router: rt}), st)
	h.c.SetRemote("192.0.2.7:5000")
	h.send([]byte(frame.ProtocolHeader))
	expect[*frame.ConnectionStart](h, 0)
	h.method(0, &frame.ConnectionStartOk{Mechanism: "PLAIN", Response: plain("guest", "guest")})
	h.expectConnClose(frame.AccessRefused, "Login was refused")
}

func TestOpenVHost(t *testing.T) {
	h := newHarness(t, Config{})
	h.send([]byte(frame.ProtocolHeader))
	expect[*frame.ConnectionStart](h, 0)
	h.method(0, &frame.ConnectionStartOk{Mechanism: "PLAIN", Response: plain("guest", "guest")})
	expect[*frame.ConnectionTune](h, 0)
	h.method(0, &frame.ConnectionTuneOk{FrameMax: 131072})
	h.method(0, &frame.ConnectionOpen{VirtualHost: "nope"})
	h.expectConnClose(frame.NotAllowed, "NOT_ALLOWED - vhost nope not found")
}

func TestDeclarePublishConsumeAck(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	if ok := expect[*frame.QueueDeclareOk](h, 1); ok.Queue != "q" || ok.MessageCount != 0 {
		t.Fatalf("declare-ok %+v", ok)
	}
	h.method(1, &frame.ExchangeDeclare{Exchange: "x", Type: "topic"})
	expect[*frame.ExchangeDeclareOk](h, 1)
	h.method(1, &frame.QueueBind{Queue: "q", Exchange: "x", RoutingKey: "a.*"})
	expect[*frame.QueueBindOk](h, 1)

	ts := time.Unix(1700000000, 0).UTC()
	props := frame.Properties{
		Flags: frame.FlagContentType | frame.FlagHeaders | frame.FlagDeliveryMode | frame.FlagTimestamp |
			frame.FlagMessageID | frame.FlagCorrelationID,
		ContentType: "text/plain", DeliveryMode: 1, Timestamp: ts, MessageID: "m1", CorrelationID: "",
		Headers: frame.Table{{Key: "k", Value: "v"}, {Key: "n", Value: int32(7)}, {Key: "nested", Value: frame.Table{{Key: "x", Value: int64(1)}}}},
	}
	big := bytes.Repeat([]byte("z"), 10000) // several body frames, sent by reference
	h.publish(1, &frame.BasicPublish{Exchange: "x", RoutingKey: "a.b"}, &props, []byte("hello"))
	h.publish(1, &frame.BasicPublish{Exchange: "x", RoutingKey: "a.c"}, &props, big)
	h.quiet()
	if n, _ := h.rt.VHost("/").Queue("q").Counts(); n != 2 {
		t.Fatalf("queue holds %d", n)
	}
	h.method(1, &frame.QueueDeclare{Queue: "q", Passive: true})
	if ok := expect[*frame.QueueDeclareOk](h, 1); ok.MessageCount != 2 {
		t.Fatalf("passive declare-ok %+v", ok)
	}

	h.method(1, &frame.BasicConsume{Queue: "q", ConsumerTag: "c1"})
	expect[*frame.BasicConsumeOk](h, 1)
	d, r := expectContent[*frame.BasicDeliver](h, 1)
	if d.ConsumerTag != "c1" || d.DeliveryTag != 1 || d.Exchange != "x" || d.RoutingKey != "a.b" || d.Redelivered || string(r.body) != "hello" {
		t.Fatalf("deliver %+v %q", d, r.body)
	}
	if r.props.Flags != props.Flags || r.props.ContentType != "text/plain" || !r.props.Timestamp.Equal(ts) || r.props.MessageID != "m1" {
		t.Fatalf("props %+v", r.props)
	}
	if v, _ := r.props.Headers.Get("n"); v != int32(7) {
		t.Fatalf("headers %+v", r.props.Headers)
	}
	if v, _ := r.props.Headers.Get("nested"); v.(frame.Table)[0].Value != int64(1) {
		t.Fatalf("nested %+v", v)
	}
	d2, r2 := expectContent[*frame.BasicDeliver](h, 1)
	if d2.DeliveryTag != 2 || !bytes.Equal(r2.body, big) {
		t.Fatalf("second deliver %+v, %d bytes", d2, len(r2.body))
	}
	h.method(1, &frame.BasicAck{DeliveryTag: 2, Multiple: true})
	h.quiet()
	if n := h.rt.VHost("/").Queue("q").Unacked(); n != 0 {
		t.Fatalf("%d unacked after ack", n)
	}
	// An unknown tag is a soft error.
	h.method(1, &frame.BasicAck{DeliveryTag: 9})
	cl := expect[*frame.ChannelClose](h, 1)
	if cl.ReplyCode != frame.PreconditionFailed || cl.ReplyText != "PRECONDITION_FAILED - unknown delivery tag 9" ||
		cl.ClassID != frame.ClassBasic || cl.MethodID != frame.MethodBasicAck {
		t.Fatalf("channel.close %+v", cl)
	}
}

func TestGetNackRequeue(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: ""})
	ok := expect[*frame.QueueDeclareOk](h, 1)
	if !strings.HasPrefix(ok.Queue, "amq.gen-") {
		t.Fatalf("server-named queue %q", ok.Queue)
	}
	h.method(1, &frame.BasicGet{})
	expect[*frame.BasicGetEmpty](h, 1)
	h.publish(1, &frame.BasicPublish{RoutingKey: ok.Queue}, nil, []byte("m"))
	h.method(1, &frame.BasicGet{Queue: ok.Queue})
	g, r := expectContent[*frame.BasicGetOk](h, 1)
	if g.Redelivered || string(r.body) != "m" || g.MessageCount != 0 {
		t.Fatalf("get-ok %+v", g)
	}
	h.method(1, &frame.BasicNack{DeliveryTag: g.DeliveryTag, Requeue: true})
	h.method(1, &frame.BasicGet{Queue: ok.Queue})
	g, _ = expectContent[*frame.BasicGetOk](h, 1)
	if !g.Redelivered {
		t.Fatal("requeued message not marked redelivered")
	}
	h.method(1, &frame.BasicReject{DeliveryTag: g.DeliveryTag, Requeue: false})
	h.method(1, &frame.QueuePurge{Queue: ok.Queue})
	if p := expect[*frame.QueuePurgeOk](h, 1); p.MessageCount != 0 {
		t.Fatalf("purge-ok %+v", p)
	}
	h.method(1, &frame.QueueDelete{Queue: ok.Queue})
	expect[*frame.QueueDeleteOk](h, 1)
}

func TestConfirms(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "d", Durable: true})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.QueueDeclare{Queue: "full", Arguments: frame.Table{
		{Key: "x-max-length", Value: int32(1)}, {Key: "x-overflow", Value: "reject-publish"}}})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.ConfirmSelect{})
	expect[*frame.ConfirmSelectOk](h, 1)

	persistent := &frame.Properties{Flags: frame.FlagDeliveryMode, DeliveryMode: 2}
	h.store.Hold()
	for range 3 {
		h.publish(1, &frame.BasicPublish{RoutingKey: "d"}, persistent, []byte("p"))
	}
	h.quiet() // nothing is confirmed before the commit
	h.store.Release()
	var acked uint64
	for acked < 3 {
		a := expect[*frame.BasicAck](h, 1)
		if a.DeliveryTag <= acked || (a.DeliveryTag-acked > 1) != a.Multiple {
			t.Fatalf("ack %+v after %d", a, acked)
		}
		acked = a.DeliveryTag
	}
	h.publish(1, &frame.BasicPublish{RoutingKey: "full"}, nil, []byte("1"))
	if a := expect[*frame.BasicAck](h, 1); a.DeliveryTag != 4 || a.Multiple {
		t.Fatalf("ack %+v", a)
	}
	h.publish(1, &frame.BasicPublish{RoutingKey: "full"}, nil, []byte("2"))
	if n := expect[*frame.BasicNack](h, 1); n.DeliveryTag != 5 || n.Multiple {
		t.Fatalf("nack %+v", n)
	}
	// A storage failure nacks.
	h.store.Fail(errors.New("disk on fire"))
	h.publish(1, &frame.BasicPublish{RoutingKey: "d"}, persistent, []byte("p"))
	if n := expect[*frame.BasicNack](h, 1); n.DeliveryTag != 6 {
		t.Fatalf("nack %+v", n)
	}
}

func TestDurableDeclareRepliesAfterCommit(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.store.Hold()
	h.method(1, &frame.QueueDeclare{Queue: "dq", Durable: true})
	h.method(1, &frame.QueueDeclare{Queue: "tq"}) // held back behind the first
	h.quiet()
	h.store.Release()
	if ok := expect[*frame.QueueDeclareOk](h, 1); ok.Queue != "dq" {
		t.Fatalf("first reply %+v", ok)
	}
	if ok := expect[*frame.QueueDeclareOk](h, 1); ok.Queue != "tq" {
		t.Fatalf("second reply %+v", ok)
	}
}

func TestMandatoryReturn(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.ConfirmSelect{})
	expect[*frame.ConfirmSelectOk](h, 1)
	props := &frame.Properties{Flags: frame.FlagMessageID, MessageID: "lost"}
	h.publish(1, &frame.BasicPublish{Exchange: "amq.direct", RoutingKey: "nowhere", Mandatory: true}, props, []byte("body"))
	ret, r := expectContent[*frame.BasicReturn](h, 1)
	if ret.ReplyCode != frame.NoRoute || ret.ReplyText != "NO_ROUTE" || ret.Exchange != "amq.direct" || ret.RoutingKey != "nowhere" ||
		string(r.body) != "body" || r.props.MessageID != "lost" {
		t.Fatalf("return %+v %+v", ret, r)
	}
	expect[*frame.BasicAck](h, 1) // after the return, as RabbitMQ
	// Without mandatory the message is dropped silently.
	h.publish(1, &frame.BasicPublish{Exchange: "amq.direct", RoutingKey: "nowhere"}, props, []byte("body"))
	expect[*frame.BasicAck](h, 1)
}

func TestSoftErrorClosesOnlyTheChannel(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.openChannel(2)
	h.method(1, &frame.QueueDeclare{Queue: "missing", Passive: true})
	cl := expect[*frame.ChannelClose](h, 1)
	if cl.ReplyCode != frame.NotFound || cl.ReplyText != "NOT_FOUND - no queue 'missing' in vhost '/'" ||
		cl.ClassID != frame.ClassQueue || cl.MethodID != frame.MethodQueueDeclare {
		t.Fatalf("channel.close %+v", cl)
	}
	// Frames on the closing channel are discarded until close-ok.
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	h.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, []byte("x"))
	h.quiet()
	h.method(1, &frame.ChannelCloseOk{})
	h.method(2, &frame.QueueDeclare{Queue: "q2"})
	expect[*frame.QueueDeclareOk](h, 2)
	h.openChannel(1)
	// Publishing to a missing exchange, a message too large: soft errors.
	h.publish(1, &frame.BasicPublish{Exchange: "nope"}, nil, []byte("x"))
	if cl := expect[*frame.ChannelClose](h, 1); cl.ReplyCode != frame.NotFound {
		t.Fatalf("channel.close %+v", cl)
	}
	h.method(1, &frame.ChannelCloseOk{})
	if h.c.IsClosed() {
		t.Fatal("a soft error closed the connection")
	}
}

func TestMaxMessageSize(t *testing.T) {
	h := newHarness(t, Config{MaxMessageSize: 10})
	h.handshake(0)
	h.openChannel(1)
	h.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, bytes.Repeat([]byte("x"), 5000))
	cl := expect[*frame.ChannelClose](h, 1)
	if cl.ReplyCode != frame.PreconditionFailed || !strings.Contains(cl.ReplyText, "message size 5000 is larger than configured max size 10") {
		t.Fatalf("channel.close %+v", cl)
	}
}

func TestHardErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		send func(h *harness)
		code uint16
		text string
	}{
		{"unopened channel", func(h *harness) { h.method(3, &frame.QueueDeclare{Queue: "q"}) }, frame.ChannelError, "expected 'channel.open'"},
		{"content on an unopened channel", func(h *harness) {
			h.send(frame.AppendFrame(nil, frame.FrameHeader, 3, frame.AppendContentHeader(nil, frame.ClassBasic, 1, nil)))
		}, frame.UnexpectedFrame, "expected method frame"},
		{"body without header", func(h *harness) {
			h.send(frame.AppendMethodFrame(nil, 1, &frame.BasicPublish{RoutingKey: "q"}))
			h.send(frame.AppendFrame(nil, frame.FrameBody, 1, []byte("x")))
		}, frame.UnexpectedFrame, "expected content header"},
		{"header without publish", func(h *harness) {
			h.send(frame.AppendFrame(nil, frame.FrameHeader, 1, frame.AppendContentHeader(nil, frame.ClassBasic, 1, nil)))
		}, frame.UnexpectedFrame, "content frame without basic.publish"},
		{"method during content", func(h *harness) {
			h.send(frame.AppendMethodFrame(nil, 1, &frame.BasicPublish{RoutingKey: "q"}))
			h.method(1, &frame.BasicQos{})
		}, frame.UnexpectedFrame, "expected content frame"},
		{"second channel.open", func(h *harness) { h.method(1, &frame.ChannelOpen{}) }, frame.ChannelError, "second 'channel.open'"},
		{"immediate", func(h *harness) {
			h.publish(1, &frame.BasicPublish{RoutingKey: "q", Immediate: true}, nil, []byte("x"))
		},
			frame.NotImplemented, "immediate=true"},
		{"channel above channel_max", func(h *harness) { h.method(101, &frame.ChannelOpen{}) }, frame.NotAllowed, "channel_max"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.handshake(0)
			h.openChannel(1)
			tc.send(h)
			h.expectConnClose(tc.code, tc.text)
			// After close, only close-ok counts.
			h.method(1, &frame.QueueDeclare{Queue: "q"})
			h.quiet()
			if h.c.IsClosed() {
				t.Fatal("closed before close-ok")
			}
			h.method(0, &frame.ConnectionCloseOk{})
			if !h.c.IsClosed() {
				t.Fatal("not closed after close-ok")
			}
		})
	}
}

func TestFrameErrorFails(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	bad := frame.AppendMethodFrame(nil, 1, &frame.ChannelOpen{})
	bad[len(bad)-1] = 0 // not frame-end
	h.send(bad)
	if h.feedErr == nil {
		t.Fatal("no error for a bad frame end")
	}
	h.expectConnClose(frame.FrameError, "FRAME_ERROR")
}

func TestHeartbeats(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(2)
	t0 := time.Unix(1000, 0)
	tick := func(d time.Duration) error {
		err := h.s.Tick(t0.Add(d))
		h.pump()
		return err
	}
	if err := tick(0); err != nil {
		t.Fatal(err)
	}
	if err := tick(time.Second); err != nil {
		t.Fatal(err)
	}
	if r := h.next(); r.m != nil {
		t.Fatalf("got %s, want heartbeat", name(r))
	}
	h.send(frame.AppendHeartbeat(nil)) // the client is alive
	if err := tick(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := tick(8 * time.Second); !errors.Is(err, errMissedHeartbeats) {
		t.Fatalf("Tick after two silent intervals: %v", err)
	}
	if b := h.s.Fail(errMissedHeartbeats); b != nil {
		t.Fatalf("Fail after missed heartbeats sends %q", b)
	}
}

func TestHandshakeTimeout(t *testing.T) {
	for _, tc := range []struct {
		name    string
		cfg     time.Duration
		timeout time.Duration
	}{
		{"default", 0, DefaultHandshakeTimeout},
		{"configured", 2 * time.Second, 2 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{HandshakeTimeout: tc.cfg})
			t0 := time.Unix(1000, 0)
			if err := h.s.Tick(t0); err != nil {
				t.Fatal(err)
			}
			if err := h.s.Tick(t0.Add(tc.timeout)); err != nil {
				t.Fatalf("at the deadline: %v", err)
			}
			if err := h.s.Tick(t0.Add(tc.timeout + time.Second)); !errors.Is(err, errHandshakeTimeout) {
				t.Fatalf("got %v", err)
			}
		})
	}
}

func TestClosedRequeuesAndDropsExclusive(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "shared"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.QueueDeclare{Queue: "mine", Exclusive: true})
	expect[*frame.QueueDeclareOk](h, 1)
	h.publish(1, &frame.BasicPublish{RoutingKey: "shared"}, nil, []byte("x"))
	h.method(1, &frame.BasicQos{PrefetchCount: 1})
	expect[*frame.BasicQosOk](h, 1)
	h.method(1, &frame.BasicConsume{Queue: "shared"})
	expect[*frame.BasicConsumeOk](h, 1)
	expectContent[*frame.BasicDeliver](h, 1)

	// A second connection may not use the exclusive queue.
	h2 := openHarness(t, h.a, h.store)
	h2.handshake(0)
	h2.openChannel(1)
	h2.method(1, &frame.QueueDeclare{Queue: "mine", Passive: true})
	if cl := expect[*frame.ChannelClose](h2, 1); cl.ReplyCode != frame.ResourceLocked {
		t.Fatalf("channel.close %+v", cl)
	}

	h.s.Closed(nil)
	v := h.rt.VHost("/")
	if n, c := v.Queue("shared").Counts(); n != 1 || c != 0 {
		t.Fatalf("after close: %d ready, %d consumers", n, c)
	}
	if v.Queue("mine") != nil {
		t.Fatal("exclusive queue survived its connection")
	}
}

func TestServerCancel(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.BasicConsume{Queue: "q", ConsumerTag: "t"})
	expect[*frame.BasicConsumeOk](h, 1)
	if _, err := h.rt.VHost("/").DeleteQueue("q", false, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if c := expect[*frame.BasicCancel](h, 1); c.ConsumerTag != "t" {
		t.Fatalf("cancel %+v", c)
	}
}

func TestOutboxPausesConsumers(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	expect[*frame.QueueDeclareOk](h, 1)
	body := bytes.Repeat([]byte("b"), 64<<10)
	const n = 40 // 2.5 MiB: more than pauseBytes
	for range n {
		h.publish(1, &frame.BasicPublish{RoutingKey: "q"}, nil, body)
	}
	// Feed, then one Output: the rest of the deliveries wait in the inbox.
	in := frame.AppendMethodFrame(nil, 1, &frame.BasicConsume{Queue: "q", NoAck: true})
	if k, err := h.s.Feed(in); k != len(in) || err != nil {
		t.Fatal(k, err)
	}
	vec := h.s.Output(nil)
	if !h.s.paused {
		t.Fatal("consumers not paused with a full outbox")
	}
	for _, b := range vec {
		h.out = append(h.out, b...)
	}
	h.parse()
	expect[*frame.BasicConsumeOk](h, 1)
	for i := range n {
		if d, _ := expectContent[*frame.BasicDeliver](h, 1); d.DeliveryTag != uint64(i+1) {
			t.Fatalf("delivery %d has tag %d", i, d.DeliveryTag)
		}
	}
	if h.s.paused {
		t.Fatal("consumers still paused after draining")
	}
}
