package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// amqpDriver runs AMQP 0-9-1 scenarios through rabbitmq/amqp091-go: queues
// (and an exchange) named after the run, one connection per producer and
// per consumer, consumers acking every delivery.
type amqpDriver struct {
	url      string
	mu       sync.Mutex // guards conns: close may run on any goroutine
	conns    []*amqp.Connection
	exchange string   // "" for the default exchange
	queues   []string // one per sink
	keys     []string // routing keys producers cycle through
	pubs     []*amqp.Channel
	confirms []chan amqp.Confirmation
}

func (d *amqpDriver) dial() (*amqp.Connection, *amqp.Channel, error) {
	c, err := amqp.Dial(d.url)
	if err != nil {
		return nil, nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	ch, err := c.Channel()
	if err != nil {
		return nil, nil, err
	}
	return c, ch, nil
}

func (d *amqpDriver) setup(ctx context.Context, r *run) error {
	sc := r.sc
	_, admin, err := d.dial()
	if err != nil {
		return err
	}
	for q := range sc.Sinks {
		name := "bench." + r.id + ".q" + strconv.Itoa(q)
		if _, err := admin.QueueDeclare(name, sc.Persistent, false, false, false, nil); err != nil {
			return fmt.Errorf("queue.declare %s: %w", name, err)
		}
		d.queues = append(d.queues, name)
	}
	switch sc.Exchange {
	case "":
		d.keys = []string{d.queues[0]}
	case "fanout":
		d.exchange = "bench." + r.id
		if err := admin.ExchangeDeclare(d.exchange, "fanout", false, false, false, false, nil); err != nil {
			return fmt.Errorf("exchange.declare: %w", err)
		}
		for _, q := range d.queues {
			if err := admin.QueueBind(q, "", d.exchange, false, nil); err != nil {
				return fmt.Errorf("queue.bind: %w", err)
			}
		}
		d.keys = []string{""}
	case "topic":
		// Bindings/Sinks patterns "bench.K.*", each bound to every queue, so
		// every message reaches every queue through a trie of many patterns.
		d.exchange = "bench." + r.id
		if err := admin.ExchangeDeclare(d.exchange, "topic", false, false, false, false, nil); err != nil {
			return fmt.Errorf("exchange.declare: %w", err)
		}
		patterns := max(sc.Bindings/sc.Sinks, 1)
		for k := range patterns {
			for _, q := range d.queues {
				if err := admin.QueueBind(q, "bench."+strconv.Itoa(k)+".*", d.exchange, false, nil); err != nil {
					return fmt.Errorf("queue.bind: %w", err)
				}
			}
			d.keys = append(d.keys, "bench."+strconv.Itoa(k)+".reading")
		}
	default:
		return fmt.Errorf("unknown exchange type %q", sc.Exchange)
	}

	for i, c := range r.cons {
		_, ch, err := d.dial()
		if err != nil {
			return err
		}
		if err := ch.Qos(sc.Prefetch, 0, false); err != nil {
			return fmt.Errorf("basic.qos: %w", err)
		}
		deliveries, err := ch.Consume(d.queues[c.sink], "bench-"+strconv.Itoa(i), false, false, false, false, nil)
		if err != nil {
			return fmt.Errorf("basic.consume: %w", err)
		}
		r.wg.Go(func() {
			for m := range deliveries {
				r.record(c, m.Body)
				if err := m.Ack(false); err != nil {
					if !r.closing.Load() {
						r.fail(fmt.Errorf("consumer %d: basic.ack: %w", i, err))
					}
					return
				}
			}
			if !r.closing.Load() {
				r.fail(fmt.Errorf("consumer %d: deliveries stopped: channel or connection closed by the broker", i))
			}
		})
	}
	for range r.prods {
		_, ch, err := d.dial()
		if err != nil {
			return err
		}
		var confirms chan amqp.Confirmation
		if sc.Confirms > 0 {
			if err := ch.Confirm(false); err != nil {
				return fmt.Errorf("confirm.select: %w", err)
			}
			// Room for every confirmation in flight, so the library never
			// blocks delivering one.
			confirms = ch.NotifyPublish(make(chan amqp.Confirmation, sc.Confirms+1))
		}
		d.pubs = append(d.pubs, ch)
		d.confirms = append(d.confirms, confirms)
	}
	return ctx.Err()
}

func (d *amqpDriver) produce(ctx context.Context, r *run, i int) error {
	sc, p, ch, confirms := r.sc, r.prods[i], d.pubs[i], d.confirms[i]
	msg := amqp.Publishing{ContentType: "application/octet-stream", Body: payload(sc.Size)}
	if sc.Persistent {
		msg.DeliveryMode = amqp.Persistent
	}
	inflight := 0
	await := func() error { // the oldest confirmation; delivery tag n is sequence number n-1
		select {
		case c, ok := <-confirms:
			if !ok {
				return errors.New("confirms stopped: channel closed by the broker")
			}
			inflight--
			if c.Ack {
				p.acked.add(c.DeliveryTag - 1)
			} else {
				p.nacked++
			}
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	for seq := uint64(0); ; seq++ {
		if confirms != nil && inflight >= sc.Confirms {
			if err := await(); err != nil {
				return fmt.Errorf("producer %d: %w", i, err)
			}
		}
		if !r.acquire() {
			break
		}
		r.stamp(msg.Body, p, seq)
		// amqp091-go writes the frames before Publish returns, so the body
		// buffer is ours again at once.
		if err := ch.PublishWithContext(ctx, d.exchange, d.keys[seq%uint64(len(d.keys))], false, false, msg); err != nil {
			return fmt.Errorf("producer %d: basic.publish: %w", i, err)
		}
		p.sent++
		inflight++
	}
	for confirms != nil && inflight > 0 {
		if err := await(); err != nil {
			return fmt.Errorf("producer %d: %w", i, err)
		}
	}
	return nil
}

func (d *amqpDriver) close() {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for _, c := range conns {
		_ = c.CloseDeadline(time.Now().Add(5 * time.Second))
	}
}

func (d *amqpDriver) teardown(ctx context.Context, r *run) error {
	if len(d.queues) == 0 {
		return nil
	}
	c, err := amqp.Dial(d.url)
	if err != nil {
		return err
	}
	defer c.CloseDeadline(time.Now().Add(5 * time.Second))
	ch, err := c.Channel()
	if err != nil {
		return err
	}
	var errs []error
	for _, q := range d.queues {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			errs = append(errs, err)
		}
	}
	if d.exchange != "" {
		errs = append(errs, ch.ExchangeDelete(d.exchange, false, false))
	}
	return errors.Join(errs...)
}
