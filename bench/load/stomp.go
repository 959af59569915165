package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// stompDriver runs STOMP 1.2 scenarios over stompWire (stompwire.go), the
// generator's lean client, on RabbitMQ-style destinations, with
// client-individual acks: /queue/bench-RUN (a durable queue of that name in
// the default exchange, on RabbitMQ and on Junction) for RouteNative and
// RouteQueue, /topic/bench.RUN.x (amq.topic; each subscription a queue of
// its own) for RouteTopic. STOMP cannot delete a queue, so teardown deletes
// /queue/'s over AMQP when the broker speaks it.
type stompDriver struct {
	addr    string
	amqpURL string
	side    side
	mu      sync.Mutex // guards conns: close may run on any goroutine
	conns   []*stompWire
	pubs    []*stompWire
	dest    string // where producers SEND and consumers SUBSCRIBE
	queue   string // the queue dest declares, if it is a /queue/
}

func (d *stompDriver) dial(ctx context.Context) (*stompWire, error) {
	c, err := dialStompWire(ctx, d.addr)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *stompDriver) setup(ctx context.Context, r *run) error {
	switch r.sc.Route {
	case RouteNative, RouteQueue:
		if r.sc.Sinks != 1 {
			return errors.New("stomp: one queue only")
		}
		d.queue = r.routeQueue()
		d.dest = "/queue/" + d.queue
	case RouteTopic:
		d.dest = "/topic/" + r.routeKey()
	default:
		return fmt.Errorf("stomp: no destination for route %q", r.sc.Route)
	}
	if d.side.consumers() {
		if err := d.subscribe(ctx, r); err != nil {
			return err
		}
	}
	if !d.side.producers() {
		return nil
	}
	for range r.prods {
		c, err := d.dial(ctx)
		if err != nil {
			return err
		}
		d.pubs = append(d.pubs, c)
	}
	return nil
}

// subscribe connects the consumers, subscribes each to d.dest (with a
// receipt, so the subscription and the /queue/ it declares are in place
// before producers start) and starts their goroutines.
func (d *stompDriver) subscribe(ctx context.Context, r *run) error {
	for i, cs := range r.cons {
		c, err := d.dial(ctx)
		if err != nil {
			return err
		}
		if err := c.subscribe(ctx, strconv.Itoa(i), d.dest, r.sc.Prefetch); err != nil {
			return fmt.Errorf("consumer %d: %w", i, err)
		}
		r.wg.Go(func() {
			err := c.consume(r, cs)
			if !r.closing.Load() {
				r.fail(fmt.Errorf("consumer %d: %w", i, err))
			}
		})
	}
	return ctx.Err()
}

// consume reads MESSAGEs until the connection fails or closes, acking each
// with an ACK of its own; readFrame writes the ACKs when it runs out of
// buffered input.
func (c *stompWire) consume(r *run, cs *consumer) error {
	for {
		f, done, err := c.readFrame()
		if err != nil {
			return fmt.Errorf("deliveries stopped: %w", err)
		}
		switch f.command {
		case "MESSAGE":
			r.record(cs, f.body)
			id := f.header("ack")
			if id == nil {
				done()
				return errors.New("MESSAGE without an ack header")
			}
			c.ack(id)
		case "RECEIPT":
		default:
			err := f.err()
			done()
			return err
		}
		done()
	}
}

func (d *stompDriver) produce(_ context.Context, r *run, i int) error {
	sc, p, c := r.sc, r.prods[i], d.pubs[i]
	body := payload(sc.Size)
	for seq := uint64(0); ; seq++ {
		if len(c.out) > 0 && (len(c.out) >= wireFlushAt || r.outstanding() >= r.window) {
			// About to wait for the window: what is gathered goes now.
			if err := c.flush(); err != nil {
				return fmt.Errorf("producer %d: send: %w", i, err)
			}
		}
		if !r.acquire() {
			break
		}
		r.stamp(body, p, seq)
		c.send(d.dest, body, sc.Persistent)
		p.sent++
	}
	if err := c.flush(); err != nil {
		return fmt.Errorf("producer %d: send: %w", i, err)
	}
	return nil
}

func (d *stompDriver) close() {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
}

func (d *stompDriver) teardown(ctx context.Context, r *run) error {
	if d.queue == "" || d.amqpURL == "" {
		return nil
	}
	return deleteAMQP(ctx, d.amqpURL, []string{d.queue}, "")
}
