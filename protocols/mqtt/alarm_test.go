package mqtt

import (
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/router"
)

// While a resource alarm is raised a publisher's input stays unread from
// its next PUBLISH on: no PUBACK or PUBREC goes out, and keepalive does
// not end the connection the broker holds back. Deliveries go on. Once
// the alarm clears the held publishes are taken and acknowledged.
func TestAlarmHoldsPublishers(t *testing.T) {
	for _, v := range []byte{4, 5} {
		sub := newHarness(t, Config{})
		sub.connectOK(v, "s")
		sub.subscribe(1, 1, "a/#")
		pub := sub.peer()
		pub.v = v
		pub.send(pub.encode(connectPacket(v, "p", true, 2, "", "")))
		pub.expect(tConnack)

		sub.rt.SetAlarm(router.AlarmMemory, true)
		pub.publish("a/1", 1, 1, "held 1")
		pub.publish("a/2", 2, 2, "held 2")
		pub.send(pub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPingreq}}))
		pub.quiet()
		if len(pub.pending) == 0 {
			t.Fatalf("v%d: held input consumed", v)
		}
		t0 := time.Unix(1000, 0)
		for i := range 10 {
			if err := pub.s.Tick(t0.Add(time.Duration(i) * time.Second)); err != nil {
				t.Fatalf("v%d: held publisher ended by keepalive: %v", v, err)
			}
		}
		// Consumers keep draining: a message routed meanwhile arrives.
		m := &router.Message{RoutingKey: "a.other", Body: []byte("other")}
		if _, err := sub.rt.VHost("/").Publish("amq.topic", m, nil); err != nil {
			t.Fatal(err)
		}
		if got := sub.expect(tPublish); string(got.Payload) != "other" || got.FixedHeader.Qos != 0 {
			t.Fatalf("v%d: got %+v", v, got)
		}

		sub.rt.SetAlarm(router.AlarmMemory, false)
		// PINGRESP does not wait for the publishes' commits.
		got := map[byte]uint16{}
		for range 3 {
			p := pub.next()
			got[p.FixedHeader.Type] = p.PacketID
		}
		if id, ok := got[tPuback]; !ok || id != 1 {
			t.Fatalf("v%d: after the alarm %v, want PUBACK 1", v, got)
		}
		if id, ok := got[tPubrec]; !ok || id != 2 {
			t.Fatalf("v%d: after the alarm %v, want PUBREC 2", v, got)
		}
		if _, ok := got[tPingresp]; !ok {
			t.Fatalf("v%d: after the alarm %v, want PINGRESP", v, got)
		}
		for _, want := range []string{"held 1", "held 2"} {
			got := sub.expect(tPublish)
			if string(got.Payload) != want {
				t.Fatalf("v%d: got %q, want %q", v, got.Payload, want)
			}
			sub.ack(tPuback, got.PacketID)
		}
		if pub.a.held.Len() != 0 {
			t.Fatalf("v%d: %d sessions still listed as held", v, pub.a.held.Len())
		}
		// Keepalive applies again.
		if pub.s.Tick(t0.Add(time.Minute)) != nil || pub.s.Tick(t0.Add(2*time.Minute)) == nil {
			t.Fatalf("v%d: no keepalive after the alarm", v)
		}
	}
}

// A connection closed while held leaves the held list.
func TestAlarmHeldClosed(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(4, "p")
	h.rt.SetAlarm(router.AlarmDisk, true)
	defer h.rt.SetAlarm(router.AlarmDisk, false)
	h.publish("x", 0, 0, "held")
	h.quiet()
	if h.a.held.Len() != 1 {
		t.Fatalf("%d held", h.a.held.Len())
	}
	h.close()
	if h.a.held.Len() != 0 {
		t.Fatalf("%d held after close", h.a.held.Len())
	}
}
