package interop

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
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

// The resource limits of issue 8 through real clients: connections beyond
// transport.max_connections, queues beyond router.max_queues, channels
// beyond the negotiated channel_max, and consumers that stop reading.

// limitsOpts configure startLimits' broker.
type limitsOpts struct {
	maxConns  int           // transport.max_connections; 0: none
	maxQueues int           // router.max_queues; 0: none
	hwm       int           // transport.max_outbound; 0: the default
	slow      time.Duration // transport.slow_consumer_timeout; 0: never
}

// limitsEnv is startLimits' broker.
type limitsEnv struct {
	srv *transport.Server
	rt  *router.Router
}

func (e *limitsEnv) addr(p string) string { return e.srv.Addrs()[p] }
func (e *limitsEnv) amqpURL() string      { return "amqp://guest:guest@" + e.addr("amqp") + "/" }

// startLimits runs the three protocols in process over memstore with the
// limits in o and a fast tick. Cleanup shuts it down and fails the test on
// a session panic.
func startLimits(t *testing.T, o limitsOpts) *limitsEnv {
	t.Helper()
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log, MaxQueues: o.maxQueues})
	if err != nil {
		t.Fatal(err)
	}
	srv := serve(t, st, transport.Config{
		TickInterval: 20 * time.Millisecond,
		MaxConns:     o.maxConns,
		Limits:       protocols.Limits{OutboundHighWater: o.hwm, SlowConsumerTimeout: o.slow},
		Listeners: []transport.Listener{
			{Name: "amqp", Addr: "127.0.0.1:0", Adapter: jamqp.New(jamqp.Config{Router: rt, Log: log})},
			{Name: "mqtt", Addr: "127.0.0.1:0", Adapter: jmqtt.New(jmqtt.Config{Router: rt, Log: log})},
			{Name: "stomp", Addr: "127.0.0.1:0", Adapter: jstomp.New(jstomp.Config{Router: rt, Log: log})},
		},
	})
	return &limitsEnv{srv: srv, rt: rt}
}

// until polls cond every millisecond until it holds, failing after waitFor.
func until(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnectionLimit: with the limit reached by clients of all three
// protocols, a new client of each is refused with its protocol's answer,
// the refusals do not count as open connections, and a closed connection
// makes room for a new one.
func TestConnectionLimit(t *testing.T) {
	const limit = 3
	e := startLimits(t, limitsOpts{maxConns: limit})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	conn, err := amqp.Dial(e.amqpURL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	open3(t, opts3(e.addr("mqtt"), "in3", 4, true, nil))
	sc := stompDial(t, e.addr("stomp"), stomp.V12)
	if n := e.srv.Stats().Conns; n != limit {
		t.Fatalf("%d connections open, want %d", n, limit)
	}

	// AMQP: connection.close 530 at connection.open, RabbitMQ's text,
	// then the socket closes. amqp091-go reports any close in answer to
	// connection.open as ErrVhost, as it does with RabbitMQ.
	r := dialRaw(t, e.addr("amqp"))
	r.startOk(rawOpts{})
	r.tuneOk(rawOpts{})
	r.open("/")
	reason := r.wantConnClose(amqp.NotAllowed)
	if want := fmt.Sprintf("NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (%d) is reached", limit); reason.text != want ||
		reason.class != classConnection || reason.methodID != 40 {
		t.Fatalf("AMQP over the limit: connection.close %q %d.%d, want %q on connection.open", reason.text, reason.class, reason.methodID, want)
	}
	if _, err := amqp.Dial(e.amqpURL()); !errors.Is(err, amqp.ErrVhost) {
		t.Fatalf("amqp091-go over the limit: %v, want ErrVhost", err)
	}
	// MQTT 3.1.1: CONNACK 0x03 server unavailable.
	if _, tok := connect3(t, opts3(e.addr("mqtt"), "over3", 4, true, nil)); tok.ReturnCode() != 3 {
		t.Fatalf("MQTT 3.1.1 over the limit: return code %d (%v), want 3", tok.ReturnCode(), tok.Error())
	}
	// MQTT 5: CONNACK 0x97 quota exceeded.
	c5, ack, err := try5(ctx, t, e.addr("mqtt"), &paho.Connect{ClientID: "over5", CleanStart: true, KeepAlive: 30}, opts5{})
	if c5 != nil || ack == nil || ack.ReasonCode != 0x97 {
		t.Fatalf("MQTT 5 over the limit: %v %+v, want CONNACK 0x97", err, ack)
	}
	// STOMP: ERROR, then close.
	if c, err := stomp.Dial("tcp", e.addr("stomp"), stompDialOpts(stomp.V12)...); err == nil || !strings.Contains(err.Error(), "connection limit (3) is reached") {
		if c != nil {
			_ = c.Disconnect()
		}
		t.Fatalf("STOMP over the limit: %v, want the connection limit's ERROR", err)
	}
	until(t, "every refusal counted", func() bool { return e.srv.Stats().Refused == 5 })
	if st := e.srv.Stats(); st.Conns != limit {
		t.Fatalf("stats %+v: refused connections counted as open", st)
	}

	// The clients in are served as before; one leaving makes room.
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("admitted AMQP connection: %v", err)
	}
	_ = ch.Close()
	if err := sc.Disconnect(); err != nil {
		t.Fatal(err)
	}
	until(t, "the STOMP connection to close", func() bool { return e.srv.Stats().Conns == limit-1 })
	stompDial(t, e.addr("stomp"), stomp.V12)
}

// TestChannelMaxRefusal: a channel.open beyond the negotiated channel_max
// closes the connection with RabbitMQ's 530 and text.
func TestChannelMaxRefusal(t *testing.T) {
	e := startLimits(t, limitsOpts{})
	r := dialRaw(t, e.addr("amqp"))
	r.handshake(rawOpts{channelMax: 2})
	r.openChannel(1)
	r.openChannel(2)
	r.send(amqpMethodFrame(3, amqpMethod(classChannel, 10).str("")))
	reason := r.wantConnClose(amqp.NotAllowed)
	if want := "NOT_ALLOWED - number of channels opened (2) has reached the negotiated channel_max (2)"; reason.text != want ||
		reason.class != classChannel || reason.methodID != 10 {
		t.Fatalf("connection.close %q %d.%d, want %q on channel.open", reason.text, reason.class, reason.methodID, want)
	}
}

// TestQueueLimit: beyond router.max_queues a declaration of a new queue
// fails in every protocol, a redeclaration does not.
func TestQueueLimit(t *testing.T) {
	e := startLimits(t, limitsOpts{maxQueues: 1})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, ch := dial(t, e.amqpURL())
	if _, err := ch.QueueDeclare("only", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	// AMQP: channel.close 406 with RabbitMQ's text; the connection stays.
	_, err := ch.QueueDeclare("extra", true, false, false, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed ||
		ae.Reason != "PRECONDITION_FAILED - cannot declare queue 'extra': queue limit in vhost '/' (1) is reached" {
		t.Fatalf("queue.declare over the limit: %v", err)
	}
	ch, err = conn.Channel()
	if err != nil {
		t.Fatalf("the connection did not survive a queue limit: %v", err)
	}
	if _, err := ch.QueueDeclare("", false, true, true, false, nil); !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
		t.Fatalf("server-named exclusive queue over the limit: %v", err)
	}
	ch, _ = conn.Channel()
	if _, err := ch.QueueDeclare("only", true, false, false, false, nil); err != nil {
		t.Fatalf("redeclare at the limit: %v", err)
	}

	// MQTT 3.1.1: SUBACK 0x80 (the subscription needs a session queue).
	c3, _ := open3(t, opts3(e.addr("mqtt"), "sub3", 4, true, nil))
	tok := c3.Subscribe("a/b", 1, nil)
	wait3(t, "subscribe", tok)
	if rc := tok.(*mqtt3.SubscribeToken).Result()["a/b"]; rc != 0x80 {
		t.Fatalf("MQTT 3.1.1 SUBACK %#x, want 0x80", rc)
	}
	// MQTT 5: SUBACK 0x97 quota exceeded.
	c5 := open5(ctx, t, e.addr("mqtt"), &paho.Connect{ClientID: "sub5", CleanStart: true, KeepAlive: 30}, opts5{})
	sa, err := c5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "a/b", QoS: 1}}})
	if err == nil || sa == nil || len(sa.Reasons) != 1 || sa.Reasons[0] != 0x97 {
		t.Fatalf("MQTT 5 subscribe over the limit: %v %+v, want SUBACK 0x97", err, sa)
	}
	// STOMP: ERROR for a SUBSCRIBE that would create a queue.
	sc := stompDial(t, e.addr("stomp"), stomp.V12)
	sub, err := sc.Subscribe("/queue/new", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	f := stompSubError(t, sub)
	if m, body := f.Header.Get("message"), string(f.Body); m != "precondition_failed" ||
		body != "cannot declare queue 'new': queue limit in vhost '/' (1) is reached" {
		t.Fatalf("STOMP subscribe over the limit: ERROR %q %q", m, body)
	}
	stompGone(sc)
	if qs := e.rt.VHost("/").Queues(); len(qs) != 1 {
		t.Fatalf("%d queues, want 1", len(qs))
	}
}

// smallRcvBuf dials addr with a small, fixed receive buffer, so the
// kernel absorbs little of what is sent to a client that stops reading.
func smallRcvBuf(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Timeout: waitFor, Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 16<<10)
		})
		return errors.Join(err, serr)
	}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// TestSlowConsumerAMQP: a consumer that stops reading is closed with 320
// CONNECTION_FORCED once its backlog has stayed at the high-water mark for
// the timeout; the backlog never grew past the mark and one output batch;
// every message it held goes back to the queue, redelivered to another
// consumer, none lost.
func TestSlowConsumerAMQP(t *testing.T) {
	const (
		hwm  = 64 << 10
		n    = 2000
		size = 4 << 10
		// batch is the AMQP session's largest Output batch: 256 KiB of
		// deliveries (protocols/amqp batchBytes), overshot by at most one
		// message, and their framing.
		batch = 256<<10 + size + 16<<10
	)
	timeout := 300 * time.Millisecond
	e := startLimits(t, limitsOpts{hwm: hwm, slow: timeout})
	_, pub := dial(t, e.amqpURL())
	if _, err := pub.QueueDeclare("work", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}

	r := &rawConn{t: t, c: smallRcvBuf(t, e.addr("amqp"))}
	r.r = bufio.NewReader(r.c)
	r.handshake(rawOpts{}) // no heartbeats: the client is silent by design
	r.openChannel(1)
	r.send(amqpMethodFrame(1, amqpMethod(classBasic, 20).u16(0).str("work").str("slow").u8(0).table())) // basic.consume
	r.expect(1, classBasic, 21)

	if err := pub.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := pub.NotifyPublish(make(chan amqp.Confirmation, n))
	body := make([]byte, size)
	for i := range n {
		copy(body, fmt.Sprintf("%06d", i))
		if err := pub.Publish("", "work", false, false, amqp.Publishing{Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range n {
		select {
		case c := <-confirms:
			if !c.Ack {
				t.Fatalf("publish %d nacked", c.DeliveryTag)
			}
		case <-time.After(waitFor):
			t.Fatalf("%d of %d confirmed", i, n)
		}
	}
	began := time.Now()
	until(t, "the slow consumer to be closed", func() bool { return e.srv.Stats().SlowConsumers == 1 })
	if peak := e.srv.Stats().OutboundPeak; peak > hwm+batch {
		t.Fatalf("outbound backlog peaked at %d bytes, want at most %d", peak, hwm+batch)
	}

	// Reading again, the client finds its deliveries, then the close.
	seen := 0
	for end := time.Now().Add(waitFor); ; r.before(end) {
		f, err := r.read()
		if err != nil {
			t.Fatalf("connection ended (%v) after %d deliveries, without connection.close", err, seen)
		}
		if f.is(classBasic, 60) {
			seen++
		}
		if f.ch == 0 && f.is(classConnection, 50) {
			reason := f.closeReason()
			if reason.code != 320 || !strings.HasPrefix(reason.text, "CONNECTION_FORCED - slow consumer") {
				t.Fatalf("connection.close %d %q, want 320 for a slow consumer", reason.code, reason.text)
			}
			break
		}
	}
	r.expectEOF()
	if seen == 0 || seen >= n {
		t.Fatalf("the slow consumer saw %d of %d deliveries", seen, n)
	}
	t.Logf("closed %v after the last confirm; %d deliveries written before the close", time.Since(began).Round(time.Millisecond), seen)

	// Nothing lost: another consumer gets every message once, the ones
	// the slow consumer held marked redelivered.
	_, ch := dial(t, e.amqpURL())
	msgs := consume(t, ch, "work")
	got, redelivered := map[string]bool{}, 0
	for len(got) < n {
		select {
		case d := <-msgs:
			id := string(d.Body[:6])
			if got[id] {
				t.Fatalf("message %s delivered twice", id)
			}
			got[id] = true
			if d.Redelivered {
				redelivered++
			}
			if err := d.Ack(false); err != nil {
				t.Fatal(err)
			}
		case <-time.After(waitFor):
			t.Fatalf("%d of %d messages after the slow consumer was closed", len(got), n)
		}
	}
	if redelivered < seen {
		t.Fatalf("%d messages marked redelivered, but the slow consumer was sent %d", redelivered, seen)
	}
	if n := e.srv.Stats().SlowConsumers; n != 1 {
		t.Fatalf("%d slow consumers closed, want only the one that stopped reading", n)
	}
}

// TestSlowConsumerMQTT5: an MQTT 5 subscriber that stops reading is told
// DISCONNECT 0x97 after its backlog; its persistent session keeps the
// QoS 1 messages it had in flight, sent again, marked DUP, when it comes
// back.
func TestSlowConsumerMQTT5(t *testing.T) {
	const (
		hwm  = 64 << 10
		n    = 40 // more than the session's window of 32 in flight
		size = 256 << 10
	)
	// The timeout is long enough for the client coming back to take in a
	// whole window of these messages (8 MiB, far above the mark) at race
	// detector speed: a consumer is slow only if it takes longer.
	e := startLimits(t, limitsOpts{hwm: hwm, slow: 2 * time.Second})
	r := &raw5{t: t, c: smallRcvBuf(t, e.addr("mqtt"))}
	if ack := r.connect("slow5", true, 3600); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %#x", ack.ReasonCode)
	}
	r.send(&pk5.Subscribe{PacketID: 1, Subscriptions: []pk5.SubOptions{{Topic: "slow/#", QoS: 1}}})
	if sa, ok := r.read().Content.(*pk5.Suback); !ok || len(sa.Reasons) != 1 || sa.Reasons[0] != 1 {
		t.Fatalf("SUBACK %+v", sa)
	}

	// Persistent AMQP messages reach MQTT subscribers at QoS 1.
	_, pub := dial(t, e.amqpURL())
	body := make([]byte, size)
	for i := range n {
		copy(body, fmt.Sprintf("%06d", i))
		if err := pub.Publish("amq.topic", "slow.x", false, false, amqp.Publishing{Body: body, DeliveryMode: amqp.Persistent}); err != nil {
			t.Fatal(err)
		}
	}
	until(t, "the slow consumer to be closed", func() bool { return e.srv.Stats().SlowConsumers == 1 })

	var disc *pk5.Disconnect
	seen := 0
	for disc == nil {
		_ = r.c.SetReadDeadline(time.Now().Add(waitFor))
		p, err := pk5.ReadPacket(r.c)
		if err != nil {
			t.Fatalf("connection ended (%v) without DISCONNECT", err)
		}
		if _, ok := p.Content.(*pk5.Publish); ok {
			seen++
		}
		disc, _ = p.Content.(*pk5.Disconnect)
	}
	t.Logf("the slow consumer saw %d messages", seen)
	if disc.ReasonCode != 0x97 {
		t.Fatalf("DISCONNECT %#x, want 0x97", disc.ReasonCode)
	}
	_ = r.c.Close()

	// Back on the same session: every message arrives.
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	c := open5(ctx, t, e.addr("mqtt"), &paho.Connect{ClientID: "slow5", KeepAlive: 30,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: uint32Ptr(3600)}}, opts5{})
	if !c.ack.SessionPresent {
		t.Fatal("session not present after the slow consumer's close")
	}
	got, dup := map[string]bool{}, 0
	for len(got) < n {
		var m *paho.Publish
		select {
		case m = <-c.msgs:
		case <-time.After(waitFor):
			q := e.rt.VHost("/").Queue("mqtt-subscription-slow5qos1")
			var ready, consumers, unacked int
			if q != nil {
				ready, consumers = q.Counts()
				unacked = q.Unacked()
			}
			t.Fatalf("%d of %d messages after the slow consumer was closed (%d DUP; queue: %d ready, %d unacked, %d consumers)",
				len(got), n, dup, ready, unacked, consumers)
		}
		got[string(m.Payload[:6])] = true
		if m.Duplicate() {
			dup++
		}
	}
	if dup < seen {
		t.Fatalf("%d messages marked DUP, but the slow consumer was sent %d", dup, seen)
	}
	if n := e.srv.Stats().SlowConsumers; n != 1 {
		t.Fatalf("%d slow consumers closed, want only the one that stopped reading", n)
	}
}

func uint32Ptr(v uint32) *uint32 { return &v }
