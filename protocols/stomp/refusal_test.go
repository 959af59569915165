package stomp

import (
	"errors"
	"strings"
	"testing"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// TestConnLimitRefusalSTOMP: a connection the transport accepted beyond
// its limit gets an ERROR naming the limit in answer to CONNECT, without a
// login, and is closed.
func TestConnLimitRefusalSTOMP(t *testing.T) {
	h := newHarness(t, Config{})
	h.c.SetRefusal(&protocols.ConnLimitError{Limit: 2})
	h.frame("CONNECT", "", "accept-version", "1.2", "host", "/", "login", "guest", "passcode", "guest")
	f := h.expect("ERROR")
	if m := f.Header.Get("message"); m != "connection limit (2) is reached" {
		t.Fatalf("ERROR message %q", m)
	}
	if !h.c.IsClosed() || !errors.Is(h.c.CloseErr(), protocols.ErrConnLimit) {
		t.Fatalf("closed %v with %v, want closed with ErrConnLimit", h.c.IsClosed(), h.c.CloseErr())
	}
	if h.s.user != nil || h.s.state != stClosed {
		t.Fatal("a refused connection logged in")
	}
}

// TestQueueLimitSTOMP: a SUBSCRIBE or SEND that would create a queue
// beyond the vhost's limit gets an ERROR with RabbitMQ's text; one that
// uses an existing queue goes ahead.
func TestQueueLimitSTOMP(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	rt, err := router.New(router.Config{Store: st, MaxQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Router: rt})
	first := openHarness(t, a, st)
	first.connect()
	first.frame("SUBSCRIBE", "", "id", "1", "destination", "/queue/a", "receipt", "r1")
	first.expect("RECEIPT")

	for _, tc := range []struct {
		name  string
		frame []string // command, then headers
		queue string   // "": server-named
	}{
		{"subscribe to a new queue", []string{"SUBSCRIBE", "id", "2", "destination", "/queue/b", "receipt", "r2"}, "b"},
		{"send to a new queue", []string{"SEND", "destination", "/queue/c", "receipt", "r2"}, "c"},
		{"subscribe to a topic", []string{"SUBSCRIBE", "id", "2", "destination", "/topic/t", "receipt", "r2"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := openHarness(t, a, st)
			h.connect()
			// An existing queue: no new one.
			h.frame("SUBSCRIBE", "", "id", "1", "destination", "/queue/a", "receipt", "r1")
			h.expect("RECEIPT")
			h.frame(tc.frame[0], "x", tc.frame[1:]...)
			f := h.expect("ERROR")
			want := "': queue limit in vhost '/' (1) is reached"
			if tc.queue != "" {
				want = "cannot declare queue '" + tc.queue + want
			}
			if m := f.Header.Get("message"); m != "precondition_failed" || !strings.Contains(string(f.Body), want) ||
				f.Header.Get("receipt-id") != "r2" {
				t.Fatalf("ERROR %v %q, want precondition_failed with %q", f.Header, f.Body, want)
			}
			if !h.c.IsClosed() {
				t.Fatal("connection left open after ERROR")
			}
		})
	}
	if n := len(rt.VHost("/").Queues()); n != 1 {
		t.Fatalf("%d queues, want 1", n)
	}
}

// TestSlowConsumerFailSTOMP: the transport's slow-consumer close is an
// ERROR.
func TestSlowConsumerFailSTOMP(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.out = append(h.out, h.s.Fail(protocols.ErrSlowConsumer)...)
	h.parse()
	if f := h.expect("ERROR"); f.Header.Get("message") != "slow consumer" {
		t.Fatalf("ERROR %v", f.Header)
	}
}

// TestMaxMessageSizeSTOMP: a SEND body over MaxMessageSize
// (router.max_message_size) gets an ERROR; one at the limit goes through.
func TestMaxMessageSizeSTOMP(t *testing.T) {
	h := newHarness(t, Config{MaxMessageSize: 10})
	h.connect()
	h.frame("SEND", "0123456789", "destination", "/queue/big", "receipt", "ok")
	h.expect("RECEIPT")
	h.frame("SEND", "0123456789x", "destination", "/queue/big", "receipt", "no")
	f := h.expect("ERROR")
	if f.Header.Get("message") != "Message too large" || f.Header.Get("receipt-id") != "no" ||
		string(f.Body) != "message size 11 is larger than configured max size 10" {
		t.Fatalf("ERROR %v %q", f.Header, f.Body)
	}
	if !h.c.IsClosed() {
		t.Fatal("connection left open after ERROR")
	}
}
