package interop

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Destinations: /queue, /topic, durable topic subscriptions, /exchange,
// /amq/queue, /temp-queue with reply-to, and queue arguments as x-*
// headers. RabbitMQ's semantics: rabbitmq-website docs/stomp.md.

// TestSTOMPQueueDestination: SEND to /queue/q declares a durable,
// non-exclusive, non-auto-delete queue q that keeps the message until a
// subscriber comes.
func TestSTOMPQueueDestination(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "declared-" + string(v)
		c := stompDial(t, b.addr, v)
		stompSend(t, c, "/queue/"+name, "kept")

		ch := stompAMQP(t, b.amqpURL)
		// An equivalent declaration (durable, not auto-delete, not
		// exclusive) succeeds and sees the message...
		q, err := ch.QueueDeclare(name, true, false, false, false, nil)
		if err != nil {
			t.Fatalf("queue.declare durable %q: %v", name, err)
		}
		if q.Messages != 1 {
			t.Fatalf("queue %q holds %d messages, want 1", name, q.Messages)
		}
		// ...and a transient one is refused: the queue is durable.
		var ae *amqp.Error
		if _, err := ch.QueueDeclare(name, false, false, false, false, nil); !errors.As(err, &ae) || ae.Code != amqp.PreconditionFailed {
			t.Fatalf("queue.declare transient %q: %v, want 406", name, err)
		}

		s := stompSub(t, c, "/queue/"+name, stomp.AckAuto)
		m := stompWantBodies(t, s, "kept")[0]
		if m.Destination != "/queue/"+name {
			t.Errorf("destination %q", m.Destination)
		}
	})
}

// TestSTOMPTopicSubscribers: every /topic subscription has its own queue
// bound to amq.topic: two subscribers both get each message, and a
// subscriber to another key gets none.
func TestSTOMPTopicSubscribers(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		key := "prices." + strings.ReplaceAll(string(v), ".", "_")
		c1, c2, c3 := stompDial(t, b.addr, v), stompDial(t, b.addr, v), stompDial(t, b.addr, v)
		s1 := stompSub(t, c1, "/topic/"+key, stomp.AckAuto)
		s2 := stompSub(t, c2, "/topic/prices.*", stomp.AckClientIndividual)
		other := stompSub(t, c3, "/topic/other", stomp.AckAuto)
		stompSend(t, c3, "/topic/"+key, "tick")
		for _, s := range []*stomp.Subscription{s1, s2} {
			m := stompWantBodies(t, s, "tick")[0]
			if m.Destination != "/topic/"+key {
				t.Errorf("destination %q", m.Destination)
			}
		}
		stompSend(t, c3, "/topic/other", "marker")
		stompWantBodies(t, other, "marker") // and not "tick"
	})
}

// TestSTOMPDurableTopicSubscription: a durable subscription
// (durable:true, auto-delete:false, an id) keeps what is published while
// its subscriber is away; UNSUBSCRIBE with durable:true removes it.
func TestSTOMPDurableTopicSubscription(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		dest := "/topic/alerts." + strings.ReplaceAll(string(v), ".", "_")
		durable := []string{"durable", "true", "auto-delete", "false"}
		subscribe := func(c *stomp.Conn) *stomp.Subscription {
			t.Helper()
			s, err := c.Subscribe(dest, stomp.AckClientIndividual, stomp.SubscribeOpt.Id("dur-1"),
				stomp.SubscribeOpt.Header(durable[0], durable[1]), stomp.SubscribeOpt.Header(durable[2], durable[3]))
			if err != nil {
				t.Fatal(err)
			}
			stompSync(t, c)
			return s
		}
		pub := stompDial(t, b.addr, v)

		c1 := stompDial(t, b.addr, v)
		s1 := subscribe(c1)
		stompSend(t, pub, dest, "while connected")
		m := stompWantBodies(t, s1, "while connected")[0]
		if err := c1.Ack(m); err != nil {
			t.Fatal(err)
		}
		if err := c1.Disconnect(); err != nil {
			t.Fatal(err)
		}

		stompSend(t, pub, dest, "away 1")
		stompSend(t, pub, dest, "away 2")

		c2 := stompDial(t, b.addr, v)
		s2 := subscribe(c2)
		for _, m := range stompWantBodies(t, s2, "away 1", "away 2") {
			if err := c2.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
		if err := s2.Unsubscribe(stomp.SubscribeOpt.Header(durable[0], durable[1]), stomp.SubscribeOpt.Header(durable[2], durable[3])); err != nil {
			t.Fatalf("unsubscribe durable: %v", err)
		}
		// The subscription is gone: what is published now is kept for
		// nobody.
		stompSend(t, pub, dest, "after unsubscribe")
		if err := c2.Disconnect(); err != nil {
			t.Fatal(err)
		}
		c3 := stompDial(t, b.addr, v)
		s3 := subscribe(c3)
		stompSend(t, pub, dest, "fresh")
		stompWantBodies(t, s3, "fresh")
	})
}

// TestSTOMPExchangeDestination: /exchange/x/key sends to exchange x with
// routing key key; SUBSCRIBE to /exchange/x/pattern binds a queue of its
// own with that pattern. A missing exchange is an ERROR.
func TestSTOMPExchangeDestination(t *testing.T) {
	b := startStompBroker(t)
	ch := stompAMQP(t, b.amqpURL)
	if err := ch.ExchangeDeclare("orders", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	aq, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(aq.Name, "eu.#", "orders", false, nil); err != nil {
		t.Fatal(err)
	}
	amqpMsgs, err := ch.Consume(aq.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	forVersions(t, func(t *testing.T, v stomp.Version) {
		c := stompDial(t, b.addr, v)
		s := stompSub(t, c, "/exchange/orders/eu.*", stomp.AckAuto)
		stompSend(t, c, "/exchange/orders/us.ny", "not for eu")
		stompSend(t, c, "/exchange/orders/eu.fr", "order "+string(v))
		m := stompWantBodies(t, s, "order "+string(v))[0]
		if m.Destination != "/exchange/orders/eu.fr" {
			t.Errorf("destination %q", m.Destination)
		}
		// The AMQP queue bound to the same exchange got it too.
		if d := stompAMQPRecv(t, amqpMsgs); string(d.Body) != "order "+string(v) || d.Exchange != "orders" || d.RoutingKey != "eu.fr" {
			t.Fatalf("AMQP delivery %q from %q/%q", d.Body, d.Exchange, d.RoutingKey)
		}

		err := c.Send("/exchange/no-such-exchange/k", "", []byte("x"), stomp.SendOpt.Receipt)
		stompErrorFrame(t, err)
		stompGone(c)
	})
}

// TestSTOMPAmqQueueDestination: /amq/queue/q uses an existing queue
// without declaring it; subscribing to a missing one is an ERROR.
func TestSTOMPAmqQueueDestination(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "made-by-amqp-" + string(v)
		ch := stompAMQP(t, b.amqpURL)
		// Transient and auto-delete: /queue/ would declare it durable and
		// be refused as inequivalent; /amq/queue/ takes it as it is.
		if _, err := ch.QueueDeclare(name, false, true, false, false, nil); err != nil {
			t.Fatal(err)
		}
		c := stompDial(t, b.addr, v)
		stompSend(t, c, "/amq/queue/"+name, "via amq/queue")
		s := stompSub(t, c, "/amq/queue/"+name, stomp.AckClientIndividual)
		m := stompWantBodies(t, s, "via amq/queue")[0]
		if m.Destination != "/queue/"+name {
			t.Errorf("destination %q, want /queue/%s (the default exchange)", m.Destination, name)
		}
		if err := c.Ack(m); err != nil {
			t.Fatal(err)
		}

		bad := stompDial(t, b.addr, v)
		bs, err := bad.Subscribe("/amq/queue/no-such-queue-"+string(v), stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		stompSubError(t, bs)
		stompGone(bad)
	})
}

// TestSTOMPTempQueueRequestReply: a requester SENDs with
// reply-to:/temp-queue/r; the replier sees a /reply-queue/ destination in
// reply-to and SENDs its answer there from another connection; the
// requester receives it on the subscription /temp-queue/r.
func TestSTOMPTempQueueRequestReply(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		service := "/queue/rpc-" + string(v)
		replier := stompDial(t, b.addr, v)
		requests := stompSub(t, replier, service, stomp.AckClientIndividual)

		requester := stompDial(t, b.addr, v)
		// go-stomp: a subscription with a reply-to header is not sent; it
		// only collects MESSAGEs whose subscription is the reply-to.
		replies, err := requester.Subscribe("/temp-queue/r", stomp.AckAuto, stomp.SubscribeOpt.Header(stomp.ReplyToHeader, "/temp-queue/r"))
		if err != nil {
			t.Fatal(err)
		}
		for i, body := range []string{"ping 1", "ping 2"} {
			stompSend(t, requester, service, body, "reply-to", "/temp-queue/r", "correlation-id", body)
			req := stompWantBodies(t, requests, body)[0]
			replyTo := req.Header.Get("reply-to")
			if !strings.HasPrefix(replyTo, "/reply-queue/") {
				t.Fatalf("request %d: reply-to %q, want /reply-queue/...", i, replyTo)
			}
			stompSend(t, replier, replyTo, "pong for "+body, "correlation-id", req.Header.Get("correlation-id"))
			if err := replier.Ack(req); err != nil {
				t.Fatal(err)
			}
			rep := stompWantBodies(t, replies, "pong for "+body)[0]
			if rep.Header.Get("subscription") != "/temp-queue/r" || rep.Header.Get("correlation-id") != body {
				t.Fatalf("reply headers %+v", rep.Header)
			}
		}
	})
}

// TestSTOMPQueueArguments: x-* headers on the SEND (or SUBSCRIBE) that
// declares a /queue/ become queue arguments, with their AMQP meaning.
func TestSTOMPQueueArguments(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		sfx := "-" + string(v)

		t.Run("max-length-reject-publish", func(t *testing.T) {
			q := "/queue/maxlen-reject" + sfx
			args := []string{"x-max-length", "2", "x-overflow", "reject-publish"}
			c := stompDial(t, b.addr, v)
			stompSend(t, c, q, "m1", args...)
			stompSend(t, c, q, "m2", args...)
			// The third does not fit. RabbitMQ nacks it; over STOMP the
			// publisher may get an ERROR, so it uses its own connection.
			over := stompDial(t, b.addr, v)
			err := over.Send(q, "", []byte("m3"), stompSendHeaders(args, stomp.SendOpt.Receipt)...)
			t.Logf("SEND beyond x-max-length (reject-publish): %v", err)
			stompGone(over)
			s := stompSub(t, c, q, stomp.AckAuto, args...)
			stompWantBodies(t, s, "m1", "m2")
			stompSend(t, c, q, "marker", args...)
			stompWantBodies(t, s, "marker") // m3 was not kept
		})

		t.Run("max-length-drop-head", func(t *testing.T) {
			q := "/queue/maxlen-drop" + sfx
			args := []string{"x-max-length", "2", "x-overflow", "drop-head"}
			c := stompDial(t, b.addr, v)
			for _, m := range []string{"m1", "m2", "m3"} {
				stompSend(t, c, q, m, args...)
			}
			s := stompSub(t, c, q, stomp.AckAuto, args...)
			stompWantBodies(t, s, "m2", "m3")
			stompSend(t, c, q, "marker", args...)
			stompWantBodies(t, s, "marker") // m1 was dropped, not delayed
		})

		t.Run("message-ttl", func(t *testing.T) {
			q := "/queue/ttl" + sfx
			dead := "ttl-dead" + sfx
			c := stompDial(t, b.addr, v)
			ds := stompSub(t, c, "/exchange/amq.direct/"+dead, stomp.AckAuto)
			args := []string{"x-message-ttl", "50", "x-dead-letter-exchange", "amq.direct", "x-dead-letter-routing-key", dead}
			stompSend(t, c, q, "short-lived", args...)
			m := stompWantBodies(t, ds, "short-lived")[0]
			if r := m.Header.Get("x-first-death-reason"); r != "expired" {
				t.Errorf("x-first-death-reason %q, want expired (%+v)", r, m.Header)
			}
			if n := stompQueueCount(t, b.amqpURL, strings.TrimPrefix(q, "/queue/")); n != 0 {
				t.Errorf("%d messages left in %s after expiry", n, q)
			}
		})

		t.Run("dead-letter-on-nack", func(t *testing.T) {
			if v == stomp.V10 {
				t.Skip("STOMP 1.0 has no NACK")
			}
			q := "/queue/dlx" + sfx
			dead := "nack-dead" + sfx
			c := stompDial(t, b.addr, v)
			ds := stompSub(t, c, "/exchange/amq.direct/"+dead, stomp.AckAuto)
			args := []string{"x-dead-letter-exchange", "amq.direct", "x-dead-letter-routing-key", dead}
			stompSend(t, c, q, "refused", args...)
			r := dialStompRaw(t, b.addr)
			r.connect(string(v))
			r.receipt("SUBSCRIBE", "", "s", append([]string{"destination", q, "id", "s1", "ack", "client-individual"}, args...)...)
			m := r.expect("MESSAGE")
			r.receipt("NACK", "", "n", append(stompAckHeaders(string(v), m), "requeue", "false")...)
			dm := stompWantBodies(t, ds, "refused")[0]
			if reason := dm.Header.Get("x-first-death-reason"); reason != "rejected" {
				t.Errorf("x-first-death-reason %q, want rejected", reason)
			}
		})

		t.Run("max-priority", func(t *testing.T) {
			q := "/queue/prio" + sfx
			args := []string{"x-max-priority", "10"}
			c := stompDial(t, b.addr, v)
			for _, p := range []string{"1", "5", "0", "9", "5"} {
				stompSend(t, c, q, "p"+p, append([]string{"priority", p}, args...)...)
			}
			s := stompSub(t, c, q, stomp.AckAuto, args...)
			for _, m := range stompWantBodies(t, s, "p9", "p5", "p5", "p1", "p0") {
				if m.Header.Get("priority") != strings.TrimPrefix(string(m.Body), "p") {
					t.Errorf("MESSAGE %q has priority header %q", m.Body, m.Header.Get("priority"))
				}
			}
		})
	})
}

// stompSendHeaders turns key, value pairs into go-stomp SEND options,
// after opts.
func stompSendHeaders(kv []string, opts ...func(*stompFrameT) error) []func(*stompFrameT) error {
	for i := 0; i+1 < len(kv); i += 2 {
		opts = append(opts, stomp.SendOpt.Header(kv[i], kv[i+1]))
	}
	return opts
}

// stompAckHeaders are the headers that name message m in an ACK or NACK
// for version v: id (the ack header) in 1.2, message-id and subscription
// before.
func stompAckHeaders(v string, m *stompRawFrame) []string {
	if v == "1.2" {
		return []string{"id", m.get("ack")}
	}
	return []string{"message-id", m.get("message-id"), "subscription", m.get("subscription")}
}
