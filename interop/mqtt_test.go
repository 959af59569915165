package interop

import (
	"context"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	amqp "github.com/rabbitmq/amqp091-go"
)

type msg3 struct {
	topic   string
	payload string
	qos     byte
}

// client3 connects a paho.mqtt.golang (MQTT 3.1.1) client.
func client3(t *testing.T, addr, id string) mqtt3.Client {
	t.Helper()
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).
		SetProtocolVersion(4).SetCleanSession(true).SetAutoReconnect(false).SetKeepAlive(30 * time.Second)
	c := mqtt3.NewClient(o)
	if tok := c.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect %s: %v", id, tok.Error())
	}
	t.Cleanup(func() { c.Disconnect(100) })
	return c
}

func subscribe3(t *testing.T, c mqtt3.Client, filter string, qos byte) <-chan msg3 {
	t.Helper()
	ch := make(chan msg3, 100)
	tok := c.Subscribe(filter, qos, func(_ mqtt3.Client, m mqtt3.Message) {
		ch <- msg3{m.Topic(), string(m.Payload()), m.Qos()}
	})
	if !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe %s: %v", filter, tok.Error())
	}
	return ch
}

func publish3(t *testing.T, c mqtt3.Client, topic string, qos byte, payload string) {
	t.Helper()
	if tok := c.Publish(topic, qos, false, payload); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("publish %s: %v", topic, tok.Error())
	}
}

func recv3(t *testing.T, ch <-chan msg3) msg3 {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-time.After(10 * time.Second):
		t.Fatal("no MQTT message")
	}
	return msg3{}
}

func none3(t *testing.T, ch <-chan msg3) {
	t.Helper()
	select {
	case m := <-ch:
		t.Fatalf("unexpected message %+v", m)
	case <-time.After(100 * time.Millisecond):
	}
}

// TestMQTT311Wildcards: paho.mqtt.golang publishes and subscribes with
// '+' and '#' filters, QoS 0 and 1.
func TestMQTT311Wildcards(t *testing.T) {
	addr, _ := startMQTT(t)
	sub := client3(t, addr, "sub")
	plus := subscribe3(t, sub, "a/+/c", 1)
	all := subscribe3(t, client3(t, addr, "sub-all"), "#", 0)
	pub := client3(t, addr, "pub")

	publish3(t, pub, "a/b/c", 1, "abc")
	if m := recv3(t, plus); m.topic != "a/b/c" || m.payload != "abc" || m.qos != 1 {
		t.Fatalf("a/+/c got %+v", m)
	}
	if m := recv3(t, all); m.topic != "a/b/c" || m.qos != 0 {
		t.Fatalf("# got %+v", m)
	}
	publish3(t, pub, "a/b/d", 0, "abd")
	if m := recv3(t, all); m.topic != "a/b/d" || m.payload != "abd" {
		t.Fatalf("# got %+v", m)
	}
	none3(t, plus)
	// QoS 1 round trip with many messages: every PUBACK comes, and the
	// subscriber's PUBACKs keep the window moving.
	for i := range 50 {
		publish3(t, pub, "a/x/c", 1, string(rune('A'+i%26)))
	}
	for i := range 50 {
		if m := recv3(t, plus); m.payload != string(rune('A'+i%26)) || m.qos != 1 {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
}

// TestMQTT5RoundTrip: paho.golang (MQTT 5) with QoS 1 and an assigned
// client identifier.
func TestMQTT5RoundTrip(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	got := make(chan *paho.Publish, 10)
	dial5 := func(id string) *paho.Client {
		conn, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil },
		}})
		ack, err := c.Connect(ctx, &paho.Connect{ClientID: id, CleanStart: true, KeepAlive: 30})
		if err != nil || ack.ReasonCode != 0 {
			t.Fatalf("connect: %v %+v", err, ack)
		}
		if id == "" && (ack.Properties == nil || ack.Properties.AssignedClientID == "") {
			t.Fatalf("no assigned client id: %+v", ack.Properties)
		}
		t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
		return c
	}
	sub := dial5("")
	sa, err := sub.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{{Topic: "a/+/c", QoS: 1}, {Topic: "z/#", QoS: 2}}})
	if err != nil || len(sa.Reasons) != 2 || sa.Reasons[0] != 1 || sa.Reasons[1] != 2 {
		t.Fatalf("subscribe: %v %+v", err, sa)
	}
	pub := dial5("pub5")
	r, err := pub.Publish(ctx, &paho.Publish{Topic: "a/b/c", QoS: 1, Payload: []byte("five")})
	if err != nil || r.ReasonCode != 0 {
		t.Fatalf("publish: %v %+v", err, r)
	}
	select {
	case m := <-got:
		if m.Topic != "a/b/c" || string(m.Payload) != "five" || m.QoS != 1 {
			t.Fatalf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no message")
	}
	// QoS 2 publish completes (PUBREC/PUBREL/PUBCOMP) and arrives once, at QoS 2.
	if _, err := pub.Publish(ctx, &paho.Publish{Topic: "z/1", QoS: 2, Payload: []byte("two")}); err != nil {
		t.Fatalf("QoS 2 publish: %v", err)
	}
	select {
	case m := <-got:
		if m.Topic != "z/1" || string(m.Payload) != "two" || m.QoS != 2 {
			t.Fatalf("got %+v", m)
		}
	case <-ctx.Done():
		t.Fatal("no message")
	}
	// No subscriber: MQTT 5 says so in the PUBACK.
	if r, err := pub.Publish(ctx, &paho.Publish{Topic: "nobody/home", QoS: 1, Payload: []byte("x")}); err != nil || r.ReasonCode != 0x10 {
		t.Fatalf("publish: %v %+v", err, r)
	}
}

// TestMQTTAMQPBridge: MQTT topics and AMQP routing keys meet in amq.topic.
func TestMQTTAMQPBridge(t *testing.T) {
	addr, url := startMQTT(t)
	_, ch := dial(t, url)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "sensors.k1.temp", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := client3(t, addr, "bridge")
	publish3(t, c, "sensors/k1/temp", 1, "21.5")
	d := recvOne(t, deliveries)
	if d.RoutingKey != "sensors.k1.temp" || string(d.Body) != "21.5" || d.Exchange != "amq.topic" || d.DeliveryMode != amqp.Persistent {
		t.Fatalf("AMQP got key %q body %q exchange %q mode %d", d.RoutingKey, d.Body, d.Exchange, d.DeliveryMode)
	}

	// And back: an AMQP publish to amq.topic reaches an MQTT subscriber,
	// at QoS 1 when persistent (and subscribed at 1), QoS 0 otherwise.
	in := subscribe3(t, c, "devices/+/cmd", 1)
	for _, mode := range []uint8{amqp.Persistent, amqp.Transient} {
		if err := ch.PublishWithContext(context.Background(), "amq.topic", "devices.d7.cmd", false, false,
			amqp.Publishing{Body: []byte("reboot"), DeliveryMode: mode}); err != nil {
			t.Fatal(err)
		}
		m := recv3(t, in)
		if m.topic != "devices/d7/cmd" || m.payload != "reboot" || (m.qos == 1) != (mode == amqp.Persistent) {
			t.Fatalf("mode %d: MQTT got %+v", mode, m)
		}
	}
}

// TestMQTTBadCredentials: a refused login is CONNACK 0x04 (3.1.1) and
// 0x86 (5.0).
func TestMQTTBadCredentials(t *testing.T) {
	addr, _ := startMQTT(t)
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("x").
		SetProtocolVersion(4).SetUsername("guest").SetPassword("nope").SetAutoReconnect(false).SetConnectRetry(false)
	c := mqtt3.NewClient(o)
	tok := c.Connect()
	tok.WaitTimeout(10 * time.Second)
	if ct, ok := tok.(*mqtt3.ConnectToken); !ok || ct.ReturnCode() != 0x04 {
		t.Fatalf("3.1.1: %v", tok.Error())
	}

	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc := paho.NewClient(paho.ClientConfig{Conn: conn})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ack, err := pc.Connect(ctx, &paho.Connect{ClientID: "y", CleanStart: true, Username: "guest", UsernameFlag: true, Password: []byte("nope"), PasswordFlag: true})
	if ack == nil || ack.ReasonCode != 0x86 {
		t.Fatalf("5.0: %v %+v", err, ack)
	}
}
