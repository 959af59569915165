package router

import (
	"testing"
)

// sink is a Handler that keeps only the last delivery, as a connection's
// outbox would hand it to its encoder.
type sink struct {
	last  Delivery
	count int
}

func (s *sink) Deliver(d Delivery)    { s.last = d; s.count++ }
func (s *sink) Cancelled(c *Consumer) {}

func benchPublishDeliver(b *testing.B, noAck bool) {
	e := newEnv(b)
	e.queue("q", QueueOptions{})
	s := &sink{}
	ch := e.v.NewChannel(0, s)
	if _, err := ch.Consume("q", "c", ConsumeOptions{NoAck: noAck, Prefetch: 100}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := NewMessage(body) // the one allocation: message and body copy
		m.RoutingKey = "q"
		if _, err := e.v.Publish("", m, nil); err != nil {
			b.Fatal(err)
		}
		if !noAck {
			if err := ch.Ack(s.last.Tag, false); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	if s.count != b.N {
		b.Fatalf("delivered %d of %d", s.count, b.N)
	}
}

// BenchmarkPublishDeliver publishes transient 256-byte messages through the
// default exchange to one queue whose consumer acknowledges each one.
func BenchmarkPublishDeliver(b *testing.B) { benchPublishDeliver(b, false) }

// BenchmarkPublishDeliverNoAck is the same with an auto-ack consumer.
func BenchmarkPublishDeliverNoAck(b *testing.B) { benchPublishDeliver(b, true) }

// BenchmarkPublishTopic routes through amq.topic with 10,000 bindings to
// one queue, consumer acknowledging.
func BenchmarkPublishTopic(b *testing.B) {
	e := newEnv(b)
	e.queue("q", QueueOptions{})
	e.queue("other", QueueOptions{})
	for i := 0; i < 10000; i++ {
		e.bind("other", "amq.topic", "sensors."+itoa(i)+".*", nil)
	}
	e.bind("q", "amq.topic", "sensors.42.#", nil)
	s := &sink{}
	ch := e.v.NewChannel(0, s)
	if _, err := ch.Consume("q", "c", ConsumeOptions{Prefetch: 100}); err != nil {
		b.Fatal(err)
	}
	body := make([]byte, 256)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		m := NewMessage(body)
		m.RoutingKey = "sensors.42.temp"
		if _, err := e.v.Publish("amq.topic", m, nil); err != nil {
			b.Fatal(err)
		}
		_ = ch.Ack(s.last.Tag, false)
		e.v.Queue("other").Purge()
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}

func TestPublishDeliverAllocs(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	s := &sink{}
	ch := e.v.NewChannel(0, s)
	if _, err := ch.Consume("q", "c", ConsumeOptions{Prefetch: 100}); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 256)
	publish := func() {
		m := NewMessage(body)
		m.RoutingKey = "q"
		_, _ = e.v.Publish("", m, nil)
		_ = ch.Ack(s.last.Tag, false)
	}
	for i := 0; i < 1000; i++ { // grow rings to steady state
		publish()
	}
	if n := testing.AllocsPerRun(1000, publish); n > 1 {
		t.Fatalf("%.2f allocations per publish→deliver→ack, want at most 1 (the body copy)", n)
	}
}

// TestTopicRouteAllocs pins the same budget through a topic exchange and an
// exchange-to-exchange hop: routing adds no allocation.
func TestTopicRouteAllocs(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	e.exchange("edge", "fanout", ExchangeOptions{})
	if err := e.v.BindExchange("edge", "amq.topic", "sensors.#", nil, nil); err != nil {
		t.Fatal(err)
	}
	e.bind("q", "edge", "", nil)
	e.bind("q", "amq.topic", "sensors.*.temp", nil)
	s := &sink{}
	ch := e.v.NewChannel(0, s)
	if _, err := ch.Consume("q", "c", ConsumeOptions{Prefetch: 100}); err != nil {
		t.Fatal(err)
	}
	body := make([]byte, 256)
	publish := func() {
		m := NewMessage(body)
		m.RoutingKey = "sensors.k1.temp"
		_, _ = e.v.Publish("amq.topic", m, nil)
		_ = ch.Ack(s.last.Tag, false)
	}
	for i := 0; i < 1000; i++ {
		publish()
	}
	if s.count != 1000 {
		t.Fatalf("delivered %d of 1000 (want one copy each)", s.count)
	}
	if n := testing.AllocsPerRun(1000, publish); n > 1 {
		t.Fatalf("%.2f allocations per topic publish→deliver→ack, want at most 1", n)
	}
}
