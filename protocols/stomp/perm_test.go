package stomp

import (
	"strings"
	"testing"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// newPermRouter returns a router with topic permissions for guest: on
// amq.topic it may publish and bind under public. (but not bind
// public.private); on the topic exchange "t" it may do nothing but bind
// "{client_id}"; on amq.direct, not a topic exchange, nothing, which is
// not checked.
func newPermRouter(t *testing.T) (*router.Router, *memstore.Store) {
	t.Helper()
	st := memstore.New()
	rt, err := router.New(router.Config{Store: st, TopicPermissions: []router.TopicPermission{
		{User: "guest", Write: `^public\.`, Read: `^public\.`, DenyRead: `^public\.private$`},
		{User: "guest", Exchange: "t", Write: "", Read: `^{client_id}$`},
		{User: "guest", Exchange: "amq.direct", Write: "", Read: ""},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	if _, err := rt.VHost("/").DeclareExchange("t", "topic", router.ExchangeOptions{}, false, nil); err != nil {
		t.Fatal(err)
	}
	return rt, st
}

// refusedText is RabbitMQ's text for a refused topic access as guest.
func refusedText(perm, key, exchange string) string {
	return perm + " access to topic '" + key + "' in exchange '" + exchange + "' in vhost '/' refused for user 'guest'"
}

// expectRefusal checks for RabbitMQ's ERROR (message:access_refused, the
// text as body) and that the connection is closing.
func (h *harness) expectRefusal(text, receipt string) {
	h.t.Helper()
	f := h.next()
	if f == nil || f.Command != "ERROR" {
		h.t.Fatalf("got %v, want ERROR", f)
	}
	if f.Header.Get("message") != "access_refused" || string(f.Body) != text || f.Header.Get("receipt-id") != receipt {
		h.t.Fatalf("ERROR %v %q, want access_refused %q with receipt-id %q", f.Header, f.Body, text, receipt)
	}
	if !h.c.IsClosed() {
		h.t.Fatal("connection not closed after the refusal")
	}
}

// subscriptionQueues counts the queues of topic subscriptions.
func subscriptionQueues(v *router.VHost) int {
	n := 0
	for _, q := range v.Queues() {
		if strings.HasPrefix(q.Name, "amq.gen-") || strings.HasPrefix(q.Name, "stomp-subscription-") {
			n++
		}
	}
	return n
}

func TestTopicSendPermissions(t *testing.T) {
	for _, tc := range []struct {
		name, dest string
		watch      string // the queue an allowed message lands in
		message    string // ERROR message header; "": allowed
		text       string
	}{
		{"topic", "/topic/public.news", "w", "", ""},
		{"topic refused", "/topic/private.news", "w", "access_refused", refusedText("write", "private.news", "amq.topic")},
		{"exchange", "/exchange/amq.topic/public.x", "w", "", ""},
		{"exchange refused", "/exchange/amq.topic/private.x", "w", "access_refused", refusedText("write", "private.x", "amq.topic")},
		{"other topic exchange refused", "/exchange/t/anything", "w", "access_refused", refusedText("write", "anything", "t")},
		{"not a topic exchange", "/exchange/amq.direct/k", "w", "", ""},
		{"queue", "/queue/q", "q", "", ""},
		{"missing exchange", "/exchange/nope/private.x", "w", "not_found", "no exchange 'nope' in vhost '/'"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, st := newPermRouter(t)
			// Bound by the router, which checks no permissions: it sees
			// whatever is routed.
			v := rt.VHost("/")
			if _, err := v.DeclareQueue("w", router.QueueOptions{}, false, 0, nil); err != nil {
				t.Fatal(err)
			}
			for _, b := range [][2]string{{"amq.topic", "#"}, {"t", "#"}, {"amq.direct", "k"}} {
				if err := v.BindQueue("w", b[0], b[1], nil, 0, nil); err != nil {
					t.Fatal(err)
				}
			}
			h := openHarness(t, New(Config{Router: rt}), st)
			h.connect()
			h.frame("SEND", "body", "destination", tc.dest, "receipt", "s1")
			if tc.message == "" {
				h.expect("RECEIPT")
				if n, _ := v.Queue(tc.watch).Counts(); n != 1 {
					t.Fatalf("%d messages in %s, want 1", n, tc.watch)
				}
				return
			}
			if tc.message == "access_refused" {
				h.expectRefusal(tc.text, "s1")
			} else if f := h.expect("ERROR"); f.Header.Get("message") != tc.message || string(f.Body) != tc.text {
				t.Fatalf("ERROR %v %q, want %s %q", f.Header, f.Body, tc.message, tc.text)
			}
			if n, _ := v.Queue("w").Counts(); n != 0 {
				t.Fatalf("a refused SEND was routed")
			}
		})
	}
}

// A refused SEND ends its own connection only.
func TestTopicSendRefusedOthersGoOn(t *testing.T) {
	rt, st := newPermRouter(t)
	a := New(Config{Router: rt})
	other := openHarness(t, a, st)
	other.connect()
	other.frame("SUBSCRIBE", "", "id", "s", "destination", "/topic/public.#", "receipt", "r")
	other.expect("RECEIPT")
	h := openHarness(t, a, st)
	h.connect()
	h.frame("SEND", "forged", "destination", "/topic/private.x")
	h.expectRefusal(refusedText("write", "private.x", "amq.topic"), "")
	other.frame("SEND", "fine", "destination", "/topic/public.x")
	if f := other.expect("MESSAGE"); string(f.Body) != "fine" {
		t.Fatalf("MESSAGE %q", f.Body)
	}
}

func TestTopicSubscribePermissions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		headers []string
		refusal string // "": allowed
	}{
		{"topic", []string{"destination", "/topic/public.*"}, ""},
		{"wildcard refused", []string{"destination", "/topic/#"}, refusedText("read", "#", "amq.topic")},
		{"denied", []string{"destination", "/topic/public.private"}, refusedText("read", "public.private", "amq.topic")},
		{"durable refused", []string{"destination", "/topic/private.x", "durable", "true", "auto-delete", "false"},
			refusedText("read", "private.x", "amq.topic")},
		{"named queue refused", []string{"destination", "/topic/private.y", "x-queue-name", "mine"}, refusedText("read", "private.y", "amq.topic")},
		{"exchange", []string{"destination", "/exchange/amq.topic/public.z"}, ""},
		{"exchange refused", []string{"destination", "/exchange/amq.topic/z"}, refusedText("read", "z", "amq.topic")},
		{"{client_id} as written", []string{"destination", "/exchange/t/{client_id}"}, ""},
		{"{client_id} is no variable", []string{"destination", "/exchange/t/c1"}, refusedText("read", "c1", "t")},
		{"not a topic exchange", []string{"destination", "/exchange/amq.direct/k"}, ""},
		{"queue", []string{"destination", "/queue/q"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rt, st := newPermRouter(t)
			h := openHarness(t, New(Config{Router: rt}), st)
			h.connect()
			h.frame("SUBSCRIBE", "", append([]string{"id", "s", "receipt", "r1"}, tc.headers...)...)
			if tc.refusal == "" {
				h.expect("RECEIPT")
				return
			}
			h.expectRefusal(tc.refusal, "r1")
			// Refused before its queue was declared: none is left.
			h.s.Closed(nil)
			if n := subscriptionQueues(rt.VHost("/")); n != 0 || rt.VHost("/").Queue("mine") != nil {
				t.Fatalf("%d subscription queues left", n)
			}
		})
	}
}

// In a transaction a SEND is checked when COMMIT publishes it, as in
// RabbitMQ, whose STOMP transactions replay their frames at COMMIT: what
// came before it is published, what comes after is not.
func TestTopicSendRefusedAtCommit(t *testing.T) {
	rt, st := newPermRouter(t)
	v := rt.VHost("/")
	if _, err := v.DeclareQueue("w", router.QueueOptions{}, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := v.BindQueue("w", "amq.topic", "#", nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	h := openHarness(t, New(Config{Router: rt}), st)
	h.connect()
	h.frame("BEGIN", "", "transaction", "t1")
	h.frame("SEND", "first", "destination", "/topic/public.a", "transaction", "t1")
	h.frame("SEND", "forged", "destination", "/topic/private.a", "transaction", "t1", "receipt", "held")
	h.expect("RECEIPT") // taken, not yet checked
	h.frame("SEND", "never", "destination", "/topic/public.b", "transaction", "t1")
	if n, _ := v.Queue("w").Counts(); n != 0 {
		t.Fatalf("%d messages routed before COMMIT", n)
	}
	h.frame("COMMIT", "", "transaction", "t1", "receipt", "c1")
	h.expectRefusal(refusedText("write", "private.a", "amq.topic"), "c1")
	if n, _ := v.Queue("w").Counts(); n != 1 {
		t.Fatalf("%d messages routed, want 1 (the one before the refused SEND)", n)
	}
}

// An allowed check allocates nothing, with or without permissions.
func TestTopicCheckAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool, and so regexp, allocates at random under the race detector")
	}
	rt, _ := newPermRouter(t)
	tc := router.NewTopicChecker(rt.VHost("/"), "guest")
	for _, c := range []struct {
		exchange, key string
		read          bool
	}{
		{"amq.topic", "public.a.b", false},
		{"amq.topic", "public.a", true},
		{"amq.direct", "k", false},
		{"", "q", false},
	} {
		if err := tc.Check(c.exchange, c.key, c.read); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() { _ = tc.Check(c.exchange, c.key, c.read) }); n != 0 {
			t.Fatalf("check(%q, %q) allocates %.0f times", c.exchange, c.key, n)
		}
	}
}
