package mqtt

import (
	"errors"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"
)

// After an MQTT 5 DISCONNECT the session reads and discards what the
// client still sends, so the client's writes do not meet a reset, until
// the client closes or lingerTimeout has passed.
func TestLinger(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(5, "l")
	h.send([]byte{0x30, 0x07, 0x00, 0x01, 'd', 0x03, 0x23, 0x00, 0x00}) // topic alias 0
	if d := h.expect(tDisconnect); d.ReasonCode != rcTopicAliasInvalid {
		t.Fatalf("DISCONNECT %+v", d)
	}
	if h.feedErr != nil || h.c.IsClosed() || h.s.state != stLinger {
		t.Fatalf("not lingering: %v, closed %v, state %d", h.feedErr, h.c.IsClosed(), h.s.state)
	}
	// Whatever comes now is read and dropped: no answer, no error.
	h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPingreq}}))
	h.send([]byte{0xF0, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F}) // not even MQTT
	if h.feedErr != nil || len(h.pending) != 0 || len(h.got) != 0 {
		t.Fatalf("lingering session answered: %v, %d bytes left, got %+v", h.feedErr, len(h.pending), h.got)
	}
	t0 := time.Unix(1_700_000_000, 0)
	for _, at := range []time.Duration{0, time.Second, lingerTimeout - time.Millisecond} {
		if err := h.s.Tick(t0.Add(at)); err != nil {
			t.Fatalf("Tick at %v: %v", at, err)
		}
	}
	err := h.s.Tick(t0.Add(lingerTimeout))
	var de *discErr
	if !errors.As(err, &de) || de.rc != rcTopicAliasInvalid {
		t.Fatalf("Tick after lingerTimeout: %v, want the DISCONNECT's reason", err)
	}
	if b := h.s.Fail(err); len(b) != 0 {
		t.Fatalf("Fail after the DISCONNECT sent %x", b)
	}

	// 3.1.1 has no DISCONNECT to protect: the connection ends at once.
	h = newHarness(t, Config{})
	h.connectOK(4, "l3")
	h.send([]byte{0x30, 0x02, 0x00, 0x00}) // empty topic
	if h.feedErr == nil || !h.closed {
		t.Fatalf("3.1.1: %v, closed %v", h.feedErr, h.closed)
	}
}

// A client reconnecting with the same id ends a lingering session at once.
func TestLingerTakeover(t *testing.T) {
	old := newHarness(t, Config{})
	old.connectOK(5, "same")
	old.send([]byte{0x30, 0x07, 0x00, 0x01, 'd', 0x03, 0x23, 0x00, 0x00})
	old.expect(tDisconnect)
	h := old.peer()
	h.v = 5
	h.send(h.encode(connectPacket(5, "same", true, 0, "", "")))
	old.pump() // the transport's Wake
	if !old.c.IsClosed() || !errors.Is(old.c.CloseErr(), errTakenOver) {
		t.Fatalf("lingering session not closed by the takeover: %v", old.c.CloseErr())
	}
	old.close()
	if ack := h.expect(tConnack); ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %+v", ack)
	}
}

// Outbound topic aliases (MQTT 5 §3.3.2.3.4): up to the client's Topic
// Alias Maximum, the first message on a topic sets an alias and later ones
// send it with an empty topic; topics of one byte and topics beyond the
// maximum go as they are. Aliases last as long as the connection.
func TestOutboundTopicAlias(t *testing.T) {
	h := newHarness(t, Config{})
	h.v = 5
	pk := connectPacket(5, "a", true, 0, "", "")
	pk.Properties.TopicAliasMaximum = 2
	h.send(h.encode(pk))
	h.expect(tConnack)
	h.subscribe(1, 1, "#")
	pub := h.peer()
	pub.connectOK(4, "p")
	type sent struct {
		topic string
		alias uint16
	}
	var got []sent
	for i, topic := range []string{"t/1", "t/1", "x", "t/2", "t/3", "t/2", "t/1", "x"} {
		pub.publish(topic, byte(i%2), uint16(i+1), "m")
		if i%2 == 1 {
			pub.expect(tPuback)
		}
		m := h.expect(tPublish)
		got = append(got, sent{m.TopicName, m.Properties.TopicAlias})
		if m.FixedHeader.Qos == 1 {
			h.ack(tPuback, m.PacketID)
		}
	}
	want := []sent{{"t/1", 1}, {"", 1}, {"x", 0}, {"t/2", 2}, {"t/3", 0}, {"", 2}, {"", 1}, {"x", 0}}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("deliveries %+v, want %+v", got, want)
		}
	}
	// A client that allows none gets none.
	h2 := h.peer()
	h2.connectOK(5, "b")
	h2.subscribe(1, 0, "#")
	pub.publish("t/1", 0, 0, "m")
	if m := h2.expect(tPublish); m.TopicName != "t/1" || m.Properties.TopicAlias != 0 {
		t.Fatalf("got %+v", m)
	}
}

// Before CONNECT the first byte decides [MQTT-3.1.0-1]: anything else
// ends the connection at once, without waiting for the packet it seems to
// announce (an HTTP request reads as a 69-byte PUBACK).
func TestFirstByteNotConnect(t *testing.T) {
	for _, in := range []string{"G", "GET / HTTP/1.1\r\n", "\x30\x7f", "\x11\x00"} {
		h := newHarness(t, Config{})
		n, err := h.s.Feed([]byte(in))
		if !errors.Is(err, errNotConnect) || n != len(in) {
			t.Errorf("Feed(%q) = %d, %v; want %d, errNotConnect", in, n, err, len(in))
		}
		if b := h.s.Fail(err); len(b) != 0 {
			t.Errorf("Feed(%q): Fail sent %x", in, b)
		}
	}
}
