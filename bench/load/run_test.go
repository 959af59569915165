package load

import (
	"testing"
	"time"
)

// deliver stamps a payload as producer p's message seq and records it at c.
func deliver(r *run, c *consumer, p *producer, seq uint64) {
	buf := payload(64)
	r.stamp(buf, p, seq)
	r.record(c, buf)
}

func TestTallyReliable(t *testing.T) {
	sc := Scenario{Name: "t", Proto: AMQP, Producers: 1, Consumers: 2, Sinks: 2, Confirms: 10, Size: 64, Window: 100}
	r := newRun(&sc)
	p := r.prods[0]
	for seq := range uint64(5) {
		if !r.acquire() {
			t.Fatal("acquire refused before stop")
		}
		p.sent++
		if seq != 3 { // 3 was published but never confirmed: not owed
			p.acked.add(seq)
		}
	}
	for seq := range uint64(5) {
		deliver(r, r.cons[0], p, seq) // sink 0 gets everything
	}
	deliver(r, r.cons[0], p, 1) // a duplicate
	deliver(r, r.cons[1], p, 0) // sink 1 misses 1, 2 and 4 (3 was not confirmed)
	r.record(r.cons[1], []byte("short"))
	var res Result
	res.Reliable = sc.Reliable()
	r.tally(&res, 0, r.now())
	want := Result{Sent: 5, Confirmed: 4, Expected: 8, Received: 6, Duplicates: 1, Lost: 3, Malformed: 1}
	got := Result{Sent: res.Sent, Confirmed: res.Confirmed, Expected: res.Expected, Received: res.Received,
		Duplicates: res.Duplicates, Lost: res.Lost, Malformed: res.Malformed}
	if got != want {
		t.Errorf("tally = %+v\nwant    %+v", got, want)
	}
}

func TestWindowPausesProducers(t *testing.T) {
	sc := Scenario{Proto: MQTT, Producers: 1, Consumers: 1, Sinks: 1, Size: 64, Window: 2}
	r := newRun(&sc)
	p, c := r.prods[0], r.cons[0]
	r.acquire()
	r.acquire()
	acquired := make(chan bool)
	go func() { acquired <- r.acquire() }()
	select {
	case <-acquired:
		t.Fatal("acquire went past a full window")
	case <-time.After(20 * time.Millisecond):
	}
	deliver(r, c, p, 0) // frees a slot
	if !<-acquired {
		t.Fatal("acquire refused after a delivery freed the window")
	}
	go func() { acquired <- r.acquire() }()
	r.stop()
	if <-acquired {
		t.Fatal("acquire granted after stop")
	}
}

func TestTallyDowngraded(t *testing.T) {
	sc := Scenario{Name: "t", Proto: STOMP, To: MQTT, Route: RouteTopic, Producers: 1, Consumers: 2, Sinks: 2, QoS: 1, Persistent: true, Size: 64}
	r := newRun(&sc)
	r.cons[0].low, r.cons[1].low = 2, 3
	var res Result
	r.tally(&res, 0, r.now())
	if res.Downgraded != 5 {
		t.Errorf("Downgraded = %d, want 5", res.Downgraded)
	}
}
