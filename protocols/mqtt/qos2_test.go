package mqtt

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/router"
)

// connectPersistent connects with a session that outlives the connection:
// 3.1.1 clean session 0, or 5.0 with a Session Expiry Interval.
func (h *harness) connectPersistent(v byte, id string, expiry uint32) *packets.Packet {
	h.t.Helper()
	h.v = v
	pk := connectPacket(v, id, false, 0, "", "")
	if v == 5 {
		pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = expiry, true
	}
	h.send(h.encode(pk))
	ack := h.expect(tConnack)
	if ack.ReasonCode != 0 {
		h.t.Fatalf("CONNACK %+v", ack)
	}
	return ack
}

// Outbound QoS 2: PUBLISH, PUBREC, PUBREL, PUBCOMP; the message leaves
// its queue with the PUBCOMP; QoS is the lower of the publish's and the
// subscription's.
func TestQoS2Outbound(t *testing.T) {
	for _, v := range []byte{4, 5} {
		sub := newHarness(t, Config{})
		sub.connectOK(v, "s")
		sub.subscribe(1, 2, "two")
		sub.subscribe(2, 1, "one")
		pub := sub.peer()
		pub.connectOK(v, "p")

		pub.publishRetained("two", 2, 1, "x") // retained and routed: the live subscriber gets it as a normal message
		m := sub.expect(tPublish)
		if m.FixedHeader.Qos != 2 || m.FixedHeader.Dup || m.FixedHeader.Retain || m.PacketID == 0 {
			t.Fatalf("v%d: %+v", v, m)
		}
		q := sub.s.vhost.Queue(sub.s.queue)
		if q.Unacked() != 1 {
			t.Fatalf("v%d: %d unacked", v, q.Unacked())
		}
		sub.ack(tPubrec, m.PacketID)
		if r := sub.expect(tPubrel); r.PacketID != m.PacketID {
			t.Fatalf("v%d: PUBREL %+v", v, r)
		}
		sub.ack(tPubrec, m.PacketID) // a repeated PUBREC gets the PUBREL again
		sub.expect(tPubrel)
		if q.Unacked() != 1 {
			t.Fatalf("v%d: released before PUBCOMP", v)
		}
		sub.ack(tPubcomp, m.PacketID)
		if q.Unacked() != 0 || sub.s.ch.Unacked() != 0 {
			t.Fatalf("v%d: %d unacked after PUBCOMP", v, q.Unacked())
		}
		sub.quiet()

		// Downgrades both ways.
		pub.publish("one", 2, 2, "down")
		pub.expect(tPubrec)
		pub.ack(tPubrel, 2)
		pub.expect(tPubcomp)
		if m := sub.expect(tPublish); m.FixedHeader.Qos != 1 {
			t.Fatalf("v%d: QoS 2 publish on a QoS 1 subscription came at %d", v, m.FixedHeader.Qos)
		} else {
			sub.ack(tPuback, m.PacketID)
		}
		pub.publish("two", 1, 3, "up")
		pub.expect(tPuback)
		if m := sub.expect(tPublish); m.FixedHeader.Qos != 1 {
			t.Fatalf("v%d: QoS 1 publish on a QoS 2 subscription came at %d", v, m.FixedHeader.Qos)
		} else {
			sub.ack(tPuback, m.PacketID)
		}
		// An unknown id: PUBREL all the same (5.0: 0x92).
		sub.ack(tPubrec, 999)
		if r := sub.expect(tPubrel); r.PacketID != 999 || v == 5 && r.ReasonCode != rcPacketIDNotFound {
			t.Fatalf("v%d: PUBREL %+v", v, r)
		}
		sub.quiet()
	}
}

// QoS 2 exchanges in flight survive a reconnect of a persistent session,
// and a restart of the broker: the unreceived message is sent again with
// DUP under its packet id, the received one gets its PUBREL and is never
// sent again.
func TestQoS2OutboundResume(t *testing.T) {
	for _, restart := range []bool{false, true} {
		for _, v := range []byte{4, 5} {
			sub := newHarness(t, Config{})
			sub.connectPersistent(v, "s", 3600)
			sub.subscribe(1, 2, "t")
			pub := sub.peer()
			pub.connectOK(4, "p")
			for i, body := range []string{"m1", "m2", "m3"} {
				pub.publish("t", 2, uint16(i+1), body)
				pub.expect(tPubrec)
				pub.ack(tPubrel, uint16(i+1))
				pub.expect(tPubcomp)
			}
			m1, m2, m3 := sub.expect(tPublish), sub.expect(tPublish), sub.expect(tPublish)
			sub.ack(tPubrec, m2.PacketID) // m2 received, not completed
			sub.expect(tPubrel)
			sub.ack(tPubrec, m3.PacketID) // m3 completed
			sub.expect(tPubrel)
			sub.ack(tPubcomp, m3.PacketID)
			sub.close() // m1 unreceived, m2 released

			again := sub.peer()
			if restart {
				rt, err := router.New(router.Config{Store: sub.store})
				if err != nil {
					t.Fatal(err)
				}
				again = openHarness(t, New(Config{Router: rt, Store: sub.store}), sub.store)
			}
			if ack := again.connectPersistent(v, "s", 3600); !ack.SessionPresent {
				t.Fatalf("restart %v v%d: session not present", restart, v)
			}
			var rel, dup *packets.Packet
			for range 2 {
				switch p := again.next(); p.FixedHeader.Type {
				case tPubrel:
					rel = p
				case tPublish:
					dup = p
				default:
					t.Fatalf("got %+v", p)
				}
			}
			if rel == nil || rel.PacketID != m2.PacketID {
				t.Fatalf("restart %v v%d: PUBREL %+v, want id %d", restart, v, rel, m2.PacketID)
			}
			if dup == nil || dup.PacketID != m1.PacketID || !dup.FixedHeader.Dup || string(dup.Payload) != "m1" || dup.FixedHeader.Qos != 2 {
				t.Fatalf("restart %v v%d: resent %+v, want m1 as id %d", restart, v, dup, m1.PacketID)
			}
			again.quiet() // m2 and m3 are not sent again
			again.ack(tPubcomp, m2.PacketID)
			again.ack(tPubrec, m1.PacketID)
			again.expect(tPubrel)
			again.ack(tPubcomp, m1.PacketID)
			q := again.s.vhost.Queue(again.s.queue)
			if n, _ := q.Counts(); n != 0 || q.Unacked() != 0 || len(again.s.st.out2) != 0 {
				t.Fatalf("restart %v v%d: %d ready, %d unacked, %d in flight", restart, v, n, q.Unacked(), len(again.s.st.out2))
			}
			// New messages use fresh ids and flow normally.
			pub.publish("t", 1, 9, "m4")
			pub.expect(tPuback)
			if restart {
				// The first broker's publisher does not reach the second.
				again.quiet()
				continue
			}
			if m := again.expect(tPublish); string(m.Payload) != "m4" || m.FixedHeader.Dup {
				t.Fatalf("got %+v", m)
			}
		}
	}
}

// A persistent session without a record of its subscriptions (kept by an
// older broker) takes them from its queue's bindings.
func TestLegacySessionAdoptsBindings(t *testing.T) {
	h := newHarness(t, Config{})
	vh := h.rt.VHost("/")
	q := sessionQueue("legacy")
	if _, err := vh.DeclareQueue(q, router.QueueOptions{Durable: true}, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := vh.BindQueue(q, "amq.topic", "a.*.c", nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	pub := h.peer()
	pub.connectOK(4, "p")
	pub.publish("a/b/c", 1, 1, "kept")
	pub.expect(tPuback)
	if ack := h.connectPersistent(4, "legacy", 0); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	if m := h.expect(tPublish); string(m.Payload) != "kept" || m.FixedHeader.Qos != 1 {
		t.Fatalf("got %+v", m)
	}
	if sb := h.s.st.subs.get("a/+/c"); sb == nil || sb.qos != 1 {
		t.Fatalf("subscriptions %v", h.s.st.subs.list)
	}
}

// More unacknowledged inbound QoS 2 publishes than the announced Receive
// Maximum end an MQTT 5 connection with 0x93.
func TestReceiveMaximumEnforced(t *testing.T) {
	h := newHarness(t, Config{})
	ack := h.connectOK(5, "flood")
	if ack.Properties.ReceiveMaximum != receiveMaximum {
		t.Fatalf("CONNACK Receive Maximum %d, want %d", ack.Properties.ReceiveMaximum, receiveMaximum)
	}
	for i := 1; i <= receiveMaximum; i++ {
		h.publish("rm", 2, uint16(i), "x")
		h.expect(tPubrec) // and no PUBREL: each stays in flight
	}
	h.publish("rm", 2, 1, "x") // a resend of one in flight is fine
	h.expect(tPubrec)
	h.publish("rm", 2, receiveMaximum+1, "x")
	if d := h.expect(tDisconnect); d.ReasonCode != rcReceiveMaxExceeded {
		t.Fatalf("DISCONNECT %+v", d)
	}
}
