package router

import (
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// chanSink forwards deliveries to a consumer goroutine.
type chanSink struct{ ch chan Delivery }

func (s chanSink) Deliver(d Delivery)    { s.ch <- d }
func (s chanSink) Cancelled(c *Consumer) {}

// TestConcurrentPublishConsumeChurn runs publishers, consumers that ack,
// nack with requeue and cancel at random, and a goroutine that keeps
// declaring, binding and deleting queues on the same exchange, all at
// once. Every message routed to the long-lived queues must be acknowledged
// exactly once in the end, whatever the interleaving (run it with -race).
func TestConcurrentPublishConsumeChurn(t *testing.T) {
	e := newEnv(t)
	e.exchange("events", "topic", ExchangeOptions{})
	queues := []string{"q0", "q1", "q2"}
	for _, q := range queues {
		e.queue(q, QueueOptions{Durable: true})
		e.bind(q, "events", "#", nil)
	}
	const publishers, perPublisher = 4, 2000
	var acked [3]atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup

	// Churn: temporary queues come and go on the same exchange.
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			name := fmt.Sprintf("tmp%d", i)
			if _, err := e.v.DeclareQueue(name, QueueOptions{AutoDelete: true}, false, 0, nil); err != nil {
				t.Error(err)
				return
			}
			_ = e.v.BindQueue(name, "events", "a.*", nil, 0, nil)
			_, _ = e.v.DeleteQueue(name, false, false, 0, nil)
		}
	}()

	// Consumers: one per queue, each on its own channel, sometimes
	// requeueing, sometimes cancelling and re-consuming.
	for qi, q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(qi), 7))
			sink := chanSink{ch: make(chan Delivery, 1024)}
			ch := e.v.NewChannel(Owner(qi+1), sink)
			tag := "c"
			if _, err := ch.Consume(q, tag, ConsumeOptions{Prefetch: 50}); err != nil {
				t.Error(err)
				return
			}
			for {
				select {
				case <-stop:
					ch.Close()
					return
				case d := <-sink.ch:
					switch r := rng.IntN(100); {
					case r < 5:
						_ = ch.Nack(d.Tag, false, true)
					case r < 6:
						ch.Cancel(tag, true)
						_ = ch.Ack(d.Tag, false) // may be unknown once requeued by the cancel
						tag = fmt.Sprintf("c%d", rng.IntN(1<<30))
						if _, err := ch.Consume(q, tag, ConsumeOptions{Prefetch: 50}); err != nil {
							t.Error(err)
							return
						}
					default:
						if ch.Ack(d.Tag, false) == nil {
							acked[qi].Add(1)
						}
					}
				}
			}
		}()
	}

	var pw sync.WaitGroup
	for p := 0; p < publishers; p++ {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for i := 0; i < perPublisher; i++ {
				m := NewMessage([]byte(fmt.Sprintf("p%d-%d", p, i)))
				m.RoutingKey = "a.b"
				if i%2 == 0 {
					persistent(m)
				}
				if routed, err := e.v.Publish("events", m, nil); err != nil || !routed {
					t.Errorf("publish: routed=%v err=%v", routed, err)
					return
				}
			}
		}()
	}
	pw.Wait()
	const total = publishers * perPublisher
	deadline := time.Now().Add(20 * time.Second)
	for {
		done := true
		for i := range acked {
			if acked[i].Load() < total {
				done = false
			}
		}
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("acked %d %d %d of %d each", acked[0].Load(), acked[1].Load(), acked[2].Load(), total)
		}
		time.Sleep(time.Millisecond)
	}
	close(stop)
	wg.Wait()
	for i, q := range queues {
		if n := acked[i].Load(); n != total {
			t.Errorf("%s: %d acknowledged, want exactly %d", q, n, total)
		}
		ready, _ := e.v.Queue(q).Counts()
		if ready != 0 || e.v.Queue(q).Unacked() != 0 {
			t.Errorf("%s: %d ready, %d unacked left", q, ready, e.v.Queue(q).Unacked())
		}
		if n := e.store.count(e.v.Queue(q).ID); n != 0 {
			t.Errorf("%s: %d stored copies left after every ack", q, n)
		}
	}
}
