package router

import (
	"sync"
	"testing"
	"time"
)

type recorder struct {
	mu        sync.Mutex
	ds        []Delivery
	cancelled []*Consumer
}

func (r *recorder) Deliver(d Delivery) {
	r.mu.Lock()
	r.ds = append(r.ds, d)
	r.mu.Unlock()
}

func (r *recorder) Cancelled(c *Consumer) {
	r.mu.Lock()
	r.cancelled = append(r.cancelled, c)
	r.mu.Unlock()
}

func (r *recorder) all() []Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Delivery(nil), r.ds...)
}

func (r *recorder) bodies() []string {
	var out []string
	for _, d := range r.all() {
		out = append(out, string(d.Message.Body))
	}
	return out
}

func (r *recorder) reset() {
	r.mu.Lock()
	r.ds = nil
	r.mu.Unlock()
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

type env struct {
	t     testing.TB
	r     *Router
	v     *VHost
	store *fakeStore
	clk   *clock
}

func newEnv(t testing.TB) *env {
	t.Helper()
	e := &env{t: t, store: newFakeStore(), clk: &clock{t: time.Unix(1_700_000_000, 0)}}
	e.open()
	return e
}

// open (re)builds the router over the env's store, as a restart would.
func (e *env) open() {
	e.t.Helper()
	r, err := New(Config{Store: e.store, Now: e.clk.now})
	if err != nil {
		e.t.Fatal(err)
	}
	e.r, e.v = r, r.VHost("/")
}

func (e *env) queue(name string, o QueueOptions) *Queue {
	e.t.Helper()
	q, err := e.v.DeclareQueue(name, o, false, 0, nil)
	if err != nil {
		e.t.Fatalf("declare %s: %v", name, err)
	}
	return q
}

func (e *env) exchange(name, kind string, o ExchangeOptions) {
	e.t.Helper()
	if _, err := e.v.DeclareExchange(name, kind, o, false, nil); err != nil {
		e.t.Fatalf("declare exchange %s: %v", name, err)
	}
}

func (e *env) bind(q, x, key string, args Table) {
	e.t.Helper()
	if err := e.v.BindQueue(q, x, key, args, 0, nil); err != nil {
		e.t.Fatalf("bind %s to %s: %v", q, x, err)
	}
}

type pubOpt func(*Message)

func persistent(m *Message) {
	m.Properties.Flags |= HasDeliveryMode
	m.Properties.DeliveryMode = Persistent
}

func priority(p uint8) pubOpt {
	return func(m *Message) { m.Properties.Flags |= HasPriority; m.Properties.Priority = p }
}

func expiration(ms string) pubOpt {
	return func(m *Message) { m.Properties.Flags |= HasExpiration; m.Properties.Expiration = ms }
}

func headers(t Table) pubOpt {
	return func(m *Message) { m.Properties.Flags |= HasHeaders; m.Properties.Headers = t }
}

func (e *env) pub(x, key, body string, opts ...pubOpt) bool {
	e.t.Helper()
	m := NewMessage([]byte(body))
	m.RoutingKey = key
	for _, o := range opts {
		o(m)
	}
	routed, err := e.v.Publish(x, m, nil)
	if err != nil {
		e.t.Fatalf("publish to %q: %v", x, err)
	}
	return routed
}

// drainGet takes every ready message of q with basic.get semantics
// (no-ack) and returns the bodies.
func (e *env) drainGet(q string) []string {
	e.t.Helper()
	ch := e.v.NewChannel(0, &recorder{})
	var out []string
	for {
		d, ok := e.v.Queue(q).Get(ch, true)
		if !ok {
			return out
		}
		out = append(out, string(d.Message.Body))
	}
}

func (e *env) consume(q string, o ConsumeOptions) (*Channel, *recorder, *Consumer) {
	e.t.Helper()
	rec := &recorder{}
	ch := e.v.NewChannel(0, rec)
	c, err := ch.Consume(q, "", o)
	if err != nil {
		e.t.Fatalf("consume %s: %v", q, err)
	}
	return ch, rec, c
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

func codeOf(t testing.TB, err error, want Code) {
	t.Helper()
	if err == nil {
		t.Fatalf("got no error, want code %d", want)
	}
	if got := CodeOf(err); got != want {
		t.Fatalf("got code %d (%v), want %d", got, err, want)
	}
}
