package mqtt

import (
	"fmt"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
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

// in2Records returns the inbound QoS 2 ids stored for client cid.
func in2Records(t testing.TB, h *harness, cid string) []uint16 {
	t.Helper()
	prefix := h.a.stateKey(cid, 'i', 0)
	prefix = prefix[:len(prefix)-2]
	var ids []uint16
	err := h.store.ScanMeta(storage.KindSession, func(key, _ []byte) error {
		if len(key) == len(prefix)+2 && string(key[:len(prefix)]) == string(prefix) {
			ids = append(ids, uint16(key[len(prefix)])<<8|uint16(key[len(prefix)+1]))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return ids
}

// Inbound QoS 2 packet ids belong to a persistent session, not to its
// connection (MQTT 3.1.1 §4.3.3, 5.0 §4.3.3): a PUBLISH resent with DUP
// after a reconnect or a broker restart is acknowledged, not routed again,
// and its PUBREL gets PUBCOMP 0x00; the id is forgotten with the PUBREL.
func TestQoS2InboundResume(t *testing.T) {
	for _, restart := range []bool{false, true} {
		for _, v := range []byte{4, 5} {
			for _, resend := range []bool{true, false} {
				name := fmt.Sprintf("restart %v v%d resend %v", restart, v, resend)
				h := newHarness(t, Config{})
				vh := h.rt.VHost("/")
				if _, err := vh.DeclareQueue("in2", router.QueueOptions{Durable: true}, false, 0, nil); err != nil {
					t.Fatal(err)
				}
				if err := vh.BindQueue("in2", "amq.topic", "in", nil, 0, nil); err != nil {
					t.Fatal(err)
				}
				h.connectPersistent(v, "c", 3600)
				h.publish("in", 2, 9, "once")
				if r := h.expect(tPubrec); r.PacketID != 9 || r.ReasonCode >= 0x80 {
					t.Fatalf("%s: PUBREC %+v", name, r)
				}
				if ids := in2Records(t, h, "c"); len(ids) != 1 || ids[0] != 9 {
					t.Fatalf("%s: stored ids %v, want [9]", name, ids)
				}
				h.close()

				again := h.peer()
				if restart {
					rt, err := router.New(router.Config{Store: h.store})
					if err != nil {
						t.Fatal(err)
					}
					again = openHarness(t, New(Config{Router: rt, Store: h.store}), h.store)
				}
				if ack := again.connectPersistent(v, "c", 3600); !ack.SessionPresent {
					t.Fatalf("%s: session not present", name)
				}
				if resend {
					pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 2, Dup: true}, TopicName: "in", PacketID: 9, Payload: []byte("once")}
					again.send(again.encode(pk))
					if r := again.expect(tPubrec); r.PacketID != 9 || r.ReasonCode >= 0x80 {
						t.Fatalf("%s: PUBREC %+v", name, r)
					}
				}
				again.ack(tPubrel, 9)
				if c := again.expect(tPubcomp); c.PacketID != 9 || c.ReasonCode != 0 {
					t.Fatalf("%s: PUBCOMP %+v, want 9 with 0x00", name, c)
				}
				if n, _ := again.rt.VHost("/").Queue("in2").Counts(); n != 1 {
					t.Fatalf("%s: routed %d times, want once", name, n)
				}
				if len(again.s.st.in2) != 0 || len(in2Records(t, again, "c")) != 0 {
					t.Fatalf("%s: id kept after PUBREL: %v, stored %v", name, again.s.st.in2, in2Records(t, again, "c"))
				}
				// The id is free again: a new PUBLISH with it is routed.
				again.publish("in", 2, 9, "twice")
				again.expect(tPubrec)
				again.ack(tPubrel, 9)
				again.expect(tPubcomp)
				if n, _ := again.rt.VHost("/").Queue("in2").Counts(); n != 2 {
					t.Fatalf("%s: %d routed, want 2", name, n)
				}
			}
		}
	}
}

// A session that ends with its connection keeps no inbound QoS 2 ids:
// the next connection's PUBREL of one is unknown (MQTT 5: 0x92).
func TestQoS2InboundCleanSession(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(5, "c")
	h.publish("in", 2, 9, "x")
	h.expect(tPubrec)
	h.close()
	again := h.peer()
	again.connectOK(5, "c")
	again.ack(tPubrel, 9)
	if c := again.expect(tPubcomp); c.ReasonCode != rcPacketIDNotFound {
		t.Fatalf("PUBCOMP %+v, want 0x92", c)
	}
	if ids := in2Records(t, again, "c"); len(ids) != 0 {
		t.Fatalf("stored ids %v", ids)
	}
}

// A crash can lose the acknowledgement that takes a released outbound
// QoS 2 message (PUBREC came, PUBREL sent) off its queue, so the queue
// delivers it again after the restart: the session resends only the
// PUBREL, never a second PUBLISH, and settles the delivery with the
// PUBCOMP.
func TestQoS2OutboundReleasedAfterCrash(t *testing.T) {
	for _, v := range []byte{4, 5} {
		sub := newHarness(t, Config{})
		sub.connectPersistent(v, "s", 3600)
		sub.subscribe(1, 2, "t")
		pub := sub.peer()
		pub.connectOK(4, "p")
		pub.publish("t", 2, 1, "m1")
		pub.expect(tPubrec)
		pub.ack(tPubrel, 1)
		pub.expect(tPubcomp)
		m := sub.expect(tPublish)
		if m.FixedHeader.Qos != 2 {
			t.Fatalf("v%d: %+v", v, m)
		}
		sub.ack(tPubrec, m.PacketID)
		sub.expect(tPubrel)
		sub.closed = true // a crash: Closed never runs, the message stays unacknowledged

		rt, err := router.New(router.Config{Store: sub.store})
		if err != nil {
			t.Fatal(err)
		}
		again := openHarness(t, New(Config{Router: rt, Store: sub.store}), sub.store)
		if ack := again.connectPersistent(v, "s", 3600); !ack.SessionPresent {
			t.Fatalf("v%d: session not present", v)
		}
		if r := again.expect(tPubrel); r.PacketID != m.PacketID {
			t.Fatalf("v%d: PUBREL %+v, want id %d", v, r, m.PacketID)
		}
		again.quiet() // no second PUBLISH of m1
		q := rt.VHost("/").Queue(again.s.queue)
		if n, _ := q.Counts(); n+q.Unacked() != 1 {
			t.Fatalf("v%d: %d ready, %d unacked: m1 not redelivered by the queue", v, n, q.Unacked())
		}
		if again.s.relPending != 0 {
			t.Fatalf("v%d: relPending %d with the delivery attached", v, again.s.relPending)
		}
		again.ack(tPubcomp, m.PacketID)
		if n, _ := q.Counts(); n != 0 || q.Unacked() != 0 || len(again.s.st.out2) != 0 || len(again.s.pids) != 0 {
			t.Fatalf("v%d: after PUBCOMP %d ready, %d unacked, %d in flight", v, n, q.Unacked(), len(again.s.st.out2))
		}
	}
}

// The PUBCOMP of a restored released message can come before the queue
// delivers the message again; the delivery is then settled, not sent.
func TestQoS2OutboundCompletedBeforeRedelivery(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectPersistent(4, "s", 0)
	h.s.more().resend = map[resendKey]uint16{}
	h.s.setPID(7, outMsg{qos: 2, released: true, queue: h.s.queue, seq: 42})
	h.s.x.resend[resendKey{h.s.queue, 42}] = 7
	h.s.pubcomp(7)
	if pid, ok := h.s.x.resend[resendKey{h.s.queue, 42}]; !ok || pid != 0 {
		t.Fatalf("resend %v: the completed message is not remembered", h.s.x.resend)
	}
	h.s.channel()
	d := router.Delivery{Queue: h.s.vhost.Queue(h.s.queue), Seq: 42}
	if _, _, send := h.s.assignPID(&d, 2); send {
		t.Fatal("a completed message sent again")
	}
	if len(h.s.x.resend) != 0 || len(h.s.pids) != 0 {
		t.Fatalf("resend %v, pids %v", h.s.x.resend, h.s.pids)
	}
}

// An inbound QoS 2 id read from the store may be stale: a crash can lose
// the unsynced delete of its PUBREL while the client has reused the id. A
// PUBLISH without DUP under it is a new message, routed; only a resend
// (DUP) is acknowledged without routing.
func TestQoS2InboundStoredIDNeedsDup(t *testing.T) {
	h := newHarness(t, Config{})
	vh := h.rt.VHost("/")
	if _, err := vh.DeclareQueue("in2", router.QueueOptions{Durable: true}, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if err := vh.BindQueue("in2", "amq.topic", "in", nil, 0, nil); err != nil {
		t.Fatal(err)
	}
	h.connectPersistent(5, "c", 3600)
	h.publish("in", 2, 9, "old")
	h.expect(tPubrec)
	h.close() // as if the PUBREL's delete were lost in a crash

	rt, err := router.New(router.Config{Store: h.store})
	if err != nil {
		t.Fatal(err)
	}
	again := openHarness(t, New(Config{Router: rt, Store: h.store}), h.store)
	again.connectPersistent(5, "c", 3600)
	again.publish("in", 2, 9, "new") // no DUP
	again.expect(tPubrec)
	again.publish("in", 2, 9, "new") // now this connection's id: a resend either way
	again.expect(tPubrec)
	again.ack(tPubrel, 9)
	if c := again.expect(tPubcomp); c.ReasonCode != 0 {
		t.Fatalf("PUBCOMP %+v", c)
	}
	if n, _ := rt.VHost("/").Queue("in2").Counts(); n != 2 {
		t.Fatalf("%d routed, want 2: the new message under a stored id was dropped", n)
	}
}
