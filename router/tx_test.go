package router

import (
	"slices"
	"strings"
	"testing"
)

// In a transaction acks and nacks are checked at once but take effect at
// commit; a rollback makes the deliveries unacknowledged again (RabbitMQ's
// tx semantics for acks).
func TestTxSettlementsWaitForCommit(t *testing.T) {
	e := newEnv(t)
	q := e.queue("q", QueueOptions{})
	for _, b := range []string{"1", "2", "3", "4"} {
		e.pub("", "q", b)
	}
	ch, rec, _ := e.consume("q", ConsumeOptions{Prefetch: 4})
	ds := rec.all()
	if len(ds) != 4 {
		t.Fatalf("delivered %d", len(ds))
	}
	ch.SelectTx()
	if err := ch.Ack(ds[1].Tag, true); err != nil { // 1 and 2
		t.Fatal(err)
	}
	if err := ch.Nack(ds[2].Tag, false, true); err != nil { // 3 back to the queue
		t.Fatal(err)
	}
	codeOf(t, ch.Ack(ds[0].Tag, false), PreconditionFailed) // settled in this tx already
	if q.Unacked() != 4 || ch.Unacked() != 4 {
		t.Fatalf("before commit: queue %d, channel %d unacked, want 4", q.Unacked(), ch.Unacked())
	}
	rec.reset()
	ch.CommitTx()
	if q.Unacked() != 2 || ch.Unacked() != 2 {
		t.Fatalf("after commit: queue %d, channel %d unacked, want 2 (3 redelivered, 4)", q.Unacked(), ch.Unacked())
	}
	got := rec.all()
	if len(got) != 1 || string(got[0].Message.Body) != "3" || !got[0].Redelivered {
		t.Fatalf("commit requeued %v, want 3 redelivered", rec.bodies())
	}

	// Ack everything, roll back: still unacknowledged, and ackable again.
	if err := ch.Ack(0, true); err != nil {
		t.Fatal(err)
	}
	ch.RollbackTx()
	if q.Unacked() != 2 {
		t.Fatalf("after rollback %d unacked, want 2", q.Unacked())
	}
	if err := ch.Ack(got[0].Tag, false); err != nil {
		t.Fatalf("ack after rollback: %v", err)
	}
	ch.CommitTx()
	if q.Unacked() != 1 {
		t.Fatalf("after second commit %d unacked, want 1", q.Unacked())
	}

	// An ack left uncommitted when the channel closes is dropped: the
	// message goes back to the queue.
	if err := ch.Ack(ds[3].Tag, false); err != nil {
		t.Fatal(err)
	}
	ch.Close()
	if msgs, _ := q.Counts(); msgs != 1 || q.Unacked() != 0 {
		t.Fatalf("after close: %d ready, %d unacked, want 1, 0", msgs, q.Unacked())
	}
	if got := e.drainGet("q"); !slices.Equal(got, []string{"4"}) {
		t.Fatalf("queue holds %v, want [4]", got)
	}
}

func TestReplyQueue(t *testing.T) {
	e := newEnv(t)
	const requester, replier Owner = 1, 2
	q := e.v.DeclareReplyQueue(requester)
	if !strings.HasPrefix(q.Name, ReplyQueuePrefix) || len(q.Name) <= len(ReplyQueuePrefix) {
		t.Fatalf("reply queue named %q", q.Name)
	}
	if _, err := e.v.DeclareQueue(q.Name, QueueOptions{}, true, replier, nil); err != nil {
		t.Fatalf("a replier's passive declare: %v", err)
	}
	_, err := e.v.DeclareQueue(q.Name, QueueOptions{Exclusive: true, AutoDelete: true}, false, replier, nil)
	codeOf(t, err, ResourceLocked)
	_, err = e.v.NewChannel(replier, &recorder{}).Consume(q.Name, "", ConsumeOptions{NoAck: true})
	codeOf(t, err, ResourceLocked)

	rec := &recorder{}
	ch := e.v.NewChannel(requester, rec)
	if _, err := ch.Consume(q.Name, "reply", ConsumeOptions{NoAck: true}); err != nil {
		t.Fatal(err)
	}
	if !e.pub("", q.Name, "answer") {
		t.Fatal("a reply to the default exchange was not routed")
	}
	if got := rec.bodies(); !slices.Equal(got, []string{"answer"}) {
		t.Fatalf("requester got %v", got)
	}
	ch.Cancel("reply", false)
	if e.v.Queue(q.Name) != nil {
		t.Fatal("reply queue outlived its consumer")
	}
	if e.pub("", q.Name, "late") {
		t.Fatal("a late reply was routed")
	}
	q2 := e.v.DeclareReplyQueue(requester)
	e.r.OwnerGone(requester)
	if e.v.Queue(q2.Name) != nil {
		t.Fatal("reply queue outlived its owner")
	}
}

func TestAlarms(t *testing.T) {
	e := newEnv(t)
	var seen []Alarm
	stop := e.r.WatchAlarms(func(a Alarm) { seen = append(seen, a) })
	e.r.SetAlarm(AlarmDisk, true)
	e.r.SetAlarm(AlarmDisk, true) // no change, no call
	e.r.SetAlarm(AlarmMemory, true)
	if e.r.Alarms() != AlarmDisk|AlarmMemory || e.r.Alarms().String() != "low on memory and disk" {
		t.Fatalf("raised %v", e.r.Alarms())
	}
	e.r.SetAlarm(AlarmDisk, false)
	stop()
	e.r.SetAlarm(AlarmMemory, false)
	if want := []Alarm{AlarmDisk, AlarmDisk | AlarmMemory, AlarmMemory}; !slices.Equal(seen, want) {
		t.Fatalf("watcher saw %v, want %v", seen, want)
	}
	if e.r.Alarms() != 0 {
		t.Fatalf("still raised: %v", e.r.Alarms())
	}
}

func TestCheckMemoryRaisesAndClearsTheMemoryAlarm(t *testing.T) {
	r, err := New(Config{Store: newFakeStore(), MemoryBudget: 1000})
	if err != nil {
		t.Fatal(err)
	}
	r.mem.Store(1001)
	r.CheckMemory(0, 0)
	if r.Alarms() != AlarmMemory {
		t.Fatal("over budget, no alarm")
	}
	r.mem.Store(950) // under budget, not yet under 90%
	r.CheckMemory(0, 0)
	if r.Alarms() != AlarmMemory {
		t.Fatal("alarm cleared above the low-water mark")
	}
	r.mem.Store(800)
	r.CheckMemory(0, 0)
	if r.Alarms() != 0 {
		t.Fatal("alarm not cleared under the low-water mark")
	}
	// The process's resident memory against the high watermark, likewise.
	r.CheckMemory(2001, 2000)
	if r.Alarms() != AlarmMemory {
		t.Fatal("over the high watermark, no alarm")
	}
	r.CheckMemory(1900, 2000)
	if r.Alarms() != AlarmMemory {
		t.Fatal("alarm cleared above 90% of the watermark")
	}
	r.mem.Store(1001) // bodies over budget keep it raised
	r.CheckMemory(100, 2000)
	if r.Alarms() != AlarmMemory {
		t.Fatal("alarm cleared with bodies over budget")
	}
	r.mem.Store(0)
	r.CheckMemory(100, 2000)
	if r.Alarms() != 0 {
		t.Fatal("alarm not cleared with both under")
	}
}
