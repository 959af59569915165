package bench

import (
	"testing"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/pebblestore"
)

type acker struct{ tags chan router.DeliveryTag }

func (a acker) Deliver(d router.Delivery)    { a.tags <- d.Tag }
func (a acker) Cancelled(c *router.Consumer) {}

// BenchmarkDurablePublishConsume drives persistent 1 KiB messages through
// the router into a durable queue on the Pebble store, as a confirming
// publisher with up to 1,000 unconfirmed messages would, while a consumer
// acknowledges them: routing, encoding, group commit with fsync, delivery
// and range-delete acknowledgements, end to end in process.
func BenchmarkDurablePublishConsume(b *testing.B) {
	st, err := pebblestore.Open(b.TempDir(), pebblestore.Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	r, err := router.New(router.Config{Store: st})
	if err != nil {
		b.Fatal(err)
	}
	v := r.VHost("/")
	if _, err := v.DeclareQueue("durable", router.QueueOptions{Durable: true}, false, 0, nil); err != nil {
		b.Fatal(err)
	}
	a := acker{tags: make(chan router.DeliveryTag, 4096)}
	ch := v.NewChannel(1, a)
	if _, err := ch.Consume("durable", "", router.ConsumeOptions{Prefetch: 2000}); err != nil {
		b.Fatal(err)
	}
	done := make(chan struct{})
	go func() { // the consumer: acknowledge in batches, as clients do
		defer close(done)
		for n := 0; n < b.N; {
			t := <-a.tags
			n++
			if n%100 == 0 || n == b.N {
				if err := ch.Ack(t, true); err != nil {
					b.Error(err)
					return
				}
			}
		}
	}()
	const inflight = 1000
	window := make(chan struct{}, inflight)
	body := make([]byte, 1024)
	for i := range body {
		body[i] = byte(i * 7)
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		window <- struct{}{}
		m := router.NewMessage(body)
		m.RoutingKey = "durable"
		m.Properties.Flags = router.HasDeliveryMode
		m.Properties.DeliveryMode = router.Persistent
		if _, err := v.Publish("", m, func(err error) {
			if err != nil {
				b.Error(err)
			}
			<-window
		}); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < inflight; i++ { // every confirm in
		window <- struct{}{}
	}
	<-done
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
}
