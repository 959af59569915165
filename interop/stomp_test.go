package interop

import (
	"context"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

func dialSTOMP(t *testing.T, addr string) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", addr, stomp.ConnOpt.Host("/"), stomp.ConnOpt.Login("guest", "guest"))
	if err != nil {
		t.Fatalf("stomp dial: %v", err)
	}
	t.Cleanup(func() { _ = c.Disconnect() })
	return c
}

// sync waits until the server has processed everything c sent before: a
// SEND with a receipt is answered after the frames before it.
func syncSTOMP(t *testing.T, c *stomp.Conn) {
	t.Helper()
	if err := c.Send("/queue/sync", "", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func readMsg(t *testing.T, s *stomp.Subscription) *stomp.Message {
	t.Helper()
	select {
	case m, ok := <-s.C:
		if !ok {
			t.Fatal("subscription closed")
		}
		if m.Err != nil {
			t.Fatalf("subscription error: %v", m.Err)
		}
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a MESSAGE")
	}
	return nil
}

func TestSTOMPQueueRoundTrip(t *testing.T) {
	addr, _ := startSTOMP(t)
	c := dialSTOMP(t, addr)
	if v := c.Version(); v != stomp.V12 {
		t.Fatalf("version %v", v)
	}
	sub, err := c.Subscribe("/queue/rt", stomp.AckClientIndividual)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Send("/queue/rt", "text/plain", []byte("hello\x00world"), stomp.SendOpt.Receipt,
		stomp.SendOpt.Header("persistent", "true"), stomp.SendOpt.Header("x-custom", "a:b")); err != nil {
		t.Fatal(err)
	}
	m := readMsg(t, sub)
	if string(m.Body) != "hello\x00world" || m.ContentType != "text/plain" || m.Header.Get("x-custom") != "a:b" ||
		m.Header.Get("persistent") != "true" || m.Destination != "/queue/rt" {
		t.Fatalf("MESSAGE %+v %q", m.Header, m.Body)
	}
	if err := c.Ack(m); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
}

func TestSTOMPTopicFanOut(t *testing.T) {
	addr, _ := startSTOMP(t)
	c1, c2 := dialSTOMP(t, addr), dialSTOMP(t, addr)
	var subs []*stomp.Subscription
	for _, c := range []*stomp.Conn{c1, c2} {
		s, err := c.Subscribe("/topic/news.#", stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		syncSTOMP(t, c)
		subs = append(subs, s)
	}
	if err := c1.Send("/topic/news.today", "", []byte("extra"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	for _, s := range subs {
		if m := readMsg(t, s); string(m.Body) != "extra" || m.Destination != "/topic/news.today" {
			t.Fatalf("MESSAGE %+v %q", m.Header, m.Body)
		}
	}
}

func TestSTOMPToAMQP(t *testing.T) {
	addr, url := startSTOMP(t)
	_, ch := dial(t, url)
	q, err := ch.QueueDeclare("s2a", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := dialSTOMP(t, addr)
	if err := c.Send("/queue/s2a", "application/json", []byte(`{"a":1}`), stomp.SendOpt.Receipt,
		stomp.SendOpt.Header("correlation-id", "c1"), stomp.SendOpt.Header("persistent", "true"),
		stomp.SendOpt.Header("custom", "v")); err != nil {
		t.Fatal(err)
	}
	d := recvOne(t, msgs)
	if string(d.Body) != `{"a":1}` || d.ContentType != "application/json" || d.CorrelationId != "c1" ||
		d.DeliveryMode != amqp.Persistent || d.Headers["custom"] != "v" || d.RoutingKey != "s2a" {
		t.Fatalf("delivery %+v", d)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
}

func TestAMQPToSTOMPTopic(t *testing.T) {
	addr, url := startSTOMP(t)
	c := dialSTOMP(t, addr)
	sub, err := c.Subscribe("/topic/k", stomp.AckAuto)
	if err != nil {
		t.Fatal(err)
	}
	syncSTOMP(t, c)
	_, ch := dial(t, url)
	err = ch.PublishWithContext(context.Background(), "amq.topic", "k", false, false, amqp.Publishing{
		ContentType: "text/plain", MessageId: "m1", Headers: amqp.Table{"h": "v", "n": int32(7)}, Body: []byte("from amqp"),
	})
	if err != nil {
		t.Fatal(err)
	}
	m := readMsg(t, sub)
	if string(m.Body) != "from amqp" || m.ContentType != "text/plain" || m.Destination != "/topic/k" ||
		m.Header.Get("amqp-message-id") != "m1" || m.Header.Get("h") != "v" || m.Header.Get("n") != "7" {
		t.Fatalf("MESSAGE %+v %q", m.Header, m.Body)
	}
}
