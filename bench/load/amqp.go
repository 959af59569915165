package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"

	"github.com/junction-broker/junction/protocols/amqp/frame"
)

// amqpDriver runs AMQP 0-9-1 scenarios over wireConn (amqpwire.go), the
// generator's lean client: queues (and an exchange) named after the run,
// one connection per producer and per consumer, consumers acking every
// delivery with a basic.ack of its own (written in batches), producers
// pipelining publishes and keeping at most Confirms unconfirmed.
type amqpDriver struct {
	url      string
	side     side
	mu       sync.Mutex // guards conns: close may run on any goroutine
	conns    []*wireConn
	exchange string   // where producers publish: "" for the default exchange
	declared string   // the exchange setup declared, for teardown; "" if none
	queues   []string // one per sink, declared by setup
	keys     []string // routing keys producers cycle through
	pubs     []*wireConn
}

func (d *amqpDriver) dial(ctx context.Context) (*wireConn, error) {
	c, err := dialWire(ctx, d.url)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *amqpDriver) setup(ctx context.Context, r *run) error {
	sc := r.sc
	switch {
	case d.side.consumers():
		if err := d.declare(ctx, r); err != nil {
			return err
		}
	case sc.Route == RouteQueue:
		d.keys = []string{r.routeQueue()}
	case sc.Route == RouteTopic:
		d.exchange, d.keys = "amq.topic", []string{r.routeKey()}
	default:
		return fmt.Errorf("amqp: no destination for producers on route %q", sc.Route)
	}
	if d.side.consumers() {
		if err := d.consume(ctx, r); err != nil {
			return err
		}
	}
	if d.side.producers() {
		if err := d.connectProducers(ctx, r); err != nil {
			return err
		}
	}
	return ctx.Err()
}

// declare declares the queues the consumers read, and the exchange and
// bindings that lead there, and sets where producers publish.
func (d *amqpDriver) declare(ctx context.Context, r *run) error {
	sc := r.sc
	admin, err := d.dial(ctx)
	if err != nil {
		return err
	}
	for q := range sc.Sinks {
		name := "bench." + r.id + ".q" + strconv.Itoa(q)
		if sc.Route == RouteQueue {
			if sc.Sinks != 1 {
				return errors.New("amqp: route queue is one sink")
			}
			name = r.routeQueue()
		}
		if _, err := admin.call(&frame.QueueDeclare{Queue: name, Durable: sc.Persistent}, &frame.QueueDeclareOk{}); err != nil {
			return fmt.Errorf("queue.declare %s: %w", name, err)
		}
		d.queues = append(d.queues, name)
	}
	switch {
	case sc.Route == RouteTopic:
		d.exchange, d.keys = "amq.topic", []string{r.routeKey()}
		for _, q := range d.queues {
			if err := admin.bind(q, d.exchange, r.routeKey()); err != nil {
				return fmt.Errorf("queue.bind: %w", err)
			}
		}
	case sc.Route == RouteQueue || sc.Exchange == "":
		d.keys = []string{d.queues[0]}
	case sc.Exchange == "fanout":
		d.exchange = "bench." + r.id
		d.declared = d.exchange
		if err := admin.declareExchange(d.exchange, "fanout"); err != nil {
			return fmt.Errorf("exchange.declare: %w", err)
		}
		for _, q := range d.queues {
			if err := admin.bind(q, d.exchange, ""); err != nil {
				return fmt.Errorf("queue.bind: %w", err)
			}
		}
		d.keys = []string{""}
	case sc.Exchange == "topic":
		// Bindings/Sinks patterns "bench.K.*", each bound to every queue, so
		// every message reaches every queue through a trie of many patterns.
		d.exchange = "bench." + r.id
		d.declared = d.exchange
		if err := admin.declareExchange(d.exchange, "topic"); err != nil {
			return fmt.Errorf("exchange.declare: %w", err)
		}
		patterns := max(sc.Bindings/sc.Sinks, 1)
		for k := range patterns {
			for _, q := range d.queues {
				if err := admin.bind(q, d.exchange, "bench."+strconv.Itoa(k)+".*"); err != nil {
					return fmt.Errorf("queue.bind: %w", err)
				}
			}
			d.keys = append(d.keys, "bench."+strconv.Itoa(k)+".reading")
		}
	default:
		return fmt.Errorf("unknown exchange type %q", sc.Exchange)
	}
	return nil
}

// consume connects the consumers and starts their goroutines.
func (d *amqpDriver) consume(ctx context.Context, r *run) error {
	sc := r.sc
	for i, cs := range r.cons {
		c, err := d.dial(ctx)
		if err != nil {
			return err
		}
		if _, err := c.call(&frame.BasicQos{PrefetchCount: uint16(sc.Prefetch)}, &frame.BasicQosOk{}); err != nil {
			return fmt.Errorf("basic.qos: %w", err)
		}
		tag := "bench-" + strconv.Itoa(i)
		if _, err := c.call(&frame.BasicConsume{Queue: d.queues[cs.sink], ConsumerTag: tag}, &frame.BasicConsumeOk{}); err != nil {
			return fmt.Errorf("basic.consume: %w", err)
		}
		r.wg.Go(func() {
			err := c.consume(r, cs)
			if !r.closing.Load() {
				r.fail(fmt.Errorf("consumer %d: %w", i, err))
			}
		})
	}
	return nil
}

// connectProducers connects the producers, in confirm mode if asked.
func (d *amqpDriver) connectProducers(ctx context.Context, r *run) error {
	for range r.prods {
		c, err := d.dial(ctx)
		if err != nil {
			return err
		}
		if r.sc.Confirms > 0 {
			if _, err := c.call(&frame.ConfirmSelect{}, &frame.ConfirmSelectOk{}); err != nil {
				return fmt.Errorf("confirm.select: %w", err)
			}
		}
		d.pubs = append(d.pubs, c)
	}
	return nil
}

func (d *amqpDriver) produce(ctx context.Context, r *run, i int) error {
	return d.pubs[i].produce(ctx, r, i, d.exchange, d.keys)
}

func (d *amqpDriver) close() {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

func (d *amqpDriver) teardown(ctx context.Context, r *run) error {
	if len(d.queues) == 0 {
		return nil
	}
	return deleteAMQP(ctx, d.url, d.queues, d.declared)
}

// deleteAMQP deletes queues and, unless "", exchange, on a connection of
// its own.
func deleteAMQP(ctx context.Context, url string, queues []string, exchange string) error {
	c, err := dialWire(ctx, url)
	if err != nil {
		return err
	}
	defer c.close()
	var errs []error
	for _, q := range queues {
		if _, err := c.call(&frame.QueueDelete{Queue: q}, &frame.QueueDeleteOk{}); err != nil {
			errs = append(errs, err)
		}
	}
	if exchange != "" {
		if _, err := c.call(&frame.ExchangeDelete{Exchange: exchange}, &frame.ExchangeDeleteOk{}); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}
