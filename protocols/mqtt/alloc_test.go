package mqtt

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// TestPublishDeliverAllocs pins the allocations of one publish routed to a
// subscriber and delivered (and, at QoS 1, acknowledged both ways). QoS 0
// costs 6: the packet copy, the topic string, the routing key, the
// message, and the router's share; QoS 1 adds the acknowledgement's op,
// its callback and the packet id bookkeeping. Sessions share prebuilt
// header tables and encode deliveries into reused buffers, so neither the
// MQTT 5 properties, the x-mqtt-publish-qos header nor the provenance
// headers (as the broker runs, router.provenance on) add any.
func TestPublishDeliverAllocs(t *testing.T) {
	for _, v := range []byte{4, 5} {
		for _, tc := range []struct {
			qos    byte
			budget float64
		}{{0, 6}, {1, 12}} {
			st := memstore.New()
			t.Cleanup(func() { _ = st.Close() })
			rt, err := router.New(router.Config{Store: st, Provenance: true})
			if err != nil {
				t.Fatal(err)
			}
			sub := openHarness(t, New(Config{Router: rt, Store: st}), st)
			sub.connectOK(v, "s")
			sub.subscribe(1, 1, "a/+/c")
			pub := sub.peer()
			pub.connectOK(v, "p")
			pk := pub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: tc.qos}, TopicName: "a/b/c", PacketID: 1, Payload: []byte("hello world")})
			ack := []byte{tPuback << 4, 2, 0, 0}
			var vec [][]byte
			round := func() {
				_, _ = pub.s.Feed(pk)
				vec = pub.s.Output(vec[:0])
				vec = sub.s.Output(vec[:0])
				for pid := range sub.s.pids {
					ack[2], ack[3] = byte(pid>>8), byte(pid)
					_, _ = sub.s.Feed(ack)
				}
			}
			for range 1000 { // grow buffers and maps to steady state
				round()
			}
			if n := testing.AllocsPerRun(1000, round); n > tc.budget {
				t.Errorf("v%d QoS %d: %.1f allocations per publish→deliver, want at most %v", v, tc.qos, n, tc.budget)
			}
		}
	}
}
