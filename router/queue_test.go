package router

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func args(kv ...any) Table {
	var t Table
	for i := 0; i < len(kv); i += 2 {
		t = append(t, Field{kv[i].(string), kv[i+1]})
	}
	return t
}

func TestMaxLengthDropHeadDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.queue("dead", QueueOptions{})
	e.exchange("dlx", "fanout", ExchangeOptions{})
	e.bind("dead", "dlx", "", nil)
	e.queue("q", QueueOptions{Args: args("x-max-length", int32(2), "x-dead-letter-exchange", "dlx")})
	for _, b := range []string{"1", "2", "3", "4"} {
		e.pub("", "q", b)
	}
	if got := e.drainGet("q"); !slices.Equal(got, []string{"3", "4"}) {
		t.Fatalf("q holds %v, want the newest two", got)
	}
	ch := e.v.NewChannel(0, &recorder{})
	d, ok := e.v.Queue("dead").Get(ch, true)
	if !ok || string(d.Message.Body) != "1" {
		t.Fatalf("dead-letter queue head: %v %v", ok, d.Message)
	}
	death := xDeath(t, d.Message, 0)
	if r, _ := death.String("reason"); r != ReasonMaxLen {
		t.Errorf("x-death reason %q, want maxlen", r)
	}
	if r, _ := d.Message.Properties.Headers.String("x-first-death-reason"); r != ReasonMaxLen {
		t.Errorf("x-first-death-reason %q", r)
	}
}

func xDeath(t *testing.T, m *Message, i int) Table {
	t.Helper()
	v, ok := m.Properties.Headers.Get("x-death")
	if !ok {
		t.Fatalf("no x-death header in %+v", m.Properties.Headers)
	}
	l := v.([]any)
	if i >= len(l) {
		t.Fatalf("x-death has %d entries, want > %d", len(l), i)
	}
	return l[i].(Table)
}

func TestMaxLengthBytes(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{Args: args("x-max-length-bytes", int64(10))})
	e.pub("", "q", "aaaa")
	e.pub("", "q", "bbbb")
	e.pub("", "q", "cccc")
	if got := e.drainGet("q"); !slices.Equal(got, []string{"bbbb", "cccc"}) {
		t.Fatalf("q holds %v", got)
	}
}

func TestRejectPublish(t *testing.T) {
	for _, mode := range []string{"reject-publish", "reject-publish-dlx"} {
		t.Run(mode, func(t *testing.T) {
			e := newEnv(t)
			e.queue("dead", QueueOptions{})
			e.queue("q", QueueOptions{Args: args("x-max-length", int32(1), "x-overflow", mode,
				"x-dead-letter-exchange", "", "x-dead-letter-routing-key", "dead")})
			var results []error
			for _, b := range []string{"1", "2"} {
				m := NewMessage([]byte(b))
				m.RoutingKey = "q"
				routed, err := e.v.Publish("", m, func(err error) { results = append(results, err) })
				if err != nil || !routed {
					t.Fatalf("publish: routed=%v err=%v", routed, err)
				}
			}
			if results[0] != nil || !errors.Is(results[1], ErrRejected) {
				t.Fatalf("confirms %v, want [nil, rejected]", results)
			}
			if got := e.drainGet("q"); !slices.Equal(got, []string{"1"}) {
				t.Errorf("q holds %v, want the oldest", got)
			}
			dead := e.drainGet("dead")
			if mode == "reject-publish" && len(dead) != 0 || mode == "reject-publish-dlx" && !slices.Equal(dead, []string{"2"}) {
				t.Errorf("dead-lettered %v", dead)
			}
		})
	}
}

func TestMessageTTLExpiresAndDeadLetters(t *testing.T) {
	e := newEnv(t)
	e.queue("dead", QueueOptions{})
	q := e.queue("q", QueueOptions{Args: args("x-message-ttl", int32(1000),
		"x-dead-letter-exchange", "", "x-dead-letter-routing-key", "dead")})
	e.pub("", "q", "old")
	e.clk.advance(600 * time.Millisecond)
	e.pub("", "q", "new", expiration("100"))
	e.clk.advance(500 * time.Millisecond)
	q.onTTL() // the timer's work, at the test clock's time
	if got := e.drainGet("dead"); !slices.Equal(got, []string{"old", "new"}) {
		t.Fatalf("dead-lettered %v, want old then new", got)
	}
	if got := e.drainGet("q"); len(got) != 0 {
		t.Fatalf("q still holds %v", got)
	}
}

func TestPerMessageExpirationRemovedOnDeadLetter(t *testing.T) {
	e := newEnv(t)
	e.queue("dead", QueueOptions{})
	q := e.queue("q", QueueOptions{Args: args("x-dead-letter-exchange", "", "x-dead-letter-routing-key", "dead")})
	e.pub("", "q", "m", expiration("50"))
	e.clk.advance(51 * time.Millisecond)
	q.onTTL()
	ch := e.v.NewChannel(0, &recorder{})
	d, ok := e.v.Queue("dead").Get(ch, true)
	if !ok {
		t.Fatal("not dead-lettered")
	}
	if d.Message.Properties.Flags&HasExpiration != 0 {
		t.Error("dead-lettered copy kept its expiration")
	}
	death := xDeath(t, d.Message, 0)
	if v, _ := death.String("original-expiration"); v != "50" {
		t.Errorf("original-expiration %q", v)
	}
	if v, _ := death.String("reason"); v != ReasonExpired {
		t.Errorf("reason %q", v)
	}
	_, err := e.v.Publish("", &Message{RoutingKey: "q", Properties: Properties{Flags: HasExpiration, Expiration: "-5"}}, nil)
	codeOf(t, err, PreconditionFailed)
}

func TestTTLRealTimerFires(t *testing.T) {
	st := newFakeStore()
	r, err := New(Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	v := r.VHost("/")
	if _, err := v.DeclareQueue("dead", QueueOptions{}, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareQueue("q", QueueOptions{Args: args("x-message-ttl", int32(5),
		"x-dead-letter-exchange", "", "x-dead-letter-routing-key", "dead")}, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	m := NewMessage([]byte("x"))
	m.RoutingKey = "q"
	if _, err := v.Publish("", m, nil); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "expiry without any consumer or get", func() bool {
		n, _ := v.Queue("dead").Counts()
		return n == 1
	})
}

func TestTTLZeroDeliversOnlyToWaitingConsumer(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{Args: args("x-message-ttl", int32(0))})
	e.pub("", "q", "dropped")
	if n, _ := e.v.Queue("q").Counts(); n != 0 {
		t.Fatalf("ttl 0 message kept without consumer: %d", n)
	}
	_, rec, _ := e.consume("q", ConsumeOptions{NoAck: true})
	e.pub("", "q", "taken")
	if got := rec.bodies(); !slices.Equal(got, []string{"taken"}) {
		t.Fatalf("consumer got %v", got)
	}
}

func TestQueueExpires(t *testing.T) {
	e := newEnv(t)
	q := e.queue("q", QueueOptions{Args: args("x-expires", int32(1000))})
	e.clk.advance(500 * time.Millisecond)
	q.onExpires()
	if e.v.Queue("q") == nil {
		t.Fatal("deleted early")
	}
	e.clk.advance(600 * time.Millisecond)
	q.onExpires()
	if e.v.Queue("q") != nil {
		t.Fatal("unused queue not deleted after x-expires")
	}
}

func TestPriorities(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{Args: args("x-max-priority", int32(5))})
	e.pub("", "q", "low")
	e.pub("", "q", "none-0")
	e.pub("", "q", "high", priority(5))
	e.pub("", "q", "capped", priority(200))
	e.pub("", "q", "mid", priority(3))
	want := []string{"high", "capped", "mid", "low", "none-0"}
	if got := e.drainGet("q"); !slices.Equal(got, want) {
		t.Fatalf("order %v, want %v", got, want)
	}
}

func TestSingleActiveConsumer(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{Args: args("x-single-active-consumer", true)})
	ch1, rec1, c1 := e.consume("q", ConsumeOptions{NoAck: true})
	_, rec2, _ := e.consume("q", ConsumeOptions{NoAck: true})
	for _, b := range []string{"1", "2", "3"} {
		e.pub("", "q", b)
	}
	if len(rec1.all()) != 3 || len(rec2.all()) != 0 {
		t.Fatalf("active got %d, standby got %d", len(rec1.all()), len(rec2.all()))
	}
	ch1.Cancel(c1.Tag, true)
	e.pub("", "q", "4")
	if got := rec2.bodies(); !slices.Equal(got, []string{"4"}) {
		t.Fatalf("standby after takeover got %v", got)
	}
}

func TestDeadLetterCycleDropped(t *testing.T) {
	e := newEnv(t)
	q := e.queue("q", QueueOptions{Args: args("x-message-ttl", int32(10),
		"x-dead-letter-exchange", "", "x-dead-letter-routing-key", "q")})
	e.pub("", "q", "loop")
	e.clk.advance(20 * time.Millisecond)
	q.onTTL()
	if n, _ := q.Counts(); n != 0 {
		t.Fatalf("an expiring message dead-lettered to its own queue was kept (%d)", n)
	}
}

func TestRejectDeadLettersWithCount(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{Args: args("x-dead-letter-exchange", "", "x-dead-letter-routing-key", "q")})
	ch, rec, _ := e.consume("q", ConsumeOptions{Prefetch: 1})
	e.pub("", "q", "m")
	for i := 1; i <= 3; i++ {
		ds := rec.all()
		if len(ds) != i {
			t.Fatalf("round %d: %d deliveries", i, len(ds))
		}
		if err := ch.Nack(ds[i-1].Tag, false, false); err != nil {
			t.Fatal(err)
		}
	}
	last := rec.all()[3]
	death := xDeath(t, last.Message, 0)
	if c, _ := death.Get("count"); c != int64(3) {
		t.Errorf("x-death count %v, want 3", c)
	}
	if v, _ := last.Message.Properties.Headers.Get("x-death"); len(v.([]any)) != 1 {
		t.Errorf("x-death entries: %v", v)
	}
}

func TestQueueDeclareRules(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{Durable: true, Args: args("x-max-length", int32(5))})
	_, err := e.v.DeclareQueue("q", QueueOptions{Durable: false, Args: args("x-max-length", int32(5))}, false, 0, nil)
	codeOf(t, err, PreconditionFailed)
	_, err = e.v.DeclareQueue("q", QueueOptions{Durable: true, Args: args("x-max-length", int64(6))}, false, 0, nil)
	codeOf(t, err, PreconditionFailed)
	if _, err := e.v.DeclareQueue("q", QueueOptions{Durable: true, Args: args("x-max-length", int64(5))}, false, 0, nil); err != nil {
		t.Errorf("equivalent redeclare with another integer width: %v", err)
	}
	_, err = e.v.DeclareQueue("amq.mine", QueueOptions{}, false, 0, nil)
	codeOf(t, err, AccessRefused)
	_, err = e.v.DeclareQueue("nope", QueueOptions{}, true, 0, nil)
	codeOf(t, err, NotFound)
	for _, bad := range []Table{
		args("x-message-ttl", int32(-1)), args("x-message-ttl", "10"), args("x-expires", int32(0)),
		args("x-max-length", int32(-1)), args("x-overflow", "explode"), args("x-max-priority", int32(256)),
		args("x-dead-letter-routing-key", "k"), args("x-single-active-consumer", "yes"),
		args("x-queue-type", "stream"),
	} {
		_, err := e.v.DeclareQueue("bad", QueueOptions{Args: bad}, false, 0, nil)
		codeOf(t, err, PreconditionFailed)
	}
	q, err := e.v.DeclareQueue("", QueueOptions{}, false, 0, nil)
	if err != nil || len(q.Name) < 10 || q.Name[:8] != "amq.gen-" {
		t.Fatalf("server-named queue: %v %v", q, err)
	}
}

func TestExclusiveQueueBelongsToOwner(t *testing.T) {
	e := newEnv(t)
	if _, err := e.v.DeclareQueue("ex", QueueOptions{Exclusive: true, Durable: true}, false, 7, nil); err != nil {
		t.Fatal(err)
	}
	_, err := e.v.DeclareQueue("ex", QueueOptions{Exclusive: true, Durable: true}, false, 8, nil)
	codeOf(t, err, ResourceLocked)
	_, err = e.v.DeclareQueue("ex", QueueOptions{}, true, 8, nil)
	codeOf(t, err, ResourceLocked)
	codeOf(t, e.v.BindQueue("ex", "amq.fanout", "", nil, 8, nil), ResourceLocked)
	ch := e.v.NewChannel(8, &recorder{})
	_, err = ch.Consume("ex", "", ConsumeOptions{})
	codeOf(t, err, ResourceLocked)
	_, err = e.v.DeleteQueue("ex", false, false, 8, nil)
	codeOf(t, err, ResourceLocked)
	e.r.OwnerGone(7)
	if e.v.Queue("ex") != nil {
		t.Fatal("exclusive queue survived its owner")
	}
	if len(e.store.meta) != 2 { // the default vhost and user only
		t.Errorf("exclusive queue metadata stored: %d records", len(e.store.meta))
	}
}

// An owner's exclusive queues are a list: deleting any of them keeps the
// others, and OwnerGone deletes what is left, of that owner only.
func TestExclusiveQueuesOfOwner(t *testing.T) {
	e := newEnv(t)
	for _, name := range []string{"a", "b", "c", "d", "e"} {
		if _, err := e.v.DeclareQueue(name, QueueOptions{Exclusive: true}, false, 7, nil); err != nil {
			t.Fatal(err)
		}
	}
	other := e.v.DeclareReplyQueue(8)
	for _, name := range []string{"c", "e", "a"} { // middle, last, first
		if _, err := e.v.DeleteQueue(name, false, false, 7, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := e.v.DeclareQueue("f", QueueOptions{Exclusive: true}, false, 7, nil); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"b", "d", "f"} {
		if e.v.Queue(name) == nil {
			t.Fatalf("queue %s gone", name)
		}
	}
	e.r.OwnerGone(7)
	for _, name := range []string{"a", "b", "c", "d", "e", "f"} {
		if e.v.Queue(name) != nil {
			t.Fatalf("queue %s survived its owner", name)
		}
	}
	if e.v.Queue(other.Name) == nil {
		t.Fatal("another owner's queue was deleted")
	}
	e.r.OwnerGone(8)
	if e.v.Queue(other.Name) != nil || len(e.v.exclusive) != 0 {
		t.Fatalf("left: %v, %d owners", e.v.Queue(other.Name), len(e.v.exclusive))
	}
}

func TestAutoDeleteQueue(t *testing.T) {
	e := newEnv(t)
	e.queue("ad", QueueOptions{AutoDelete: true})
	ch1, _, c1 := e.consume("ad", ConsumeOptions{})
	ch2, _, c2 := e.consume("ad", ConsumeOptions{})
	ch1.Cancel(c1.Tag, true)
	if e.v.Queue("ad") == nil {
		t.Fatal("deleted while a consumer remains")
	}
	ch2.Cancel(c2.Tag, true)
	if e.v.Queue("ad") != nil {
		t.Fatal("auto-delete queue survived its last consumer")
	}
}

func TestDeleteQueueConditionsAndServerCancel(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	e.pub("", "q", "x")
	_, err := e.v.DeleteQueue("q", false, true, 0, nil)
	codeOf(t, err, PreconditionFailed)
	_, rec, c := e.consume("q", ConsumeOptions{})
	_, err = e.v.DeleteQueue("q", true, false, 0, nil)
	codeOf(t, err, PreconditionFailed)
	if _, err := e.v.DeleteQueue("q", false, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if len(rec.cancelled) != 1 || rec.cancelled[0] != c {
		t.Fatalf("consumer not cancelled by the server: %v", rec.cancelled)
	}
}

func TestPurge(t *testing.T) {
	e := newEnv(t)
	q := e.queue("q", QueueOptions{})
	e.pub("", "q", "1")
	e.pub("", "q", "2")
	if n := q.Purge(); n != 2 {
		t.Fatalf("purged %d", n)
	}
	if n, _ := q.Counts(); n != 0 {
		t.Fatalf("%d left", n)
	}
}

func TestPrefetchAckMultipleAndRequeueOrder(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	for _, b := range []string{"1", "2", "3", "4", "5", "6"} {
		e.pub("", "q", b)
	}
	ch, rec, _ := e.consume("q", ConsumeOptions{Prefetch: 3})
	if got := rec.bodies(); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("prefetch 3 delivered %v", got)
	}
	ds := rec.all()
	// Ack 2 alone, then nack 1 and 3 with requeue: they go back before 4.
	if err := ch.Ack(ds[1].Tag, false); err != nil {
		t.Fatal(err)
	}
	if got := rec.bodies(); !slices.Equal(got, []string{"1", "2", "3", "4"}) {
		t.Fatalf("after one ack: %v", got)
	}
	rec.reset()
	if err := ch.Nack(ds[2].Tag, true, true); err != nil { // multiple: 1 and 3
		t.Fatal(err)
	}
	got := rec.all()
	var bodies []string
	for _, d := range got {
		bodies = append(bodies, string(d.Message.Body))
	}
	if !slices.Equal(bodies, []string{"1", "3"}) {
		t.Fatalf("after requeue redelivered %v, want 1 then 3 in original order", bodies)
	}
	for _, d := range got {
		if !d.Redelivered {
			t.Errorf("%s not marked redelivered", d.Message.Body)
		}
	}
	codeOf(t, ch.Ack(999, false), PreconditionFailed)
	codeOf(t, ch.Ack(ds[1].Tag, false), PreconditionFailed) // already acked
	if err := ch.Ack(0, true); err != nil {                 // all outstanding
		t.Fatal(err)
	}
	if ch.Unacked() != 2 { // 5 and 6, delivered on the freed credit
		t.Fatalf("%d unacked after ack-all, want 2", ch.Unacked())
	}
	if got := rec.bodies(); !slices.Equal(got, []string{"1", "3", "5", "6"}) {
		t.Fatalf("deliveries after ack-all: %v", got)
	}
}

func TestChannelCloseRequeuesEverything(t *testing.T) {
	e := newEnv(t)
	q := e.queue("q", QueueOptions{})
	for _, b := range []string{"1", "2", "3"} {
		e.pub("", "q", b)
	}
	ch, rec, _ := e.consume("q", ConsumeOptions{Prefetch: 2})
	if len(rec.all()) != 2 || q.Unacked() != 2 {
		t.Fatalf("unacked %d", q.Unacked())
	}
	ch.Close()
	_, rec2, _ := e.consume("q", ConsumeOptions{})
	got := rec2.all()
	var bodies []string
	for _, d := range got {
		bodies = append(bodies, string(d.Message.Body))
	}
	if diff := cmp.Diff([]string{"1", "2", "3"}, bodies); diff != "" {
		t.Fatalf("after close: %s", diff)
	}
	if !got[0].Redelivered || !got[1].Redelivered || got[2].Redelivered {
		t.Errorf("redelivered flags wrong: %v %v %v", got[0].Redelivered, got[1].Redelivered, got[2].Redelivered)
	}
}

func TestCancelWithoutRequeueKeepsDeliveriesAckable(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	e.pub("", "q", "1")
	ch, rec, c := e.consume("q", ConsumeOptions{})
	ch.Cancel(c.Tag, false)
	if err := ch.Ack(rec.all()[0].Tag, false); err != nil {
		t.Fatalf("ack after cancel: %v", err)
	}
	if ch.Cancel(c.Tag, false) {
		t.Error("second cancel reported a known tag")
	}
}

func TestGlobalPrefetchAndRoundRobin(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	rec := &recorder{}
	ch := e.v.NewChannel(0, rec)
	ch.SetPrefetch(3)
	if _, err := ch.Consume("q", "a", ConsumeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := ch.Consume("q", "b", ConsumeOptions{}); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 6; i++ {
		e.pub("", "q", itoa(i))
	}
	ds := rec.all()
	if len(ds) != 3 {
		t.Fatalf("global prefetch 3 let %d through", len(ds))
	}
	if ds[0].Consumer.Tag == ds[1].Consumer.Tag {
		t.Errorf("no round robin: %s %s", ds[0].Consumer.Tag, ds[1].Consumer.Tag)
	}
	_, err := ch.Consume("q", "a", ConsumeOptions{})
	codeOf(t, err, NotAllowed)
}

func TestConsumerPriorityAndExclusive(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	_, low, _ := e.consume("q", ConsumeOptions{NoAck: true, Priority: 1})
	_, high, _ := e.consume("q", ConsumeOptions{NoAck: true, Priority: 10})
	e.pub("", "q", "x")
	if len(high.all()) != 1 || len(low.all()) != 0 {
		t.Fatalf("high got %d, low got %d", len(high.all()), len(low.all()))
	}
	ch := e.v.NewChannel(0, &recorder{})
	_, err := ch.Consume("q", "", ConsumeOptions{Exclusive: true})
	codeOf(t, err, AccessRefused)
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{})
	_, rec, c := e.consume("q", ConsumeOptions{NoAck: true})
	c.Pause()
	e.pub("", "q", "1")
	if len(rec.all()) != 0 {
		t.Fatal("delivered while paused")
	}
	c.Resume()
	if got := rec.bodies(); !slices.Equal(got, []string{"1"}) {
		t.Fatalf("after resume %v", got)
	}
}
