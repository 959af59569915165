package interop

import (
	"context"
	"net"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.golang/paho"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junction-broker/junction/router"
)

// Provenance and retained messages across protocols, with real clients on
// both sides: README's "Cross-protocol messaging" says what users get.

// provenance5 is the provenance a guest MQTT client's messages carry, as
// MQTT 5 User Properties.
func provenance5(clientID string) paho.UserProperties {
	return paho.UserProperties{{Key: router.HdrProtocol, Value: "mqtt"}, {Key: router.HdrUser, Value: "guest"}, {Key: router.HdrClient, Value: clientID}}
}

// provOf returns the provenance headers of an AMQP delivery.
func provOf(h amqp.Table) [3]any {
	return [3]any{h[router.HdrProtocol], h[router.HdrUser], h[router.HdrClient]}
}

// TestProvenanceHeaders: every message says who published it, whichever
// protocol published and consumes it, and a publisher cannot forge it.
func TestProvenanceHeaders(t *testing.T) {
	srv := startInProcess(t)
	addrs := srv.Addrs()
	url := "amqp://guest:guest@" + addrs["amqp"] + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// The observers: an AMQP queue on amq.topic, a STOMP topic
	// subscription, an MQTT 5 subscription.
	obs := newChannel(t, dialConfig(t, url, amqp.Config{}))
	q := declareQueue(t, obs, "", nil)
	must(t, obs.QueueBind(q, "prov.#", "amq.topic", false, nil))
	got := consume(t, obs, q)
	sc := stompDial(t, addrs["stomp"], stomp.V12)
	ssub := stompSub(t, sc, "/topic/prov.#", stomp.AckAuto)
	mc := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "prov-observer", CleanStart: true, KeepAlive: 30}, opts5{})
	sub5(ctx, t, mc, paho.SubscribeOptions{Topic: "prov/#", QoS: 0})

	check := func(t *testing.T, key string, want [3]any) {
		t.Helper()
		d := recvN(t, got, 1)[0]
		if d.RoutingKey != key || provOf(d.Headers) != want {
			t.Errorf("AMQP consumer: key %q provenance %v, want %q %v", d.RoutingKey, provOf(d.Headers), key, want)
		}
		if d.Headers["forged"] != "kept" {
			t.Errorf("AMQP consumer: the publisher's own header is gone: %v", d.Headers)
		}
		m := stompNext(t, ssub)
		sp := [3]any{m.Header.Get(router.HdrProtocol), m.Header.Get(router.HdrUser), m.Header.Get(router.HdrClient)}
		if sp != want {
			t.Errorf("STOMP subscriber: provenance %v, want %v", sp, want)
		}
		if vs := m.Header.GetAll(router.HdrUser); len(vs) != 1 {
			t.Errorf("STOMP subscriber: %d %s headers, want 1", len(vs), router.HdrUser)
		}
		p := next5(t, mc)
		var mp [3]any
		n := 0
		for _, u := range p.Properties.User {
			switch u.Key {
			case router.HdrProtocol:
				mp[0], n = u.Value, n+1
			case router.HdrUser:
				mp[1], n = u.Value, n+1
			case router.HdrClient:
				mp[2], n = u.Value, n+1
			}
		}
		if mp != want || n != 3 {
			t.Errorf("MQTT 5 subscriber: provenance %v in %d user properties, want %v in 3", mp, n, want)
		}
	}

	t.Run("amqp", func(t *testing.T) {
		cfg := amqp.Config{Properties: amqp.Table{"connection_name": "billing-service"}}
		ch := newChannel(t, dialConfig(t, url, cfg))
		must(t, ch.PublishWithContext(ctx, "amq.topic", "prov.amqp", false, false, amqp.Publishing{
			Headers: amqp.Table{router.HdrUser: "mallory", "forged": "kept", router.HdrProtocol: "mqtt"},
			Body:    []byte("a"),
		}))
		check(t, "prov.amqp", [3]any{"amqp", "guest", "billing-service"})
	})
	t.Run("amqp-without-connection-name", func(t *testing.T) {
		conn := dialConfig(t, url, amqp.Config{})
		ch := newChannel(t, conn)
		must(t, ch.PublishWithContext(ctx, "amq.topic", "prov.amqp2", false, false, amqp.Publishing{
			Headers: amqp.Table{"forged": "kept"}, Body: []byte("a"),
		}))
		check(t, "prov.amqp2", [3]any{"amqp", "guest", conn.LocalAddr().String()})
	})
	t.Run("mqtt", func(t *testing.T) {
		pc := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "sensor-17", CleanStart: true, KeepAlive: 30}, opts5{})
		pub5(ctx, t, pc, &paho.Publish{Topic: "prov/mqtt", QoS: 1, Payload: []byte("m"), Properties: &paho.PublishProperties{
			User: paho.UserProperties{{Key: "forged", Value: "kept"}, {Key: router.HdrClient, Value: "not-me"}},
		}})
		check(t, "prov.mqtt", [3]any{"mqtt", "guest", "sensor-17"})
	})
	t.Run("stomp", func(t *testing.T) {
		c := stompDial(t, addrs["stomp"], stomp.V12, stomp.ConnOpt.Header("client-id", "dashboard-3"))
		stompSend(t, c, "/topic/prov.stomp", "s", "forged", "kept", router.HdrUser, "root")
		check(t, "prov.stomp", [3]any{"stomp", "guest", "dashboard-3"})
	})
	t.Run("stomp-without-client-id", func(t *testing.T) {
		nc, err := net.Dial("tcp", addrs["stomp"])
		must(t, err)
		c, err := stomp.Connect(nc, stompDialOpts(stomp.V12)...)
		must(t, err)
		t.Cleanup(func() { _ = c.Disconnect() })
		stompSend(t, c, "/topic/prov.stomp2", "s", "forged", "kept")
		check(t, "prov.stomp2", [3]any{"stomp", "guest", nc.LocalAddr().String()})
	})
}

// TestRetainedAcrossProtocols: MQTT retained messages reach AMQP and STOMP
// consumers that ask for them (binding argument or SUBSCRIBE header
// x-mqtt-retained), and AMQP and STOMP publishes with header
// x-mqtt-retain set retained messages for MQTT subscribers.
func TestRetainedAcrossProtocols(t *testing.T) {
	srv := startInProcess(t)
	addrs := srv.Addrs()
	url := "amqp://guest:guest@" + addrs["amqp"] + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	// An MQTT device retains its last reading.
	dev := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "thermo-1", CleanStart: true, KeepAlive: 30}, opts5{})
	pub5(ctx, t, dev, &paho.Publish{Topic: "site/r1/temp", QoS: 1, Retain: true, Payload: []byte("21.5"),
		Properties: &paho.PublishProperties{ContentType: "text/plain"}})

	t.Run("amqp-reads-mqtt-retained", func(t *testing.T) {
		ch := newChannel(t, dialConfig(t, url, amqp.Config{}))
		q := declareQueue(t, ch, "", nil)
		must(t, ch.QueueBind(q, "site.*.temp", "amq.topic", false, amqp.Table{router.RetainedArg: true}))
		d := recvN(t, consume(t, ch, q), 1)[0]
		if string(d.Body) != "21.5" || d.Exchange != "amq.topic" || d.RoutingKey != "site.r1.temp" ||
			d.ContentType != "text/plain" || d.Headers[router.RetainHeader] != true || d.DeliveryMode != amqp.Persistent {
			t.Fatalf("retained delivery: body %q exchange %q key %q content type %q headers %v mode %d",
				d.Body, d.Exchange, d.RoutingKey, d.ContentType, d.Headers, d.DeliveryMode)
		}
		// A binding without the argument gets only what is published later.
		q2 := declareQueue(t, ch, "", nil)
		must(t, ch.QueueBind(q2, "site.*.temp", "amq.topic", false, nil))
		if m, ok, err := ch.Get(q2, true); err != nil || ok {
			t.Fatalf("a plain binding got a retained message: %v %q", err, m.Body)
		}
	})
	t.Run("stomp-reads-mqtt-retained", func(t *testing.T) {
		c := stompDial(t, addrs["stomp"], stomp.V12)
		s := stompSub(t, c, "/topic/site.#", stomp.AckAuto, router.RetainedArg, "true")
		m := stompNext(t, s)
		if string(m.Body) != "21.5" || m.Header.Get("destination") != "/topic/site.r1.temp" || m.Header.Get(router.RetainHeader) != "true" {
			t.Fatalf("retained MESSAGE: body %q headers %v", m.Body, m.Header)
		}
	})
	t.Run("amqp-sets-retained", func(t *testing.T) {
		ch := newChannel(t, dialConfig(t, url, amqp.Config{}))
		must(t, ch.PublishWithContext(ctx, "amq.topic", "site.r2.temp", false, false, amqp.Publishing{
			DeliveryMode: amqp.Persistent, ContentType: "application/json", CorrelationId: "c-9",
			Headers: amqp.Table{router.RetainHeader: true, "unit": "C"}, Body: []byte(`{"t":19}`),
		}))
		c := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "late-1", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "site/r2/temp", QoS: 1})
		p := next5(t, c)
		if string(p.Payload) != `{"t":19}` || !p.Retain || p.QoS != 1 || p.Properties.ContentType != "application/json" ||
			string(p.Properties.CorrelationData) != "c-9" || p.Properties.User.Get("unit") != "C" {
			t.Fatalf("MQTT got %q retain %v QoS %d props %+v", p.Payload, p.Retain, p.QoS, p.Properties)
		}
		// Cleared the MQTT way, with an empty retained message.
		must(t, ch.PublishWithContext(ctx, "amq.topic", "site.r2.temp", false, false, amqp.Publishing{
			Headers: amqp.Table{router.RetainHeader: true},
		}))
		c2 := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "late-2", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, c2, paho.SubscribeOptions{Topic: "site/+/temp", QoS: 1})
		p = next5(t, c2)
		if string(p.Payload) != "21.5" {
			t.Fatalf("after clearing r2: got %q on %q, want only r1's 21.5", p.Payload, p.Topic)
		}
		none5(t, c2)
	})
	t.Run("stomp-sets-retained", func(t *testing.T) {
		c := stompDial(t, addrs["stomp"], stomp.V12)
		stompSend(t, c, "/topic/site.r3.temp", "18", router.RetainHeader, "true", "persistent", "true")
		m := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "late-3", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, m, paho.SubscribeOptions{Topic: "site/r3/temp", QoS: 1})
		p := next5(t, m)
		if string(p.Payload) != "18" || !p.Retain || p.QoS != 1 {
			t.Fatalf("MQTT got %q retain %v QoS %d", p.Payload, p.Retain, p.QoS)
		}
		if v := p.Properties.User.Get(router.HdrProtocol); v != "stomp" {
			t.Fatalf("retained message's provenance %q, want stomp", v)
		}
	})
	t.Run("not-a-topic", func(t *testing.T) {
		// A routing key with an MQTT wildcard is no topic: routed, not kept.
		ch := newChannel(t, dialConfig(t, url, amqp.Config{}))
		must(t, ch.PublishWithContext(ctx, "amq.topic", "site.+.temp", false, false, amqp.Publishing{
			Headers: amqp.Table{router.RetainHeader: true}, Body: []byte("x"),
		}))
		c := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "late-4", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "site/#", QoS: 0})
		var got []string
		for range 2 {
			got = append(got, string(next5(t, c).Payload))
		}
		none5(t, c)
		if strings.Join(got, ",") != "21.5,18" && strings.Join(got, ",") != "18,21.5" {
			t.Fatalf("retained after a wildcard key: %v", got)
		}
	})
}

// TestRoundTripAMQPThroughMQTT5: an AMQP message that an MQTT 5 client
// receives and publishes again, properties and all, reaches AMQP whole:
// every basic property (those MQTT 5 has no field for ride in x-amqp-*
// User Properties), the headers MQTT 5 can carry, the body byte for byte.
// Only the provenance changes (the MQTT client published it last) and
// the expiration, which MQTT counts in whole seconds.
func TestRoundTripAMQPThroughMQTT5(t *testing.T) {
	srv := startInProcess(t)
	addrs := srv.Addrs()
	url := "amqp://guest:guest@" + addrs["amqp"] + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	echo := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "echo", CleanStart: true, KeepAlive: 30}, opts5{})
	sub5(ctx, t, echo, paho.SubscribeOptions{Topic: "rt/out", QoS: 1})
	ch := newChannel(t, dialConfig(t, url, amqp.Config{}))
	q := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(q, "rt.back", "amq.topic", false, nil))
	back := consume(t, ch, q)

	body := make([]byte, 256)
	for i := range body {
		body[i] = byte(i)
	}
	sent := amqp.Publishing{
		ContentType: "application/octet-stream", ContentEncoding: "gzip", DeliveryMode: amqp.Persistent, Priority: 7,
		CorrelationId: "corr-42", ReplyTo: "rt.replies", Expiration: "120000", MessageId: "m-1",
		Timestamp: time.Unix(1_700_000_000, 0), Type: "reading", UserId: "guest", AppId: "meter",
		Headers: amqp.Table{"site": "north", "seq": int32(5), "ok": true, "site2": "south"},
		Body:    body,
	}
	must(t, ch.PublishWithContext(ctx, "amq.topic", "rt.out", false, false, sent))
	p := next5(t, echo)
	if p.QoS != 1 || string(p.Payload) != string(body) {
		t.Fatalf("MQTT 5 got QoS %d body %x", p.QoS, p.Payload)
	}
	// Published again as received, to another topic.
	pub5(ctx, t, echo, &paho.Publish{Topic: "rt/back", QoS: p.QoS, Payload: p.Payload, Properties: p.Properties})

	d := recvN(t, back, 1)[0]
	if string(d.Body) != string(body) {
		t.Fatalf("body %x", d.Body)
	}
	got := [...]any{d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority, d.CorrelationId, d.ReplyTo,
		d.MessageId, d.Timestamp.Unix(), d.Type, d.UserId, d.AppId}
	want := [...]any{sent.ContentType, sent.ContentEncoding, sent.DeliveryMode, sent.Priority, sent.CorrelationId, sent.ReplyTo,
		sent.MessageId, sent.Timestamp.Unix(), sent.Type, sent.UserId, sent.AppId}
	if got != want {
		t.Errorf("properties after the round trip\n got %v\nwant %v", got, want)
	}
	if e := d.Expiration; e != "120000" && e != "119000" {
		t.Errorf("expiration %q, want 120000 (or a second less)", e)
	}
	// MQTT 5 User Properties are text: the header values come back as text.
	wantH := map[string]any{"site": "north", "seq": "5", "ok": "true", "site2": "south",
		router.HdrProtocol: "mqtt", router.HdrUser: "guest", router.HdrClient: "echo"}
	for k, v := range wantH {
		if d.Headers[k] != v {
			t.Errorf("header %q = %#v, want %#v", k, d.Headers[k], v)
		}
	}
	for k := range d.Headers {
		if _, ok := wantH[k]; !ok && !strings.HasPrefix(k, "x-mqtt-") {
			t.Errorf("unexpected header %q = %#v", k, d.Headers[k])
		}
	}
}

// TestRequestReplyMQTT5AndAMQP: an MQTT 5 device calls an AMQP service
// (which answers to amq.topic with reply_to as routing key), and an AMQP
// client using direct reply-to calls an MQTT 5 responder (which answers
// to the Response Topic it got); Correlation Data and correlation_id
// carry over both ways.
func TestRequestReplyMQTT5AndAMQP(t *testing.T) {
	srv := startInProcess(t)
	addrs := srv.Addrs()
	url := "amqp://guest:guest@" + addrs["amqp"] + "/"
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	t.Run("mqtt5-calls-amqp", func(t *testing.T) {
		svc := newChannel(t, dialConfig(t, url, amqp.Config{}))
		q := declareQueue(t, svc, "", nil)
		must(t, svc.QueueBind(q, "svc.requests", "amq.topic", false, nil))
		reqs := consume(t, svc, q)
		dev := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "dev1", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, dev, paho.SubscribeOptions{Topic: "svc/replies/dev1", QoS: 1})
		pub5(ctx, t, dev, &paho.Publish{Topic: "svc/requests", QoS: 1, Payload: []byte("ping"), Properties: &paho.PublishProperties{
			ResponseTopic: "svc/replies/dev1", CorrelationData: []byte{0, 1, 2, 0xff}}})
		d := recvN(t, reqs, 1)[0]
		if d.ReplyTo != "svc.replies.dev1" || d.CorrelationId != "\x00\x01\x02\xff" {
			t.Fatalf("AMQP service got reply_to %q correlation_id %q", d.ReplyTo, d.CorrelationId)
		}
		must(t, svc.PublishWithContext(ctx, "amq.topic", d.ReplyTo, false, false, amqp.Publishing{
			CorrelationId: d.CorrelationId, Body: []byte("pong")}))
		r := next5(t, dev)
		if r.Topic != "svc/replies/dev1" || string(r.Payload) != "pong" || string(r.Properties.CorrelationData) != "\x00\x01\x02\xff" {
			t.Fatalf("device got %q on %q correlation %x", r.Payload, r.Topic, r.Properties.CorrelationData)
		}
	})
	t.Run("amqp-direct-reply-to-calls-mqtt5", func(t *testing.T) {
		responder := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "responder", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, responder, paho.SubscribeOptions{Topic: "svc/echo", QoS: 1})
		ch := newChannel(t, dialConfig(t, url, amqp.Config{}))
		replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
		must(t, err)
		must(t, ch.PublishWithContext(ctx, "amq.topic", "svc.echo", false, false, amqp.Publishing{
			ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: "q1", Body: []byte("hello")}))
		req := next5(t, responder)
		rt := req.Properties.ResponseTopic
		if !strings.HasPrefix(rt, "amq/rabbitmq/reply-to/") || string(req.Properties.CorrelationData) != "q1" {
			t.Fatalf("responder got Response Topic %q correlation %q", rt, req.Properties.CorrelationData)
		}
		pub5(ctx, t, responder, &paho.Publish{Topic: rt, QoS: 1, Payload: []byte("HELLO"),
			Properties: &paho.PublishProperties{CorrelationData: req.Properties.CorrelationData}})
		d := recvN(t, replies, 1)[0]
		if string(d.Body) != "HELLO" || d.CorrelationId != "q1" {
			t.Fatalf("requester got %q correlation_id %q", d.Body, d.CorrelationId)
		}
	})
}

// TestProvenanceGivesWayToMaximumPacketSize: a message that fits an MQTT 5
// client's Maximum Packet Size only without what the broker adds
// (provenance, x-amqp-* properties) is delivered without them, rather
// than discarded; one too large even then is discarded, as MQTT 5 says.
func TestProvenanceGivesWayToMaximumPacketSize(t *testing.T) {
	srv := startInProcess(t)
	addrs := srv.Addrs()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mps := uint32(200)
	small := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "small-packets", CleanStart: true, KeepAlive: 30,
		Properties: &paho.ConnectProperties{MaximumPacketSize: &mps}}, opts5{})
	sub5(ctx, t, small, paho.SubscribeOptions{Topic: "mps/#", QoS: 1})
	pub := open5(ctx, t, addrs["mqtt"], &paho.Connect{ClientID: "a-publisher-with-a-long-client-identifier", CleanStart: true, KeepAlive: 30}, opts5{})

	fits := strings.Repeat("f", 150)   // with provenance about 290 bytes
	tooBig := strings.Repeat("b", 300) // over 200 bytes in any case
	for _, body := range []string{fits, tooBig, "last"} {
		pub5(ctx, t, pub, &paho.Publish{Topic: "mps/t", QoS: 1, Payload: []byte(body),
			Properties: &paho.PublishProperties{User: paho.UserProperties{{Key: "k", Value: "v"}}}})
	}
	p := next5(t, small)
	if string(p.Payload) != fits {
		t.Fatalf("first delivery %d bytes, want the %d-byte message that fits without provenance", len(p.Payload), len(fits))
	}
	if !slices.Equal(p.Properties.User, paho.UserProperties{{Key: "k", Value: "v"}}) {
		t.Fatalf("user properties %v, want the publisher's only", p.Properties.User)
	}
	if p = next5(t, small); string(p.Payload) != "last" {
		t.Fatalf("second delivery %q, want the too-large message discarded", p.Payload)
	}
	if len(p.Properties.User) != 4 {
		t.Fatalf("a small message lost its provenance: %v", p.Properties.User)
	}
}
