package mqtt

import (
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
)

// publishRetained publishes body retained on topic and waits for the
// acknowledgement of QoS 1 and 2.
func (h *harness) publishRetained(topic string, qos byte, id uint16, body string) *packets.Packet {
	h.t.Helper()
	h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: qos, Retain: true}, TopicName: topic, PacketID: id, Payload: []byte(body)}))
	switch qos {
	case 1:
		return h.expect(tPuback)
	case 2:
		rec := h.expect(tPubrec)
		h.ack(tPubrel, id)
		h.expect(tPubcomp)
		return rec
	}
	return nil
}

// subscribeWith sends a SUBSCRIBE with full options and returns the SUBACK.
func (h *harness) subscribeWith(id uint16, subID int, subs ...packets.Subscription) *packets.Packet {
	h.t.Helper()
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: tSubscribe, Qos: 1}, PacketID: id, Filters: subs}
	if subID > 0 {
		pk.Properties.SubscriptionIdentifier = []int{subID}
	}
	h.send(h.encode(pk))
	ack := h.expect(tSuback)
	if ack.PacketID != id || len(ack.ReasonCodes) != len(subs) {
		h.t.Fatalf("SUBACK %+v", ack)
	}
	return ack
}

// collect returns the next n PUBLISH packets, acknowledging QoS 1 ones,
// sorted by topic.
func (h *harness) collect(n int) []*packets.Packet {
	h.t.Helper()
	var got []*packets.Packet
	for range n {
		m := h.expect(tPublish)
		if m.FixedHeader.Qos == 1 {
			h.ack(tPuback, m.PacketID)
		}
		got = append(got, m)
	}
	sort.Slice(got, func(i, j int) bool { return got[i].TopicName < got[j].TopicName })
	return got
}

func topics(ms []*packets.Packet) []string {
	var ts []string
	for _, m := range ms {
		ts = append(ts, m.TopicName+"="+string(m.Payload))
	}
	return ts
}

// Retained messages reach new subscriptions with exact and wildcard
// filters, with the retain flag; '$' topics only with filters that name
// them; an empty retained publish clears the topic.
func TestRetained(t *testing.T) {
	for _, v := range []byte{4, 5} {
		pub := newHarness(t, Config{})
		pub.connectOK(v, "pub")
		pub.publishRetained("r/a", 1, 1, "A")
		pub.publishRetained("r/b", 0, 0, "B")
		pub.publishRetained("r/b/c", 2, 2, "C")
		pub.publishRetained("$SYS/x", 1, 3, "S")
		pub.publishRetained("other", 1, 4, "O")
		if n, _ := pub.a.Retained(); n != 5 {
			t.Fatalf("v%d: %d retained", v, n)
		}

		for _, tc := range []struct {
			filter string
			want   []string
		}{
			{"r/a", []string{"r/a=A"}},
			{"r/+", []string{"r/a=A", "r/b=B"}},
			{"r/#", []string{"r/a=A", "r/b=B", "r/b/c=C"}},
			{"+/+/c", []string{"r/b/c=C"}},
			{"#", []string{"other=O", "r/a=A", "r/b=B", "r/b/c=C"}},
			{"+", []string{"other=O"}},
			{"$SYS/#", []string{"$SYS/x=S"}},
			{"nothing/here", nil},
		} {
			sub := pub.peer()
			sub.connectOK(v, "sub")
			sub.subscribe(1, 2, tc.filter)
			got := sub.collect(len(tc.want))
			if !slices.Equal(topics(got), tc.want) {
				t.Fatalf("v%d %s: got %v, want %v", v, tc.filter, topics(got), tc.want)
			}
			for _, m := range got {
				if !m.FixedHeader.Retain {
					t.Fatalf("v%d %s: retain flag not set on %+v", v, tc.filter, m)
				}
				if m.TopicName == "r/b" && m.FixedHeader.Qos != 0 || m.TopicName == "r/a" && m.FixedHeader.Qos != 1 {
					t.Fatalf("v%d %s: QoS %d for %s", v, tc.filter, m.FixedHeader.Qos, m.TopicName)
				}
				if m.TopicName == "r/b/c" && m.FixedHeader.Qos != 2 {
					t.Fatalf("v%d: QoS 2 retained came at %d", v, m.FixedHeader.Qos)
				}
			}
			sub.quiet()
			sub.close()
		}

		// A live subscriber gets new retained publishes as normal messages:
		// retain flag clear (MQTT 3.1.1 [MQTT-3.3.1-9]; 5.0 without Retain
		// As Published). The empty publish that clears a topic reaches it
		// too.
		live := pub.peer()
		live.connectOK(v, "live")
		live.subscribeWith(1, 0, packets.Subscription{Filter: "r/#", Qos: 1, RetainHandling: 2})
		if v == 4 {
			live.collect(3) // 3.1.1 has no Retain Handling
		}
		pub.publishRetained("r/a", 1, 5, "A2")
		if m := live.expect(tPublish); m.FixedHeader.Retain || string(m.Payload) != "A2" {
			t.Fatalf("v%d: forwarded %+v", v, m)
		} else {
			live.ack(tPuback, m.PacketID)
		}
		pub.publishRetained("r/a", 1, 6, "")
		if m := live.expect(tPublish); len(m.Payload) != 0 || m.TopicName != "r/a" {
			t.Fatalf("v%d: clearing publish forwarded as %+v", v, m)
		} else {
			live.ack(tPuback, m.PacketID)
		}
		sub := pub.peer()
		sub.connectOK(v, "late")
		sub.subscribe(1, 1, "r/a")
		sub.quiet()
		if n, _ := pub.a.Retained(); n != 4 {
			t.Fatalf("v%d: %d retained after clearing one", v, n)
		}
	}
}

// Retained messages are stored: a broker that restarts on the same store
// has them, and a cleared topic stays cleared.
func TestRetainedRestart(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(5, "pub")
	h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1, Retain: true}, TopicName: "dev/1/state", PacketID: 1,
		Payload: []byte("on"), Properties: packets.Properties{ContentType: "text/plain", User: []packets.UserProperty{{Key: "k", Val: "v"}}}}))
	h.expect(tPuback)
	h.publishRetained("dev/2/state", 1, 2, "off")
	h.publishRetained("dev/3/state", 0, 0, "gone")
	h.publishRetained("dev/3/state", 1, 3, "")
	n := 0
	_ = h.store.ScanMeta(storage.KindRetained, func(_, _ []byte) error { n++; return nil })
	if n != 2 {
		t.Fatalf("%d retained records in the store", n)
	}

	rt, err := router.New(router.Config{Store: h.store})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Router: rt, Store: h.store})
	if n, _ := a.Retained(); n != 2 {
		t.Fatalf("%d retained after restart", n)
	}
	sub := openHarness(t, a, h.store)
	sub.connectOK(5, "sub")
	sub.subscribe(1, 1, "dev/+/state")
	got := sub.collect(2)
	if !slices.Equal(topics(got), []string{"dev/1/state=on", "dev/2/state=off"}) {
		t.Fatalf("got %v", topics(got))
	}
	if p := got[0].Properties; p.ContentType != "text/plain" || len(p.User) != 1 || p.User[0] != (packets.UserProperty{Key: "k", Val: "v"}) {
		t.Fatalf("properties lost: %+v", p)
	}
	sub.quiet()
}

// The retained store is bounded: past either limit, a new topic is refused
// (MQTT 5 QoS > 0: PUBACK 0x97 and not routed; otherwise routed but not
// retained); replacing and clearing topics still work.
func TestRetainedLimits(t *testing.T) {
	for _, v := range []byte{4, 5} {
		pub := newHarness(t, Config{RetainedMaxMessages: 2, RetainedMaxBytes: 400})
		pub.connectOK(v, "pub")
		watch := pub.peer()
		watch.connectOK(v, "watch")
		watch.subscribe(1, 1, "l/#")
		expectMsg := func(body string) {
			t.Helper()
			m := watch.expect(tPublish)
			if string(m.Payload) != body {
				t.Fatalf("v%d: got %q, want %q", v, m.Payload, body)
			}
			if m.FixedHeader.Qos == 1 {
				watch.ack(tPuback, m.PacketID)
			}
		}
		for i, topic := range []string{"l/1", "l/2"} {
			if a := pub.publishRetained(topic, 1, uint16(i+1), "x"); a.ReasonCode != 0 {
				t.Fatalf("v%d: PUBACK %+v", v, a)
			}
			expectMsg("x")
		}
		a := pub.publishRetained("l/3", 1, 3, "y")
		if v == 5 {
			if a.ReasonCode != rcQuotaExceeded || a.Properties.ReasonString == "" {
				t.Fatalf("PUBACK %+v", a)
			}
			watch.quiet() // refused: not routed
		} else {
			if a.ReasonCode != 0 {
				t.Fatalf("3.1.1 PUBACK %+v", a)
			}
			expectMsg("y") // routed, not retained
		}
		pub.publishRetained("l/3", 0, 0, "z") // QoS 0: routed, not retained
		expectMsg("z")
		if n, _ := pub.a.Retained(); n != 2 {
			t.Fatalf("v%d: %d retained", v, n)
		}
		// Replacing is fine within the byte limit; growing past it is not.
		pub.publishRetained("l/1", 1, 4, "xx")
		expectMsg("xx")
		big := string(make([]byte, 300))
		if a := pub.publishRetained("l/2", 1, 5, big); v == 5 && a.ReasonCode != rcQuotaExceeded {
			t.Fatalf("PUBACK %+v", a)
		}
		if v == 4 {
			expectMsg(big)
		}
		// Clearing makes room.
		pub.publishRetained("l/2", 1, 6, "")
		expectMsg("")
		if a := pub.publishRetained("l/3", 1, 7, "w"); a.ReasonCode != 0 {
			t.Fatalf("v%d: PUBACK %+v", v, a)
		}
		expectMsg("w")
		sub := pub.peer()
		sub.connectOK(v, "sub")
		sub.subscribe(1, 1, "l/#")
		if got := topics(sub.collect(2)); !slices.Equal(got, []string{"l/1=xx", "l/3=w"}) {
			t.Fatalf("v%d: retained %v", v, got)
		}
	}
}

// MQTT 5 subscription options: Retain Handling, Retain As Published and
// No Local.
func TestRetainOptions(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(5, "c")
	h.publishRetained("o/t", 1, 1, "R")

	// Retain Handling 0 sends on every SUBSCRIBE, 1 only for a new one,
	// 2 never.
	h.subscribeWith(1, 0, packets.Subscription{Filter: "o/t", Qos: 1})
	if m := h.collect(1)[0]; !m.FixedHeader.Retain {
		t.Fatalf("rh 0: %+v", m)
	}
	h.subscribeWith(2, 0, packets.Subscription{Filter: "o/t", Qos: 1})
	h.collect(1)
	h.subscribeWith(3, 0, packets.Subscription{Filter: "o/t", Qos: 1, RetainHandling: 1})
	h.quiet()
	h.subscribeWith(4, 0, packets.Subscription{Filter: "o/+", Qos: 1, RetainHandling: 1})
	h.collect(1)
	h.subscribeWith(5, 0, packets.Subscription{Filter: "o/#", Qos: 1, RetainHandling: 2})
	h.quiet()

	// Retain As Published keeps the flag on forwarded messages.
	sub := h.peer()
	sub.connectOK(5, "rap")
	sub.subscribeWith(1, 0, packets.Subscription{Filter: "p/rap", Qos: 1, RetainAsPublished: true},
		packets.Subscription{Filter: "p/plain", Qos: 1})
	h.publishRetained("p/rap", 1, 2, "1")
	h.publishRetained("p/plain", 1, 3, "2")
	got := sub.collect(2)
	if !got[1].FixedHeader.Retain || got[0].FixedHeader.Retain {
		t.Fatalf("RAP: %v retain %v / %v", topics(got), got[0].FixedHeader.Retain, got[1].FixedHeader.Retain)
	}
	h.publish("p/rap", 1, 4, "3")
	h.expect(tPuback)
	if m := sub.collect(1)[0]; m.FixedHeader.Retain {
		t.Fatalf("RAP on a non-retained publish: %+v", m)
	}

	// No Local: a client's own publishes skip its No Local subscriptions.
	nl := h.peer()
	nl.connectOK(5, "nl")
	nl.subscribeWith(1, 0, packets.Subscription{Filter: "n/#", Qos: 1, NoLocal: true, RetainHandling: 2})
	nl.publish("n/1", 1, 1, "mine")
	nl.expect(tPuback)
	nl.quiet()
	h.publish("n/1", 1, 5, "theirs")
	h.expect(tPuback)
	if m := nl.collect(1)[0]; string(m.Payload) != "theirs" {
		t.Fatalf("got %+v", m)
	}
	// With another matching subscription without No Local, it arrives once.
	nl.subscribeWith(2, 0, packets.Subscription{Filter: "n/+", Qos: 0, RetainHandling: 2})
	nl.publish("n/2", 0, 0, "mine again")
	if m := nl.collect(1)[0]; string(m.Payload) != "mine again" || m.FixedHeader.Qos != 0 {
		t.Fatalf("got %+v", m)
	}
	nl.quiet()
	// No Local on a shared subscription is a protocol error.
	nl.send(nl.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tSubscribe, Qos: 1}, PacketID: 3,
		Filters: packets.Subscriptions{{Filter: "$share/g/n/#", Qos: 1, NoLocal: true}}}))
	if d := nl.expect(tDisconnect); d.ReasonCode != rcProtocolError {
		t.Fatalf("DISCONNECT %+v", d)
	}
}

// A retained message's expiry interval counts from its publish: expired
// ones are not sent, others carry what is left.
func TestRetainedExpiry(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	h := newHarness(t, Config{Now: func() time.Time { return now }})
	h.connectOK(5, "p")
	for i, exp := range []uint32{10, 100} {
		h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1, Retain: true}, TopicName: "e/" + string(rune('a'+i)), PacketID: uint16(i + 1),
			Payload: []byte("x"), Properties: packets.Properties{MessageExpiryInterval: exp}}))
		h.expect(tPuback)
	}
	now = now.Add(30 * time.Second)
	sub := h.peer()
	sub.connectOK(5, "s")
	sub.subscribe(1, 1, "e/#")
	m := sub.collect(1)[0]
	if m.TopicName != "e/b" || m.Properties.MessageExpiryInterval < 69 || m.Properties.MessageExpiryInterval > 70 {
		t.Fatalf("got %+v (expiry %d)", m, m.Properties.MessageExpiryInterval)
	}
	sub.quiet()
	if n, _ := h.a.Retained(); n != 1 {
		t.Fatalf("%d retained; the expired one stays", n)
	}
}
