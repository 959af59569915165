package router

import (
	"slices"
	"strconv"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestStandardExchangesExist(t *testing.T) {
	e := newEnv(t)
	for name, kind := range map[string]ExchangeKind{"": Direct, "amq.direct": Direct, "amq.fanout": Fanout,
		"amq.topic": Topic, "amq.headers": Headers, "amq.match": Headers} {
		x := e.v.Exchange(name)
		if x == nil || x.Kind != kind || !x.Durable {
			t.Errorf("exchange %q: got %+v, want durable %v", name, x, kind)
		}
	}
}

func TestDefaultExchangeRoutesByQueueName(t *testing.T) {
	e := newEnv(t)
	e.queue("q1", QueueOptions{})
	if !e.pub("", "q1", "a") {
		t.Fatal("not routed to q1")
	}
	if e.pub("", "nope", "b") {
		t.Fatal("routed to a missing queue")
	}
	if got := e.drainGet("q1"); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("q1 holds %v", got)
	}
	codeOf(t, e.v.BindQueue("q1", "", "k", nil, 0, nil), AccessRefused)
	codeOf(t, e.v.DeleteExchange("", false, nil), AccessRefused)
}

func TestDirectAndFanout(t *testing.T) {
	e := newEnv(t)
	e.queue("a", QueueOptions{})
	e.queue("b", QueueOptions{})
	e.bind("a", "amq.direct", "k1", nil)
	e.bind("b", "amq.direct", "k2", nil)
	e.bind("b", "amq.direct", "k1", nil)
	e.pub("amq.direct", "k1", "one")
	e.pub("amq.direct", "k2", "two")
	if e.pub("amq.direct", "k3", "three") {
		t.Fatal("k3 routed")
	}
	e.bind("a", "amq.fanout", "ignored", nil)
	e.bind("b", "amq.fanout", "", nil)
	e.pub("amq.fanout", "whatever", "fan")
	if diff := cmp.Diff([]string{"one", "fan"}, e.drainGet("a")); diff != "" {
		t.Errorf("a: %s", diff)
	}
	if diff := cmp.Diff([]string{"one", "two", "fan"}, e.drainGet("b")); diff != "" {
		t.Errorf("b: %s", diff)
	}
}

func TestTopicMatching(t *testing.T) {
	cases := []struct {
		pattern string
		match   []string
		miss    []string
	}{
		{"a.b.c", []string{"a.b.c"}, []string{"a.b", "a.b.c.d", "a.x.c"}},
		{"a.*.c", []string{"a.b.c", "a..c"}, []string{"a.c", "a.b.d.c"}},
		{"a.#", []string{"a", "a.b", "a.b.c.d"}, []string{"b.a", "ab"}},
		{"#", []string{"", "a", "a.b.c"}, nil},
		{"#.c", []string{"c", "a.c", "a.b.c"}, []string{"c.a"}},
		{"a.#.c", []string{"a.c", "a.b.c", "a.b.x.c"}, []string{"a.b", "b.c"}},
		{"*", []string{"a", ""}, []string{"a.b"}},
		{"*.*", []string{"a.b"}, []string{"a", "a.b.c"}},
		{"a.*.#", []string{"a.b", "a.b.c"}, []string{"a"}},
		{"#.#", []string{"", "a", "a.b"}, nil},
		{"*.#.*", []string{"a.b", "a.b.c"}, []string{"a"}},
		{"", []string{""}, []string{"a"}},
	}
	for _, c := range cases {
		t.Run(c.pattern, func(t *testing.T) {
			e := newEnv(t)
			e.queue("q", QueueOptions{})
			e.bind("q", "amq.topic", c.pattern, nil)
			for _, k := range c.match {
				if !e.pub("amq.topic", k, k) {
					t.Errorf("%q should match %q", c.pattern, k)
				}
			}
			for _, k := range c.miss {
				if e.pub("amq.topic", k, k) {
					t.Errorf("%q should not match %q", c.pattern, k)
				}
			}
		})
	}
}

func TestTopicDeliversOnceForOverlappingBindings(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	e.bind("q", "amq.topic", "a.*", nil)
	e.bind("q", "amq.topic", "*.b", nil)
	e.bind("q", "amq.topic", "#", nil)
	e.pub("amq.topic", "a.b", "x")
	if got := e.drainGet("q"); len(got) != 1 {
		t.Fatalf("got %d copies, want 1", len(got))
	}
}

func TestTopicUnbindInvalidatesCache(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	e.bind("q", "amq.topic", "a.*", nil)
	if !e.pub("amq.topic", "a.b", "1") {
		t.Fatal("not routed")
	}
	if err := e.v.UnbindQueue("q", "amq.topic", "a.*", nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	if e.pub("amq.topic", "a.b", "2") {
		t.Fatal("routed after unbind: stale cache")
	}
	e.bind("q", "amq.topic", "#.b", nil)
	if !e.pub("amq.topic", "a.b", "3") {
		t.Fatal("not routed after bind: stale cache")
	}
}

func TestHeadersExchange(t *testing.T) {
	cases := []struct {
		name  string
		args  Table
		hdrs  Table
		match bool
	}{
		{"all default", Table{{"a", "1"}, {"b", int32(2)}}, Table{{"a", "1"}, {"b", int64(2)}, {"c", "x"}}, true},
		{"all missing", Table{{"a", "1"}, {"b", "2"}}, Table{{"a", "1"}}, false},
		{"all wrong value", Table{{"x-match", "all"}, {"a", "1"}}, Table{{"a", "2"}}, false},
		{"any one", Table{{"x-match", "any"}, {"a", "1"}, {"b", "2"}}, Table{{"b", "2"}}, true},
		{"any none", Table{{"x-match", "any"}, {"a", "1"}}, Table{{"b", "2"}}, false},
		{"void matches presence", Table{{"a", nil}}, Table{{"a", "anything"}}, true},
		{"x- ignored by all", Table{{"x-match", "all"}, {"x-k", "1"}}, Table{}, true},
		{"all-with-x compares x-", Table{{"x-match", "all-with-x"}, {"x-k", "1"}}, Table{{"x-k", "2"}}, false},
		{"any-with-x", Table{{"x-match", "any-with-x"}, {"x-k", "1"}}, Table{{"x-k", "1"}}, true},
		{"any with no args", Table{{"x-match", "any"}}, Table{{"a", "1"}}, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			e.queue("q", QueueOptions{})
			e.bind("q", "amq.headers", "", c.args)
			if got := e.pub("amq.headers", "", "m", headers(c.hdrs)); got != c.match {
				t.Fatalf("routed=%v, want %v", got, c.match)
			}
		})
	}
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	codeOf(t, e.v.BindQueue("q", "amq.headers", "", Table{{"x-match", "some"}}, 0, nil), PreconditionFailed)
}

func TestExchangeToExchangeAndCycles(t *testing.T) {
	e := newEnv(t)
	e.exchange("src", "topic", ExchangeOptions{})
	e.exchange("mid", "fanout", ExchangeOptions{})
	e.queue("q", QueueOptions{})
	e.bind("q", "mid", "", nil)
	if err := e.v.BindExchange("mid", "src", "a.#", nil, nil); err != nil {
		t.Fatal(err)
	}
	// A cycle back to src must not loop forever nor duplicate.
	if err := e.v.BindExchange("src", "mid", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	e.bind("q", "src", "a.b", nil)
	if !e.pub("src", "a.b", "x") {
		t.Fatal("not routed")
	}
	if e.pub("src", "b", "y") {
		t.Fatal("b routed")
	}
	if got := e.drainGet("q"); len(got) != 1 {
		t.Fatalf("q got %v, want one copy", got)
	}
	if err := e.v.UnbindExchange("mid", "src", "a.#", nil, nil); err != nil {
		t.Fatal(err)
	}
	if got := e.pub("src", "a.c", "z"); got {
		t.Fatal("routed after e2e unbind")
	}
}

func TestAlternateExchange(t *testing.T) {
	e := newEnv(t)
	e.exchange("ae", "fanout", ExchangeOptions{})
	e.exchange("main", "direct", ExchangeOptions{Args: Table{{"alternate-exchange", "ae"}}})
	e.queue("unrouted", QueueOptions{})
	e.queue("routed", QueueOptions{})
	e.bind("unrouted", "ae", "", nil)
	e.bind("routed", "main", "k", nil)
	if !e.pub("main", "k", "1") || !e.pub("main", "other", "2") {
		t.Fatal("a message counted as unrouted")
	}
	if got := e.drainGet("routed"); !slices.Equal(got, []string{"1"}) {
		t.Errorf("routed: %v", got)
	}
	if got := e.drainGet("unrouted"); !slices.Equal(got, []string{"2"}) {
		t.Errorf("unrouted (via AE): %v", got)
	}
}

func TestInternalExchange(t *testing.T) {
	e := newEnv(t)
	e.exchange("int", "fanout", ExchangeOptions{Internal: true})
	e.queue("q", QueueOptions{})
	e.bind("q", "int", "", nil)
	_, err := e.v.Publish("int", NewMessage(nil), nil)
	codeOf(t, err, AccessRefused)
	if err := e.v.BindExchange("int", "amq.fanout", "", nil, nil); err != nil {
		t.Fatal(err)
	}
	if !e.pub("amq.fanout", "", "via e2e") {
		t.Fatal("internal exchange not reachable through a binding")
	}
}

func TestAutoDeleteExchange(t *testing.T) {
	e := newEnv(t)
	e.exchange("ad", "direct", ExchangeOptions{AutoDelete: true})
	e.queue("q1", QueueOptions{})
	e.queue("q2", QueueOptions{})
	e.bind("q1", "ad", "a", nil)
	e.bind("q2", "ad", "b", nil)
	if err := e.v.UnbindQueue("q1", "ad", "a", nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	if e.v.Exchange("ad") == nil {
		t.Fatal("deleted while a binding remains")
	}
	if _, err := e.v.DeleteQueue("q2", false, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if e.v.Exchange("ad") != nil {
		t.Fatal("auto-delete exchange survived its last binding")
	}
}

func TestExchangeDeclareRules(t *testing.T) {
	e := newEnv(t)
	e.exchange("x", "direct", ExchangeOptions{Durable: true})
	_, err := e.v.DeclareExchange("x", "fanout", ExchangeOptions{Durable: true}, false, nil)
	codeOf(t, err, PreconditionFailed)
	if want := "inequivalent arg 'type' for exchange 'x' in vhost '/': received 'fanout' but current is 'direct'"; err.Error() != want {
		t.Errorf("text %q, want %q", err, want)
	}
	_, err = e.v.DeclareExchange("x", "direct", ExchangeOptions{}, false, nil)
	codeOf(t, err, PreconditionFailed)
	_, err = e.v.DeclareExchange("amq.custom", "direct", ExchangeOptions{}, false, nil)
	codeOf(t, err, AccessRefused)
	_, err = e.v.DeclareExchange("y", "weird", ExchangeOptions{}, false, nil)
	codeOf(t, err, CommandInvalid)
	_, err = e.v.DeclareExchange("missing", "direct", ExchangeOptions{}, true, nil)
	codeOf(t, err, NotFound)
	if _, err := e.v.DeclareExchange("amq.direct", "direct", ExchangeOptions{Durable: true}, false, nil); err != nil {
		t.Errorf("redeclaring amq.direct equivalently: %v", err)
	}
	_, err = e.v.Publish("missing", NewMessage(nil), nil)
	codeOf(t, err, NotFound)
	e.queue("q", QueueOptions{})
	e.bind("q", "x", "k", nil)
	codeOf(t, e.v.DeleteExchange("x", true, nil), PreconditionFailed)
	if err := e.v.DeleteExchange("x", false, nil); err != nil {
		t.Fatal(err)
	}
	codeOf(t, e.v.DeleteExchange("x", false, nil), NotFound)
}

// topicBench binds 10,000 patterns (one in ten with wildcards) to
// amq.topic and returns the exchange and n routing keys to match.
func topicBench(b *testing.B, n int) (*Exchange, []*Message) {
	e := newEnv(b)
	e.queue("q", QueueOptions{})
	for i := 0; i < 10000; i++ {
		key := "sensors." + itoa(i%100) + ".dev" + itoa(i) + ".temp"
		if i%10 == 0 {
			key = "sensors.*.dev" + itoa(i) + ".#"
		}
		e.bind("q", "amq.topic", key, nil)
	}
	keys := make([]*Message, n)
	for i := range keys {
		keys[i] = &Message{RoutingKey: "sensors." + itoa(i%100) + ".dev" + itoa(i*37%10000) + ".temp"}
	}
	return e.v.Exchange("amq.topic"), keys
}

// BenchmarkTopicMatch10k matches against 10,000 bindings with the cache
// warm (256 distinct keys).
func BenchmarkTopicMatch10k(b *testing.B) {
	x, keys := topicBench(b, 256)
	var buf [8]*Binding
	b.ReportAllocs()
	b.ResetTimer()
	x.vhost.mu.RLock()
	defer x.vhost.mu.RUnlock()
	for i := 0; i < b.N; i++ {
		_ = x.match(keys[i&255], buf[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b [20]byte
	n := len(b)
	for i > 0 {
		n--
		b[n] = byte('0' + i%10)
		i /= 10
	}
	return string(b[n:])
}

// BenchmarkTopicMatchCold matches 10,000 bindings with a new routing key
// every time: the trie walk without the cache.
func BenchmarkTopicMatchCold(b *testing.B) {
	x, keys := topicBench(b, 4096)
	var buf [8]*Binding
	b.ReportAllocs()
	b.ResetTimer()
	x.vhost.mu.RLock()
	defer x.vhost.mu.RUnlock()
	for i := 0; i < b.N; i++ {
		if i%len(keys) == 0 {
			x.topic.invalidate()
		}
		_ = x.match(keys[i%len(keys)], buf[:0])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "lookups/s")
}

// TestDuplicateBindingBothWays: binding again is a no-op and unbinding
// removes the one binding, whichever list existing looks through: the
// queue's own (shorter when many queues bind the key) or the key's
// (shorter when the queue has many bindings), on topic and direct
// exchanges, wildcards included.
func TestDuplicateBindingBothWays(t *testing.T) {
	for _, tc := range []struct{ x, key string }{{"amq.topic", "a.*.#"}, {"amq.direct", "k"}} {
		e := newEnv(t)
		e.queue("many", QueueOptions{}) // many keys
		for i := range 20 {
			e.bind("many", tc.x, "other."+strconv.Itoa(i), nil)
		}
		e.bind("many", tc.x, tc.key, nil)
		for i := range 20 { // many queues on the key
			q := "q" + strconv.Itoa(i)
			e.queue(q, QueueOptions{})
			e.bind(q, tc.x, tc.key, nil)
		}
		e.queue("one", QueueOptions{}) // one binding, the key's
		e.bind("one", tc.x, tc.key, nil)
		x := e.v.Exchange(tc.x)
		before := len(x.Bindings())
		e.bind("many", tc.x, tc.key, nil)
		e.bind("q7", tc.x, tc.key, nil)
		if n := len(x.Bindings()); n != before {
			t.Fatalf("%s: %d bindings after binding twice, want %d", tc.x, n, before)
		}
		for _, q := range []string{"many", "q7", "one"} {
			if err := e.v.UnbindQueue(q, tc.x, tc.key, nil, 0, nil); err != nil {
				t.Fatal(err)
			}
		}
		if n := len(x.Bindings()); n != before-3 {
			t.Fatalf("%s: %d bindings after unbinding three, want %d", tc.x, n, before-3)
		}
		key := "a.b.c"
		if tc.x == "amq.direct" {
			key = tc.key
		}
		e.pub(tc.x, key, "m")
		if got := e.drainGet("many"); len(got) != 0 {
			t.Fatalf("%s: unbound queue got %v", tc.x, got)
		}
		if got := e.drainGet("q8"); len(got) != 1 {
			t.Fatalf("%s: q8 got %v, want the message once", tc.x, got)
		}
	}
}
