package interop

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"

	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
)

// MQTT 5 features with paho.golang. Message expiry while queued is in
// TestMQTTSessionExpiry (it needs the clock to move), will properties in
// TestMQTTWill.

// TestMQTT5Properties: payload format, content type, correlation data,
// response topic, user properties (in order, repeats kept) and message
// expiry reach MQTT 5 subscribers unchanged (expiry: what is left) and
// AMQP consumers as properties and headers; AMQP properties and headers
// reach MQTT 5 subscribers as MQTT properties.
func TestMQTT5Properties(t *testing.T) {
	addr, amqpURL := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, ch := dial(t, amqpURL)
	q := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(q, "props.#", "amq.topic", false, nil))
	ds := consume(t, ch, q)
	sub := open5(ctx, t, addr, &paho.Connect{ClientID: "pr-sub", CleanStart: true}, opts5{})
	sub5(ctx, t, sub, paho.SubscribeOptions{Topic: "props/#", QoS: 1})
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "pr-pub", CleanStart: true}, opts5{})

	pf, exp := byte(1), uint32(600)
	user := paho.UserProperties{{Key: "k", Value: "1"}, {Key: "z", Value: "2"}, {Key: "k", Value: "3"}}
	pub5(ctx, t, pub, &paho.Publish{Topic: "props/x", QoS: 1, Payload: []byte(`{"t":21}`), Properties: &paho.PublishProperties{
		PayloadFormat: &pf, MessageExpiry: &exp, ContentType: "application/json", ResponseTopic: "props/reply",
		CorrelationData: []byte("req-1"), User: user}})
	m := next5(t, sub)
	p := m.Properties
	if p == nil || p.PayloadFormat == nil || *p.PayloadFormat != 1 || p.MessageExpiry == nil || *p.MessageExpiry > 600 || *p.MessageExpiry < 590 ||
		p.ContentType != "application/json" || p.ResponseTopic != "props/reply" || string(p.CorrelationData) != "req-1" ||
		!slices.Equal(p.User, append(slices.Clone(user), provenance5("pr-pub")...)) {
		t.Fatalf("MQTT 5 subscriber: properties %+v", p)
	}
	d := recvOne(t, ds)
	if d.ContentType != "application/json" || d.CorrelationId != "req-1" || d.ReplyTo != "props.reply" || d.Expiration != "600000" ||
		d.Headers["z"] != "2" || d.Headers["k"] == nil {
		t.Fatalf("AMQP consumer: content-type %q correlation-id %q reply-to %q expiration %q headers %v",
			d.ContentType, d.CorrelationId, d.ReplyTo, d.Expiration, d.Headers)
	}

	publishMsg(t, ch, "amq.topic", "props.from.amqp", amqp.Publishing{Body: []byte("hi"), ContentType: "text/plain",
		CorrelationId: "req-2", ReplyTo: "props.answer", Headers: amqp.Table{"origin": "amqp"}})
	m = next5(t, sub)
	p = m.Properties
	if m.Topic != "props/from/amqp" || p == nil || p.ContentType != "text/plain" || string(p.CorrelationData) != "req-2" ||
		p.ResponseTopic != "props/answer" || !slices.Contains(p.User, paho.UserProperty{Key: "origin", Value: "amqp"}) {
		t.Fatalf("from AMQP: %q properties %+v", m.Topic, p)
	}

	// Request Response Information: the CONNACK's Response Information.
	c := open5(ctx, t, addr, &paho.Connect{ClientID: "pr-rr", CleanStart: true,
		Properties: &paho.ConnectProperties{RequestResponseInfo: true}}, opts5{})
	if c.ack.Properties == nil || c.ack.Properties.ResponseInfo == "" {
		t.Errorf("CONNACK without Response Information: %+v", c.ack.Properties)
	}
}

// TestMQTT5TopicAliases: aliases from the client (up to the Topic Alias
// Maximum of the CONNACK; 0, too large and unknown ones end the
// connection) and towards a client that allows them.
func TestMQTT5TopicAliases(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	sub := open5(ctx, t, addr, &paho.Connect{ClientID: "ta-sub", CleanStart: true}, opts5{})
	sub5(ctx, t, sub, paho.SubscribeOptions{Topic: "ta/#", QoS: 1})
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "ta-pub", CleanStart: true}, opts5{})
	if tam := pub.ack.Properties.TopicAliasMaximum; tam == nil || *tam != jmqtt.DefaultTopicAliasMax {
		t.Fatalf("CONNACK Topic Alias Maximum %v, want %d", tam, jmqtt.DefaultTopicAliasMax)
	}
	alias := func(a uint16) *paho.PublishProperties { return &paho.PublishProperties{TopicAlias: &a} }
	for _, p := range []*paho.Publish{
		{Topic: "ta/a/long/topic/name", Properties: alias(1), Payload: []byte("1")},
		{Properties: alias(1), Payload: []byte("2")},
		{Topic: "ta/other", Properties: alias(2), Payload: []byte("3")},
		{Topic: "ta/remapped", Properties: alias(1), Payload: []byte("4")},
		{Properties: alias(1), Payload: []byte("5")},
		{Properties: alias(2), Payload: []byte("6")},
	} {
		p.QoS = 1
		pub5(ctx, t, pub, p)
	}
	for _, want := range []string{"ta/a/long/topic/name=1", "ta/a/long/topic/name=2", "ta/other=3", "ta/remapped=4", "ta/remapped=5", "ta/other=6"} {
		m := next5(t, sub)
		if m.Topic+"="+string(m.Payload) != want {
			t.Fatalf("got %s=%s, want %s", m.Topic, m.Payload, want)
		}
		if m.Properties.TopicAlias != nil { // sub allows none
			t.Fatalf("alias %d to a client without a Topic Alias Maximum", *m.Properties.TopicAlias)
		}
	}
	for _, tc := range []struct {
		name  string
		topic string
		alias uint16
		rc    byte
	}{
		{"alias 0", "ta/x", 0, 0x94},
		{"above the maximum", "ta/x", jmqtt.DefaultTopicAliasMax + 1, 0x94},
		{"never set", "", 3, 0x82},
	} {
		// Raw: paho.golang refuses to send these.
		r := dialRaw5(t, addr)
		r.connect("ta-bad", true, 0)
		r.send(&pk5.Publish{Topic: tc.topic, Payload: []byte("x"), Properties: &pk5.Properties{TopicAlias: &tc.alias}})
		if p := r.read(); p.Type != pk5.DISCONNECT || p.Content.(*pk5.Disconnect).ReasonCode != tc.rc {
			t.Errorf("%s: got %v, want DISCONNECT %#x", tc.name, p, tc.rc)
		}
	}

	// Towards the client: a Topic Alias Maximum of 2 gets aliases 1 and
	// 2; the topic comes with an alias once, then the alias alone.
	tam := uint16(2)
	out := open5(ctx, t, addr, &paho.Connect{ClientID: "ta-out", CleanStart: true,
		Properties: &paho.ConnectProperties{TopicAliasMaximum: &tam}}, opts5{})
	sub5(ctx, t, out, paho.SubscribeOptions{Topic: "tb/#", QoS: 1})
	topics := []string{"tb/1", "tb/1", "tb/2", "tb/3", "tb/2", "tb/1", "tb/3"}
	for i, topic := range topics {
		pub5(ctx, t, pub, &paho.Publish{Topic: topic, QoS: byte(i % 2), Payload: []byte(strconv.Itoa(i))})
	}
	aliases := map[uint16]string{}
	used := 0
	for i, want := range topics {
		m := next5(t, out)
		topic := m.Topic
		if a := m.Properties.TopicAlias; a != nil {
			if *a < 1 || *a > tam {
				t.Fatalf("alias %d outside [1, %d]", *a, tam)
			}
			if topic == "" {
				topic = aliases[*a]
				used++
			} else {
				aliases[*a] = topic
			}
		}
		if topic != want || string(m.Payload) != strconv.Itoa(i) {
			t.Fatalf("message %d: %q (alias %v) resolves to %q, want %q", i, m.Payload, m.Properties.TopicAlias, topic, want)
		}
	}
	if used == 0 || len(aliases) != 2 {
		t.Fatalf("aliases %v used %d times: want both in use", aliases, used)
	}
}

// TestMQTT5SubscriptionIdentifiers: a publish carries the identifier of
// the subscription it matched, including a retained one sent on
// subscribe; none for a subscription without one. (paho.golang keeps one
// identifier per publish: several matching subscriptions are in
// test_mqtt.py.)
func TestMQTT5SubscriptionIdentifiers(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "sid-pub", CleanStart: true}, opts5{})
	pub5(ctx, t, pub, &paho.Publish{Topic: "sid/r/kept", QoS: 1, Retain: true, Payload: []byte("kept")})
	sub := open5(ctx, t, addr, &paho.Connect{ClientID: "sid-sub", CleanStart: true}, opts5{})
	for _, s := range []struct {
		filter string
		id     int
	}{{"sid/a/+", 7}, {"sid/b/#", 268435455}, {"sid/c", 0}, {"sid/r/#", 11}} {
		sp := &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: s.filter, QoS: 1}}}
		if s.id != 0 {
			sp.Properties = &paho.SubscribeProperties{SubscriptionIdentifier: &s.id}
		}
		if sa, err := sub.Subscribe(ctx, sp); err != nil || sa.Reasons[0] != 1 {
			t.Fatalf("subscribe %q: %v %+v", s.filter, err, sa)
		}
	}
	if m := next5(t, sub); m.Topic != "sid/r/kept" || m.Properties.SubscriptionIdentifier == nil || *m.Properties.SubscriptionIdentifier != 11 {
		t.Fatalf("retained %q with identifier %v, want 11", m.Topic, m.Properties.SubscriptionIdentifier)
	}
	for _, tc := range []struct {
		topic string
		id    int
	}{{"sid/a/x", 7}, {"sid/b/x/y", 268435455}, {"sid/c", 0}} {
		pub5(ctx, t, pub, &paho.Publish{Topic: tc.topic, QoS: 1, Payload: []byte("x")})
		m := next5(t, sub)
		got := m.Properties.SubscriptionIdentifier
		if m.Topic != tc.topic || (got == nil) != (tc.id == 0) || got != nil && *got != tc.id {
			t.Fatalf("%q: identifier %v, want %d", m.Topic, got, tc.id)
		}
	}
}

// TestMQTT5SharedSubscriptions: $share/group/filter spreads a group's
// messages over its members (MQTT 5 and 3.1.1 ones), each message to one
// member; every group and every plain subscription gets all of them; no
// retained messages for shared subscriptions; the members left take over
// when one leaves.
func TestMQTT5SharedSubscriptions(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "sh-pub", CleanStart: true}, opts5{})
	pub5(ctx, t, pub, &paho.Publish{Topic: "sh/retained", QoS: 1, Retain: true, Payload: []byte("retained")})

	m1 := open5(ctx, t, addr, &paho.Connect{ClientID: "sh-m1", CleanStart: true}, opts5{})
	m2 := open5(ctx, t, addr, &paho.Connect{ClientID: "sh-m2", CleanStart: true}, opts5{})
	for _, m := range []*client5{m1, m2} {
		sub5(ctx, t, m, paho.SubscribeOptions{Topic: "$share/g/sh/+", QoS: 1})
	}
	in3 := make(chan mqtt3.Message, 100)
	m3, _ := open3(t, opts3(addr, "sh-m3", 4, true, in3))
	wait3(t, "subscribe", m3.Subscribe("$share/g/sh/+", 1, nil))
	other := open5(ctx, t, addr, &paho.Connect{ClientID: "sh-other", CleanStart: true}, opts5{})
	sub5(ctx, t, other, paho.SubscribeOptions{Topic: "$share/h/sh/#", QoS: 1})
	plain := open5(ctx, t, addr, &paho.Connect{ClientID: "sh-plain", CleanStart: true}, opts5{})
	sub5(ctx, t, plain, paho.SubscribeOptions{Topic: "sh/+", QoS: 0, RetainHandling: 2})

	const n = 30
	for i := range n {
		pub5(ctx, t, pub, &paho.Publish{Topic: "sh/" + strconv.Itoa(i), QoS: 1, Payload: []byte(strconv.Itoa(i))})
	}
	seen := map[string]int{}
	counts := [3]int{}
	for len(seen) < n {
		select {
		case m := <-m1.msgs:
			seen[string(m.Payload)]++
			counts[0]++
		case m := <-m2.msgs:
			seen[string(m.Payload)]++
			counts[1]++
		case m := <-in3:
			seen[string(m.Payload())]++
			counts[2]++
		case <-ctx.Done():
			t.Fatalf("group g got %d of %d messages", len(seen), n)
		}
	}
	for body, c := range seen {
		if c != 1 || body == "retained" {
			t.Fatalf("group g: %q arrived %d times", body, c)
		}
	}
	for i, c := range counts {
		if c < n/6 {
			t.Errorf("member %d got %d of %d messages: not spread (%v)", i+1, c, n, counts)
		}
	}
	for _, c := range []*client5{other, plain} {
		for i := range n {
			if m := next5(t, c); string(m.Payload) != strconv.Itoa(i) {
				t.Fatalf("%q, want %d", m.Payload, i)
			}
		}
	}

	// Two members leave; the third gets everything.
	_ = m1.Disconnect(&paho.Disconnect{})
	wait3(t, "unsubscribe", m3.Unsubscribe("$share/g/sh/+"))
	for i := range 5 {
		pub5(ctx, t, pub, &paho.Publish{Topic: "sh/late", QoS: 1, Payload: []byte("late" + strconv.Itoa(i))})
	}
	for i := range 5 {
		if m := next5(t, m2); string(m.Payload) != "late"+strconv.Itoa(i) {
			t.Fatalf("remaining member got %q", m.Payload)
		}
	}
}

// TestMQTT5MaximumPacketSize: the broker announces its Maximum Packet Size
// and ends a connection that sends more (DISCONNECT 0x95); it sends a
// client nothing larger than the client's Maximum Packet Size (the
// message is dropped for that client).
func TestMQTT5MaximumPacketSize(t *testing.T) {
	addr := startMQTTServer(t, nil, jmqtt.Config{MaxPacketSize: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	mps := uint32(200)
	small := open5(ctx, t, addr, &paho.Connect{ClientID: "mps-small", CleanStart: true,
		Properties: &paho.ConnectProperties{MaximumPacketSize: &mps}}, opts5{})
	sub5(ctx, t, small, paho.SubscribeOptions{Topic: "mps/#", QoS: 1})
	big := open5(ctx, t, addr, &paho.Connect{ClientID: "mps-big", CleanStart: true}, opts5{})
	sub5(ctx, t, big, paho.SubscribeOptions{Topic: "mps/#", QoS: 1})
	if p := big.ack.Properties.MaximumPacketSize; p == nil || *p != 1024 {
		t.Fatalf("CONNACK Maximum Packet Size %v, want 1024", p)
	}
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "mps-pub", CleanStart: true}, opts5{})
	pub5(ctx, t, pub, &paho.Publish{Topic: "mps/x", QoS: 1, Payload: []byte(strings.Repeat("x", 500))})
	pub5(ctx, t, pub, &paho.Publish{Topic: "mps/x", QoS: 1, Payload: []byte("fits")})
	if m := next5(t, small); string(m.Payload) != "fits" {
		t.Fatalf("client with Maximum Packet Size 200 got %d bytes", len(m.Payload))
	}
	if m := next5(t, big); len(m.Payload) != 500 {
		t.Fatalf("got %d bytes, want 500", len(m.Payload))
	}
	if m := next5(t, big); string(m.Payload) != "fits" {
		t.Fatalf("got %q, want fits", m.Payload)
	}

	_, _ = pub.Publish(ctx, &paho.Publish{Topic: "mps/x", QoS: 0, Payload: []byte(strings.Repeat("y", 2000))})
	if d := serverDisconnect(t, pub); d.ReasonCode != 0x95 {
		t.Fatalf("DISCONNECT %#x, want 0x95 packet too large", d.ReasonCode)
	}
	// 3.1.1: the connection just closes.
	lost := make(chan error, 1)
	c3, _ := open3(t, opts3(addr, "mps-3", 4, true, nil).SetConnectionLostHandler(func(_ mqtt3.Client, err error) { lost <- err }))
	c3.Publish("mps/x", 0, false, strings.Repeat("z", 2000))
	select {
	case <-lost:
	case <-ctx.Done():
		t.Fatal("3.1.1 connection still open after an oversized packet")
	}
	none5(t, big)
}
