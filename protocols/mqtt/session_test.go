package mqtt

import (
	"bytes"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/protocols/protocolstest"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

var connIDs = struct {
	sync.Mutex
	n uint64
}{}

// harness drives one session from the test goroutine, as the transport's
// loop would.
type harness struct {
	t       testing.TB
	store   *memstore.Store
	rt      *router.Router
	a       *Adapter
	c       *protocolstest.Conn
	s       *session
	v       byte // protocol level the client speaks
	pending []byte
	out     []byte
	got     []*packets.Packet
	feedErr error
	failed  bool
	closed  bool
}

func newRouter(t testing.TB, now func() time.Time) (*router.Router, *memstore.Store) {
	t.Helper()
	st := memstore.New()
	rt, err := router.New(router.Config{Store: st, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return rt, st
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	rt, st := newRouter(t, cfg.Now)
	cfg.Router, cfg.Store = rt, st
	return openHarness(t, New(cfg), st)
}

func openHarness(t testing.TB, a *Adapter, st *memstore.Store) *harness {
	connIDs.Lock()
	connIDs.n++
	id := connIDs.n
	connIDs.Unlock()
	c := protocolstest.NewConn(id, "127.0.0.1:40000", "127.0.0.1:1883")
	h := &harness{t: t, store: st, rt: a.cfg.Router, a: a, c: c, v: 4}
	h.s = a.Open(c).(*session)
	t.Cleanup(h.close)
	return h
}

// close ends the connection as the transport would: Closed, once.
func (h *harness) close() {
	if !h.closed {
		h.closed = true
		h.s.Closed(h.c.CloseErr())
	}
}

// peer opens another session on the same adapter and store.
func (h *harness) peer() *harness { return openHarness(h.t, h.a, h.store) }

func (h *harness) send(b []byte) {
	h.t.Helper()
	h.pending = append(h.pending, b...)
	h.pump()
}

func (h *harness) pump() {
	h.t.Helper()
	if len(h.pending) > 0 && h.feedErr == nil {
		n, err := h.s.Feed(h.pending)
		if n < 0 || n > len(h.pending) {
			h.t.Fatalf("Feed consumed %d of %d", n, len(h.pending))
		}
		h.pending = h.pending[n:]
		if err != nil {
			h.feedErr = err
		}
	}
	for {
		vec := h.s.Output(nil)
		if len(vec) == 0 {
			break
		}
		for _, b := range vec {
			h.out = append(h.out, b...)
		}
	}
	if h.feedErr != nil && !h.failed {
		h.failed = true
		h.out = append(h.out, h.s.Fail(h.feedErr)...)
	}
	h.parse()
	// The transport calls Closed once the session asked to close and its
	// output is flushed.
	if h.c.IsClosed() || h.feedErr != nil {
		h.close()
	}
}

// parse decodes the server's packets with mochi's decoder.
func (h *harness) parse() {
	h.t.Helper()
	for {
		first, rem, hdr, ok, err := parseHeader(h.out)
		if err != nil {
			h.t.Fatalf("bad fixed header from server: %v", err)
		}
		if !ok || len(h.out) < hdr+rem {
			return
		}
		body := append([]byte(nil), h.out[hdr:hdr+rem]...)
		h.out = h.out[hdr+rem:]
		pk := &packets.Packet{ProtocolVersion: h.v}
		if err := pk.FixedHeader.Decode(first); err != nil {
			h.t.Fatalf("server sent bad flags %#x: %v", first, err)
		}
		pk.FixedHeader.Remaining = rem
		var derr error
		switch pk.FixedHeader.Type {
		case tConnack:
			derr = pk.ConnackDecode(body)
		case tPublish:
			derr = pk.PublishDecode(body)
		case tPuback:
			derr = pk.PubackDecode(body)
		case tPubrec:
			derr = pk.PubrecDecode(body)
		case tPubrel:
			derr = pk.PubrelDecode(body)
		case tPubcomp:
			derr = pk.PubcompDecode(body)
		case tSuback:
			derr = pk.SubackDecode(body)
		case tUnsuback:
			derr = pk.UnsubackDecode(body)
		case tPingresp:
		case tDisconnect:
			derr = pk.DisconnectDecode(body)
		default:
			h.t.Fatalf("server sent packet type %d", pk.FixedHeader.Type)
		}
		if derr != nil {
			h.t.Fatalf("server sent malformed %s: %v", packets.PacketNames[pk.FixedHeader.Type], derr)
		}
		h.got = append(h.got, pk)
	}
}

// next returns the next packet from the server, waiting for wakes.
func (h *harness) next() *packets.Packet {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for len(h.got) == 0 {
		h.pump()
		if len(h.got) > 0 {
			break
		}
		select {
		case <-h.c.Woken():
		case <-time.After(10 * time.Millisecond):
		case <-deadline:
			h.t.Fatal("no packet from the server")
		}
	}
	pk := h.got[0]
	h.got = h.got[1:]
	return pk
}

func (h *harness) expect(typ byte) *packets.Packet {
	h.t.Helper()
	pk := h.next()
	if pk.FixedHeader.Type != typ {
		h.t.Fatalf("got %s %+v, want %s", packets.PacketNames[pk.FixedHeader.Type], pk, packets.PacketNames[typ])
	}
	return pk
}

// quiet checks that the server sends nothing for a while.
func (h *harness) quiet() {
	h.t.Helper()
	time.Sleep(20 * time.Millisecond)
	h.pump()
	if len(h.got) > 0 {
		h.t.Fatalf("unexpected %s %+v", packets.PacketNames[h.got[0].FixedHeader.Type], h.got[0])
	}
}

func (h *harness) encode(pk *packets.Packet) []byte {
	h.t.Helper()
	pk.ProtocolVersion = h.v
	var b bytes.Buffer
	var err error
	switch pk.FixedHeader.Type {
	case tConnect:
		err = pk.ConnectEncode(&b)
	case tPublish:
		err = pk.PublishEncode(&b)
	case tPuback:
		err = pk.PubackEncode(&b)
	case tPubrec:
		err = pk.PubrecEncode(&b)
	case tPubrel:
		err = pk.PubrelEncode(&b)
	case tPubcomp:
		err = pk.PubcompEncode(&b)
	case tSubscribe:
		err = pk.SubscribeEncode(&b)
	case tUnsubscribe:
		err = pk.UnsubscribeEncode(&b)
	case tPingreq:
		err = pk.PingreqEncode(&b)
	case tDisconnect:
		err = pk.DisconnectEncode(&b)
	}
	if err != nil {
		h.t.Fatal(err)
	}
	return b.Bytes()
}

func connectPacket(v byte, id string, clean bool, keepalive uint16, user, pass string) *packets.Packet {
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: tConnect}, ProtocolVersion: v}
	pk.Connect.ProtocolName = []byte("MQTT")
	if v == 3 {
		pk.Connect.ProtocolName = []byte("MQIsdp")
	}
	pk.Connect.ClientIdentifier = id
	pk.Connect.Clean = clean
	pk.Connect.Keepalive = keepalive
	if user != "" {
		pk.Connect.UsernameFlag, pk.Connect.Username = true, []byte(user)
		pk.Connect.PasswordFlag, pk.Connect.Password = true, []byte(pass)
	}
	return pk
}

// connect sends CONNECT and expects a successful CONNACK.
func (h *harness) connectOK(v byte, id string) *packets.Packet {
	h.t.Helper()
	h.v = v
	h.send(h.encode(connectPacket(v, id, true, 0, "", "")))
	ack := h.expect(tConnack)
	if ack.ReasonCode != 0 || ack.SessionPresent {
		h.t.Fatalf("CONNACK %+v", ack)
	}
	return ack
}

func (h *harness) subscribe(id uint16, qos byte, filters ...string) *packets.Packet {
	h.t.Helper()
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: tSubscribe, Qos: 1}, PacketID: id}
	for _, f := range filters {
		pk.Filters = append(pk.Filters, packets.Subscription{Filter: f, Qos: qos})
	}
	h.send(h.encode(pk))
	ack := h.expect(tSuback)
	if ack.PacketID != id || len(ack.ReasonCodes) != len(filters) {
		h.t.Fatalf("SUBACK %+v", ack)
	}
	return ack
}

// ack sends PUBACK, PUBREC, PUBREL or PUBCOMP for id.
func (h *harness) ack(typ byte, id uint16) {
	h.t.Helper()
	pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: typ}, PacketID: id}
	if typ == tPubrel {
		pk.FixedHeader.Qos = 1
	}
	h.send(h.encode(pk))
}

func (h *harness) publish(topic string, qos byte, id uint16, body string) {
	h.t.Helper()
	h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: qos}, TopicName: topic, PacketID: id, Payload: []byte(body)}))
}

func TestConnect(t *testing.T) {
	for _, v := range []byte{3, 4, 5} {
		h := newHarness(t, Config{})
		h.connectOK(v, "c1")
		h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPingreq}}))
		h.expect(tPingresp)
		h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect}}))
		if !h.c.IsClosed() || h.c.CloseErr() != nil {
			t.Fatalf("v%d: DISCONNECT did not close cleanly: %v", v, h.c.CloseErr())
		}
	}
}

func TestConnectAssignsClientID(t *testing.T) {
	h := newHarness(t, Config{})
	ack := h.connectOK(5, "")
	if ack.Properties.AssignedClientID == "" {
		t.Fatalf("no assigned client id: %+v", ack.Properties)
	}
	p := ack.Properties
	if p.RetainAvailable != 1 || p.SubIDAvailable != 1 || p.SharedSubAvailable != 1 || p.TopicAliasMaximum != DefaultTopicAliasMax {
		t.Fatalf("capabilities: %+v", p)
	}
	// 3.1.1: an empty id needs a clean session.
	h = newHarness(t, Config{})
	h.send(h.encode(connectPacket(4, "", false, 0, "", "")))
	if ack := h.expect(tConnack); ack.ReasonCode != 0x02 {
		t.Fatalf("CONNACK %+v", ack)
	}
	h = newHarness(t, Config{})
	h.send(h.encode(connectPacket(4, "", true, 0, "", "")))
	if ack := h.expect(tConnack); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
}

func TestConnectRefused(t *testing.T) {
	for _, tc := range []struct {
		v          byte
		user, pass string
		rc         byte
	}{
		{4, "guest", "wrong", 0x04},
		{4, "nobody", "x", 0x04},
		{5, "guest", "wrong", 0x86},
		{4, "guest", "guest", 0},
		{5, "guest", "guest", 0},
	} {
		h := newHarness(t, Config{})
		h.v = tc.v
		h.send(h.encode(connectPacket(tc.v, "c", true, 0, tc.user, tc.pass)))
		ack := h.expect(tConnack)
		if ack.ReasonCode != tc.rc {
			t.Errorf("v%d %s/%s: CONNACK code %#x, want %#x", tc.v, tc.user, tc.pass, ack.ReasonCode, tc.rc)
		}
		if (tc.rc != 0) != (h.feedErr != nil) {
			t.Errorf("v%d %s/%s: feed error %v", tc.v, tc.user, tc.pass, h.feedErr)
		}
	}
	// Anonymous clients are guest, which is loopback-only.
	h := newHarness(t, Config{})
	h.c.SetRemote("192.0.2.1:5000")
	h.send(h.encode(connectPacket(4, "c", true, 0, "", "")))
	if ack := h.expect(tConnack); ack.ReasonCode != 0x04 {
		t.Fatalf("remote guest: CONNACK %+v", ack)
	}
}

func TestUnsupportedProtocol(t *testing.T) {
	h := newHarness(t, Config{})
	pk := connectPacket(4, "c", true, 0, "", "")
	b := h.encode(pk)
	b[8] = 6 // protocol level
	h.send(b)
	if ack := h.expect(tConnack); ack.ReasonCode != 0x01 {
		t.Fatalf("CONNACK %+v", ack)
	}
	if h.feedErr == nil {
		t.Fatal("connection stays open")
	}
	// Not a CONNECT first: closed without a word.
	h = newHarness(t, Config{})
	h.send([]byte{0xC0, 0x00})
	if h.feedErr == nil || len(h.got) != 0 {
		t.Fatalf("PINGREQ before CONNECT: %v %v", h.feedErr, h.got)
	}
}

func TestPublishSubscribe(t *testing.T) {
	for _, v := range []byte{4, 5} {
		sub := newHarness(t, Config{})
		sub.connectOK(v, "sub")
		if ack := sub.subscribe(1, 1, "a/+/c", "x/#", "bad/#/x"); !bytes.Equal(ack.ReasonCodes, []byte{1, 1, map[byte]byte{4: 0x80, 5: 0x8F}[v]}) {
			t.Fatalf("v%d SUBACK codes % x", v, ack.ReasonCodes)
		}
		if q := sub.s.vhost.Queue("mqtt-subscription-subqos1"); q == nil || !q.Exclusive {
			t.Fatalf("v%d: no exclusive session queue", v)
		}
		pub := sub.peer()
		pub.connectOK(v, "pub")

		pub.publish("a/b/c", 0, 0, "zero")
		m := sub.expect(tPublish)
		if m.TopicName != "a/b/c" || string(m.Payload) != "zero" || m.FixedHeader.Qos != 0 {
			t.Fatalf("v%d: got %+v", v, m)
		}
		pub.publish("x/y.z/w", 1, 7, "one")
		if a := pub.expect(tPuback); a.PacketID != 7 || a.ReasonCode != 0 {
			t.Fatalf("v%d PUBACK %+v", v, a)
		}
		m = sub.expect(tPublish)
		if m.TopicName != "x/y.z/w" || string(m.Payload) != "one" || m.FixedHeader.Qos != 1 || m.PacketID == 0 {
			t.Fatalf("v%d: got %+v", v, m)
		}
		if n := sub.s.ch.Unacked(); n != 1 {
			t.Fatalf("v%d: %d unacked before PUBACK", v, n)
		}
		sub.send(sub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPuback}, PacketID: m.PacketID}))
		if n := sub.s.ch.Unacked(); n != 0 {
			t.Fatalf("v%d: %d unacked after PUBACK", v, n)
		}
		pub.publish("nomatch", 1, 8, "x")
		if a := pub.expect(tPuback); a.PacketID != 8 || (v == 5) != (a.ReasonCode == 0x10) {
			t.Fatalf("v%d PUBACK %+v", v, a)
		}
		sub.quiet()

		// UNSUBSCRIBE stops the flow.
		sub.send(sub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tUnsubscribe, Qos: 1}, PacketID: 3,
			Filters: packets.Subscriptions{{Filter: "a/+/c"}, {Filter: "never"}}}))
		u := sub.expect(tUnsuback)
		if u.PacketID != 3 || (v == 5 && !bytes.Equal(u.ReasonCodes, []byte{0, 0x11})) {
			t.Fatalf("v%d UNSUBACK %+v", v, u)
		}
		pub.publish("a/b/c", 0, 0, "gone")
		sub.quiet()

		// The session queue goes with the connection.
		sub.s.Closed(nil)
		if sub.s.vhost.Queue("mqtt-subscription-subqos1") != nil {
			t.Fatalf("v%d: clean session queue survives", v)
		}
	}
}

// A persistent session keeps its queue, subscriptions and unacknowledged
// messages across connections.
func TestPersistentSession(t *testing.T) {
	sub := newHarness(t, Config{})
	sub.send(sub.encode(connectPacket(4, "s", false, 0, "", "")))
	if ack := sub.expect(tConnack); ack.ReasonCode != 0 || ack.SessionPresent {
		t.Fatalf("CONNACK %+v", ack)
	}
	sub.subscribe(1, 1, "t/#")
	if q := sub.s.vhost.Queue("mqtt-subscription-sqos1"); q == nil || q.Exclusive || !q.Durable {
		t.Fatal("persistent session queue is not durable")
	}
	pub := sub.peer()
	pub.connectOK(4, "p")
	pub.publish("t/1", 1, 1, "m1")
	pub.expect(tPuback)
	if m := sub.expect(tPublish); string(m.Payload) != "m1" || m.FixedHeader.Dup {
		t.Fatalf("got %+v", m)
	}
	sub.s.Closed(nil) // gone without PUBACK
	pub.publish("t/2", 1, 2, "m2")
	pub.expect(tPuback)

	again := sub.peer()
	again.send(again.encode(connectPacket(4, "s", false, 0, "", "")))
	if ack := again.expect(tConnack); ack.ReasonCode != 0 || !ack.SessionPresent {
		t.Fatalf("CONNACK %+v", ack)
	}
	m := again.expect(tPublish)
	if string(m.Payload) != "m1" || !m.FixedHeader.Dup || m.FixedHeader.Qos != 1 {
		t.Fatalf("redelivery %+v", m)
	}
	if m := again.expect(tPublish); string(m.Payload) != "m2" {
		t.Fatalf("got %+v", m)
	}
	again.s.Closed(nil)
	// A clean session with the same id discards it.
	clean := sub.peer()
	clean.connectOK(4, "s")
	if clean.s.vhost.Queue("mqtt-subscription-sqos1") != nil {
		t.Fatal("clean session kept the old queue")
	}
}

func TestMaxInflight(t *testing.T) {
	sub := newHarness(t, Config{MaxInflight: 2})
	sub.connectOK(4, "s")
	sub.subscribe(1, 1, "t")
	pub := sub.peer()
	pub.connectOK(4, "p")
	for i := range 5 {
		pub.publish("t", 1, uint16(i+1), "m")
		pub.expect(tPuback)
	}
	a, b := sub.expect(tPublish), sub.expect(tPublish)
	sub.quiet()
	sub.send(sub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPuback}, PacketID: a.PacketID}))
	sub.expect(tPublish)
	sub.send(sub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPuback}, PacketID: b.PacketID}))
	sub.expect(tPublish)
	sub.quiet()
}

// PUBACK leaves only once the message is committed to storage.
func TestPubackAfterCommit(t *testing.T) {
	for _, v := range []byte{4, 5} {
		h := newHarness(t, Config{})
		h.connectOK(v, "p")
		vh := h.rt.VHost("/")
		if _, err := vh.DeclareQueue("dq", router.QueueOptions{Durable: true}, false, 0, nil); err != nil {
			t.Fatal(err)
		}
		if err := vh.BindQueue("dq", "amq.topic", "sensors.k1.temp", nil, 0, nil); err != nil {
			t.Fatal(err)
		}
		h.store.Hold()
		h.publish("sensors/k1/temp", 1, 5, "21.5")
		h.quiet()
		h.store.Release()
		if a := h.expect(tPuback); a.PacketID != 5 || a.ReasonCode != 0 {
			t.Fatalf("v%d PUBACK %+v", v, a)
		}
		if n, _ := vh.Queue("dq").Counts(); n != 1 {
			t.Fatalf("v%d: %d messages in dq", v, n)
		}
		// A storage failure: MQTT 5 says so, 3.1.1 closes.
		h.store.Fail(errors.New("disk on fire"))
		h.publish("sensors/k1/temp", 1, 6, "22")
		if v == 5 {
			if a := h.expect(tPuback); a.PacketID != 6 || a.ReasonCode != 0x80 {
				t.Fatalf("PUBACK %+v", a)
			}
		} else {
			deadline := time.Now().Add(5 * time.Second)
			for !h.c.IsClosed() && time.Now().Before(deadline) {
				h.pump()
				time.Sleep(5 * time.Millisecond)
			}
			if !h.c.IsClosed() {
				t.Fatal("3.1.1 connection stays open after a failed publish")
			}
		}
	}
}

func TestQoS2Inbound(t *testing.T) {
	for _, v := range []byte{4, 5} {
		sub := newHarness(t, Config{})
		sub.connectOK(v, "s")
		if ack := sub.subscribe(1, 2, "q2"); ack.ReasonCodes[0] != 2 {
			t.Fatalf("QoS 2 granted as %d", ack.ReasonCodes[0])
		}
		pub := sub.peer()
		pub.connectOK(v, "p")
		pub.publish("q2", 2, 9, "once")
		if r := pub.expect(tPubrec); r.PacketID != 9 {
			t.Fatalf("PUBREC %+v", r)
		}
		pub.publish("q2", 2, 9, "once") // resent: not routed again
		pub.expect(tPubrec)
		pub.send(pub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPubrel, Qos: 1}, PacketID: 9}))
		if c := pub.expect(tPubcomp); c.PacketID != 9 || c.ReasonCode != 0 {
			t.Fatalf("PUBCOMP %+v", c)
		}
		m := sub.expect(tPublish)
		if string(m.Payload) != "once" || m.FixedHeader.Qos != 2 {
			t.Fatalf("got %+v", m)
		}
		sub.ack(tPubrec, m.PacketID)
		sub.expect(tPubrel)
		sub.ack(tPubcomp, m.PacketID)
		sub.quiet()
	}
}

func TestKeepalive(t *testing.T) {
	h := newHarness(t, Config{})
	h.v = 5
	h.send(h.encode(connectPacket(5, "k", true, 2, "", "")))
	h.expect(tConnack)
	t0 := time.Unix(1000, 0)
	for _, tc := range []struct {
		at   time.Duration
		ping bool
		fail bool
	}{{0, false, false}, {2 * time.Second, true, false}, {4 * time.Second, false, false}, {5 * time.Second, false, false}, {5*time.Second + 100*time.Millisecond, false, true}} {
		if tc.ping {
			h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPingreq}}))
			h.expect(tPingresp)
		}
		err := h.s.Tick(t0.Add(tc.at))
		if (err != nil) != tc.fail {
			t.Fatalf("Tick at %v: %v", tc.at, err)
		}
		if err != nil {
			h.out = append(h.out, h.s.Fail(err)...)
			h.parse()
			if d := h.expect(tDisconnect); d.ReasonCode != rcKeepAliveTimeout || d.Properties.ReasonString != "keepalive timeout" {
				t.Fatalf("DISCONNECT %+v", d)
			}
		}
	}
	// No CONNECT within the deadline.
	h = newHarness(t, Config{})
	if h.s.Tick(t0) != nil || h.s.Tick(t0.Add(DefaultHandshakeTimeout+time.Second)) == nil {
		t.Fatal("no CONNECT timeout")
	}
}

func TestOversizedPacket(t *testing.T) {
	for _, v := range []byte{4, 5} {
		h := newHarness(t, Config{MaxPacketSize: 100})
		h.connectOK(v, "big")
		// Only the header has arrived: the size alone decides.
		h.send([]byte{0x30, 0xC8, 0x01})
		if v == 5 {
			// MQTT 5: DISCONNECT, then the session lingers (linger_test.go).
			if d := h.expect(tDisconnect); d.ReasonCode != rcPacketTooLarge {
				t.Fatalf("DISCONNECT %+v", d)
			}
			if h.feedErr != nil || h.s.state != stLinger {
				t.Fatalf("v5: %v, state %d", h.feedErr, h.s.state)
			}
		} else if !errors.Is(h.feedErr, errTooLarge) || len(h.got) != 0 {
			t.Fatalf("3.1.1: %v, got %+v", h.feedErr, h.got)
		}
	}
	// A fifth remaining-length byte is malformed.
	h := newHarness(t, Config{})
	h.connectOK(5, "m")
	h.send([]byte{0x30, 0x80, 0x80, 0x80, 0x80, 0x01})
	if d := h.expect(tDisconnect); d.ReasonCode != rcMalformed {
		t.Fatalf("DISCONNECT %+v", d)
	}
}

func TestPartialPackets(t *testing.T) {
	h := newHarness(t, Config{})
	h.v = 4
	b := h.encode(connectPacket(4, "c", true, 0, "", ""))
	for i := range b {
		h.send(b[i : i+1])
	}
	h.expect(tConnack)
	h.subscribe(1, 0, "t")
	var all []byte
	for range 3 {
		all = append(all, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish}, TopicName: "t", Payload: []byte("abc")})...)
	}
	h.send(all)
	for range 3 {
		if m := h.expect(tPublish); string(m.Payload) != "abc" {
			t.Fatalf("got %+v", m)
		}
	}
}

func TestTopicConversion(t *testing.T) {
	for _, tc := range []struct{ topic, key string }{
		{"a/b/c", "a.b.c"},
		{"a/+/c", "a.*.c"},
		{"a/#", "a.#"},
		{"10.0.0.1/x", "10/0/0/1.x"},
	} {
		if k := topicToKey(tc.topic); k != tc.key {
			t.Errorf("topicToKey(%q) = %q, want %q", tc.topic, k, tc.key)
		}
		if tc.topic[2] != '+' && tc.topic[2] != '#' {
			if tp := keyToTopic(tc.key); tp != tc.topic {
				t.Errorf("keyToTopic(%q) = %q", tc.key, tp)
			}
		}
	}
	for _, tc := range []struct {
		f, t string
		ok   bool
	}{
		{"a/+/c", "a/b/c", true}, {"a/+/c", "a/b/d", false}, {"#", "a/b", true}, {"a/#", "a", true},
		{"a/#", "a/b/c", true}, {"+", "a/b", false}, {"#", "$SYS/x", false}, {"a/b", "a/b", true}, {"a/b", "a", false},
	} {
		if got := matchFilter(tc.f, tc.t); got != tc.ok {
			t.Errorf("matchFilter(%q, %q) = %v", tc.f, tc.t, got)
		}
	}
	for _, tc := range []struct {
		f, key string
		ok     bool
	}{
		{"a/+/c", "a.b.c", true}, {"a/#", "a", true}, {"#", "$SYS.x", false}, {"+/x", "$SYS.x", false}, {"$SYS/#", "$SYS.x", true},
		{"10.0.0.1/+", "10/0/0/1.x", true}, {"10.0.0.1/+", "10.0.0.1.x", false}, {"a/*", "a.b", false}, {"a/*", "a.*", true},
		{"a/b", "a.b.c", false}, {"a/b/c", "a.b", false}, {"a//b", "a..b", true},
	} {
		if got := matchTopicKey(tc.f, tc.key); got != tc.ok {
			t.Errorf("matchTopicKey(%q, %q) = %v", tc.f, tc.key, got)
		}
	}
	for f, ok := range map[string]bool{"a/#": true, "#": true, "a/#/b": false, "a+": false, "+/+": true, "": false} {
		if validFilter(f) != ok {
			t.Errorf("validFilter(%q) != %v", f, ok)
		}
	}
}

// A second connection with the same client id takes the session over: the
// old one is told and closed, and the new one's CONNACK comes once the old
// one has let go of the session.
func TestSessionTakeover(t *testing.T) {
	for _, clean := range []bool{true, false} {
		first := newHarness(t, Config{})
		first.v = 5
		cp := connectPacket(5, "dup", clean, 0, "", "")
		cp.Properties.SessionExpiryInterval, cp.Properties.SessionExpiryIntervalFlag = 60, !clean
		first.send(first.encode(cp))
		first.expect(tConnack)
		first.subscribe(1, 1, "t")
		second := first.peer()
		second.v = 5
		second.send(second.encode(cp))
		if len(second.got) != 0 {
			t.Fatalf("clean %v: CONNACK before the old connection closed: %+v", clean, second.got[0])
		}
		if d := first.expect(tDisconnect); d.ReasonCode != rcSessionTakenOver {
			t.Fatalf("DISCONNECT %+v", d)
		}
		if !first.c.IsClosed() || !errors.Is(first.c.CloseErr(), errTakenOver) {
			t.Fatalf("old connection not closed: %v", first.c.CloseErr())
		}
		if ack := second.expect(tConnack); ack.ReasonCode != 0 || ack.SessionPresent == clean {
			t.Fatalf("clean %v: CONNACK %+v", clean, ack)
		}
		if clean {
			second.subscribe(1, 1, "t")
		}
		pub := first.peer()
		pub.connectOK(4, "pub")
		pub.publish("t", 0, 0, "to the new one")
		if m := second.expect(tPublish); string(m.Payload) != "to the new one" {
			t.Fatalf("got %+v", m)
		}
		first.close() // the old connection's end does not touch the new session
		pub.publish("t", 0, 0, "again")
		second.expect(tPublish)
	}
}

// The will is published when a connection ends without DISCONNECT.
func TestWill(t *testing.T) {
	sub := newHarness(t, Config{})
	sub.connectOK(4, "watcher")
	sub.subscribe(1, 1, "status/#")
	for _, tc := range []struct {
		disconnect bool
		want       bool
	}{{false, true}, {true, false}} {
		h := sub.peer()
		h.v = 4
		pk := connectPacket(4, "dev", true, 0, "", "")
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillQos = true, "status/dev", []byte("offline"), 1
		h.send(h.encode(pk))
		h.expect(tConnack)
		if tc.disconnect {
			h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect}}))
		}
		h.s.Closed(nil)
		if tc.want {
			if m := sub.expect(tPublish); m.TopicName != "status/dev" || string(m.Payload) != "offline" || m.FixedHeader.Qos != 1 {
				t.Fatalf("will %+v", m)
			}
			sub.send(sub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPuback}, PacketID: 1}))
		}
		sub.quiet()
	}
}

// MQTT 5: Receive Maximum bounds unacknowledged deliveries, and the
// content type travels with the message.
func TestV5Properties(t *testing.T) {
	sub := newHarness(t, Config{})
	sub.v = 5
	pk := connectPacket(5, "rm", true, 0, "", "")
	pk.Properties.ReceiveMaximum = 1
	sub.send(sub.encode(pk))
	sub.expect(tConnack)
	sub.subscribe(1, 1, "p")
	pub := sub.peer()
	pub.connectOK(5, "pub")
	for i := range 2 {
		pub.send(pub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1}, TopicName: "p", PacketID: uint16(i + 1),
			Payload: []byte("{}"), Properties: packets.Properties{ContentType: "application/json"}}))
		pub.expect(tPuback)
	}
	m := sub.expect(tPublish)
	if m.Properties.ContentType != "application/json" {
		t.Fatalf("content type %q", m.Properties.ContentType)
	}
	sub.quiet()
	sub.send(sub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPuback}, PacketID: m.PacketID}))
	sub.expect(tPublish)
	// A topic alias above the Topic Alias Maximum.
	pub.send(pub.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish}, TopicName: "p",
		Properties: packets.Properties{TopicAlias: DefaultTopicAliasMax + 1, TopicAliasFlag: true}}))
	if d := pub.expect(tDisconnect); d.ReasonCode != 0x94 {
		t.Fatalf("DISCONNECT %+v", d)
	}
}
