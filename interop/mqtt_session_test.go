package interop

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	pk3 "github.com/eclipse/paho.mqtt.golang/packets"

	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	"github.com/junction-broker/junction/router"
)

// Sessions between connections, in process; across broker restarts in
// mqtt_restart_test.go. Queue names are the broker's:
// mqtt-subscription-<client id>qos1.

// TestMQTTPersistentSession: a persistent session (3.1.1 clean session 0,
// 5.0 Session Expiry Interval > 0) keeps its subscriptions and the QoS 1
// and 2 messages published while it is away, in order and once; a clean
// session (clean start) discards it.
func TestMQTTPersistentSession(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "ps-pub", CleanStart: true}, opts5{})
	const n = 100
	publishAll := func(prefix string) {
		for i := range n {
			pub5(ctx, t, pub, &paho.Publish{Topic: prefix + "/q1", QoS: 1, Payload: []byte("q1-" + strconv.Itoa(i))})
			pub5(ctx, t, pub, &paho.Publish{Topic: prefix + "/q2", QoS: 2, Payload: []byte("q2-" + strconv.Itoa(i))})
		}
	}
	// check takes 2n messages and wants each once, at its QoS, in order
	// per topic.
	check := func(t *testing.T, next func() (topic, body string, qos byte)) {
		t.Helper()
		nextOf := map[byte]int{}
		for range 2 * n {
			_, body, qos := next()
			if want := "q" + strconv.Itoa(int(qos)) + "-" + strconv.Itoa(nextOf[qos]); body != want {
				t.Fatalf("got %q at QoS %d, want %q", body, qos, want)
			}
			nextOf[qos]++
		}
	}

	t.Run("3.1.1", func(t *testing.T) {
		in := make(chan mqtt3.Message, 4*n)
		c, tok := open3(t, opts3(addr, "ps3", 4, false, in))
		if tok.SessionPresent() {
			t.Fatal("session present on first connect")
		}
		wait3(t, "subscribe", c.SubscribeMultiple(map[string]byte{"ps3/q1": 1, "ps3/q2": 2}, nil))
		c.Disconnect(100)
		publishAll("ps3")
		_, tok = open3(t, opts3(addr, "ps3", 4, false, in))
		if !tok.SessionPresent() {
			t.Fatal("no session present")
		}
		check(t, func() (string, string, byte) { m := next3(t, in); return m.Topic(), string(m.Payload()), m.Qos() })
		// The subscriptions are still there: a live message arrives.
		pub5(ctx, t, pub, &paho.Publish{Topic: "ps3/q1", QoS: 1, Payload: []byte("live")})
		if m := next3(t, in); string(m.Payload()) != "live" {
			t.Fatalf("got %q", m.Payload())
		}

		// Clean session 1 discards the session, and ends with the connection.
		c, tok = open3(t, opts3(addr, "ps3", 4, true, in))
		if tok.SessionPresent() {
			t.Fatal("clean session: session present")
		}
		c.Disconnect(100)
		pub5(ctx, t, pub, &paho.Publish{Topic: "ps3/q1", QoS: 1, Payload: []byte("nobody")})
		_, tok = open3(t, opts3(addr, "ps3", 4, false, in))
		if tok.SessionPresent() {
			t.Fatal("session present after a clean session")
		}
		select {
		case m := <-in:
			t.Fatalf("got %q from a discarded session", m.Payload())
		default:
		}
	})

	t.Run("5.0", func(t *testing.T) {
		exp := uint32(600)
		cp := &paho.Connect{ClientID: "ps5", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
		c := open5(ctx, t, addr, cp, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "ps5/q1", QoS: 1}, paho.SubscribeOptions{Topic: "ps5/q2", QoS: 2})
		_ = c.Disconnect(&paho.Disconnect{})
		publishAll("ps5")
		c = open5(ctx, t, addr, cp, opts5{})
		if !c.ack.SessionPresent {
			t.Fatal("no session present")
		}
		check(t, func() (string, string, byte) { m := next5(t, c); return m.Topic, string(m.Payload), m.QoS })
		none5(t, c)
		_ = c.Disconnect(&paho.Disconnect{})

		c = open5(ctx, t, addr, &paho.Connect{ClientID: "ps5", CleanStart: true, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}, opts5{})
		if c.ack.SessionPresent {
			t.Fatal("clean start: session present")
		}
		pub5(ctx, t, pub, &paho.Publish{Topic: "ps5/q1", QoS: 1, Payload: []byte("nobody")})
		none5(t, c)
	})
}

// TestMQTTSessionExpiry: an MQTT 5 session goes Session Expiry Interval
// seconds after its connection, with what was queued for it; a DISCONNECT
// may lengthen the interval; a queued message goes when its Message Expiry
// Interval has passed. It waits for the broker's timer: about 1 s.
func TestMQTTSessionExpiry(t *testing.T) {
	t.Parallel()
	addr, rt := startMQTTRouter(t, nil, jmqtt.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "se-pub", CleanStart: true}, opts5{})
	one, long := uint32(1), uint32(600)
	short := &paho.Connect{ClientID: "se-short", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &one}}
	longer := &paho.Connect{ClientID: "se-longer", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &one}}
	c := open5(ctx, t, addr, longer, opts5{})
	sub5(ctx, t, c, paho.SubscribeOptions{Topic: "se/longer", QoS: 1})
	_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: &long}})
	c = open5(ctx, t, addr, short, opts5{})
	sub5(ctx, t, c, paho.SubscribeOptions{Topic: "se/short", QoS: 1})
	// Message Expiry Interval while queued: this one expires before the
	// short session, whose end is the test's clock, the other is sent with
	// what is left of its interval.
	pub5(ctx, t, pub, &paho.Publish{Topic: "se/longer", QoS: 1, Payload: []byte("expired"),
		Properties: &paho.PublishProperties{MessageExpiry: &one}})
	_ = c.Disconnect(&paho.Disconnect{})
	pub5(ctx, t, pub, &paho.Publish{Topic: "se/short", QoS: 1, Payload: []byte("lost with the session")})
	pub5(ctx, t, pub, &paho.Publish{Topic: "se/longer", QoS: 1, Payload: []byte("kept"),
		Properties: &paho.PublishProperties{MessageExpiry: &long}})

	exists := func(queue string) bool { return rt.VHost("/").Queue(queue) != nil }
	eventually(t, "the 1 s session to expire", func() bool { return !exists("mqtt-subscription-se-shortqos1") })
	if !exists("mqtt-subscription-se-longerqos1") {
		t.Fatal("the session whose DISCONNECT lengthened its expiry is gone too")
	}
	c = open5(ctx, t, addr, short, opts5{})
	if c.ack.SessionPresent {
		t.Error("expired session present")
	}
	none5(t, c)
	// Resumed with the interval it has now: a shorter one meets the bug
	// TestMQTTSessionExpiryShortened shows.
	c = open5(ctx, t, addr, &paho.Connect{ClientID: "se-longer", CleanStart: false,
		Properties: &paho.ConnectProperties{SessionExpiryInterval: &long}}, opts5{})
	if !c.ack.SessionPresent {
		t.Fatal("lengthened session not present")
	}
	m := next5(t, c)
	if string(m.Payload) != "kept" {
		t.Fatalf("got %q, want kept (expired dropped)", m.Payload)
	}
	if e := m.Properties.MessageExpiry; e == nil || *e > long || *e < long-10 {
		t.Fatalf("Message Expiry Interval %v, want what is left of %d", e, long)
	}
}

// TestMQTTSessionExpiryShortened: a session resumed with a Session Expiry
// Interval shorter than the time since its connection ended is resumed
// with what was queued for it; the new interval counts from the end of the
// new connection (MQTT 5 §3.1.2.11.2). Twenty sessions at once, as the
// failure is a race. It waits for the broker's timer: about 1 s.
func TestMQTTSessionExpiryShortened(t *testing.T) {
	t.Parallel()
	addr, _ := startMQTTRouter(t, nil, jmqtt.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "ses-pub", CleanStart: true}, opts5{})
	long, one := uint32(600), uint32(1)
	const n = 20
	for i := range n {
		id := "ses-" + strconv.Itoa(i)
		c := open5(ctx, t, addr, &paho.Connect{ClientID: id, CleanStart: false,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &long}}, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "ses/" + id, QoS: 1})
		_ = c.Disconnect(&paho.Disconnect{})
	}
	for i := range n {
		pub5(ctx, t, pub, &paho.Publish{Topic: "ses/ses-" + strconv.Itoa(i), QoS: 1, Payload: []byte("queued")})
	}
	<-time.After(1100 * time.Millisecond) // since the queues' last use: longer than the new interval
	lost := make(chan string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id := "ses-" + strconv.Itoa(i)
			c, ack, err := try5(ctx, t, addr, &paho.Connect{ClientID: id, CleanStart: false,
				Properties: &paho.ConnectProperties{SessionExpiryInterval: &one}}, opts5{})
			switch {
			case c == nil:
				lost <- fmt.Sprintf("%s: CONNACK %+v (%v)", id, ack, err)
			case !c.ack.SessionPresent:
				lost <- id + ": no session present"
			default:
				select {
				case <-c.msgs:
				case <-time.After(3 * time.Second):
					lost <- id + ": session present, its queued message gone"
				}
			}
		}()
	}
	wg.Wait()
	close(lost)
	var bad []string
	for l := range lost {
		bad = append(bad, l)
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d resumed sessions lost: %v", len(bad), n, bad)
	}
}

// TestMQTTInflightResent: QoS 1 and 2 messages delivered but not
// acknowledged when the connection ends are sent again with DUP on the
// persistent session's next connection; a QoS 2 message whose PUBREC came
// gets its PUBREL again, not the message.
func TestMQTTInflightResent(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "if-pub", CleanStart: true}, opts5{})
	publish2 := func(prefix string) {
		pub5(ctx, t, pub, &paho.Publish{Topic: prefix + "/q1", QoS: 1, Payload: []byte("one")})
		pub5(ctx, t, pub, &paho.Publish{Topic: prefix + "/q2", QoS: 2, Payload: []byte("two")})
	}

	t.Run("3.1.1", func(t *testing.T) {
		in := make(chan mqtt3.Message, 10)
		c, _ := open3(t, opts3(addr, "if3", 4, false, in).SetAutoAckDisabled(true))
		wait3(t, "subscribe", c.SubscribeMultiple(map[string]byte{"if3/q1": 1, "if3/q2": 2}, nil))
		publish2("if3")
		for range 2 {
			if m := next3(t, in); m.Duplicate() {
				t.Fatalf("first delivery of %q with DUP", m.Payload())
			}
		}
		c.Disconnect(100) // no PUBACK, no PUBREC
		_, tok := open3(t, opts3(addr, "if3", 4, false, in))
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
		if !got["one@1"] || !got["two@2"] {
			t.Fatalf("resent %v", got)
		}
	})

	t.Run("5.0", func(t *testing.T) {
		exp := uint32(600)
		cp := &paho.Connect{ClientID: "if5", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
		c := open5(ctx, t, addr, cp, opts5{manualAck: true})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "if5/q1", QoS: 1}, paho.SubscribeOptions{Topic: "if5/q2", QoS: 2})
		publish2("if5")
		for range 2 {
			if m := next5(t, c); m.Duplicate() {
				t.Fatalf("first delivery of %q with DUP", m.Payload)
			}
		}
		_ = c.conn.Close() // no acknowledgement, no DISCONNECT
		c = open5(ctx, t, addr, cp, opts5{})
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
		if !got["one@1"] || !got["two@2"] {
			t.Fatalf("resent %v", got)
		}
		none5(t, c)
	})

	t.Run("PUBREL resent", func(t *testing.T) {
		r3 := dialRaw3(t, addr)
		r3.connect("if-rel3", false, 60)
		sp := pk3.NewControlPacket(pk3.Subscribe).(*pk3.SubscribePacket)
		sp.MessageID, sp.Topics, sp.Qoss = 1, []string{"ifrel/3"}, []byte{2}
		r3.send(sp)
		r3.read() // SUBACK
		r5 := dialRaw5(t, addr)
		r5.connect("if-rel5", false, 600)
		r5.send(&pk5.Subscribe{PacketID: 1, Subscriptions: []pk5.SubOptions{{Topic: "ifrel/5", QoS: 2}}, Properties: &pk5.Properties{}})
		r5.read() // SUBACK
		pub5(ctx, t, pub, &paho.Publish{Topic: "ifrel/3", QoS: 2, Payload: []byte("three")})
		pub5(ctx, t, pub, &paho.Publish{Topic: "ifrel/5", QoS: 2, Payload: []byte("five")})

		p3, ok := r3.read().(*pk3.PublishPacket)
		if !ok || string(p3.Payload) != "three" {
			t.Fatalf("3.1.1 got %v", p3)
		}
		rec3 := pk3.NewControlPacket(pk3.Pubrec).(*pk3.PubrecPacket)
		rec3.MessageID = p3.MessageID
		r3.send(rec3)
		if p, ok := r3.read().(*pk3.PubrelPacket); !ok || p.MessageID != p3.MessageID {
			t.Fatalf("3.1.1 got %v, want PUBREL", p)
		}
		p5 := r5.read()
		m5, ok := p5.Content.(*pk5.Publish)
		if !ok || string(m5.Payload) != "five" {
			t.Fatalf("5.0 got %v", p5)
		}
		r5.send(&pk5.Pubrec{PacketID: m5.PacketID, Properties: &pk5.Properties{}})
		if p := r5.read(); p.Type != pk5.PUBREL {
			t.Fatalf("5.0 got %v, want PUBREL", p)
		}
		_ = r3.c.Close() // no PUBCOMP
		_ = r5.c.Close()

		r3 = dialRaw3(t, addr)
		if ack := r3.connect("if-rel3", false, 60); !ack.SessionPresent {
			t.Fatal("3.1.1: no session present")
		}
		if p, ok := r3.read().(*pk3.PubrelPacket); !ok || p.MessageID != p3.MessageID {
			t.Fatalf("3.1.1 got %v, want PUBREL %d again", p, p3.MessageID)
		}
		comp3 := pk3.NewControlPacket(pk3.Pubcomp).(*pk3.PubcompPacket)
		comp3.MessageID = p3.MessageID
		r3.send(comp3)
		r5 = dialRaw5(t, addr)
		if ack := r5.connect("if-rel5", false, 600); !ack.SessionPresent {
			t.Fatal("5.0: no session present")
		}
		if p := r5.read(); p.Type != pk5.PUBREL || p.Content.(*pk5.Pubrel).PacketID != m5.PacketID {
			t.Fatalf("5.0 got %v, want PUBREL %d again", p, m5.PacketID)
		}
		r5.send(&pk5.Pubcomp{PacketID: m5.PacketID, Properties: &pk5.Properties{}})

		// Completed: a new message comes next, not the old one again.
		pub5(ctx, t, pub, &paho.Publish{Topic: "ifrel/3", QoS: 1, Payload: []byte("next")})
		pub5(ctx, t, pub, &paho.Publish{Topic: "ifrel/5", QoS: 1, Payload: []byte("next")})
		if p, ok := r3.read().(*pk3.PublishPacket); !ok || string(p.Payload) != "next" || p.Dup {
			t.Fatalf("3.1.1 got %v, want the next message", p)
		}
		if p, ok := r5.read().Content.(*pk5.Publish); !ok || string(p.Payload) != "next" || p.Duplicate {
			t.Fatalf("5.0 got %v, want the next message", p)
		}
	})
}

// TestMQTTReceiveMaximum: no more unacknowledged QoS 1 and 2 messages in
// flight than the MQTT 5 client's Receive Maximum, or the broker's
// max_inflight for 3.1.1; a backlog queued while the session was away
// flows through that window in order.
func TestMQTTReceiveMaximum(t *testing.T) {
	addr := startMQTTServer(t, nil, jmqtt.Config{MaxInflight: 3})
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "rm-pub", CleanStart: true}, opts5{})

	rm := uint16(2)
	c5 := open5(ctx, t, addr, &paho.Connect{ClientID: "rm5", CleanStart: true,
		Properties: &paho.ConnectProperties{ReceiveMaximum: &rm}}, opts5{manualAck: true})
	sub5(ctx, t, c5, paho.SubscribeOptions{Topic: "rm/5", QoS: 2})
	in := make(chan mqtt3.Message, 10)
	c3, _ := open3(t, opts3(addr, "rm3", 4, true, in).SetAutoAckDisabled(true))
	wait3(t, "subscribe", c3.Subscribe("rm/3", 1, nil))
	for i := range 5 {
		pub5(ctx, t, pub, &paho.Publish{Topic: "rm/5", QoS: byte(1 + i%2), Payload: []byte(strconv.Itoa(i))})
		pub5(ctx, t, pub, &paho.Publish{Topic: "rm/3", QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	var held5 []*paho.Publish
	for range 2 {
		held5 = append(held5, next5(t, c5))
	}
	none5(t, c5)
	var held3 []mqtt3.Message
	for range 3 {
		held3 = append(held3, next3(t, in))
	}
	select {
	case m := <-in:
		t.Fatalf("3.1.1: message %q past max_inflight 3", m.Payload())
	case <-time.After(quiet):
	}
	// One acknowledgement, one more message.
	must(t, c5.Ack(held5[0]))
	if m := next5(t, c5); string(m.Payload) != "2" {
		t.Fatalf("5.0 got %q, want 2", m.Payload)
	}
	none5(t, c5)
	held3[0].Ack()
	if m := next3(t, in); string(m.Payload()) != "3" {
		t.Fatalf("3.1.1 got %q, want 3", m.Payload())
	}

	// A persistent session's backlog of 500 flows through the window of 3.
	inB := make(chan mqtt3.Message, 600)
	b, _ := open3(t, opts3(addr, "rm-backlog", 4, false, inB))
	wait3(t, "subscribe", b.Subscribe("rm/backlog", 1, nil))
	b.Disconnect(100)
	const n = 500
	for i := range n {
		pub5(ctx, t, pub, &paho.Publish{Topic: "rm/backlog", QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	open3(t, opts3(addr, "rm-backlog", 4, false, inB))
	for i := range n {
		if m := next3(t, inB); string(m.Payload()) != strconv.Itoa(i) {
			t.Fatalf("backlog message %d: got %q", i, m.Payload())
		}
	}
}

// TestMQTTMemoryAlarm: what publishers may queue, for offline sessions
// too, is bounded by the router's memory budget (router.memory_budget,
// with the disk alarm's disk_free_limit): while the memory alarm is
// raised, MQTT publishers are held back (router.Alarm: "MQTT and STOMP
// stop reading publishes"; default.toml: "MQTT receive maximum"), their QoS
// 1 publishes unacknowledged, and they go on when it clears, nothing lost.
func TestMQTTMemoryAlarm(t *testing.T) {
	addr, rt := startMQTTRouter(t, nil, jmqtt.Config{})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	exp := uint32(600)
	cp := &paho.Connect{ClientID: "al-sub", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
	sub := open5(ctx, t, addr, cp, opts5{})
	sub5(ctx, t, sub, paho.SubscribeOptions{Topic: "al/#", QoS: 1})
	_ = sub.Disconnect(&paho.Disconnect{})
	p5 := open5(ctx, t, addr, &paho.Connect{ClientID: "al-pub5", CleanStart: true}, opts5{})
	p3, _ := open3(t, opts3(addr, "al-pub3", 4, true, nil))

	rt.SetAlarm(router.AlarmMemory, true)
	acked5 := make(chan error, 1)
	go func() {
		_, err := p5.Publish(ctx, &paho.Publish{Topic: "al/5", QoS: 1, Payload: []byte("held 5")})
		acked5 <- err
	}()
	tok3 := p3.Publish("al/3", 1, false, "held 3")
	var early []string
	var err5 error
	done5 := false
	select {
	case err5 = <-acked5:
		early, done5 = append(early, "5.0"), true
	case <-time.After(quiet):
	}
	if tok3.WaitTimeout(time.Millisecond) {
		early = append(early, "3.1.1")
	}
	rt.SetAlarm(router.AlarmMemory, false)
	if !done5 {
		select {
		case err5 = <-acked5:
		case <-ctx.Done():
			t.Fatal("5.0: no PUBACK after the alarm cleared")
		}
	}
	must(t, err5)
	wait3(t, "publish", tok3)
	sub = open5(ctx, t, addr, cp, opts5{})
	got := map[string]bool{}
	for range 2 {
		got[string(next5(t, sub).Payload)] = true
	}
	if !got["held 5"] || !got["held 3"] {
		t.Fatalf("got %v after the alarm cleared", got)
	}
	if len(early) > 0 {
		t.Fatalf("%v publishers acknowledged while the memory alarm was raised", early)
	}
}
