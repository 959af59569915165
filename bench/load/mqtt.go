package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
)

// mqttDriver runs MQTT 3.1.1 scenarios over mqttWire (mqttwire.go), the
// generator's lean client: one connection per publisher and per subscriber,
// clean-session unless the scenario keeps persistent sessions for its
// subscribers. Fan-in: each publisher has its own topic bench/RUN/pN and
// one subscriber takes bench/RUN/+; fan-out: one topic bench/RUN/fan and
// every subscriber takes it; RouteTopic: every publisher on bench/RUN/x,
// every subscriber takes it.
type mqttDriver struct {
	addr     string
	side     side
	mu       sync.Mutex // guards conns: close may run on any goroutine
	conns    []*mqttWire
	pubs     []*mqttPub
	readers  sync.WaitGroup // the publishers' readers
	sessions []string       // client ids of persistent sessions, for teardown
}

// mqttPub is one publisher: its connection, its topic, and what its
// reader has seen acknowledged (PUBACK at QoS 1, PUBCOMP at QoS 2).
type mqttPub struct {
	c     *mqttWire
	topic string
	w     wireConfirms
}

func (d *mqttDriver) dial(ctx context.Context, id string, clean bool) (*mqttWire, error) {
	c, err := dialMQTTWire(ctx, d.addr, id, clean)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	d.conns = append(d.conns, c)
	d.mu.Unlock()
	return c, nil
}

func (d *mqttDriver) setup(ctx context.Context, r *run) error {
	sc := r.sc
	base := "bench/" + r.id + "/"
	filter := base + "+"
	var topics []string // per producer
	for i := range r.prods {
		switch {
		case sc.Route == RouteTopic:
			topics = append(topics, r.routeTopic())
		case sc.Route != RouteNative:
			return fmt.Errorf("mqtt: no topic for route %q", sc.Route)
		case sc.FanOut:
			topics = append(topics, base+"fan")
		default:
			topics = append(topics, base+"p"+strconv.Itoa(i))
		}
	}
	switch {
	case sc.Route == RouteTopic:
		filter = r.routeTopic()
	case sc.Route != RouteNative:
		return fmt.Errorf("mqtt: no subscription for route %q", sc.Route)
	case sc.FanOut:
		filter = base + "fan"
	}
	if d.side.consumers() {
		if err := d.subscribe(ctx, r, filter); err != nil {
			return err
		}
	}
	if !d.side.producers() {
		return nil
	}
	for i, p := range r.prods {
		c, err := d.dial(ctx, "bench-"+r.id+"-p"+strconv.Itoa(i), true)
		if err != nil {
			return err
		}
		pb := &mqttPub{c: c, topic: topics[i]}
		pb.w.cond.L = &pb.w.mu
		d.pubs = append(d.pubs, pb)
		d.readers.Go(func() { pb.readAcks(r, p, i) })
	}
	return nil
}

// subscribe connects the subscribers, subscribes each to filter at the
// scenario's QoS and starts their goroutines; it returns once every
// SUBACK has come.
func (d *mqttDriver) subscribe(ctx context.Context, r *run, filter string) error {
	sc := r.sc
	for i, cs := range r.cons {
		id := "bench-" + r.id + "-s" + strconv.Itoa(i)
		if sc.PersistentSession {
			d.sessions = append(d.sessions, id) // before connecting: a session may exist even if CONNECT fails later
		}
		c, err := d.dial(ctx, id, !sc.PersistentSession)
		if err != nil {
			return err
		}
		c.out = appendSubscribe(c.out, 1, filter, sc.QoS)
		if err := c.flush(); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		// The goroutine reads from now on: a broker may deliver before
		// its SUBACK (MQTT 3.1.1 §3.8.4).
		subacked := make(chan error, 1)
		r.wg.Go(func() {
			err := c.consume(r, cs, sc.DeliveryQoS(), subacked)
			select {
			case subacked <- err:
			default:
			}
			if !r.closing.Load() {
				r.fail(fmt.Errorf("subscriber %d: %w", i, err))
			}
		})
		select {
		case err := <-subacked:
			if err != nil {
				return fmt.Errorf("subscribe %s: %w", filter, err)
			}
		case <-ctx.Done():
			return fmt.Errorf("subscribe %s: %w", filter, ctx.Err())
		}
	}
	return nil
}

// consume reads deliveries until the connection fails or closes, and
// acknowledges each as its QoS asks: PUBACK at 1; PUBREC at 2, then
// PUBCOMP on the PUBREL. next writes the acknowledgements whenever it runs
// out of input. The SUBACK of packet id 1 is reported on subacked.
func (c *mqttWire) consume(r *run, cs *consumer, want byte, subacked chan<- error) error {
	for {
		p, n, err := c.next()
		if err != nil {
			return fmt.Errorf("deliveries stopped: %w", err)
		}
		switch p.kind {
		case mqttPublish:
			_, id, payload, err := parseMQTTPublish(p)
			if err != nil {
				return err
			}
			r.record(cs, payload)
			if p.qos() < want {
				cs.low++
			}
			switch p.qos() {
			case 1:
				c.owed = appendMQTTAck(c.owed, mqttPuback, id)
			case 2:
				c.owed = appendMQTTAck(c.owed, mqttPubrec, id)
			}
		case mqttPubrel:
			id, err := parseMQTTID(p)
			if err != nil {
				return err
			}
			c.owed = appendMQTTAck(c.owed, mqttPubcomp, id)
		case mqttSuback:
			id, codes, err := parseMQTTSuback(p)
			switch {
			case err != nil:
			case id != 1 || len(codes) != 1:
				err = fmt.Errorf("SUBACK for packet id %d with %d return codes, expected 1 and 1", id, len(codes))
			case codes[0] == 0x80:
				err = errors.New("refused (0x80)")
			}
			if subacked == nil {
				err = errors.New("a second SUBACK")
			}
			if err != nil {
				return err
			}
			subacked <- nil
			subacked = nil
		case mqttPingresp:
		default:
			return fmt.Errorf("unexpected %s packet", p.kind)
		}
		c.discard(n)
	}
}

// readAcks reads publisher i's connection until it fails or closes:
// PUBACKs at QoS 1; at QoS 2, PUBRECs, answered by PUBRELs (written by
// next whenever it runs out of input), and PUBCOMPs. A message counts as
// acknowledged on its PUBACK or PUBCOMP.
func (pb *mqttPub) readAcks(r *run, p *producer, i int) {
	c, w, qos := pb.c, &pb.w, r.sc.QoS
	fail := func(err error) {
		w.fail(err)
		if !r.closing.Load() {
			r.fail(fmt.Errorf("publisher %d: %w", i, err))
		}
	}
	for {
		pk, n, err := c.next()
		if err != nil {
			fail(fmt.Errorf("connection lost: %w", err))
			return
		}
		switch {
		case pk.kind == mqttPingresp:
		case qos == 1 && pk.kind == mqttPuback, qos == 2 && (pk.kind == mqttPubrec || pk.kind == mqttPubcomp):
			id, err := parseMQTTID(pk)
			if err != nil {
				fail(err)
				return
			}
			w.mu.Lock()
			seq, ok := mqttSeq(id, w.low, p.sent)
			w.mu.Unlock()
			switch {
			case !ok:
				fail(fmt.Errorf("%s for packet id %d, which is not in flight", pk.kind, id))
				return
			case pk.kind == mqttPubrec:
				c.owed = appendMQTTAck(c.owed, mqttPubrel, id)
			default:
				w.settle(p, seq+1, false, true)
			}
		default:
			fail(fmt.Errorf("unexpected %s packet at QoS %d", pk.kind, qos))
			return
		}
		c.discard(n)
	}
}

func (d *mqttDriver) produce(ctx context.Context, r *run, i int) error {
	sc, p, pb := r.sc, r.prods[i], d.pubs[i]
	c, w := pb.c, &pb.w
	body := payload(sc.Size)
	limit := uint64(min(max(sc.Inflight, 1), mqttPacketIDs))
	// blocked reports, under w.mu, whether the next message must wait:
	// limit are unacknowledged, or its packet id is not yet free.
	blocked := func() bool { return p.sent-w.confirmed >= limit || p.sent-w.low >= mqttPacketIDs }
	// wait waits until the next message need not, or every message is
	// acknowledged (all).
	wait := func(all bool) error {
		w.mu.Lock()
		defer w.mu.Unlock()
		for (all && p.sent > w.confirmed || !all && blocked()) && w.err == nil && ctx.Err() == nil {
			w.cond.Wait()
		}
		if w.err != nil {
			return fmt.Errorf("publisher %d: %w", i, w.err)
		}
		return ctx.Err()
	}
	stopWait := context.AfterFunc(ctx, func() {
		w.mu.Lock()
		w.cond.Broadcast()
		w.mu.Unlock()
	})
	defer stopWait()
	for seq := uint64(0); ; seq++ {
		if sc.QoS > 0 {
			w.mu.Lock()
			full := blocked()
			w.mu.Unlock()
			if full {
				if err := c.flush(); err != nil {
					return fmt.Errorf("publisher %d: publish: %w", i, err)
				}
				if err := wait(false); err != nil {
					return err
				}
			}
		}
		if len(c.out) > 0 && (len(c.out) >= wireFlushAt || r.outstanding() >= r.window) {
			// About to wait for the window: what is gathered goes now.
			if err := c.flush(); err != nil {
				return fmt.Errorf("publisher %d: publish: %w", i, err)
			}
		}
		if !r.acquire() {
			break
		}
		r.stamp(body, p, seq)
		c.out = appendMQTTPublish(c.out, pb.topic, sc.QoS, mqttPacketID(seq), body)
		if sc.QoS > 0 {
			w.mu.Lock()
			p.sent++
			w.mu.Unlock()
		} else {
			p.sent++
		}
	}
	if err := c.flush(); err != nil {
		return fmt.Errorf("publisher %d: publish: %w", i, err)
	}
	if sc.QoS > 0 {
		return wait(true)
	}
	return nil
}

// close sends DISCONNECT on every connection, all at once (each may wait
// up to 2 s to write if the broker has stopped reading), closes them, and
// waits for the publishers' readers; the subscribers' goroutines are r.wg.
func (d *mqttDriver) close() {
	d.mu.Lock()
	conns := d.conns
	d.conns = nil
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range conns {
		wg.Go(c.close)
	}
	wg.Wait()
	d.readers.Wait()
}

// teardown ends the persistent sessions, each by connecting with clean
// session 1 under its client id, which discards the session and its queue
// ([MQTT-3.1.2-6]); clean sessions leave nothing behind.
func (d *mqttDriver) teardown(ctx context.Context, _ *run) error {
	var errs []error
	for _, id := range d.sessions {
		c, err := dialMQTTWire(ctx, d.addr, id, true)
		if err != nil {
			errs = append(errs, fmt.Errorf("end session %s: %w", id, err))
			continue
		}
		c.close()
	}
	return errors.Join(errs...)
}
