package interop

import (
	"context"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

// Messaging: SUBSCRIBE/UNSUBSCRIBE with id, MESSAGE headers, ack modes,
// ACK and NACK, prefetch-count, headers and AMQP properties, and nothing
// lost when a subscription or connection ends.

// TestSTOMPSubscriptionIDs: a MESSAGE names its subscription and carries
// a message-id (and in 1.2 an ack header) that ACK takes; after
// UNSUBSCRIBE nothing more is delivered to that subscription.
func TestSTOMPSubscriptionIDs(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "ids-" + string(v)
		q := "/queue/" + name
		r := dialStompRaw(t, b.addr)
		r.connect(string(v))
		r.receipt("SUBSCRIBE", "", "s7", "destination", q, "id", "sub-7", "ack", "client-individual")
		r.receipt("SEND", "one", "p1", "destination", q)
		m := r.expect("MESSAGE")
		if m.get("subscription") != "sub-7" || m.get("message-id") == "" || m.get("destination") != q || !stompBodyEq(m, "one") {
			t.Fatalf("MESSAGE %s", m)
		}
		if v == stomp.V12 && m.get("ack") == "" {
			t.Fatalf("1.2 MESSAGE for a client-individual subscription without an ack header: %s", m)
		}
		r.receipt("ACK", "", "a1", stompAckHeaders(string(v), m)...)
		r.receipt("UNSUBSCRIBE", "", "u7", "id", "sub-7")
		r.receipt("SEND", "two", "p2", "destination", q)
		if n := stompQueueCount(t, b.amqpURL, name); n != 1 {
			t.Fatalf("after UNSUBSCRIBE the queue holds %d messages, want 1 (the subscription took it)", n)
		}
		r.receipt("SUBSCRIBE", "", "s8", "destination", q, "id", "sub-8", "ack", "auto")
		if m := r.expect("MESSAGE"); m.get("subscription") != "sub-8" || !stompBodyEq(m, "two") {
			t.Fatalf("MESSAGE %s, want two on sub-8", m)
		}
		if n := stompQueueCount(t, b.amqpURL, name); n != 0 {
			t.Fatalf("after ACK and an auto delivery the queue holds %d messages, want 0", n)
		}
	})
}

// TestSTOMPAckAuto: ack:auto deliveries are settled when sent.
func TestSTOMPAckAuto(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "ack-auto-" + string(v)
		c := stompDial(t, b.addr, v)
		s := stompSub(t, c, "/queue/"+name, stomp.AckAuto)
		for _, m := range []string{"a1", "a2", "a3"} {
			stompSend(t, c, "/queue/"+name, m)
		}
		stompWantBodies(t, s, "a1", "a2", "a3")
		if err := c.Disconnect(); err != nil {
			t.Fatal(err)
		}
		if n := stompQueueCount(t, b.amqpURL, name); n != 0 {
			t.Fatalf("%d messages back in the queue after ack:auto deliveries", n)
		}
	})
}

// TestSTOMPAckClientCumulative: with ack:client, ACK of a message also
// acknowledges every earlier one of the subscription (ACK of the 3rd acks
// 1-3); the rest comes back, redelivered, after the connection ends.
func TestSTOMPAckClientCumulative(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "ack-client-" + string(v)
		c := stompDial(t, b.addr, v)
		s := stompSub(t, c, "/queue/"+name, stomp.AckClient)
		for _, m := range []string{"c1", "c2", "c3", "c4"} {
			stompSend(t, c, "/queue/"+name, m)
		}
		ms := stompWantBodies(t, s, "c1", "c2", "c3", "c4")
		if err := c.Ack(ms[2]); err != nil {
			t.Fatal(err)
		}
		if err := c.Disconnect(); err != nil { // its RECEIPT follows the ACK
			t.Fatal(err)
		}
		if n := stompQueueCount(t, b.amqpURL, name); n != 1 {
			t.Fatalf("%d messages back in the queue, want 1 (c4)", n)
		}
		c2 := stompDial(t, b.addr, v)
		s2 := stompSub(t, c2, "/queue/"+name, stomp.AckClient)
		m := stompWantBodies(t, s2, "c4")[0]
		if m.Header.Get("redelivered") != "true" {
			t.Errorf("c4 came back with redelivered %q", m.Header.Get("redelivered"))
		}
	})
}

// TestSTOMPAckClientIndividual: with ack:client-individual an ACK settles
// that message only.
func TestSTOMPAckClientIndividual(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "ack-individual-" + string(v)
		c := stompDial(t, b.addr, v)
		s := stompSub(t, c, "/queue/"+name, stomp.AckClientIndividual)
		for _, m := range []string{"i1", "i2", "i3"} {
			stompSend(t, c, "/queue/"+name, m)
		}
		ms := stompWantBodies(t, s, "i1", "i2", "i3")
		if err := c.Ack(ms[1]); err != nil {
			t.Fatal(err)
		}
		if err := c.Disconnect(); err != nil {
			t.Fatal(err)
		}
		if n := stompQueueCount(t, b.amqpURL, name); n != 2 {
			t.Fatalf("%d messages back in the queue, want 2 (i1, i3)", n)
		}
		c2 := stompDial(t, b.addr, v)
		s2 := stompSub(t, c2, "/queue/"+name, stomp.AckClientIndividual)
		for _, m := range stompWantBodies(t, s2, "i1", "i3") {
			if m.Header.Get("redelivered") != "true" {
				t.Errorf("%s came back with redelivered %q", m.Body, m.Header.Get("redelivered"))
			}
			if err := c2.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestSTOMPNack: NACK requeues by default (the message comes back with
// redelivered:true); requeue:false discards it (dead-lettering is in
// TestSTOMPQueueArguments); with ack:client NACK is cumulative like ACK.
func TestSTOMPNack(t *testing.T) {
	b := startStompBroker(t)
	for _, v := range []stomp.Version{stomp.V11, stomp.V12} { // 1.0 has no NACK
		t.Run(string(v), func(t *testing.T) {
			t.Run("requeue", func(t *testing.T) {
				name := "nack-requeue-" + string(v)
				c := stompDial(t, b.addr, v)
				s := stompSub(t, c, "/queue/"+name, stomp.AckClientIndividual)
				stompSend(t, c, "/queue/"+name, "n1")
				stompSend(t, c, "/queue/"+name, "n2")
				ms := stompWantBodies(t, s, "n1", "n2")
				if ms[0].Header.Get("redelivered") != "false" {
					t.Errorf("first delivery with redelivered %q", ms[0].Header.Get("redelivered"))
				}
				if err := c.Nack(ms[0]); err != nil {
					t.Fatal(err)
				}
				again := stompWantBodies(t, s, "n1")[0]
				if again.Header.Get("redelivered") != "true" {
					t.Errorf("NACKed message came back with redelivered %q", again.Header.Get("redelivered"))
				}
				for _, m := range []*stomp.Message{ms[1], again} {
					if err := c.Ack(m); err != nil {
						t.Fatal(err)
					}
				}
				if err := c.Disconnect(); err != nil {
					t.Fatal(err)
				}
				if n := stompQueueCount(t, b.amqpURL, name); n != 0 {
					t.Fatalf("%d messages left", n)
				}
			})
			t.Run("requeue-false", func(t *testing.T) {
				name := "nack-drop-" + string(v)
				r := dialStompRaw(t, b.addr)
				r.connect(string(v))
				r.receipt("SUBSCRIBE", "", "s", "destination", "/queue/"+name, "id", "s1", "ack", "client-individual")
				r.receipt("SEND", "dropped", "p", "destination", "/queue/"+name)
				m := r.expect("MESSAGE")
				r.receipt("NACK", "", "n", append(stompAckHeaders(string(v), m), "requeue", "false")...)
				r.receipt("DISCONNECT", "", "bye")
				if n := stompQueueCount(t, b.amqpURL, name); n != 0 {
					t.Fatalf("NACK requeue:false left %d messages", n)
				}
			})
			t.Run("client-cumulative", func(t *testing.T) {
				name := "nack-client-" + string(v)
				c := stompDial(t, b.addr, v)
				s := stompSub(t, c, "/queue/"+name, stomp.AckClient)
				for _, m := range []string{"k1", "k2", "k3"} {
					stompSend(t, c, "/queue/"+name, m)
				}
				ms := stompWantBodies(t, s, "k1", "k2", "k3")
				if err := c.Nack(ms[1]); err != nil {
					t.Fatal(err)
				}
				back := stompWantBodies(t, s, "k1", "k2")
				if err := c.Ack(back[1]); err != nil { // settles k3 and both redeliveries
					t.Fatal(err)
				}
				if err := c.Disconnect(); err != nil {
					t.Fatal(err)
				}
				if n := stompQueueCount(t, b.amqpURL, name); n != 0 {
					t.Fatalf("%d messages left", n)
				}
			})
		})
	}
}

// TestSTOMPPrefetch: prefetch-count:N keeps at most N unacknowledged
// messages in flight on the subscription.
func TestSTOMPPrefetch(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "prefetch-" + string(v)
		c := stompDial(t, b.addr, v)
		s := stompSub(t, c, "/queue/"+name, stomp.AckClientIndividual, "prefetch-count", "2")
		for _, m := range []string{"p1", "p2", "p3", "p4", "p5"} {
			stompSend(t, c, "/queue/"+name, m)
		}
		ms := stompWantBodies(t, s, "p1", "p2")
		stompNothing(t, s)
		if n := stompQueueCount(t, b.amqpURL, name); n != 3 {
			t.Fatalf("%d messages ready with 2 in flight, want 3", n)
		}
		if err := c.Ack(ms[0]); err != nil {
			t.Fatal(err)
		}
		ms = append(ms, stompWantBodies(t, s, "p3")...)
		stompNothing(t, s)
		for _, m := range ms[1:] {
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
		for _, m := range stompWantBodies(t, s, "p4", "p5") {
			if err := c.Ack(m); err != nil {
				t.Fatal(err)
			}
		}
	})
}

// TestSTOMPCustomHeaders: headers the broker does not know pass through to
// STOMP subscribers, and to AMQP consumers as message headers.
func TestSTOMPCustomHeaders(t *testing.T) {
	b := startStompBroker(t)
	ch := stompAMQP(t, b.amqpURL)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "custom-" + string(v)
		c := stompDial(t, b.addr, v)
		s := stompSub(t, c, "/queue/"+name, stomp.AckAuto)
		custom := [][2]string{{"x-trace", "t-123"}, {"my-header", "hello world"}, {"Mixed-Case", "KeepMe"}}
		var hs []string
		for _, h := range custom {
			hs = append(hs, h[0], h[1])
		}
		stompSend(t, c, "/queue/"+name, "with headers", hs...)
		m := stompNext(t, s)
		for _, h := range custom {
			if got := m.Header.Get(h[0]); got != h[1] {
				t.Errorf("STOMP header %s = %q, want %q", h[0], got, h[1])
			}
		}

		aq, err := ch.QueueDeclare("", false, true, true, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := ch.QueueBind(aq.Name, "custom."+string(v), "amq.topic", false, nil); err != nil {
			t.Fatal(err)
		}
		msgs, err := ch.Consume(aq.Name, "", true, false, false, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		stompSend(t, c, "/topic/custom."+string(v), "to amqp", hs...)
		d := stompAMQPRecv(t, msgs)
		for _, h := range custom {
			if got := d.Headers[h[0]]; got != h[1] {
				t.Errorf("AMQP header %s = %v, want %q", h[0], got, h[1])
			}
		}
	})
}

// TestSTOMPAMQPProperties: an AMQP publish's properties arrive at a STOMP
// subscriber as headers, as RabbitMQ maps them (rabbit_stomp_util
// message_headers and headers_post_process): a reply-to naming a queue
// gets the /reply-queue/ prefix (one naming no queue is a routing key:
// /topic/), message-id becomes amqp-message-id, delivery-mode 2 becomes
// persistent:true.
func TestSTOMPAMQPProperties(t *testing.T) {
	b := startStompBroker(t)
	ch := stompAMQP(t, b.amqpURL)
	if _, err := ch.QueueDeclare("replies", false, true, false, false, nil); err != nil {
		t.Fatal(err)
	}
	forVersions(t, func(t *testing.T, v stomp.Version) {
		name := "from-amqp-" + string(v)
		c := stompDial(t, b.addr, v)
		s := stompSub(t, c, "/queue/"+name, stomp.AckAuto)
		pub := amqp.Publishing{
			ContentType:     "application/json",
			ContentEncoding: "gzip",
			CorrelationId:   "corr-1",
			ReplyTo:         "replies",
			Expiration:      "60000",
			Priority:        7,
			DeliveryMode:    amqp.Persistent,
			MessageId:       "mid-1",
			Timestamp:       time.Unix(1700000000, 0),
			Type:            "order.created",
			AppId:           "billing",
			UserId:          "guest",
			Headers:         amqp.Table{"x-trace": "abc", "n": int32(42)},
			Body:            []byte(`{"id":1}`),
		}
		if err := ch.PublishWithContext(context.Background(), "", name, false, false, pub); err != nil {
			t.Fatal(err)
		}
		m := stompNext(t, s)
		if string(m.Body) != `{"id":1}` {
			t.Fatalf("body %q", m.Body)
		}
		for _, h := range [][2]string{
			{"content-type", "application/json"},
			{"content-encoding", "gzip"},
			{"correlation-id", "corr-1"},
			{"reply-to", "/reply-queue/replies"},
			{"expiration", "60000"},
			{"priority", "7"},
			{"persistent", "true"},
			{"amqp-message-id", "mid-1"},
			{"timestamp", "1700000000"},
			{"type", "order.created"},
			{"app-id", "billing"},
			{"user-id", "guest"},
			{"x-trace", "abc"},
			{"n", "42"},
			{"destination", "/queue/" + name},
		} {
			if got := m.Header.Get(h[0]); got != h[1] {
				t.Errorf("header %s = %q, want %q", h[0], got, h[1])
			}
		}
		// A reply-to that already is a destination is left alone.
		pub = amqp.Publishing{ReplyTo: "/queue/answers", Body: []byte("2")}
		if err := ch.PublishWithContext(context.Background(), "", name, false, false, pub); err != nil {
			t.Fatal(err)
		}
		if got := stompNext(t, s).Header.Get("reply-to"); got != "/queue/answers" {
			t.Errorf("reply-to %q, want /queue/answers", got)
		}
		// One naming no queue is a routing key, as an MQTT 5 Response
		// Topic is: a SEND to /topic/<it> reaches the requester.
		pub = amqp.Publishing{ReplyTo: "svc.replies.dev1", Body: []byte("3")}
		if err := ch.PublishWithContext(context.Background(), "", name, false, false, pub); err != nil {
			t.Fatal(err)
		}
		if got := stompNext(t, s).Header.Get("reply-to"); got != "/topic/svc.replies.dev1" {
			t.Errorf("reply-to %q, want /topic/svc.replies.dev1", got)
		}
	})
}

// TestSTOMPUnackedRequeued: unacknowledged messages go back to their
// queue, marked redelivered, when their subscription ends (UNSUBSCRIBE)
// or their connection ends (DISCONNECT, or the socket just closes).
func TestSTOMPUnackedRequeued(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		for _, ack := range []stomp.AckMode{stomp.AckClient, stomp.AckClientIndividual} {
			for _, end := range []string{"unsubscribe", "disconnect", "close"} {
				t.Run(ack.String()+"-"+end, func(t *testing.T) {
					name := "unacked-" + ack.String() + "-" + end + "-" + string(v)
					c := stompDial(t, b.addr, v)
					s := stompSub(t, c, "/queue/"+name, ack)
					stompSend(t, c, "/queue/"+name, "u1")
					stompSend(t, c, "/queue/"+name, "u2")
					stompWantBodies(t, s, "u1", "u2")
					next := c
					switch end {
					case "unsubscribe":
						if err := s.Unsubscribe(); err != nil {
							t.Fatal(err)
						}
					case "disconnect":
						if err := c.Disconnect(); err != nil {
							t.Fatal(err)
						}
						next = stompDial(t, b.addr, v)
					case "close":
						stompGone(c) // no DISCONNECT: the socket closes
						next = stompDial(t, b.addr, v)
					}
					s2 := stompSub(t, next, "/queue/"+name, stomp.AckClientIndividual)
					for _, m := range stompWantBodies(t, s2, "u1", "u2") {
						if m.Header.Get("redelivered") != "true" {
							t.Errorf("%s came back with redelivered %q", m.Body, m.Header.Get("redelivered"))
						}
						if err := next.Ack(m); err != nil {
							t.Fatal(err)
						}
					}
				})
			}
		}
	})
}
