package interop

import (
	"context"
	"strconv"
	"testing"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	pk3 "github.com/eclipse/paho.mqtt.golang/packets"
)

// QoS 0, 1 and 2 end to end. That PUBACK and PUBCOMP mean "on disk" is
// shown with the broker binary in mqtt_restart_test.go.

// TestMQTTQoSDowngrade: a message arrives at the lower of its publish QoS
// and the subscription's, for both client libraries, each way.
func TestMQTTQoSDowngrade(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	subs5 := make([]*client5, 3)
	subs3 := make([]chan mqtt3.Message, 3)
	for q := range byte(3) {
		subs5[q] = open5(ctx, t, addr, &paho.Connect{ClientID: "dg5-" + strconv.Itoa(int(q)), CleanStart: true}, opts5{})
		sub5(ctx, t, subs5[q], paho.SubscribeOptions{Topic: "dg/" + strconv.Itoa(int(q)), QoS: q})
		subs3[q] = make(chan mqtt3.Message, 10)
		c, _ := open3(t, opts3(addr, "dg3-"+strconv.Itoa(int(q)), 4, true, subs3[q]))
		tok := c.Subscribe("dg/"+strconv.Itoa(int(q)), q, nil).(*mqtt3.SubscribeToken)
		wait3(t, "subscribe", tok)
		if got := tok.Result()["dg/"+strconv.Itoa(int(q))]; got != q {
			t.Fatalf("3.1.1 SUBACK granted %d, want %d", got, q)
		}
	}
	pub5c := open5(ctx, t, addr, &paho.Connect{ClientID: "dg-pub5", CleanStart: true}, opts5{})
	pub3c, _ := open3(t, opts3(addr, "dg-pub3", 4, true, nil))
	for sq := range byte(3) {
		topic := "dg/" + strconv.Itoa(int(sq))
		for pq := range byte(3) {
			pub5(ctx, t, pub5c, &paho.Publish{Topic: topic, QoS: pq, Payload: []byte("5-" + strconv.Itoa(int(pq)))})
			wait3(t, "publish", pub3c.Publish(topic, pq, false, "3-"+strconv.Itoa(int(pq))))
		}
		got5, got3 := map[string]byte{}, map[string]byte{}
		for range 6 {
			m := next5(t, subs5[sq])
			got5[string(m.Payload)] = m.QoS
			m3 := next3(t, subs3[sq])
			got3[string(m3.Payload())] = m3.Qos()
		}
		for pq := range byte(3) {
			want := min(pq, sq)
			for _, p := range []string{"5-", "3-"} {
				body := p + strconv.Itoa(int(pq))
				if q, ok := got5[body]; !ok || q != want {
					t.Errorf("5.0 subscription QoS %d, %s: got QoS %d (%v), want %d", sq, body, q, ok, want)
				}
				if q, ok := got3[body]; !ok || q != want {
					t.Errorf("3.1.1 subscription QoS %d, %s: got QoS %d (%v), want %d", sq, body, q, ok, want)
				}
			}
		}
	}
}

// TestMQTTQoS2ExactlyOnce: QoS 2 publishes from both libraries arrive
// exactly once at QoS 2 subscribers of both libraries.
func TestMQTTQoS2ExactlyOnce(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	s5 := open5(ctx, t, addr, &paho.Connect{ClientID: "x2-sub5", CleanStart: true}, opts5{})
	sub5(ctx, t, s5, paho.SubscribeOptions{Topic: "x2/#", QoS: 2})
	in3 := make(chan mqtt3.Message, 200)
	s3, _ := open3(t, opts3(addr, "x2-sub3", 4, true, in3))
	wait3(t, "subscribe", s3.Subscribe("x2/#", 2, nil))
	p5 := open5(ctx, t, addr, &paho.Connect{ClientID: "x2-pub5", CleanStart: true}, opts5{})
	p3, _ := open3(t, opts3(addr, "x2-pub3", 4, true, nil))
	const n = 50
	for i := range n {
		pub5(ctx, t, p5, &paho.Publish{Topic: "x2/5", QoS: 2, Payload: []byte("5-" + strconv.Itoa(i))})
		wait3(t, "publish", p3.Publish("x2/3", 2, false, "3-"+strconv.Itoa(i)))
	}
	pub5(ctx, t, p5, &paho.Publish{Topic: "x2/end", QoS: 2, Payload: []byte("end")})
	seen5, seen3 := map[string]int{}, map[string]int{}
	for m := next5(t, s5); string(m.Payload) != "end"; m = next5(t, s5) {
		if m.QoS != 2 {
			t.Fatalf("5.0 got QoS %d", m.QoS)
		}
		seen5[string(m.Payload)]++
	}
	for m := next3(t, in3); string(m.Payload()) != "end"; m = next3(t, in3) {
		seen3[string(m.Payload())]++
	}
	for _, seen := range []map[string]int{seen5, seen3} {
		for i := range n {
			for _, p := range []string{"5-", "3-"} {
				if c := seen[p+strconv.Itoa(i)]; c != 1 {
					t.Errorf("%s%d arrived %d times", p, i, c)
				}
			}
		}
		if len(seen) != 2*n {
			t.Errorf("%d distinct messages, want %d", len(seen), 2*n)
		}
	}
}

// TestMQTTQoS2Resent: a QoS 2 PUBLISH sent again with DUP before the
// PUBREL (MQTT 3.1.1 §4.3.3, 5.0 §4.3.3) is acknowledged again but routed
// once, on the same connection and after the publisher reconnects to its
// persistent session, whose packet-id state must survive [MQTT-4.4.0-1].
// Raw sockets with the libraries' codecs: no library resends on demand.
func TestMQTTQoS2Resent(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	sub := open5(ctx, t, addr, &paho.Connect{ClientID: "rs-sub", CleanStart: true}, opts5{})
	sub5(ctx, t, sub, paho.SubscribeOptions{Topic: "rs/#", QoS: 2})
	marker := open5(ctx, t, addr, &paho.Connect{ClientID: "rs-marker", CleanStart: true}, opts5{})
	// count returns how often body arrived before the next marker.
	count := func(t *testing.T, body string) int {
		t.Helper()
		pub5(ctx, t, marker, &paho.Publish{Topic: "rs/marker", QoS: 1, Payload: []byte("marker")})
		n := 0
		for m := next5(t, sub); string(m.Payload) != "marker"; m = next5(t, sub) {
			if string(m.Payload) != body {
				t.Fatalf("got %q, want %q", m.Payload, body)
			}
			n++
		}
		return n
	}

	pub3 := func(dup bool, id uint16, body string) *pk3.PublishPacket {
		p := pk3.NewControlPacket(pk3.Publish).(*pk3.PublishPacket)
		p.Qos, p.Dup, p.MessageID, p.TopicName, p.Payload = 2, dup, id, "rs/3", []byte(body)
		return p
	}
	pub5p := func(dup bool, id uint16, body string) *pk5.Publish {
		return &pk5.Publish{QoS: 2, Duplicate: dup, PacketID: id, Topic: "rs/5", Payload: []byte(body), Properties: &pk5.Properties{}}
	}
	wantPubrec3 := func(t *testing.T, r *raw3, id uint16) {
		t.Helper()
		if p, ok := r.read().(*pk3.PubrecPacket); !ok || p.MessageID != id {
			t.Fatalf("got %v, want PUBREC %d", p, id)
		}
	}
	wantAck5 := func(t *testing.T, r *raw5, typ byte, id uint16) {
		t.Helper()
		p := r.read()
		var pid uint16
		var rc byte
		switch c := p.Content.(type) {
		case *pk5.Pubrec:
			pid, rc = c.PacketID, c.ReasonCode
		case *pk5.Pubcomp:
			pid, rc = c.PacketID, c.ReasonCode
		}
		if p.Type != typ || pid != id || rc != 0 {
			t.Fatalf("got %v, want packet type %d id %d reason 0", p, typ, id)
		}
	}

	t.Run("same connection", func(t *testing.T) {
		r := dialRaw3(t, addr)
		r.connect("rs-same3", true, 60)
		r.send(pub3(false, 7, "same 3"))
		wantPubrec3(t, r, 7)
		r.send(pub3(true, 7, "same 3"))
		wantPubrec3(t, r, 7)
		rel := pk3.NewControlPacket(pk3.Pubrel).(*pk3.PubrelPacket)
		rel.MessageID = 7
		r.send(rel)
		if p, ok := r.read().(*pk3.PubcompPacket); !ok || p.MessageID != 7 {
			t.Fatalf("got %v, want PUBCOMP 7", p)
		}
		if n := count(t, "same 3"); n != 1 {
			t.Errorf("3.1.1: routed %d times", n)
		}

		r5 := dialRaw5(t, addr)
		r5.connect("rs-same5", true, 0)
		r5.send(pub5p(false, 7, "same 5"))
		wantAck5(t, r5, pk5.PUBREC, 7)
		r5.send(pub5p(true, 7, "same 5"))
		wantAck5(t, r5, pk5.PUBREC, 7)
		r5.send(&pk5.Pubrel{PacketID: 7, Properties: &pk5.Properties{}})
		wantAck5(t, r5, pk5.PUBCOMP, 7)
		if n := count(t, "same 5"); n != 1 {
			t.Errorf("5.0: routed %d times", n)
		}
	})

	t.Run("after reconnect", func(t *testing.T) {
		// The PUBREC is lost with the connection: the client resends the
		// PUBLISH with DUP on its persistent session, then PUBRELs.
		r := dialRaw3(t, addr)
		r.connect("rs-again3", false, 60)
		r.send(pub3(false, 9, "again 3"))
		wantPubrec3(t, r, 9)
		_ = r.c.Close()
		r = dialRaw3(t, addr)
		if ack := r.connect("rs-again3", false, 60); !ack.SessionPresent {
			t.Fatal("3.1.1: no session present")
		}
		r.send(pub3(true, 9, "again 3"))
		wantPubrec3(t, r, 9)
		rel := pk3.NewControlPacket(pk3.Pubrel).(*pk3.PubrelPacket)
		rel.MessageID = 9
		r.send(rel)
		if p, ok := r.read().(*pk3.PubcompPacket); !ok || p.MessageID != 9 {
			t.Fatalf("got %v, want PUBCOMP 9", p)
		}
		n3 := count(t, "again 3")

		r5 := dialRaw5(t, addr)
		r5.connect("rs-again5", false, 600)
		r5.send(pub5p(false, 9, "again 5"))
		wantAck5(t, r5, pk5.PUBREC, 9)
		_ = r5.c.Close()
		r5 = dialRaw5(t, addr)
		if ack := r5.connect("rs-again5", false, 600); !ack.SessionPresent {
			t.Fatal("5.0: no session present")
		}
		r5.send(pub5p(true, 9, "again 5"))
		wantAck5(t, r5, pk5.PUBREC, 9)
		r5.send(&pk5.Pubrel{PacketID: 9, Properties: &pk5.Properties{}})
		wantAck5(t, r5, pk5.PUBCOMP, 9)
		n5 := count(t, "again 5")
		if n3 != 1 || n5 != 1 {
			t.Errorf("a QoS 2 PUBLISH resent after a reconnect was routed %d times (3.1.1) and %d times (5.0), want once", n3, n5)
		}
	})

	t.Run("PUBREL after reconnect", func(t *testing.T) {
		// The PUBREC came; the connection is lost before the PUBREL: the
		// client sends only the PUBREL on its persistent session.
		r5 := dialRaw5(t, addr)
		r5.connect("rs-rel5", false, 600)
		r5.send(pub5p(false, 11, "rel 5"))
		wantAck5(t, r5, pk5.PUBREC, 11)
		_ = r5.c.Close()
		r5 = dialRaw5(t, addr)
		r5.connect("rs-rel5", false, 600)
		r5.send(&pk5.Pubrel{PacketID: 11, Properties: &pk5.Properties{}})
		comp := r5.read()
		if n := count(t, "rel 5"); n != 1 {
			t.Errorf("routed %d times", n)
		}
		if c, ok := comp.Content.(*pk5.Pubcomp); !ok || c.PacketID != 11 || c.ReasonCode != 0 {
			t.Fatalf("got %v, want PUBCOMP 11 with reason 0: the id is known", comp)
		}
	})
}
