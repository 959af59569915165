package stomp

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/junction-broker/junction/router"
)

func (h *harness) expectError(message string) {
	h.t.Helper()
	f := h.next()
	if f == nil || f.Command != "ERROR" || !strings.Contains(f.Header.Get("message"), message) {
		h.t.Fatalf("got %v, want ERROR with message containing %q", f, message)
	}
}

func TestTransactions(t *testing.T) {
	rt, st := newRouter(t)
	a := New(Config{Router: rt})
	h := openHarness(t, a, st)
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/tq", "ack", "client-individual", "receipt", "r0")
	h.expect("RECEIPT")

	h.frame("BEGIN", "", "transaction", "t1", "receipt", "r1")
	h.expect("RECEIPT")
	h.frame("SEND", "one", "destination", "/queue/tq", "transaction", "t1", "persistent", "true")
	h.frame("SEND", "two", "destination", "/queue/tq", "transaction", "t1")
	h.quiet() // nothing routed before COMMIT
	st.Hold()
	h.frame("COMMIT", "", "transaction", "t1", "receipt", "c1")
	var ids []string
	for _, want := range []string{"one", "two"} {
		f := h.expect("MESSAGE")
		if string(f.Body) != want {
			t.Fatalf("MESSAGE %q, want %q", f.Body, want)
		}
		ids = append(ids, f.Header.Get("ack"))
	}
	h.quiet() // the receipt waits for the disk
	st.Release()
	if f := h.expect("RECEIPT"); f.Header.Get("receipt-id") != "c1" {
		t.Fatalf("RECEIPT %v", f.Header)
	}

	// ABORT discards sends and leaves acked messages unacknowledged.
	h.frame("BEGIN", "", "transaction", "t2")
	h.frame("SEND", "never", "destination", "/queue/tq", "transaction", "t2")
	h.frame("ACK", "", "id", ids[0], "transaction", "t2")
	h.frame("ABORT", "", "transaction", "t2", "receipt", "a2")
	h.expect("RECEIPT")
	q := rt.VHost("/").Queue("tq")
	if q.Unacked() != 2 {
		t.Fatalf("%d unacked after ABORT, want 2", q.Unacked())
	}
	// COMMIT applies ACK and NACK (requeue:false drops).
	h.frame("BEGIN", "", "transaction", "t3")
	h.frame("ACK", "", "id", ids[0], "transaction", "t3")
	h.frame("NACK", "", "id", ids[1], "transaction", "t3", "requeue", "false")
	if q.Unacked() != 2 {
		t.Fatal("ACK in a transaction applied before COMMIT")
	}
	h.frame("COMMIT", "", "transaction", "t3", "receipt", "c3")
	h.expect("RECEIPT")
	if n, _ := q.Counts(); q.Unacked() != 0 || n != 0 {
		t.Fatalf("after COMMIT: %d unacked, %d ready", q.Unacked(), n)
	}
	h.frame("COMMIT", "", "transaction", "t3")
	h.expectError("Bad transaction")
}

func TestTransactionErrors(t *testing.T) {
	for _, tc := range []struct {
		name   string
		frames [][]string
		want   string
	}{
		{"commit unknown", [][]string{{"COMMIT", "transaction", "nope"}}, "Bad transaction"},
		{"send in unknown", [][]string{{"SEND", "destination", "/queue/x", "transaction", "nope"}}, "Bad transaction"},
		{"begin twice", [][]string{{"BEGIN", "transaction", "t"}, {"BEGIN", "transaction", "t"}}, "Bad transaction"},
		{"begin without id", [][]string{{"BEGIN"}}, "Missing transaction"},
		{"ack unknown in tx", [][]string{{"BEGIN", "transaction", "t"}, {"ACK", "id", "99", "transaction", "t"}}, "Invalid id"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.connect()
			for _, f := range tc.frames {
				h.frame(f[0], "", f[1:]...)
			}
			h.expectError(tc.want)
		})
	}
	h := newHarness(t, Config{})
	h.connect()
	for i := range maxTxOpen {
		h.frame("BEGIN", "", "transaction", "t"+string(rune('A'+i%26))+string(rune('a'+i/26)))
	}
	h.frame("BEGIN", "", "transaction", "one-too-many")
	h.expectError("Too many transactions")
}

func TestDurableTopicSubscription(t *testing.T) {
	rt, st := newRouter(t)
	a := New(Config{Router: rt})
	sub := func(h *harness) {
		h.frame("SUBSCRIBE", "", "id", "d1", "destination", "/topic/news.#", "durable", "true", "auto-delete", "false",
			"ack", "client", "receipt", "r")
		h.expect("RECEIPT")
	}
	h := openHarness(t, a, st)
	h.connect()
	sub(h)
	h.s.Closed(nil)

	p := openHarness(t, a, st)
	p.connect()
	p.frame("SEND", "while away", "destination", "/topic/news.local", "persistent", "true", "receipt", "s")
	p.expect("RECEIPT")

	h2 := openHarness(t, a, st)
	h2.connect()
	sub(h2)
	if f := h2.expect("MESSAGE"); string(f.Body) != "while away" {
		t.Fatalf("MESSAGE %q", f.Body)
	}
	// UNSUBSCRIBE with durable:true ends it: the queue goes.
	h2.frame("UNSUBSCRIBE", "", "id", "d1", "durable", "true", "receipt", "u")
	h2.expect("RECEIPT")
	name := durableQueueName(nil, "/topic/news.#", "d1")
	if rt.VHost("/").Queue(name) != nil {
		t.Fatalf("queue %s outlived UNSUBSCRIBE durable:true", name)
	}
	// A non-durable topic subscription's queue dies with the connection.
	h2.frame("SUBSCRIBE", "", "id", "t", "destination", "/topic/x", "receipt", "r")
	h2.expect("RECEIPT")
	var topicQueue string
	for _, sb := range h2.s.subs {
		topicQueue = sb.queue
	}
	h2.s.Closed(nil)
	if rt.VHost("/").Queue(topicQueue) != nil {
		t.Fatal("a non-durable topic subscription outlived its connection")
	}
	// durable without an id is refused (STOMP 1.0 allows no id).
	h3 := openHarness(t, a, st)
	h3.connect("accept-version", "1.0")
	h3.frame("SUBSCRIBE", "", "destination", "/topic/x", "durable", "true")
	h3.expectError("Invalid header")
}

func TestTempQueueRequestReply(t *testing.T) {
	rt, st := newRouter(t)
	a := New(Config{Router: rt})
	svc := openHarness(t, a, st)
	svc.connect()
	svc.frame("SUBSCRIBE", "", "id", "svc", "destination", "/queue/rpc", "receipt", "r")
	svc.expect("RECEIPT")

	cli := openHarness(t, a, st)
	cli.connect()
	cli.frame("SEND", "ping", "destination", "/queue/rpc", "reply-to", "/temp-queue/answers", "correlation-id", "c1")
	req := svc.expect("MESSAGE")
	to := req.Header.Get("reply-to")
	if !strings.HasPrefix(to, "/reply-queue/amq.gen-") {
		t.Fatalf("reply-to %q", to)
	}
	svc.frame("SEND", "pong", "destination", to, "correlation-id", req.Header.Get("correlation-id"))
	rep := cli.expect("MESSAGE")
	if string(rep.Body) != "pong" || rep.Header.Get("subscription") != "/temp-queue/answers" || rep.Header.Get("correlation-id") != "c1" {
		t.Fatalf("reply %v %q", rep.Header, rep.Body)
	}
	// The same name reuses the queue; its subscription cannot be cancelled.
	cli.frame("SEND", "again", "destination", "/queue/rpc", "reply-to", "/temp-queue/answers")
	if got := svc.expect("MESSAGE").Header.Get("reply-to"); got != to {
		t.Fatalf("second reply-to %q, want %q", got, to)
	}
	cli.frame("UNSUBSCRIBE", "", "id", "/temp-queue/answers")
	cli.expectError("Invalid subscription")
	if rt.VHost("/").Queue(strings.TrimPrefix(to, "/reply-queue/")) != nil {
		t.Fatal("temp queue outlived its connection")
	}
}

func TestQueueArgumentsFromHeaders(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/limited", "x-max-length", "2", "x-overflow", "reject-publish",
		"x-message-ttl", "60000", "x-dead-letter-exchange", "amq.fanout", "x-max-priority", "5", "auto-delete", "true",
		"prefetch-count", "1", "ack", "client", "receipt", "r")
	h.expect("RECEIPT")
	q := h.rt.VHost("/").Queue("limited")
	if !q.Durable || !q.AutoDelete {
		t.Fatalf("options %+v", q.QueueOptions)
	}
	for k, want := range map[string]any{"x-max-length": int64(2), "x-overflow": "reject-publish", "x-message-ttl": int64(60000),
		"x-dead-letter-exchange": "amq.fanout", "x-max-priority": int64(5)} {
		if got, ok := q.Args.Get(k); !ok || !router.Equal(got, want) {
			t.Errorf("arg %s = %v, want %v", k, got, want)
		}
	}
	// Redeclaring with other arguments is refused, as in RabbitMQ.
	h.frame("SEND", "x", "destination", "/queue/limited", "x-max-length", "3")
	h.expectError("precondition_failed")

	h2 := newHarness(t, Config{})
	h2.connect()
	h2.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/q", "x-max-length", "many")
	h2.expectError("Invalid header")
}

func TestHandshakeTimeoutSaysSo(t *testing.T) {
	h := newHarness(t, Config{})
	h.send("garbage without a newline")
	t0 := time.Unix(1000, 0)
	if err := h.s.Tick(t0); err != nil {
		t.Fatal(err)
	}
	err := h.s.Tick(t0.Add(DefaultHandshakeTimeout + time.Second))
	if !errors.Is(err, errHandshakeTimeout) {
		t.Fatalf("Tick after the deadline: %v", err)
	}
	h.out = append(h.out, h.s.Fail(err)...)
	h.parse()
	h.expectError("Connection timed out")
}
