package load

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mqttDriver runs MQTT 3.1.1 scenarios through eclipse/paho.mqtt.golang:
// one client per publisher and per subscriber, clean-session unless the
// scenario keeps persistent sessions for its subscribers. Fan-in: each
// publisher has its own topic bench/RUN/pN and one subscriber takes
// bench/RUN/+; fan-out: one topic bench/RUN/fan and every subscriber takes
// it; RouteTopic: every publisher on bench/RUN/x, every subscriber takes it.
type mqttDriver struct {
	addr     string
	side     side
	mu       sync.Mutex // guards clients: close may run on any goroutine
	clients  []mqtt.Client
	pubs     []mqtt.Client
	topics   []string // per producer
	sessions []string // client ids of persistent sessions, for teardown
}

func (d *mqttDriver) connect(ctx context.Context, r *run, id string, clean bool) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().
		AddBroker("tcp://" + d.addr).
		SetClientID(id).
		SetUsername("guest").SetPassword("guest"). // RabbitMQ's default user; Mosquitto allows anonymous
		SetProtocolVersion(4).
		SetCleanSession(clean).
		SetAutoReconnect(false).
		SetConnectRetry(false).
		SetKeepAlive(30 * time.Second).
		SetConnectTimeout(10 * time.Second).
		SetOrderMatters(true). // handlers run one at a time, in order, on one goroutine
		SetConnectionLostHandler(func(_ mqtt.Client, err error) {
			if !r.closing.Load() {
				r.fail(fmt.Errorf("%s: connection lost: %w", id, err))
			}
		})
	c := mqtt.NewClient(o)
	d.mu.Lock()
	d.clients = append(d.clients, c)
	d.mu.Unlock()
	if err := wait(ctx, c.Connect()); err != nil {
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	return c, nil
}

func wait(ctx context.Context, t mqtt.Token) error {
	select {
	case <-t.Done():
		return t.Error()
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *mqttDriver) setup(ctx context.Context, r *run) error {
	sc := r.sc
	base := "bench/" + r.id + "/"
	filter := base + "+"
	for i := range r.prods {
		switch {
		case sc.Route == RouteTopic:
			d.topics = append(d.topics, r.routeTopic())
		case sc.Route != RouteNative:
			return fmt.Errorf("mqtt: no topic for route %q", sc.Route)
		case sc.FanOut:
			d.topics = append(d.topics, base+"fan")
		default:
			d.topics = append(d.topics, base+"p"+strconv.Itoa(i))
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
	for i := range r.prods {
		cl, err := d.connect(ctx, r, "bench-"+r.id+"-p"+strconv.Itoa(i), true)
		if err != nil {
			return err
		}
		d.pubs = append(d.pubs, cl)
	}
	return nil
}

// subscribe connects the subscribers and subscribes each to filter.
func (d *mqttDriver) subscribe(ctx context.Context, r *run, filter string) error {
	sc := r.sc
	want := sc.DeliveryQoS()
	for i, c := range r.cons {
		id := "bench-" + r.id + "-s" + strconv.Itoa(i)
		if sc.PersistentSession {
			d.sessions = append(d.sessions, id) // before connecting: a session may exist even if CONNECT fails later
		}
		cl, err := d.connect(ctx, r, id, !sc.PersistentSession)
		if err != nil {
			return err
		}
		t := cl.Subscribe(filter, sc.QoS, func(_ mqtt.Client, m mqtt.Message) {
			c.mu.Lock()
			r.record(c, m.Payload())
			if m.Qos() < want {
				c.low++
			}
			c.mu.Unlock()
		})
		if err := wait(ctx, t); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		if q := t.(*mqtt.SubscribeToken).Result()[filter]; q == 0x80 {
			return fmt.Errorf("subscribe %s: refused (0x80)", filter)
		}
	}
	return nil
}

func (d *mqttDriver) produce(ctx context.Context, r *run, i int) error {
	sc, p, cl, topic := r.sc, r.prods[i], d.pubs[i], d.topics[i]
	// paho keeps the payload slice until the message is written (QoS 0) or
	// acknowledged (QoS 1, 2), so a ring of Inflight buffers, each reused
	// only once the token of the message it last carried is done; that
	// ring also bounds the unacknowledged messages.
	k := uint64(max(sc.Inflight, 1))
	bufs := make([][]byte, k)
	toks := make([]mqtt.Token, k)
	for j := range bufs {
		bufs[j] = payload(sc.Size)
	}
	done := func(seq uint64) error {
		slot := seq % k
		if toks[slot] == nil {
			return nil
		}
		if err := wait(ctx, toks[slot]); err != nil {
			return fmt.Errorf("publisher %d: publish: %w", i, err)
		}
		toks[slot] = nil
		if sc.QoS > 0 {
			p.acked.add(seq)
		}
		return nil
	}
	for seq := uint64(0); ; seq++ {
		if seq >= k {
			if err := done(seq - k); err != nil {
				return err
			}
		}
		if !r.acquire() {
			break
		}
		slot := seq % k
		r.stamp(bufs[slot], p, seq)
		toks[slot] = cl.Publish(topic, sc.QoS, false, bufs[slot])
		p.sent++
	}
	for seq := p.sent - min(p.sent, k); seq < p.sent; seq++ {
		if err := done(seq); err != nil {
			return err
		}
	}
	return nil
}

func (d *mqttDriver) close() {
	d.mu.Lock()
	clients := d.clients
	d.clients = nil
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			if c.IsConnectionOpen() {
				c.Disconnect(20) // everything owed has arrived or is given up on
			}
		})
	}
	wg.Wait()
}

// teardown ends the persistent sessions, each by connecting with clean
// session 1 under its client id, which discards the session and its queue
// ([MQTT-3.1.2-6]); clean sessions leave nothing behind.
func (d *mqttDriver) teardown(ctx context.Context, r *run) error {
	var errs []error
	for _, id := range d.sessions {
		o := mqtt.NewClientOptions().
			AddBroker("tcp://" + d.addr).
			SetClientID(id).
			SetUsername("guest").SetPassword("guest").
			SetProtocolVersion(4).
			SetCleanSession(true).
			SetAutoReconnect(false).
			SetConnectRetry(false).
			SetConnectTimeout(10 * time.Second)
		c := mqtt.NewClient(o)
		if err := wait(ctx, c.Connect()); err != nil {
			errs = append(errs, fmt.Errorf("end session %s: %w", id, err))
			continue
		}
		c.Disconnect(100)
	}
	return errors.Join(errs...)
}
