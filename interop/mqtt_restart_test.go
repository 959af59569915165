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

// TestMQTTRestart: the broker binary over one data directory, kill -9'd
// right after the last PUBACK and PUBCOMP and started again. What it
// acknowledged survives: persistent sessions (3.1.1 clean session 0, 5.0
// clean start 0 with a Session Expiry Interval) keep their subscriptions
// and get every QoS 2 message exactly once and every QoS 1 message at
// least once; deliveries in flight at the kill come again with DUP; an
// outbound QoS 2 message whose PUBREC came gets its PUBREL again;
// retained messages stay.
func TestMQTTRestart(t *testing.T) {
	t.Parallel()
	cb := &chaosBroker{t: t, bin: buildBroker(t), dir: t.TempDir()}
	cb.start()
	ctx, cancel := context.WithTimeout(context.Background(), 4*waitFor)
	defer cancel()
	exp := uint32(3600)
	persistent5 := func(id string) *paho.Connect {
		return &paho.Connect{ClientID: id, CleanStart: false, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
	}
	const n = 20

	// Offline persistent sessions, subscribed at QoS 1 and 2.
	s3, _ := open3(t, opts3(cb.mqtt, "rst-s3", 4, false, nil))
	wait3(t, "subscribe", s3.SubscribeMultiple(map[string]byte{"rst/3/q1": 1, "rst/3/q2": 2}, nil))
	s3.Disconnect(100)
	s5 := open5(ctx, t, cb.mqtt, persistent5("rst-s5"), opts5{})
	sub5(ctx, t, s5, paho.SubscribeOptions{Topic: "rst/5/q1", QoS: 1}, paho.SubscribeOptions{Topic: "rst/5/q2", QoS: 2})
	_ = s5.Disconnect(&paho.Disconnect{})
	ins := open5(ctx, t, cb.mqtt, persistent5("rst-ins"), opts5{})
	sub5(ctx, t, ins, paho.SubscribeOptions{Topic: "rst/in", QoS: 2})
	_ = ins.Disconnect(&paho.Disconnect{})

	// Connected subscribers that will not acknowledge.
	inIf3 := make(chan mqtt3.Message, 10)
	if3, _ := open3(t, opts3(cb.mqtt, "rst-if3", 4, false, inIf3).SetAutoAckDisabled(true))
	wait3(t, "subscribe", if3.SubscribeMultiple(map[string]byte{"rst/if3/q1": 1, "rst/if3/q2": 2}, nil))
	if5 := open5(ctx, t, cb.mqtt, persistent5("rst-if5"), opts5{manualAck: true})
	sub5(ctx, t, if5, paho.SubscribeOptions{Topic: "rst/if5/q1", QoS: 1}, paho.SubscribeOptions{Topic: "rst/if5/q2", QoS: 2})
	rel3 := dialRaw3(t, cb.mqtt)
	rel3.connect("rst-rel3", false, 60)
	sp := pk3.NewControlPacket(pk3.Subscribe).(*pk3.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, []string{"rst/rel3"}, []byte{2}
	rel3.send(sp)
	rel3.read() // SUBACK
	rel5 := dialRaw5(t, cb.mqtt)
	rel5.connect("rst-rel5", false, exp)
	rel5.send(&pk5.Subscribe{PacketID: 1, Subscriptions: []pk5.SubOptions{{Topic: "rst/rel5", QoS: 2}}, Properties: &pk5.Properties{}})
	rel5.read() // SUBACK

	p5 := open5(ctx, t, cb.mqtt, &paho.Connect{ClientID: "rst-p5", CleanStart: true, KeepAlive: 30}, opts5{})
	pub5(ctx, t, p5, &paho.Publish{Topic: "rst/retained", QoS: 1, Retain: true, Payload: []byte("kept")})
	for _, prefix := range []string{"rst/if3", "rst/if5"} {
		pub5(ctx, t, p5, &paho.Publish{Topic: prefix + "/q1", QoS: 1, Payload: []byte("if-1")})
		pub5(ctx, t, p5, &paho.Publish{Topic: prefix + "/q2", QoS: 2, Payload: []byte("if-2")})
	}
	for range 2 {
		next3(t, inIf3)
		next5(t, if5)
	}
	pub5(ctx, t, p5, &paho.Publish{Topic: "rst/rel3", QoS: 2, Payload: []byte("rel")})
	pub5(ctx, t, p5, &paho.Publish{Topic: "rst/rel5", QoS: 2, Payload: []byte("rel")})
	m3, ok := rel3.read().(*pk3.PublishPacket)
	if !ok {
		t.Fatalf("3.1.1: got %v, want PUBLISH", m3)
	}
	rec3 := pk3.NewControlPacket(pk3.Pubrec).(*pk3.PubrecPacket)
	rec3.MessageID = m3.MessageID
	rel3.send(rec3)
	if p, ok := rel3.read().(*pk3.PubrelPacket); !ok {
		t.Fatalf("3.1.1: got %v, want PUBREL", p)
	}
	m5, ok := rel5.read().Content.(*pk5.Publish)
	if !ok {
		t.Fatal("5.0: no PUBLISH")
	}
	rel5.send(&pk5.Pubrec{PacketID: m5.PacketID, Properties: &pk5.Properties{}})
	if p := rel5.read(); p.Type != pk5.PUBREL {
		t.Fatalf("5.0: got %v, want PUBREL", p)
	}
	// An inbound QoS 2 publish whose PUBREC came, PUBREL not yet sent.
	ipub := dialRaw5(t, cb.mqtt)
	ipub.connect("rst-ipub", false, exp)
	ipub.send(&pk5.Publish{QoS: 2, PacketID: 5, Topic: "rst/in", Payload: []byte("inbound"), Properties: &pk5.Properties{}})
	if p := ipub.read(); p.Type != pk5.PUBREC || p.Content.(*pk5.Pubrec).ReasonCode != 0 {
		t.Fatalf("got %v, want PUBREC", p)
	}

	// The offline streams, each publish acknowledged (PUBACK, PUBCOMP)
	// before the next; the kill comes right after the last.
	p3, _ := open3(t, opts3(cb.mqtt, "rst-p3", 4, true, nil))
	for i := range n {
		wait3(t, "publish", p3.Publish("rst/3/q1", 1, false, "q1-"+strconv.Itoa(i)))
		wait3(t, "publish", p3.Publish("rst/3/q2", 2, false, "q2-"+strconv.Itoa(i)))
		pub5(ctx, t, p5, &paho.Publish{Topic: "rst/5/q1", QoS: 1, Payload: []byte("q1-" + strconv.Itoa(i))})
		pub5(ctx, t, p5, &paho.Publish{Topic: "rst/5/q2", QoS: 2, Payload: []byte("q2-" + strconv.Itoa(i))})
	}
	cb.kill()
	cb.start()
	p5 = open5(ctx, t, cb.mqtt, &paho.Connect{ClientID: "rst-p5", CleanStart: true, KeepAlive: 30}, opts5{})

	// drain takes messages until marker, published after the reconnect,
	// and counts them by payload.
	drain := func(t *testing.T, next func() string, markerTopic string) map[string]int {
		t.Helper()
		pub5(ctx, t, p5, &paho.Publish{Topic: markerTopic, QoS: 1, Payload: []byte("marker")})
		got := map[string]int{}
		for body := next(); body != "marker"; body = next() {
			got[body]++
		}
		return got
	}
	checkStreams := func(t *testing.T, got map[string]int) {
		t.Helper()
		for i := range n {
			if c := got["q1-"+strconv.Itoa(i)]; c < 1 {
				t.Errorf("QoS 1 message %d lost", i)
			}
			if c := got["q2-"+strconv.Itoa(i)]; c != 1 {
				t.Errorf("QoS 2 message %d arrived %d times", i, c)
			}
		}
		if len(got) != 2*n {
			t.Errorf("%d distinct messages, want %d: %v", len(got), 2*n, got)
		}
	}

	t.Run("3.1.1 offline session", func(t *testing.T) {
		in := make(chan mqtt3.Message, 4*n)
		_, tok := open3(t, opts3(cb.mqtt, "rst-s3", 4, false, in))
		if !tok.SessionPresent() {
			t.Fatal("no session present")
		}
		checkStreams(t, drain(t, func() string { return string(next3(t, in).Payload()) }, "rst/3/q1"))
	})
	t.Run("5.0 offline session", func(t *testing.T) {
		c := open5(ctx, t, cb.mqtt, persistent5("rst-s5"), opts5{})
		if !c.ack.SessionPresent {
			t.Fatal("no session present")
		}
		checkStreams(t, drain(t, func() string { return string(next5(t, c).Payload) }, "rst/5/q1"))
	})
	t.Run("3.1.1 in flight", func(t *testing.T) {
		in := make(chan mqtt3.Message, 10)
		_, tok := open3(t, opts3(cb.mqtt, "rst-if3", 4, false, in))
		if !tok.SessionPresent() {
			t.Fatal("no session present")
		}
		got := map[string]bool{}
		for range 2 {
			m := next3(t, in)
			if !m.Duplicate() {
				t.Errorf("%q resent without DUP", m.Payload())
			}
			got[string(m.Payload())+"@"+strconv.Itoa(int(m.Qos()))] = true
		}
		if !got["if-1@1"] || !got["if-2@2"] {
			t.Fatalf("resent %v", got)
		}
	})
	t.Run("5.0 in flight", func(t *testing.T) {
		c := open5(ctx, t, cb.mqtt, persistent5("rst-if5"), opts5{})
		if !c.ack.SessionPresent {
			t.Fatal("no session present")
		}
		got := map[string]bool{}
		for range 2 {
			m := next5(t, c)
			if !m.Duplicate() {
				t.Errorf("%q resent without DUP", m.Payload)
			}
			got[string(m.Payload)+"@"+strconv.Itoa(int(m.QoS))] = true
		}
		if !got["if-1@1"] || !got["if-2@2"] {
			t.Fatalf("resent %v", got)
		}
	})
	t.Run("PUBREL in flight", func(t *testing.T) {
		r3 := dialRaw3(t, cb.mqtt)
		if ack := r3.connect("rst-rel3", false, 60); !ack.SessionPresent {
			t.Fatal("3.1.1: no session present")
		}
		if p, ok := r3.read().(*pk3.PubrelPacket); !ok || p.MessageID != m3.MessageID {
			t.Fatalf("3.1.1: got %v, want PUBREL %d", p, m3.MessageID)
		}
		comp := pk3.NewControlPacket(pk3.Pubcomp).(*pk3.PubcompPacket)
		comp.MessageID = m3.MessageID
		r3.send(comp)
		r5 := dialRaw5(t, cb.mqtt)
		if ack := r5.connect("rst-rel5", false, exp); !ack.SessionPresent {
			t.Fatal("5.0: no session present")
		}
		if p := r5.read(); p.Type != pk5.PUBREL || p.Content.(*pk5.Pubrel).PacketID != m5.PacketID {
			t.Fatalf("5.0: got %v, want PUBREL %d", p, m5.PacketID)
		}
		r5.send(&pk5.Pubcomp{PacketID: m5.PacketID, Properties: &pk5.Properties{}})
		pub5(ctx, t, p5, &paho.Publish{Topic: "rst/rel3", QoS: 1, Payload: []byte("next")})
		pub5(ctx, t, p5, &paho.Publish{Topic: "rst/rel5", QoS: 1, Payload: []byte("next")})
		if p, ok := r3.read().(*pk3.PublishPacket); !ok || string(p.Payload) != "next" {
			t.Errorf("3.1.1: got %v, want the next message", p)
		}
		if p, ok := r5.read().Content.(*pk5.Publish); !ok || string(p.Payload) != "next" {
			t.Errorf("5.0: got %v, want the next message", p)
		}
	})
	t.Run("retained", func(t *testing.T) {
		c := open5(ctx, t, cb.mqtt, &paho.Connect{ClientID: "rst-late", CleanStart: true}, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "rst/#", QoS: 1, RetainHandling: 0})
		if m := next5(t, c); m.Topic != "rst/retained" || string(m.Payload) != "kept" || !m.Retain {
			t.Fatalf("got %q on %q retain %v", m.Payload, m.Topic, m.Retain)
		}
	})
	t.Run("inbound QoS 2 PUBREL", func(t *testing.T) {
		c := open5(ctx, t, cb.mqtt, persistent5("rst-ins"), opts5{})
		if got := drain(t, func() string { return string(next5(t, c).Payload) }, "rst/in"); got["inbound"] != 1 {
			t.Errorf("the inbound QoS 2 message arrived %d times", got["inbound"])
		}
		r := dialRaw5(t, cb.mqtt)
		if ack := r.connect("rst-ipub", false, exp); !ack.SessionPresent {
			t.Fatal("no session present")
		}
		r.send(&pk5.Pubrel{PacketID: 5, Properties: &pk5.Properties{}})
		p := r.read()
		if c, ok := p.Content.(*pk5.Pubcomp); !ok || c.PacketID != 5 || c.ReasonCode != 0 {
			t.Fatalf("got %v, want PUBCOMP 5 with reason 0: the id is known", p)
		}
	})
}
