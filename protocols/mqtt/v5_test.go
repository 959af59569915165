package mqtt

import (
	"bytes"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/router"
)

// connect5 connects an MQTT 5 client with pk's properties.
func (h *harness) connect5(id string, p packets.Properties) *packets.Packet {
	h.t.Helper()
	h.v = 5
	pk := connectPacket(5, id, true, 0, "", "")
	pk.Properties = p
	h.send(h.encode(pk))
	return h.expect(tConnack)
}

// Inbound topic aliases: set with a topic, used without one, bounded by
// the Topic Alias Maximum.
func TestTopicAlias(t *testing.T) {
	sub := newHarness(t, Config{TopicAliasMax: 2})
	sub.connectOK(5, "s")
	sub.subscribe(1, 0, "#")
	pub := sub.peer()
	if ack := pub.connect5("p", packets.Properties{}); ack.Properties.TopicAliasMaximum != 2 {
		t.Fatalf("CONNACK %+v", ack.Properties)
	}
	send := func(topic string, alias uint16, body string) {
		pub.send(pub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish}, TopicName: topic, Payload: []byte(body),
			Properties: packets.Properties{TopicAlias: alias, TopicAliasFlag: true}}))
	}
	send("a/b", 1, "set")
	send("", 1, "use")
	send("c", 2, "other")
	send("", 1, "again")
	for _, want := range []string{"a/b=set", "a/b=use", "c=other", "a/b=again"} {
		m := sub.expect(tPublish)
		if got := m.TopicName + "=" + string(m.Payload); got != want {
			t.Fatalf("got %s, want %s", got, want)
		}
	}
	send("", 2, "x")
	sub.expect(tPublish)
	for _, tc := range []struct {
		name string
		pk   []byte
		rc   byte
	}{
		{"above the maximum", []byte{0x30, 0x07, 0x00, 0x01, 'd', 0x03, 0x23, 0x00, 0x03}, rcTopicAliasInvalid},
		{"zero", []byte{0x30, 0x07, 0x00, 0x01, 'd', 0x03, 0x23, 0x00, 0x00}, rcTopicAliasInvalid},
		{"never set", []byte{0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01}, rcProtocolError},
	} {
		p := pub.peer()
		p.connect5("p2", packets.Properties{})
		p.send(tc.pk)
		if d := p.expect(tDisconnect); d.ReasonCode != tc.rc {
			t.Fatalf("%s: DISCONNECT %+v", tc.name, d)
		}
		p.close() // the client closes after the DISCONNECT; the session lingers until it does

	}
}

// Subscription identifiers come with the messages of their
// subscriptions: every matching one, in one PUBLISH.
func TestSubscriptionIdentifiers(t *testing.T) {
	sub := newHarness(t, Config{})
	sub.connectOK(5, "s")
	sub.subscribeWith(1, 7, packets.Subscription{Filter: "s/+", Qos: 1})
	sub.subscribeWith(2, 9, packets.Subscription{Filter: "s/#", Qos: 0})
	sub.subscribeWith(3, 0, packets.Subscription{Filter: "s/x", Qos: 0})
	pub := sub.peer()
	pub.connectOK(5, "p")
	pub.publish("s/x", 1, 1, "both")
	pub.expect(tPuback)
	m := sub.expect(tPublish)
	ids := slices.Sorted(slices.Values(m.Properties.SubscriptionIdentifier))
	if !slices.Equal(ids, []int{7, 9}) || m.FixedHeader.Qos != 1 {
		t.Fatalf("ids %v QoS %d", ids, m.FixedHeader.Qos)
	}
	sub.ack(tPuback, m.PacketID)
	pub.publish("s/y/z", 0, 0, "one")
	if m := sub.expect(tPublish); !slices.Equal(m.Properties.SubscriptionIdentifier, []int{9}) {
		t.Fatalf("ids %v", m.Properties.SubscriptionIdentifier)
	}
	// A retained message carries the id of the subscription it is sent for.
	pub.publishRetained("r/1", 0, 0, "kept")
	sub.subscribeWith(4, 11, packets.Subscription{Filter: "r/#"})
	if m := sub.expect(tPublish); !slices.Equal(m.Properties.SubscriptionIdentifier, []int{11}) || !m.FixedHeader.Retain {
		t.Fatalf("retained: %+v", m)
	}
}

// Shared subscriptions: one queue per group and filter, its messages
// spread over the group's members; every group gets every message; no
// retained messages on subscribe; the queue goes with the last member.
func TestSharedSubscriptions(t *testing.T) {
	base := newHarness(t, Config{})
	base.connectOK(5, "base")
	base.publishRetained("job/0", 1, 1, "retained")
	members := make([]*harness, 3)
	for i := range members {
		members[i] = base.peer()
		v := byte(5)
		if i == 2 {
			v = 4 // shared subscriptions work for 3.1.1 clients too
		}
		members[i].connectOK(v, "m"+string(rune('0'+i)))
		members[i].subscribe(1, 1, "$share/g/job/+")
	}
	other := base.peer()
	other.connectOK(5, "other")
	other.subscribe(1, 0, "$share/h/job/#")
	q := base.s.vhost.Queue(sharedQueue("g", "job/+"))
	if q == nil || !q.Durable {
		t.Fatal("no shared queue")
	}
	if _, consumers := q.Counts(); consumers != 3 {
		t.Fatalf("%d consumers", consumers)
	}
	for _, m := range members {
		m.quiet() // no retained message for a shared subscription
	}
	const n = 12
	for i := range n {
		base.publish("job/"+string(rune('a'+i)), 1, uint16(i+2), "work")
		base.expect(tPuback)
	}
	seen := map[string]bool{}
	for _, m := range members {
		got := 0
		deadline := time.Now().Add(5 * time.Second)
		for got < n/3 && time.Now().Before(deadline) {
			m.pump()
			for len(m.got) > 0 {
				p := m.next()
				if p.FixedHeader.Type != tPublish || seen[p.TopicName] {
					t.Fatalf("unexpected or duplicate %+v", p)
				}
				seen[p.TopicName] = true
				m.ack(tPuback, p.PacketID)
				got++
			}
			time.Sleep(time.Millisecond)
		}
		if got != n/3 {
			t.Fatalf("member got %d of %d, want an even share", got, n)
		}
	}
	if len(other.collect(n)) != n {
		t.Fatal("the other group missed messages")
	}
	// A member that leaves takes nothing with it; the last one takes the
	// queue.
	members[0].send(members[0].encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tUnsubscribe, Qos: 1}, PacketID: 2,
		Filters: packets.Subscriptions{{Filter: "$share/g/job/+"}}}))
	members[0].expect(tUnsuback)
	members[1].close()
	if base.s.vhost.Queue(q.Name) == nil {
		t.Fatal("shared queue deleted with members left")
	}
	members[2].close()
	if base.s.vhost.Queue(q.Name) != nil {
		t.Fatal("shared queue outlives its last member")
	}
	// Malformed share names are invalid filters.
	if ack := other.subscribe(2, 0, "$share/g", "$share//t", "$share/a+b/t"); !bytes.Equal(ack.ReasonCodes, []byte{0x8F, 0x8F, 0x8F}) {
		t.Fatalf("SUBACK % x", ack.ReasonCodes)
	}
}

// A persistent member keeps its place in the group while offline: the
// group's messages wait in the shared queue, across a restart.
func TestSharedSubscriptionPersistent(t *testing.T) {
	m := newHarness(t, Config{})
	m.connectPersistent(5, "member", 3600)
	m.subscribe(1, 1, "$share/g/t")
	m.close()
	pub := m.peer()
	pub.connectOK(5, "p")
	pub.publish("t", 1, 1, "waiting")
	if a := pub.expect(tPuback); a.ReasonCode != 0 {
		t.Fatalf("PUBACK %+v", a)
	}
	rt, err := router.New(router.Config{Store: m.store})
	if err != nil {
		t.Fatal(err)
	}
	again := openHarness(t, New(Config{Router: rt, Store: m.store}), m.store)
	if ack := again.connectPersistent(5, "member", 3600); !ack.SessionPresent {
		t.Fatal("session not present")
	}
	if p := again.expect(tPublish); string(p.Payload) != "waiting" || p.FixedHeader.Qos != 1 {
		t.Fatalf("got %+v", p)
	}
}

// MQTT 5 message properties survive the router both ways, in order.
func TestPropertyMapping(t *testing.T) {
	sub := newHarness(t, Config{})
	sub.connectOK(5, "s")
	sub.subscribe(1, 1, "p/#")
	pub := sub.peer()
	pub.connectOK(5, "p")
	long := bytes.Repeat([]byte("c"), 300)
	longTopic := "r/" + strings.Repeat("t", 300)
	user := []packets.UserProperty{{Key: "b", Val: "2"}, {Key: "a", Val: "1"}, {Key: "b", Val: "3"}}
	for i, props := range []packets.Properties{
		{User: user, PayloadFormat: 1, PayloadFormatFlag: true, ContentType: "text/plain", CorrelationData: []byte("req-1"), ResponseTopic: "r/1"},
		{CorrelationData: long, ResponseTopic: longTopic},
	} {
		// mochi encodes Response Topic and Correlation Data only when told.
		pub.send(pub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1}, TopicName: "p/x", PacketID: uint16(i + 1),
			Payload: []byte("body"), Properties: props, Mods: packets.Mods{AllowResponseInfo: true}}))
		pub.expect(tPuback)
		m := sub.expect(tPublish)
		sub.ack(tPuback, m.PacketID)
		got := m.Properties
		if !slices.Equal(got.User, props.User) || got.PayloadFormat != props.PayloadFormat || got.PayloadFormatFlag != props.PayloadFormatFlag ||
			got.ContentType != props.ContentType || !bytes.Equal(got.CorrelationData, props.CorrelationData) || got.ResponseTopic != props.ResponseTopic {
			t.Fatalf("%d: got %+v\nwant %+v", i, got, props)
		}
	}
	// From another protocol: headers become user properties, x-mqtt-
	// headers and values without a text form do not.
	vh := sub.s.vhost
	msg := &router.Message{RoutingKey: "p.amqp", Body: []byte("hi")}
	msg.Properties.Flags = router.HasHeaders | router.HasReplyTo | router.HasCorrelationID
	msg.Properties.Headers = router.Table{{Key: "n", Value: int32(7)}, {Key: "ok", Value: true}, {Key: "t", Value: router.Table{}},
		{Key: hdrQoS, Value: uint8(0)}, {Key: "s", Value: []byte("bytes")}}
	msg.Properties.ReplyTo, msg.Properties.CorrelationID = "amq.gen-x", "c1"
	if _, err := vh.Publish("amq.topic", msg, nil); err != nil {
		t.Fatal(err)
	}
	m := sub.expect(tPublish)
	want := []packets.UserProperty{{Key: "n", Val: "7"}, {Key: "ok", Val: "true"}, {Key: "s", Val: "bytes"}}
	// reply_to is a routing key: the Response Topic is its topic form.
	if !slices.Equal(m.Properties.User, want) || m.Properties.ResponseTopic != "amq/gen-x" || string(m.Properties.CorrelationData) != "c1" || m.TopicName != "p/amqp" {
		t.Fatalf("got %+v", m.Properties)
	}
	// A routing key that is no valid topic name is not sent.
	bad := &router.Message{RoutingKey: "p.#", Body: []byte("x")}
	if _, err := vh.Publish("amq.topic", bad, nil); err != nil {
		t.Fatal(err)
	}
	sub.quiet()
}

// The client's Maximum Packet Size: larger messages are dropped for it.
func TestMaximumPacketSizeOutbound(t *testing.T) {
	sub := newHarness(t, Config{})
	sub.connect5("s", packets.Properties{MaximumPacketSize: 64})
	sub.subscribe(1, 1, "m")
	pub := sub.peer()
	pub.connectOK(5, "p")
	pub.publish("m", 1, 1, strings.Repeat("x", 100))
	pub.expect(tPuback)
	pub.publish("m", 1, 2, "small")
	pub.expect(tPuback)
	if m := sub.expect(tPublish); string(m.Payload) != "small" {
		t.Fatalf("got %+v", m)
	}
	if n := sub.s.ch.Unacked(); n != 1 {
		t.Fatalf("%d unacked: the dropped message must be settled", n)
	}
}

// CONNACK properties: Server Keep Alive, Response Information, Reason
// String on refusal; Request Problem Information 0 keeps reason strings off
// acknowledgements.
func TestConnackV5(t *testing.T) {
	h := newHarness(t, Config{MaxKeepAlive: 30 * time.Second, RetainedMaxMessages: 1})
	ack := h.connect5("c", packets.Properties{RequestResponseInfo: 1})
	if ack.Properties.ServerKeepAlive != 30 || !ack.Properties.ServerKeepAliveFlag || ack.Properties.ResponseInfo != "response/c" {
		t.Fatalf("CONNACK %+v", ack.Properties)
	}
	if h.s.keepalive != 30 {
		t.Fatalf("keepalive %ds", h.s.keepalive)
	}
	h.publishRetained("a", 1, 1, "x")
	if a := h.publishRetained("b", 1, 2, "y"); a.ReasonCode != rcQuotaExceeded || a.Properties.ReasonString == "" {
		t.Fatalf("PUBACK %+v", a)
	}
	q := h.peer()
	q.connect5("q", packets.Properties{RequestProblemInfo: 0, RequestProblemInfoFlag: true})
	if a := q.publishRetained("b", 1, 1, "y"); a.ReasonCode != rcQuotaExceeded || a.Properties.ReasonString != "" {
		t.Fatalf("PUBACK %+v", a)
	}
	bad := h.peer()
	bad.v = 5
	pk := connectPacket(5, "b", true, 0, "guest", "wrong")
	bad.send(bad.encode(pk))
	if a := bad.expect(tConnack); a.ReasonCode != rcBadCredentials || a.Properties.ReasonString == "" {
		t.Fatalf("CONNACK %+v", a)
	}
	auth := h.peer()
	if a := auth.connect5("x", packets.Properties{AuthenticationMethod: "SCRAM-SHA-1"}); a.ReasonCode != rcBadAuthMethod {
		t.Fatalf("CONNACK %+v", a)
	}
}

// A session's subscriptions are bounded.
func TestSubscriptionLimit(t *testing.T) {
	defer func(n int) { maxSubscriptions = n }(maxSubscriptions)
	maxSubscriptions = 50
	h := newHarness(t, Config{})
	h.connectOK(5, "many")
	var subs []packets.Subscription
	for i := range maxSubscriptions + 1 {
		subs = append(subs, packets.Subscription{Filter: "f/" + strconv.Itoa(i)})
	}
	ack := h.subscribeWith(1, 0, subs...)
	if ack.ReasonCodes[maxSubscriptions-1] != 0 || ack.ReasonCodes[maxSubscriptions] != rcQuotaExceeded {
		t.Fatalf("codes %x", ack.ReasonCodes[maxSubscriptions-1:])
	}
	// Resubscribing to an existing filter is still fine.
	if ack := h.subscribeWith(2, 0, packets.Subscription{Filter: "f/0", Qos: 1}); ack.ReasonCodes[0] != 1 {
		t.Fatalf("codes %x", ack.ReasonCodes)
	}
}

// Topics starting with '$' do not match filters starting with a wildcard,
// though AMQP's '#' binding routes them to the queue; a '*' in a filter is
// a character.
func TestDollarTopicsAndStars(t *testing.T) {
	for _, v := range []byte{4, 5} {
		sub := newHarness(t, Config{})
		sub.connectOK(v, "s")
		sub.subscribe(1, 0, "#", "+/star/*")
		shared := sub.peer()
		shared.connectOK(v, "sh")
		shared.subscribe(1, 0, "$share/g/#")
		sys := sub.peer()
		sys.connectOK(v, "sys")
		sys.subscribe(1, 0, "$SYS/#")
		pub := sub.peer()
		pub.connectOK(v, "p")
		pub.publish("$SYS/load", 0, 0, "1")
		if m := sys.expect(tPublish); m.TopicName != "$SYS/load" {
			t.Fatalf("v%d: got %+v", v, m)
		}
		sub.quiet()
		shared.quiet()
		pub.publish("x/star/y", 0, 0, "not for the star filter")
		if m := sub.expect(tPublish); m.TopicName != "x/star/y" {
			t.Fatalf("v%d: got %+v", v, m)
		}
		sub.quiet() // once, for '#'
		sub.send(sub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tUnsubscribe, Qos: 1}, PacketID: 2, Filters: packets.Subscriptions{{Filter: "#"}}}))
		sub.expect(tUnsuback)
		pub.publish("x/star/y", 0, 0, "nobody")
		pub.publish("x/star/*", 0, 0, "star")
		if m := sub.expect(tPublish); string(m.Payload) != "star" {
			t.Fatalf("v%d: got %+v", v, m)
		}
		sub.quiet()
	}
}
