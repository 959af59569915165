package interop

import (
	"context"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	pk3 "github.com/eclipse/paho.mqtt.golang/packets"
)

// Topics as routing keys on amq.topic, RabbitMQ's way (mqtt.topic_mode
// "swap", the default): '/' and '.' swap places, '+' is '*', '#' is '#'.
// The "lossless" topic mode is in mqtt_lossless_test.go.

// TestMQTTTopicsAsRoutingKeys: an MQTT subscription a/+/# is the binding
// a.*.# of the session's queue (AMQP publishes reach it exactly when the
// binding key matches), an MQTT publish to a/b/c is routing key a.b.c, and
// dots survive both ways as slashes.
func TestMQTTTopicsAsRoutingKeys(t *testing.T) {
	addr, amqpURL := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	_, ch := dial(t, amqpURL)

	c5 := open5(ctx, t, addr, &paho.Connect{ClientID: "keys5", CleanStart: true}, opts5{})
	sub5(ctx, t, c5, paho.SubscribeOptions{Topic: "a/+/#", QoS: 0})
	in3 := make(chan mqtt3.Message, 10)
	c3, _ := open3(t, opts3(addr, "keys3", 4, true, in3))
	wait3(t, "subscribe", c3.Subscribe("a/+/#", 0, nil))
	for _, key := range []string{"a", "b.x.y", "a.b", "a.b.c.d", "x.a.b"} {
		publish(t, ch, "amq.topic", key, key)
	}
	for _, want := range []string{"a/b", "a/b/c/d"} { // a.*.# matches a.b (# is zero words) and a.b.c.d
		if m := next5(t, c5); m.Topic != want || string(m.Payload) != keyOf(want) {
			t.Fatalf("5.0 got %q on %q, want %q", m.Payload, m.Topic, want)
		}
		if m := next3(t, in3); m.Topic() != want {
			t.Fatalf("3.1.1 got %q on %q, want %q", m.Payload(), m.Topic(), want)
		}
	}
	none5(t, c5)

	q := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(q, "sensors.*.temp", "amq.topic", false, nil))
	must(t, ch.QueueBind(q, "v1/2.#", "amq.topic", false, nil))
	got := consume(t, ch, q)
	wait3(t, "publish", c3.Publish("sensors/k1/temp", 1, false, "3.1.1"))
	pub5(ctx, t, c5, &paho.Publish{Topic: "sensors/k2/temp", QoS: 1, Payload: []byte("5.0")})
	pub5(ctx, t, c5, &paho.Publish{Topic: "sensors/k3/humidity", QoS: 1, Payload: []byte("not bound")})
	pub5(ctx, t, c5, &paho.Publish{Topic: "v1.2/x.y", QoS: 1, Payload: []byte("dots")})
	ds := recvN(t, got, 3)
	for i, want := range []struct{ key, body string }{{"sensors.k1.temp", "3.1.1"}, {"sensors.k2.temp", "5.0"}, {"v1/2.x/y", "dots"}} {
		if ds[i].RoutingKey != want.key || string(ds[i].Body) != want.body || ds[i].Exchange != "amq.topic" {
			t.Fatalf("AMQP delivery %d: key %q body %q exchange %q, want %+v", i, ds[i].RoutingKey, ds[i].Body, ds[i].Exchange, want)
		}
	}
	noDelivery(t, got)

	// And back: a key with slashes is an MQTT topic with dots.
	sub5(ctx, t, c5, paho.SubscribeOptions{Topic: "v1.2/#", QoS: 0})
	publish(t, ch, "amq.topic", "v1/2.z", "back")
	if m := next5(t, c5); m.Topic != "v1.2/z" || string(m.Payload) != "back" {
		t.Fatalf("got %q on %q, want v1.2/z", m.Payload, m.Topic)
	}
}

// keyOf is the routing key of an MQTT topic without dots.
func keyOf(topic string) string {
	b := []byte(topic)
	for i, c := range b {
		if c == '/' {
			b[i] = '.'
		}
	}
	return string(b)
}

// TestMQTTTopicValidation: wildcards in a publish topic and invalid UTF-8
// end the connection (5.0: DISCONNECT 0x90 and 0x81); an invalid filter
// fails alone in the SUBACK (3.1.1: 0x80, 5.0: 0x8F); '#' and '+' at the
// first level do not match $-topics.
func TestMQTTTopicValidation(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	watch := open5(ctx, t, addr, &paho.Connect{ClientID: "tv-watch", CleanStart: true}, opts5{})
	sub5(ctx, t, watch, paho.SubscribeOptions{Topic: "tv/#", QoS: 0})

	for _, tc := range []struct {
		topic string
		rc    byte
	}{{"tv/+", 0x90}, {"tv/#", 0x90}, {"tv/\xc3\x28", 0x81}, {"tv/a\x00b", 0x81}} {
		c := open5(ctx, t, addr, &paho.Connect{ClientID: "tv5", CleanStart: true}, opts5{})
		_, _ = c.Publish(ctx, &paho.Publish{Topic: tc.topic, QoS: 0, Payload: []byte("bad")})
		if d := serverDisconnect(t, c); d.ReasonCode != tc.rc {
			t.Errorf("5.0 publish to %q: DISCONNECT %#x, want %#x", tc.topic, d.ReasonCode, tc.rc)
		}
	}
	// paho.mqtt.golang checks filters but not topic names: the broker
	// closes the connection.
	for _, topic := range []string{"tv/+", "tv/#", "tv/\xc3\x28"} {
		lost := make(chan error, 1)
		c, _ := open3(t, opts3(addr, "tv3", 4, true, nil).SetConnectionLostHandler(func(_ mqtt3.Client, err error) { lost <- err }))
		c.Publish(topic, 0, false, "bad")
		select {
		case <-lost:
		case <-time.After(waitFor):
			t.Fatalf("3.1.1 publish to %q: connection still open", topic)
		}
	}
	pub5(ctx, t, watch, &paho.Publish{Topic: "tv/ok", QoS: 1, Payload: []byte("marker")})
	if m := next5(t, watch); m.Topic != "tv/ok" {
		t.Fatalf("an invalid publish was routed: got %q on %q", m.Payload, m.Topic)
	}

	bad := []string{"tv/#/x", "tv/x+", "tv/#x", "$share/g", "$share//tv"}
	var subs []paho.SubscribeOptions
	for _, f := range bad {
		subs = append(subs, paho.SubscribeOptions{Topic: f, QoS: 1})
	}
	subs = append(subs, paho.SubscribeOptions{Topic: "tv/fine", QoS: 1})
	sa, _ := watch.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if sa == nil || len(sa.Reasons) != len(subs) {
		t.Fatalf("5.0 SUBACK %+v", sa)
	}
	for i, rc := range sa.Reasons {
		if want := map[bool]byte{true: 1, false: 0x8F}[i == len(bad)]; rc != want {
			t.Errorf("5.0 SUBACK for %q: %#x, want %#x", subs[i].Topic, rc, want)
		}
	}
	r := dialRaw3(t, addr)
	if ack := r.connect("tv-raw", true, 60); ack.ReturnCode != 0 {
		t.Fatalf("CONNACK %v", ack)
	}
	sp := pk3.NewControlPacket(pk3.Subscribe).(*pk3.SubscribePacket)
	sp.MessageID, sp.Topics, sp.Qoss = 1, append(append([]string(nil), bad[:3]...), "tv/fine"), []byte{1, 1, 1, 1}
	r.send(sp)
	if sa, ok := r.read().(*pk3.SubackPacket); !ok || string(sa.ReturnCodes) != "\x80\x80\x80\x01" {
		t.Fatalf("3.1.1 SUBACK %v, want 80 80 80 01", sa)
	}

	// $-topics: '#' and '+/load' do not match $SYS/load, '$SYS/#' does.
	all := open5(ctx, t, addr, &paho.Connect{ClientID: "tv-all", CleanStart: true}, opts5{})
	sub5(ctx, t, all, paho.SubscribeOptions{Topic: "#", QoS: 0}, paho.SubscribeOptions{Topic: "+/load", QoS: 0})
	in3 := make(chan mqtt3.Message, 10)
	all3, _ := open3(t, opts3(addr, "tv-all3", 4, true, in3))
	wait3(t, "subscribe", all3.Subscribe("#", 0, nil))
	sys := open5(ctx, t, addr, &paho.Connect{ClientID: "tv-sys", CleanStart: true}, opts5{})
	sub5(ctx, t, sys, paho.SubscribeOptions{Topic: "$SYS/#", QoS: 0})
	pub5(ctx, t, watch, &paho.Publish{Topic: "$SYS/load", QoS: 1, Payload: []byte("sys")})
	pub5(ctx, t, watch, &paho.Publish{Topic: "x/load", QoS: 1, Payload: []byte("plain")})
	if m := next5(t, sys); m.Topic != "$SYS/load" {
		t.Fatalf("$SYS/# got %q", m.Topic)
	}
	if m := next5(t, all); m.Topic != "x/load" { // once: '#' and '+/load' are one session queue
		t.Fatalf("# got %q first, want x/load", m.Topic)
	}
	if m := next3(t, in3); m.Topic() != "x/load" {
		t.Fatalf("3.1.1 # got %q first, want x/load", m.Topic())
	}
	none5(t, all)
}
