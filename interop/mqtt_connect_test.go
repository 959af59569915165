package interop

import (
	"context"
	"testing"
	"time"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	pk3 "github.com/eclipse/paho.mqtt.golang/packets"
	amqp "github.com/rabbitmq/amqp091-go"

	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	"github.com/junction-broker/junction/router"
)

// The connection's life: protocol versions, CONNACK codes, client
// identifiers, keepalive, session takeover, PINGREQ and DISCONNECT, with
// paho.mqtt.golang (3.1 and 3.1.1) and paho.golang (5.0). Where a library
// cannot send what a case needs (an unsupported protocol level, a PINGREQ
// on demand), the library's own packet codec writes it on a raw socket.

// TestMQTTVersions: MQTT 3.1, 3.1.1 and 5.0 clients on one broker see each
// other's QoS 1 publishes, and each version answers PINGREQ with PINGRESP.
func TestMQTTVersions(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	in31 := make(chan mqtt3.Message, 10)
	c31, _ := open3(t, opts3(addr, "v31", 3, true, in31))
	wait3(t, "3.1 subscribe", c31.Subscribe("ver/#", 1, nil))
	in311 := make(chan mqtt3.Message, 10)
	c311, _ := open3(t, opts3(addr, "v311", 4, true, in311))
	wait3(t, "3.1.1 subscribe", c311.Subscribe("ver/#", 1, nil))
	c5 := open5(ctx, t, addr, &paho.Connect{ClientID: "v5", CleanStart: true, KeepAlive: 30}, opts5{})
	sub5(ctx, t, c5, paho.SubscribeOptions{Topic: "ver/#", QoS: 1})

	wait3(t, "3.1 publish", c31.Publish("ver/3.1", 1, false, "from 3.1"))
	wait3(t, "3.1.1 publish", c311.Publish("ver/3.1.1", 1, false, "from 3.1.1"))
	pub5(ctx, t, c5, &paho.Publish{Topic: "ver/5", QoS: 1, Payload: []byte("from 5")})
	for _, in := range []chan mqtt3.Message{in31, in311} {
		got := map[string]string{}
		for range 3 {
			m := next3(t, in)
			if m.Qos() != 1 {
				t.Errorf("%s at QoS %d", m.Topic(), m.Qos())
			}
			got[m.Topic()] = string(m.Payload())
		}
		if len(got) != 3 || got["ver/3.1"] != "from 3.1" || got["ver/3.1.1"] != "from 3.1.1" || got["ver/5"] != "from 5" {
			t.Fatalf("3.x subscriber got %v", got)
		}
	}
	got := map[string]string{}
	for range 3 {
		m := next5(t, c5)
		got[m.Topic] = string(m.Payload)
	}
	if len(got) != 3 || got["ver/3.1"] != "from 3.1" || got["ver/3.1.1"] != "from 3.1.1" || got["ver/5"] != "from 5" {
		t.Fatalf("5.0 subscriber got %v", got)
	}

	// PINGREQ, one per version, on raw sockets.
	for _, v := range []struct {
		name  string
		level byte
	}{{"MQIsdp", 3}, {"MQTT", 4}} {
		r := dialRaw3(t, addr)
		cp := pk3.NewControlPacket(pk3.Connect).(*pk3.ConnectPacket)
		cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier, cp.CleanSession, cp.Keepalive = v.name, v.level, "ping", true, 60
		r.send(cp)
		if ack, ok := r.read().(*pk3.ConnackPacket); !ok || ack.ReturnCode != 0 {
			t.Fatalf("level %d: CONNACK %v", v.level, ack)
		}
		r.send(pk3.NewControlPacket(pk3.Pingreq))
		if p, ok := r.read().(*pk3.PingrespPacket); !ok {
			t.Fatalf("level %d: got %v, want PINGRESP", v.level, p)
		}
		r.send(pk3.NewControlPacket(pk3.Disconnect))
		rawClosed(t, r.c, waitFor)
	}
	r := dialRaw5(t, addr)
	if ack := r.connect("ping5", true, 0); ack.ReasonCode != 0 {
		t.Fatalf("5.0: CONNACK %v", ack)
	}
	r.send(&pk5.Pingreq{})
	if p := r.read(); p.Type != pk5.PINGRESP {
		t.Fatalf("5.0: got %v, want PINGRESP", p)
	}
}

// TestMQTTConnack: every refusal a client can meet at CONNECT, with its
// 3.1/3.1.1 return code or 5.0 reason code, and the identifiers the broker
// assigns where an empty one is allowed.
func TestMQTTConnack(t *testing.T) {
	addr, amqpURL := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()

	t.Run("unsupported protocol level", func(t *testing.T) {
		for _, v := range []struct {
			name  string
			level byte
		}{{"MQTT", 6}, {"MQTT", 3}, {"MQIsdp", 4}} {
			r := dialRaw3(t, addr)
			cp := pk3.NewControlPacket(pk3.Connect).(*pk3.ConnectPacket)
			cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier, cp.CleanSession = v.name, v.level, "c", true
			r.send(cp)
			if ack, ok := r.read().(*pk3.ConnackPacket); !ok || ack.ReturnCode != 0x01 {
				t.Fatalf("%s level %d: CONNACK %v, want return code 1", v.name, v.level, ack)
			}
			rawClosed(t, r.c, waitFor)
		}
		// Level 5 with the wrong protocol name: the 5.0 form, 0x84.
		r := dialRaw5(t, addr)
		r.send(&pk5.Connect{ProtocolName: "MQIsdp", ProtocolVersion: 5, ClientID: "c", CleanStart: true, Properties: &pk5.Properties{}})
		if ack, ok := r.read().Content.(*pk5.Connack); !ok || ack.ReasonCode != 0x84 {
			t.Fatalf("MQIsdp level 5: CONNACK %v, want 0x84", ack)
		}
		rawClosed(t, r.c, waitFor)
	})

	t.Run("client identifiers", func(t *testing.T) {
		// 3.1 requires an identifier; 3.1.1 only for a persistent session.
		for _, tc := range []struct {
			v     uint
			clean bool
			code  byte
		}{{3, true, 0x02}, {4, false, 0x02}, {4, true, 0}} {
			_, tok := connect3(t, opts3(addr, "", tc.v, tc.clean, nil))
			if tok.ReturnCode() != tc.code {
				t.Errorf("level %d clean %v, empty id: return code %d (%v), want %d", tc.v, tc.clean, tok.ReturnCode(), tok.Error(), tc.code)
			}
		}
		// 5.0 assigns one even for a session that outlives the connection,
		// and the client resumes that session under it.
		exp := uint32(60)
		c := open5(ctx, t, addr, &paho.Connect{CleanStart: false, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}, opts5{})
		id := c.ack.Properties.AssignedClientID
		if id == "" || c.ack.SessionPresent {
			t.Fatalf("CONNACK %+v %+v: want an assigned client id and no session", c.ack, c.ack.Properties)
		}
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "assigned/#", QoS: 1})
		_ = c.Disconnect(&paho.Disconnect{})
		c = open5(ctx, t, addr, &paho.Connect{ClientID: id, CleanStart: false, KeepAlive: 30,
			Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}, opts5{})
		if !c.ack.SessionPresent || c.ack.Properties.AssignedClientID != "" {
			t.Fatalf("resuming %s: CONNACK %+v %+v", id, c.ack, c.ack.Properties)
		}
		pub5(ctx, t, c, &paho.Publish{Topic: "assigned/x", QoS: 1, Payload: []byte("kept")})
		if m := next5(t, c); string(m.Payload) != "kept" {
			t.Fatalf("got %+v", m)
		}
		_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: new(uint32)}})
	})

	t.Run("identifier rejected: session queue held by AMQP", func(t *testing.T) {
		// An exclusive AMQP queue with the session queue's name keeps the
		// client id from being used: 3.1.1 0x02, 5.0 0x85.
		conn, ch := dial(t, amqpURL)
		if _, err := ch.QueueDeclare("mqtt-subscription-heldqos1", false, false, true, false, nil); err != nil {
			t.Fatal(err)
		}
		_, tok := connect3(t, opts3(addr, "held", 4, true, nil))
		if tok.ReturnCode() != 0x02 {
			t.Errorf("3.1.1: return code %d (%v), want 2", tok.ReturnCode(), tok.Error())
		}
		_, ack, err := try5(ctx, t, addr, &paho.Connect{ClientID: "held", CleanStart: true}, opts5{})
		if ack == nil || ack.ReasonCode != 0x85 {
			t.Errorf("5.0: CONNACK %+v (%v), want 0x85", ack, err)
		}
		_ = conn.Close()
		open5(ctx, t, addr, &paho.Connect{ClientID: "held", CleanStart: true}, opts5{}) // free again
	})

	t.Run("bad credentials", func(t *testing.T) {
		for _, v := range []uint{3, 4} {
			_, tok := connect3(t, opts3(addr, "creds", v, true, nil).SetUsername("guest").SetPassword("wrong"))
			if tok.ReturnCode() != 0x04 {
				t.Errorf("level %d: return code %d (%v), want 4", v, tok.ReturnCode(), tok.Error())
			}
		}
		_, ack, err := try5(ctx, t, addr, &paho.Connect{ClientID: "creds", CleanStart: true,
			Username: "nobody", UsernameFlag: true, Password: []byte("x"), PasswordFlag: true}, opts5{})
		if ack == nil || ack.ReasonCode != 0x86 || ack.Properties == nil || ack.Properties.ReasonString == "" {
			t.Errorf("5.0: CONNACK %+v (%v), want 0x86 with a Reason String", ack, err)
		}
	})

	t.Run("enhanced authentication", func(t *testing.T) {
		_, ack, err := try5(ctx, t, addr, &paho.Connect{ClientID: "auth", CleanStart: true,
			Properties: &paho.ConnectProperties{AuthMethod: "SCRAM-SHA-1"}}, opts5{})
		if ack == nil || ack.ReasonCode != 0x8C {
			t.Errorf("CONNACK %+v (%v), want 0x8C bad authentication method", ack, err)
		}
	})
}

// TestMQTTConnackNotAuthorized: a vhost the user may not use, and a will
// topic the user may not publish to, refuse the connection with 0x05
// (3.1.1) or 0x87 (5.0).
func TestMQTTConnackNotAuthorized(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	noVHost := startMQTTServer(t, nil, jmqtt.Config{VHost: "elsewhere"})
	_, tok := connect3(t, opts3(noVHost, "nv", 4, true, nil))
	if tok.ReturnCode() != 0x05 {
		t.Errorf("3.1.1, no vhost: return code %d (%v), want 5", tok.ReturnCode(), tok.Error())
	}
	_, ack, err := try5(ctx, t, noVHost, &paho.Connect{ClientID: "nv", CleanStart: true}, opts5{})
	if ack == nil || ack.ReasonCode != 0x87 {
		t.Errorf("5.0, no vhost: CONNACK %+v (%v), want 0x87", ack, err)
	}

	addr := startMQTTServer(t, []router.TopicPermission{{User: "guest", VHost: "/", Exchange: "amq.topic",
		Write: ".*", Read: ".*", DenyWrite: `^forbidden\.`}}, jmqtt.Config{})
	_, tok = connect3(t, opts3(addr, "w3", 4, true, nil).SetWill("forbidden/will", "x", 1, false))
	if tok.ReturnCode() != 0x05 {
		t.Errorf("3.1.1, forbidden will: return code %d (%v), want 5", tok.ReturnCode(), tok.Error())
	}
	_, ack, err = try5(ctx, t, addr, &paho.Connect{ClientID: "w5", CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "forbidden/will", Payload: []byte("x"), QoS: 1}}, opts5{})
	if ack == nil || ack.ReasonCode != 0x87 {
		t.Errorf("5.0, forbidden will: CONNACK %+v (%v), want 0x87", ack, err)
	}
	open3(t, opts3(addr, "w3", 4, true, nil).SetWill("allowed/will", "x", 1, false))
}

// TestMQTTKeepalive: a client silent for 1.5 times its keepalive is
// disconnected (5.0: DISCONNECT 0x8D) and its will is published; clients
// that ping stay. It waits for the broker's timer: about 3 s.
func TestMQTTKeepalive(t *testing.T) {
	t.Parallel()
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	watch := open5(ctx, t, addr, &paho.Connect{ClientID: "ka-watch", CleanStart: true, KeepAlive: 30}, opts5{})
	sub5(ctx, t, watch, paho.SubscribeOptions{Topic: "ka/#", QoS: 1})

	// The pinging ones first: by the time the silent ones are gone, 1.5 s
	// of the pinging ones' keepalive have passed too.
	start := time.Now()
	in3 := make(chan mqtt3.Message, 10)
	ping3, _ := open3(t, opts3(addr, "ka-ping3", 4, true, in3).SetKeepAlive(time.Second).SetPingTimeout(waitFor))
	wait3(t, "subscribe", ping3.Subscribe("ka/ping", 1, nil))
	ping5 := open5(ctx, t, addr, &paho.Connect{ClientID: "ka-ping5", CleanStart: true, KeepAlive: 1}, opts5{})
	sub5(ctx, t, ping5, paho.SubscribeOptions{Topic: "ka/ping", QoS: 1})

	silentStart := time.Now()
	silent5 := open5(ctx, t, addr, &paho.Connect{ClientID: "ka-silent5", CleanStart: true, KeepAlive: 1,
		WillMessage: &paho.WillMessage{Topic: "ka/will5", Payload: []byte("gone 5"), QoS: 1}}, opts5{pinger: silentPinger{}})
	r := dialRaw3(t, addr)
	cp := pk3.NewControlPacket(pk3.Connect).(*pk3.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier, cp.CleanSession, cp.Keepalive = "MQTT", 4, "ka-silent3", true, 1
	cp.WillFlag, cp.WillTopic, cp.WillMessage, cp.WillQos = true, "ka/will3", []byte("gone 3"), 1
	r.send(cp)
	if ack, ok := r.read().(*pk3.ConnackPacket); !ok || ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %v", ack)
	}

	if d := serverDisconnect(t, silent5); d.ReasonCode != 0x8D {
		t.Errorf("5.0: DISCONNECT %#x, want 0x8D keepalive timeout", d.ReasonCode)
	}
	rawClosed(t, r.c, waitFor)
	if el := time.Since(silentStart); el < 1400*time.Millisecond {
		t.Errorf("silent clients dropped after %v, before 1.5 x keepalive", el)
	}
	wills := map[string]string{}
	for range 2 {
		m := next5(t, watch)
		wills[m.Topic] = string(m.Payload)
	}
	if wills["ka/will5"] != "gone 5" || wills["ka/will3"] != "gone 3" {
		t.Fatalf("wills %v", wills)
	}

	// Twice the keepalive and more: the pinging clients are still there.
	timer := time.NewTimer(3*time.Second - time.Since(start))
	<-timer.C
	pub5(ctx, t, ping5, &paho.Publish{Topic: "ka/ping", QoS: 1, Payload: []byte("still here")})
	if m := next5(t, ping5); string(m.Payload) != "still here" {
		t.Fatalf("5.0 got %q", m.Payload)
	}
	if m := next3(t, in3); string(m.Payload()) != "still here" {
		t.Fatalf("3.1.1 got %q", m.Payload())
	}
	if !ping3.IsConnectionOpen() {
		t.Fatal("3.1.1 pinging client disconnected")
	}
}

// TestMQTTSessionTakeover: a second connection with the same client id
// closes the first (5.0: DISCONNECT 0x8E) and takes over its session.
func TestMQTTSessionTakeover(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "tk-pub", CleanStart: true}, opts5{})

	lost := make(chan error, 1)
	in1 := make(chan mqtt3.Message, 10)
	first, _ := open3(t, opts3(addr, "twin3", 4, false, in1).SetConnectionLostHandler(func(_ mqtt3.Client, err error) { lost <- err }))
	wait3(t, "subscribe", first.Subscribe("tk/3", 1, nil))
	in2 := make(chan mqtt3.Message, 10)
	_, tok := open3(t, opts3(addr, "twin3", 4, false, in2))
	if !tok.SessionPresent() {
		t.Error("3.1.1: the second connection got no session")
	}
	select {
	case <-lost:
	case <-time.After(waitFor):
		t.Fatal("3.1.1: the first connection was not closed")
	}
	pub5(ctx, t, pub, &paho.Publish{Topic: "tk/3", QoS: 1, Payload: []byte("to the second")})
	if m := next3(t, in2); string(m.Payload()) != "to the second" {
		t.Fatalf("3.1.1 got %q", m.Payload())
	}

	exp := uint32(60)
	cp := &paho.Connect{ClientID: "twin5", CleanStart: false, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
	c1 := open5(ctx, t, addr, cp, opts5{})
	sub5(ctx, t, c1, paho.SubscribeOptions{Topic: "tk/5", QoS: 1})
	c2 := open5(ctx, t, addr, cp, opts5{})
	if d := serverDisconnect(t, c1); d.ReasonCode != 0x8E {
		t.Errorf("5.0: DISCONNECT %#x, want 0x8E session taken over", d.ReasonCode)
	}
	if !c2.ack.SessionPresent {
		t.Error("5.0: the second connection got no session")
	}
	pub5(ctx, t, pub, &paho.Publish{Topic: "tk/5", QoS: 1, Payload: []byte("to the second")})
	if m := next5(t, c2); string(m.Payload) != "to the second" {
		t.Fatalf("5.0 got %q", m.Payload)
	}
	none5(t, c1)

	// A 5.0 client takes over a 3.1.1 client's id; the old one is closed.
	lost3 := make(chan error, 1)
	open3(t, opts3(addr, "mixed", 4, true, nil).SetConnectionLostHandler(func(_ mqtt3.Client, err error) { lost3 <- err }))
	open5(ctx, t, addr, &paho.Connect{ClientID: "mixed", CleanStart: true}, opts5{})
	select {
	case <-lost3:
	case <-time.After(waitFor):
		t.Fatal("3.1.1 connection not closed by a 5.0 takeover")
	}
}

// TestMQTTDisconnect: MQTT 5 DISCONNECT reason codes and the Session
// Expiry Interval it may carry.
func TestMQTTDisconnect(t *testing.T) {
	addr, amqpURL := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	watch := open5(ctx, t, addr, &paho.Connect{ClientID: "dc-watch", CleanStart: true}, opts5{})
	sub5(ctx, t, watch, paho.SubscribeOptions{Topic: "dc/#", QoS: 1})
	withWill := func(id string) *client5 {
		return open5(ctx, t, addr, &paho.Connect{ClientID: id, CleanStart: true,
			WillMessage: &paho.WillMessage{Topic: "dc/will/" + id, Payload: []byte("will of " + id), QoS: 1}}, opts5{})
	}

	// 0x00: no will. 0x04 (disconnect with will message): the will.
	if err := withWill("normal").Disconnect(&paho.Disconnect{ReasonCode: 0}); err != nil {
		t.Fatal(err)
	}
	if err := withWill("withwill").Disconnect(&paho.Disconnect{ReasonCode: 0x04}); err != nil {
		t.Fatal(err)
	}
	if m := next5(t, watch); m.Topic != "dc/will/withwill" {
		t.Fatalf("got %q on %q, want only the will of the 0x04 DISCONNECT", m.Payload, m.Topic)
	}
	none5(t, watch)

	// The Session Expiry Interval of the DISCONNECT replaces the CONNECT's:
	// 0 ends the session now; none leaves it.
	conn, _ := dial(t, amqpURL)
	exp := uint32(60)
	for _, tc := range []struct {
		name    string
		disc    *uint32
		present bool
	}{{"unchanged", nil, true}, {"set to 0", new(uint32), false}} {
		cp := &paho.Connect{ClientID: "dc-exp", CleanStart: false, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
		c := open5(ctx, t, addr, cp, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "dc/exp", QoS: 1})
		if err := c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: tc.disc}}); err != nil {
			t.Fatal(err)
		}
		// The session's queue is there, or gone, as soon as the
		// connection is.
		eventually(t, tc.name+": session queue", func() bool {
			c, err := conn.Channel()
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			_, err = c.QueueDeclarePassive("mqtt-subscription-dc-expqos1", false, false, false, false, nil)
			if err != nil && codeOf(err) != amqp.NotFound {
				t.Fatal(err)
			}
			return (err == nil) == tc.present
		})
		c = open5(ctx, t, addr, cp, opts5{})
		if c.ack.SessionPresent != tc.present {
			t.Errorf("%s: session present %v, want %v", tc.name, c.ack.SessionPresent, tc.present)
		}
		_ = c.Disconnect(&paho.Disconnect{Properties: &paho.DisconnectProperties{SessionExpiryInterval: new(uint32)}})
	}

	// A session that was to end with its connection cannot be given an
	// expiry at DISCONNECT [MQTT-3.14.2-2]: DISCONNECT 0x82.
	r := dialRaw5(t, addr)
	if ack := r.connect("dc-zero", true, 0); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v", ack)
	}
	later := uint32(30)
	r.send(&pk5.Disconnect{Properties: &pk5.Properties{SessionExpiryInterval: &later}})
	if p := r.read(); p.Type != pk5.DISCONNECT || p.Content.(*pk5.Disconnect).ReasonCode != 0x82 {
		t.Fatalf("got %v, want DISCONNECT 0x82", p)
	}
}
