package mqtt

import (
	"errors"
	"strings"
	"testing"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// TestConnLimitRefusal: a connection the transport accepted beyond its
// limit gets, in answer to CONNECT and without a login, MQTT 3.1.1's
// CONNACK 0x03 (server unavailable) or MQTT 5's 0x97 (quota exceeded)
// naming the limit, and is closed.
func TestConnLimitRefusal(t *testing.T) {
	for _, v := range []byte{4, 5} {
		h := newHarness(t, Config{})
		h.c.SetRefusal(&protocols.ConnLimitError{Limit: 2})
		h.v = v
		h.send(h.encode(connectPacket(v, "refused", true, 0, "", "")))
		ack := h.expect(tConnack)
		want, reason := byte(0x03), ""
		if v == 5 {
			want, reason = rcQuotaExceeded, "connection limit (2) is reached"
		}
		if ack.ReasonCode != want || ack.Properties.ReasonString != reason {
			t.Fatalf("v%d: CONNACK %#x %q, want %#x %q", v, ack.ReasonCode, ack.Properties.ReasonString, want, reason)
		}
		if !errors.Is(h.feedErr, protocols.ErrConnLimit) {
			t.Fatalf("v%d: closed with %v, want ErrConnLimit", v, h.feedErr)
		}
		if h.s.registered || h.s.vhost != nil {
			t.Fatalf("v%d: a refused connection took a session", v)
		}
	}
}

// TestQueueLimit: a persistent session whose queue would pass the vhost's
// queue limit is refused at CONNECT (3.1.1: 0x03; 5: 0x97 with the
// router's words).
func TestQueueLimit(t *testing.T) {
	st := memstore.New()
	t.Cleanup(func() { _ = st.Close() })
	rt, err := router.New(router.Config{Store: st, MaxQueues: 1})
	if err != nil {
		t.Fatal(err)
	}
	a := New(Config{Router: rt, Store: st})
	openHarness(t, a, st).connectPersistent(4, "first", 0)
	for _, v := range []byte{4, 5} {
		h := openHarness(t, a, st)
		h.v = v
		pk := connectPacket(v, "second", false, 0, "", "")
		if v == 5 {
			pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = 60, true
		}
		h.send(h.encode(pk))
		ack := h.expect(tConnack)
		want := byte(0x03)
		if v == 5 {
			want = rcQuotaExceeded
		}
		if ack.ReasonCode != want || v == 5 && !strings.Contains(ack.Properties.ReasonString, "queue limit") {
			t.Fatalf("v%d: CONNACK %#x %q, want %#x naming the queue limit", v, ack.ReasonCode, ack.Properties.ReasonString, want)
		}
	}
	if n := len(rt.VHost("/").Queues()); n != 1 {
		t.Fatalf("%d queues, want 1", n)
	}
}

// TestSlowConsumerFail: the transport's slow-consumer close is MQTT 5's
// DISCONNECT 0x97 with a Reason String.
func TestSlowConsumerFail(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(5, "slow")
	h.out = append(h.out, h.s.Fail(protocols.ErrSlowConsumer)...)
	h.parse()
	if d := h.expect(tDisconnect); d.ReasonCode != rcQuotaExceeded || !strings.HasPrefix(d.Properties.ReasonString, "slow consumer") {
		t.Fatalf("DISCONNECT %#x %q", d.ReasonCode, d.Properties.ReasonString)
	}
}

// TestMaxMessageSize: a payload over MaxMessageSize (router.max_message_size)
// ends the connection like a packet over the maximum: MQTT 5 hears
// DISCONNECT 0x95, MQTT 3.1.1 is closed. One at the limit goes through.
func TestMaxMessageSize(t *testing.T) {
	for _, v := range []byte{4, 5} {
		h := newHarness(t, Config{MaxMessageSize: 10})
		h.connectOK(v, "big")
		h.publish("t", 1, 1, "0123456789")
		if ack := h.expect(tPuback); ack.PacketID != 1 {
			t.Fatalf("v%d: PUBACK %+v", v, ack)
		}
		h.publish("t", 1, 2, "0123456789x")
		if v == 5 {
			if d := h.expect(tDisconnect); d.ReasonCode != rcPacketTooLarge {
				t.Fatalf("v5: DISCONNECT %+v, want 0x95", d)
			}
		} else if !errors.Is(h.feedErr, errTooLarge) || len(h.got) != 0 {
			t.Fatalf("v%d: Feed ended with %v and %d packets, want errTooLarge and none", v, h.feedErr, len(h.got))
		}
	}
}
