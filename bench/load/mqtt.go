package load

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	mqtt "github.com/eclipse/paho.mqtt.golang"
)

// mqttDriver runs MQTT 3.1.1 scenarios through eclipse/paho.mqtt.golang:
// one clean-session client per publisher and per subscriber. Fan-in: each
// publisher has its own topic bench/RUN/pN and one subscriber takes
// bench/RUN/+; fan-out: one topic bench/RUN/fan and every subscriber takes it.
type mqttDriver struct {
	addr    string
	mu      sync.Mutex // guards clients: close may run on any goroutine
	clients []mqtt.Client
	pubs    []mqtt.Client
	topics  []string // per producer
}

func (d *mqttDriver) connect(ctx context.Context, r *run, id string) (mqtt.Client, error) {
	o := mqtt.NewClientOptions().
		AddBroker("tcp://" + d.addr).
		SetClientID(id).
		SetUsername("guest").SetPassword("guest"). // RabbitMQ's default user; Mosquitto allows anonymous
		SetProtocolVersion(4).
		SetCleanSession(true).
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
		if sc.FanOut {
			d.topics = append(d.topics, base+"fan")
		} else {
			d.topics = append(d.topics, base+"p"+strconv.Itoa(i))
		}
	}
	if sc.FanOut {
		filter = base + "fan"
	}
	for i, c := range r.cons {
		cl, err := d.connect(ctx, r, "bench-"+r.id+"-s"+strconv.Itoa(i))
		if err != nil {
			return err
		}
		t := cl.Subscribe(filter, sc.QoS, func(_ mqtt.Client, m mqtt.Message) {
			c.mu.Lock()
			r.record(c, m.Payload())
			c.mu.Unlock()
		})
		if err := wait(ctx, t); err != nil {
			return fmt.Errorf("subscribe: %w", err)
		}
		if q := t.(*mqtt.SubscribeToken).Result()[filter]; q == 0x80 {
			return fmt.Errorf("subscribe %s: refused (0x80)", filter)
		}
	}
	for i := range r.prods {
		cl, err := d.connect(ctx, r, "bench-"+r.id+"-p"+strconv.Itoa(i))
		if err != nil {
			return err
		}
		d.pubs = append(d.pubs, cl)
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

// teardown has nothing to delete: clean sessions leave nothing behind.
func (d *mqttDriver) teardown(context.Context, *run) error { return nil }
