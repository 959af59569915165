package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/junction-broker/junction/conf"
	"github.com/junction-broker/junction/router"
)

func testConfig(t *testing.T, dir string) conf.Config {
	t.Helper()
	cfg, _, err := conf.Load([]string{"--data-dir", dir, "--amqp-listen", "127.0.0.1:0",
		"--mqtt-listen", "127.0.0.1:0", "--stomp-listen", "127.0.0.1:0"}, noEnv)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

type sink struct{ ch chan router.Delivery }

func (s sink) Deliver(d router.Delivery)    { s.ch <- d }
func (s sink) Cancelled(c *router.Consumer) {}

// TestRestartKeepsConfirmedMessages publishes persistent messages into a
// durable queue through the broker as wired for production (router over
// Pebble), acknowledges part of them, stops, starts again on the same data
// directory and checks every confirmed, unacknowledged message is back in
// order, marked redelivered.
func TestRestartKeepsConfirmedMessages(t *testing.T) {
	dir := t.TempDir()
	cfg := testConfig(t, dir)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	b, stop, err := startBroker(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	v := b.router.VHost("/")
	declared := make(chan error, 1)
	if _, err := v.DeclareQueue("orders", router.QueueOptions{Durable: true}, false, 0, func(err error) { declared <- err }); err != nil {
		t.Fatal(err)
	}
	if err := <-declared; err != nil {
		t.Fatal(err)
	}
	const n = 200
	confirms := make(chan error, n)
	for i := 0; i < n; i++ {
		m := router.NewMessage([]byte(fmt.Sprintf("order-%03d", i)))
		m.RoutingKey = "orders"
		m.Properties.Flags = router.HasDeliveryMode
		m.Properties.DeliveryMode = router.Persistent
		if _, err := v.Publish("", m, func(err error) { confirms <- err }); err != nil {
			t.Fatal(err)
		}
	}
	for i := 0; i < n; i++ {
		select {
		case err := <-confirms:
			if err != nil {
				t.Fatalf("confirm %d: %v", i, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("only %d of %d confirmed", i, n)
		}
	}
	// Consume and acknowledge the first 50.
	s := sink{ch: make(chan router.Delivery, n)}
	ch := v.NewChannel(1, s)
	if _, err := ch.Consume("orders", "", router.ConsumeOptions{Prefetch: 50}); err != nil {
		t.Fatal(err)
	}
	var last router.DeliveryTag
	for i := 0; i < 50; i++ {
		d := <-s.ch
		last = d.Tag
	}
	if err := ch.Ack(last, true); err != nil {
		t.Fatal(err)
	}
	ch.Close() // the 50 more it was handed go back to the queue
	if err := stop(ctx); err != nil {
		t.Fatal(err)
	}

	b, stop, err = startBroker(ctx, cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = stop(ctx) }()
	q := b.router.VHost("/").Queue("orders")
	if q == nil {
		t.Fatal("durable queue lost")
	}
	ch = b.router.VHost("/").NewChannel(2, sink{})
	for i := 50; i < n; i++ {
		d, ok := q.Get(ch, true)
		if !ok {
			t.Fatalf("message %d missing after restart", i)
		}
		if want := fmt.Sprintf("order-%03d", i); string(d.Message.Body) != want || !d.Redelivered {
			t.Fatalf("got %q (redelivered %v), want %q", d.Message.Body, d.Redelivered, want)
		}
	}
	if _, ok := q.Get(ch, true); ok {
		t.Fatal("an acknowledged message came back")
	}
}
