package router

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeRetainer keeps the last message per routing key, matching binding
// keys exactly (the MQTT adapter's real one matches topic filters).
type fakeRetainer struct {
	mu      sync.Mutex
	msgs    map[string]*Message
	pending []func(error) // done callbacks not yet called, when hold
	hold    bool
	refuse  error
}

func (f *fakeRetainer) Retain(m *Message, done func(error)) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.refuse != nil {
		return f.refuse
	}
	if f.msgs == nil {
		f.msgs = map[string]*Message{}
	}
	if len(m.Body) == 0 {
		delete(f.msgs, m.RoutingKey)
	} else {
		f.msgs[m.RoutingKey] = m
	}
	if f.hold {
		f.pending = append(f.pending, done)
	} else {
		done(nil)
	}
	return nil
}

func (f *fakeRetainer) Retained(key string, _ time.Time, fn func(*Message)) {
	f.mu.Lock()
	var out []*Message
	for k, m := range f.msgs {
		if k == key || key == "#" {
			out = append(out, m)
		}
	}
	f.mu.Unlock()
	slices.SortFunc(out, func(a, b *Message) int { return strings.Compare(a.RoutingKey, b.RoutingKey) })
	for _, m := range out {
		fn(m)
	}
}

func (f *fakeRetainer) keys() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var ks []string
	for k := range f.msgs {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// TestRetainHeaderReachesTheRetainer: a publish to the retainer's exchange
// with x-mqtt-retain true (boolean, or "true" as STOMP sends it) is
// retained and routed; without the header, or to another exchange, it is
// only routed. An empty body clears the key.
func TestRetainHeaderReachesTheRetainer(t *testing.T) {
	e := newEnv(t)
	f := &fakeRetainer{}
	e.r.SetRetainer("/", "amq.topic", f)
	e.queue("all", QueueOptions{})
	e.bind("all", "amq.topic", "#", nil)

	e.pub("amq.topic", "a.b", "one", headers(Table{{RetainHeader, true}}))
	e.pub("amq.topic", "a.c", "two", headers(Table{{RetainHeader, "true"}}))
	e.pub("amq.topic", "a.d", "three", headers(Table{{RetainHeader, false}}))
	e.pub("amq.topic", "a.e", "four")
	e.exchange("other", "topic", ExchangeOptions{})
	e.pub("other", "a.f", "five", headers(Table{{RetainHeader, true}}))
	if got, want := f.keys(), []string{"a.b", "a.c"}; !slices.Equal(got, want) {
		t.Fatalf("retained keys %v, want %v", got, want)
	}
	if got, want := e.drainGet("all"), []string{"one", "two", "three", "four"}; !slices.Equal(got, want) {
		t.Fatalf("routed %v, want %v", got, want)
	}
	e.pub("amq.topic", "a.b", "", headers(Table{{RetainHeader, true}}))
	if got, want := f.keys(), []string{"a.c"}; !slices.Equal(got, want) {
		t.Fatalf("after clearing a.b: %v, want %v", got, want)
	}

	// An exchange declared after SetRetainer has its retainer too.
	e.r.SetRetainer("/", "late.topic", f)
	e.exchange("late.topic", "topic", ExchangeOptions{})
	e.pub("late.topic", "l.k", "six", headers(Table{{RetainHeader, true}}))
	if got, want := f.keys(), []string{"a.c", "l.k"}; !slices.Equal(got, want) {
		t.Fatalf("late exchange: %v, want %v", got, want)
	}
}

// TestRetainWaitsForTheRetainer: the publisher's done waits for the
// retainer's commit as for a queue's, and a refusal still routes.
func TestRetainWaitsForTheRetainer(t *testing.T) {
	e := newEnv(t)
	f := &fakeRetainer{hold: true}
	e.r.SetRetainer("/", "amq.topic", f)
	m := NewMessage([]byte("x"))
	m.RoutingKey = "k"
	headers(Table{{RetainHeader, true}})(m)
	var got []error
	if _, err := e.v.Publish("amq.topic", m, func(err error) { got = append(got, err) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("done ran before the retainer committed: %v", got)
	}
	boom := errors.New("disk on fire")
	f.pending[0](boom)
	if len(got) != 1 || !errors.Is(got[0], boom) {
		t.Fatalf("done got %v, want the retainer's error", got)
	}

	f.refuse = errors.New("quota")
	e.queue("q", QueueOptions{})
	e.bind("q", "amq.topic", "k", nil)
	got = nil
	m = NewMessage([]byte("y"))
	m.RoutingKey = "k"
	headers(Table{{RetainHeader, true}})(m)
	if _, err := e.v.Publish("amq.topic", m, func(err error) { got = append(got, err) }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0] != nil {
		t.Fatalf("refused retain: done got %v, want one nil", got)
	}
	if b := e.drainGet("q"); !slices.Equal(b, []string{"y"}) {
		t.Fatalf("refused retain not routed: %v", b)
	}
}

// TestBindWithRetainedArgGetsRetained: a queue bound with x-mqtt-retained
// true gets the retained messages its key matches, once per bind; a bind
// without it, or to an exchange without a retainer, gets none.
func TestBindWithRetainedArgGetsRetained(t *testing.T) {
	e := newEnv(t)
	f := &fakeRetainer{}
	e.r.SetRetainer("/", "amq.topic", f)
	e.pub("amq.topic", "s.1", "r1", headers(Table{{RetainHeader, true}}))
	e.pub("amq.topic", "s.2", "r2", headers(Table{{RetainHeader, true}}))

	e.queue("plain", QueueOptions{})
	e.bind("plain", "amq.topic", "#", nil)
	if b := e.drainGet("plain"); len(b) != 0 {
		t.Fatalf("bind without the argument got %v", b)
	}
	e.queue("want", QueueOptions{})
	e.bind("want", "amq.topic", "s.2", Table{{RetainedArg, true}})
	if b := e.drainGet("want"); !slices.Equal(b, []string{"r2"}) {
		t.Fatalf("bind s.2 got %v, want [r2]", b)
	}
	e.queue("all", QueueOptions{})
	e.bind("all", "amq.topic", "#", Table{{RetainedArg, "true"}})
	if b := e.drainGet("all"); !slices.Equal(b, []string{"r1", "r2"}) {
		t.Fatalf("bind # got %v, want [r1 r2]", b)
	}
	e.exchange("plain.x", "topic", ExchangeOptions{})
	e.bind("all", "plain.x", "#", Table{{RetainedArg, true}})
	if b := e.drainGet("all"); len(b) != 0 {
		t.Fatalf("exchange without a retainer gave %v", b)
	}
}

// TestProvenance: Publisher stamps the three headers after the message's
// own, replacing any a client sent; off, it stamps nothing.
func TestProvenance(t *testing.T) {
	st := newFakeStore()
	r, err := New(Config{Store: st, Provenance: true})
	if err != nil {
		t.Fatal(err)
	}
	p := r.Publisher("amqp", "alice", "conn-1")
	want := Table{{HdrProtocol, "amqp"}, {HdrUser, "alice"}, {HdrClient, "conn-1"}}

	m := NewMessage(nil)
	p.Apply(m)
	if m.Properties.Flags&HasHeaders == 0 || !Equal(m.Properties.Headers, want) {
		t.Fatalf("no headers: got %v (flags %b)", m.Properties.Headers, m.Properties.Flags)
	}
	m = NewMessage(nil)
	headers(Table{{"a", "1"}, {HdrUser, "mallory"}, {"b", int32(2)}, {HdrProtocol, "forged"}})(m)
	p.Apply(m)
	if got, w := m.Properties.Headers, append(Table{{"a", "1"}, {"b", int32(2)}}, want...); !Equal(got, w) {
		t.Fatalf("forged headers: got %v, want %v", got, w)
	}

	off, err := New(Config{Store: newFakeStore()})
	if err != nil {
		t.Fatal(err)
	}
	if q := off.Publisher("amqp", "alice", "c"); q != nil {
		t.Fatalf("provenance off: Publisher = %v, want nil", q)
	}
	var none *Publisher
	m = NewMessage(nil)
	headers(Table{{HdrUser, "anyone"}})(m)
	none.Apply(m)
	if !Equal(m.Properties.Headers, Table{{HdrUser, "anyone"}}) {
		t.Fatalf("provenance off changed headers: %v", m.Properties.Headers)
	}
}
