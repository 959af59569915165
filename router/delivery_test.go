package router

import (
	"testing"
	"time"
)

// A delivery names its message's position in the queue, the same on
// redelivery, and when the message expires there.
func TestDeliverySeqAndExpiry(t *testing.T) {
	e := newEnv(t)
	e.queue("q", QueueOptions{Args: Table{{"x-message-ttl", int32(60_000)}}})
	now := e.clk.now().UnixNano()
	e.pub("", "q", "a")
	e.pub("", "q", "b", expiration("10000"))
	ch, rec, _ := e.consume("q", ConsumeOptions{})
	ds := rec.all()
	if len(ds) != 2 || ds[0].Seq >= ds[1].Seq {
		t.Fatalf("deliveries %+v", ds)
	}
	if ds[0].ExpiresAt != now+int64(60*time.Second) || ds[1].ExpiresAt != now+int64(10*time.Second) {
		t.Fatalf("expiry %d, %d (now %d)", ds[0].ExpiresAt, ds[1].ExpiresAt, now)
	}
	rec.reset()
	ch.Recover()
	again := rec.all()
	if len(again) != 2 || again[0].Seq != ds[0].Seq || again[1].Seq != ds[1].Seq || !again[0].Redelivered {
		t.Fatalf("redeliveries %+v", again)
	}
	e.queue("plain", QueueOptions{})
	e.pub("", "plain", "c")
	if _, r, _ := e.consume("plain", ConsumeOptions{}); r.all()[0].ExpiresAt != 0 {
		t.Fatal("a message without TTL expires")
	}
}
