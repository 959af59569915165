package router

import (
	"errors"
	"strconv"
	"strings"
	"testing"
)

// TestMaxQueues: Config.MaxQueues refuses a new queue of any kind once the
// vhost holds that many, with RabbitMQ's code and text; redeclaring is
// always allowed, direct reply-to queues do not count, and a deleted queue
// frees its place.
func TestMaxQueues(t *testing.T) {
	st := newFakeStore()
	r, err := New(Config{Store: st, MaxQueues: 2})
	if err != nil {
		t.Fatal(err)
	}
	v := r.VHost("/")
	declare := func(name string, o QueueOptions, owner Owner) error {
		_, err := v.DeclareQueue(name, o, false, owner, nil)
		return err
	}
	refused := func(name string, o QueueOptions) *Error {
		t.Helper()
		err := declare(name, o, 1)
		var e *Error
		if !errors.Is(err, ErrQueueLimit) || !errors.As(err, &e) || e.Code != PreconditionFailed {
			t.Fatalf("declare %q beyond the limit: %v, want a PreconditionFailed matching ErrQueueLimit", name, err)
		}
		return e
	}
	if err := declare("a", QueueOptions{Durable: true}, 0); err != nil {
		t.Fatal(err)
	}
	if err := declare("b", QueueOptions{Exclusive: true}, 1); err != nil {
		t.Fatal(err)
	}
	e := refused("c", QueueOptions{})
	if want := "cannot declare queue 'c': queue limit in vhost '/' (2) is reached"; e.Text != want {
		t.Fatalf("text %q, want %q", e.Text, want)
	}
	if !errors.Is(e, &Error{Code: PreconditionFailed}) {
		t.Fatal("the refusal does not match its code")
	}
	if e := refused("", QueueOptions{Exclusive: true, AutoDelete: true}); !strings.Contains(e.Text, "'amq.gen-") {
		t.Fatalf("server-named queue refused with %q", e.Text)
	}
	refused("auto", QueueOptions{AutoDelete: true})
	if n := len(v.Queues()); n != 2 {
		t.Fatalf("%d queues after refusals, want 2", n)
	}

	// Redeclaring, actively or passively, is never refused.
	if err := declare("a", QueueOptions{Durable: true}, 0); err != nil {
		t.Fatalf("redeclare at the limit: %v", err)
	}
	if _, err := v.DeclareQueue("b", QueueOptions{}, true, 1, nil); err != nil {
		t.Fatalf("passive declare at the limit: %v", err)
	}
	// A direct reply-to queue is made at the limit and takes no place.
	reply := v.DeclareReplyQueue(1)
	if _, err := v.DeleteQueue("a", false, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := declare("c", QueueOptions{Durable: true}, 0); err != nil {
		t.Fatalf("declare after a delete, with a reply queue open: %v", err)
	}
	refused("d", QueueOptions{})
	// The owner's exclusive and reply queues go with it.
	v.OwnerGone(1)
	if v.Queue(reply.Name) != nil || v.Queue("b") != nil {
		t.Fatal("owner's queues survived OwnerGone")
	}
	if err := declare("d", QueueOptions{Durable: true}, 0); err != nil {
		t.Fatalf("declare after OwnerGone: %v", err)
	}
	refused("e", QueueOptions{})

	// Recovery keeps every stored queue, whatever the limit now.
	r2, err := New(Config{Store: st, MaxQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	v2 := r2.VHost("/")
	if n := len(v2.Queues()); n != 2 {
		t.Fatalf("%d queues recovered, want 2", n)
	}
	if _, err := v2.DeclareQueue("c", QueueOptions{Durable: true}, false, 0, nil); err != nil {
		t.Fatalf("redeclare over the limit after recovery: %v", err)
	}
	if _, err := v2.DeclareQueue("f", QueueOptions{}, false, 0, nil); !errors.Is(err, ErrQueueLimit) {
		t.Fatalf("declare over the limit after recovery: %v", err)
	}
}

// TestNoQueueLimit: the default sets no limit.
func TestNoQueueLimit(t *testing.T) {
	e := newEnv(t)
	for i := range 1000 {
		e.queue("q"+strconv.Itoa(i), QueueOptions{})
	}
}
