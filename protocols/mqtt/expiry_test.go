package mqtt

import (
	"sync"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/router"
)

// clock is a settable clock shared by the router and the adapter.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

// The Message Expiry Interval holds while a message is queued, and what is
// left of it goes out with the message.
func TestMessageExpiry(t *testing.T) {
	clk := &clock{now: time.Unix(1_000_000, 0)}
	sub := newHarness(t, Config{Now: clk.Now})
	sub.connectPersistent(5, "s", 3600)
	sub.subscribe(1, 1, "e/#")
	pub := sub.peer()
	pub.connectOK(5, "p")
	publish := func(topic string, expiry uint32, id uint16) {
		t.Helper()
		pk := &packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1}, TopicName: topic, PacketID: id, Payload: []byte(topic)}
		if expiry > 0 {
			pk.Properties.MessageExpiryInterval = expiry
		}
		pub.send(pub.encode(pk))
		pub.expect(tPuback)
	}
	// Delivered at once: the whole interval.
	publish("e/now", 60, 1)
	if m := sub.expect(tPublish); m.Properties.MessageExpiryInterval != 60 {
		t.Fatalf("expiry %d", m.Properties.MessageExpiryInterval)
	} else {
		sub.ack(tPuback, m.PacketID)
	}
	sub.close()
	publish("e/short", 10, 2)
	publish("e/long", 100, 3)
	publish("e/never", 0, 4)
	clk.add(30 * time.Second)

	again := sub.peer()
	again.connectPersistent(5, "s", 3600)
	m := again.expect(tPublish)
	if m.TopicName != "e/long" || m.Properties.MessageExpiryInterval != 70 {
		t.Fatalf("got %s with expiry %d", m.TopicName, m.Properties.MessageExpiryInterval)
	}
	again.ack(tPuback, m.PacketID)
	if m := again.expect(tPublish); m.TopicName != "e/never" || m.Properties.MessageExpiryInterval != 0 {
		t.Fatalf("got %s with expiry %d", m.TopicName, m.Properties.MessageExpiryInterval)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Session lifetimes: 3.1.1 clean session 0 never expires; MQTT 5 sessions
// live Session Expiry Interval seconds after the connection (the queue's
// x-expires); 0 ends the session with the connection.
func TestSessionExpiry(t *testing.T) {
	expires := func(q *router.Queue) (int64, bool) {
		v, ok := q.Args.Get("x-expires")
		n, _ := router.Int(v)
		return n, ok
	}
	h := newHarness(t, Config{})
	h.connectPersistent(4, "v3", 0)
	q := h.s.vhost.Queue(sessionQueue("v3"))
	if q == nil || !q.Durable {
		t.Fatal("3.1.1 persistent session has no durable queue")
	}
	if _, ok := expires(q); ok {
		t.Fatal("3.1.1 persistent session expires")
	}
	h.close()

	// MQTT 5, 1 second: the queue goes a second after the connection.
	s := h.peer()
	if ack := s.connectPersistent(5, "v5", 1); ack.SessionPresent || ack.Properties.SessionExpiryIntervalFlag {
		t.Fatalf("CONNACK %+v", ack)
	}
	s.subscribe(1, 1, "x")
	if n, ok := expires(s.s.vhost.Queue(sessionQueue("v5"))); !ok || n != 1000 {
		t.Fatalf("x-expires %d %v", n, ok)
	}
	s.close()
	if h.s.vhost.Queue(sessionQueue("v5")) == nil {
		t.Fatal("session ended with the connection")
	}
	waitFor(t, "the session to expire", func() bool { return h.s.vhost.Queue(sessionQueue("v5")) == nil })
	s = h.peer()
	if ack := s.connectPersistent(5, "v5", 60); ack.SessionPresent {
		t.Fatal("expired session present")
	}
	if s.s.st.subs.len() != 0 {
		t.Fatalf("expired session's subscriptions came back: %v", s.s.st.subs.list)
	}

	// Each CONNECT sets the interval from then on (MQTT 5 §3.1.2.11.2):
	// the queue's x-expires follows, and the state remembers it.
	s.close()
	s = h.peer()
	if ack := s.connectPersistent(5, "v5", 120); !ack.SessionPresent || ack.Properties.SessionExpiryIntervalFlag {
		t.Fatalf("CONNACK %+v", ack)
	}
	if got := h.s.vhost.Queue(sessionQueue("v5")).Expires(); got != 120*time.Second {
		t.Fatalf("queue expires after %v, want 120s", got)
	}
	if st := h.a.takeState("v5"); st == nil || st.expiry != 120 {
		t.Fatalf("state %+v", st)
	}
	// DISCONNECT with Session Expiry Interval 0 ends the session now.
	s.send(s.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect},
		Properties: packets.Properties{SessionExpiryInterval: 0, SessionExpiryIntervalFlag: true}}))
	if h.s.vhost.Queue(sessionQueue("v5")) != nil || h.a.takeState("v5") != nil {
		t.Fatal("session survives DISCONNECT with expiry 0")
	}

	// Expiry 0 (the MQTT 5 default) resumes an existing session but ends it
	// with the connection.
	s = h.peer()
	s.connectPersistent(5, "z", 60)
	s.close()
	s = h.peer()
	if ack := s.connectPersistent(5, "z", 0); !ack.SessionPresent {
		t.Fatal("session not resumed")
	}
	s.close()
	if h.s.vhost.Queue(sessionQueue("z")) != nil {
		t.Fatal("session with expiry 0 survives its connection")
	}

	// Beyond the router's longest x-expires the interval is cut, and the
	// client told; "never" (2^32-1) is no x-expires at all.
	s = h.peer()
	if ack := s.connectPersistent(5, "long", expiryNever-1); ack.Properties.SessionExpiryInterval != maxSessionExpiry {
		t.Fatalf("CONNACK %+v", ack.Properties)
	}
	if n, _ := expires(h.s.vhost.Queue(sessionQueue("long"))); n != maxSessionExpiry*1000 {
		t.Fatalf("x-expires %d", n)
	}
	s = h.peer()
	if ack := s.connectPersistent(5, "forever", expiryNever); ack.Properties.SessionExpiryIntervalFlag {
		t.Fatalf("CONNACK %+v", ack.Properties)
	}
	if _, ok := expires(h.s.vhost.Queue(sessionQueue("forever"))); ok {
		t.Fatal("a session that never expires has x-expires")
	}

	// So does a DISCONNECT's (MQTT 5 §3.14.2.2.2), longer or shorter.
	for _, tc := range []struct {
		connect, disconnect uint32
		want                time.Duration
	}{
		{1, 5, 5 * time.Second},
		{5, 1, time.Second},
		{5, expiryNever, 0},
	} {
		s = h.peer()
		s.connectPersistent(5, "d", tc.connect)
		s.send(s.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect},
			Properties: packets.Properties{SessionExpiryInterval: tc.disconnect, SessionExpiryIntervalFlag: true}}))
		s.close()
		q := h.s.vhost.Queue(sessionQueue("d"))
		if q == nil || q.Expires() != tc.want {
			t.Fatalf("%d then %d: queue %v", tc.connect, tc.disconnect, q)
		}
		if st := h.a.takeState("d"); st == nil || st.expiry != tc.disconnect {
			t.Fatalf("%d then %d: state %+v", tc.connect, tc.disconnect, st)
		}
	}

	// A non-zero interval on DISCONNECT after 0 on CONNECT is a protocol
	// error [MQTT-3.14.2-2].
	s = h.peer()
	s.connectPersistent(5, "p", 0)
	s.send(s.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect},
		Properties: packets.Properties{SessionExpiryInterval: 10, SessionExpiryIntervalFlag: true}}))
	if d := s.expect(tDisconnect); d.ReasonCode != rcProtocolError {
		t.Fatalf("DISCONNECT %+v", d)
	}
}

// An interval changed on DISCONNECT (or CONNECT) outlives a restart: the
// router brings the queue back with its declared x-expires, and the
// adapter re-applies the session state's.
func TestSessionExpiryChangeRestart(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectPersistent(5, "r", 1)
	h.subscribe(1, 1, "x")
	h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect},
		Properties: packets.Properties{SessionExpiryInterval: 600, SessionExpiryIntervalFlag: true}}))
	h.close()
	rt, err := router.New(router.Config{Store: h.store})
	if err != nil {
		t.Fatal(err)
	}
	if got := rt.VHost("/").Queue(sessionQueue("r")).Expires(); got != time.Second {
		t.Fatalf("router alone: queue expires after %v, want the declared 1s", got)
	}
	New(Config{Router: rt, Store: h.store})
	if got := rt.VHost("/").Queue(sessionQueue("r")).Expires(); got != 600*time.Second {
		t.Fatalf("after the adapter's recovery: queue expires after %v, want 600s", got)
	}
}

// Resuming a session with a shorter Session Expiry Interval than the time
// it has been unused does not expire it: the new interval is set once the
// session consumes its queue, and counts from when the connection ends.
func TestSessionExpiryShortenedOnResume(t *testing.T) {
	clk := &clock{now: time.Unix(1_000_000, 0)}
	for i := range 20 {
		h := newHarness(t, Config{Now: clk.Now})
		h.connectPersistent(5, "s", 3600)
		h.subscribe(1, 1, "x")
		h.close()
		pub := h.peer()
		pub.connectOK(5, "p")
		pub.publish("x", 1, 1, "kept")
		pub.expect(tPuback)
		clk.add(100 * time.Second)

		again := h.peer()
		if ack := again.connectPersistent(5, "s", 10); !ack.SessionPresent {
			t.Fatalf("run %d: session not present", i)
		}
		if m := again.expect(tPublish); string(m.Payload) != "kept" {
			t.Fatalf("run %d: got %+v", i, m)
		} else {
			again.ack(tPuback, m.PacketID)
		}
		again.quiet()
		q := h.rt.VHost("/").Queue(sessionQueue("s"))
		if q == nil {
			t.Fatalf("run %d: the resumed session's queue was deleted", i)
		}
		if q.Expires() != 10*time.Second {
			t.Fatalf("run %d: x-expires %v, want 10s", i, q.Expires())
		}
	}
}
