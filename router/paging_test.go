package router

import (
	"fmt"
	"testing"
	"time"
)

func TestMemoryBudgetPagesMessagesOut(t *testing.T) {
	for _, durable := range []bool{false, true} {
		t.Run(fmt.Sprintf("durable=%v", durable), func(t *testing.T) {
			st := newFakeStore()
			st.async = true
			r, err := New(Config{Store: st, MemoryBudget: 10_000})
			if err != nil {
				t.Fatal(err)
			}
			v := r.VHost("/")
			q, err := v.DeclareQueue("q", QueueOptions{Durable: durable}, false, 0, nil)
			if err != nil {
				t.Fatal(err)
			}
			const n, size = 500, 100
			for i := 0; i < n; i++ {
				m := NewMessage([]byte(fmt.Sprintf("%0*d", size, i)))
				m.RoutingKey = "q"
				persistent(m)
				if _, err := v.Publish("", m, nil); err != nil {
					t.Fatal(err)
				}
			}
			waitFor(t, "pages written", func() bool { return r.MemoryInUse() <= 10_000+size })
			if !durable {
				if got := st.pagedCount(q.ID); got < n-10_000/size-1 {
					t.Fatalf("%d messages paged out, want about %d", got, n-10_000/size)
				}
			}
			rec := &recorder{}
			ch := v.NewChannel(0, rec)
			if _, err := ch.Consume("q", "", ConsumeOptions{Prefetch: 10}); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(10 * time.Second)
			for got := 0; got < n; {
				if time.Now().After(deadline) {
					t.Fatalf("only %d of %d delivered", got, n)
				}
				ds := rec.all()
				for _, d := range ds[got:] {
					if want := fmt.Sprintf("%0*d", size, got); string(d.Message.Body) != want {
						t.Fatalf("delivery %d: %q", got, d.Message.Body)
					}
					got++
				}
				if err := ch.Ack(0, true); err != nil {
					t.Fatal(err)
				}
				if peak := r.MemoryInUse(); peak > 10_000+20*size {
					t.Fatalf("memory in use %d over the budget", peak)
				}
			}
			if m := r.MemoryInUse(); m != 0 {
				t.Errorf("memory in use %d after everything was acked", m)
			}
			waitFor(t, "paged copies deleted", func() bool { return st.pagedCount(q.ID) == 0 })
		})
	}
}
