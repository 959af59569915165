package mqtt

import (
	"slices"
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// willConnect connects an MQTT 5 client with a will on status/<id>.
func (h *harness) willConnect(id string, expiry, delay uint32, retain bool) {
	h.t.Helper()
	h.v = 5
	pk := connectPacket(5, id, false, 0, "", "")
	pk.Properties.SessionExpiryInterval, pk.Properties.SessionExpiryIntervalFlag = expiry, true
	pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload, pk.Connect.WillQos, pk.Connect.WillRetain = true, "status/"+id, []byte("offline"), 1, retain
	pk.Connect.WillProperties = packets.Properties{WillDelayInterval: delay, ContentType: "text/plain", PayloadFormat: 1, PayloadFormatFlag: true,
		User: []packets.UserProperty{{Key: "why", Val: "gone"}}}
	h.send(h.encode(pk))
	if ack := h.expect(tConnack); ack.ReasonCode != 0 {
		h.t.Fatalf("CONNACK %+v", ack)
	}
}

// MQTT 5 wills carry their properties and may be retained; the Will Delay
// Interval holds them back, a reconnect within it cancels them, and the
// end of the session sends them early.
func TestWillDelay(t *testing.T) {
	watch := newHarness(t, Config{})
	watch.connectOK(5, "watch")
	watch.subscribe(1, 1, "status/#")
	expectWill := func(id string) *packets.Packet {
		t.Helper()
		m := watch.expect(tPublish)
		if m.TopicName != "status/"+id || string(m.Payload) != "offline" || m.Properties.ContentType != "text/plain" ||
			m.Properties.PayloadFormat != 1 || !slices.Equal(m.Properties.User, []packets.UserProperty{{Key: "why", Val: "gone"}}) {
			t.Fatalf("will %+v", m)
		}
		watch.ack(tPuback, m.PacketID)
		return m
	}

	// No delay, retained: published at once and kept.
	d := watch.peer()
	d.willConnect("now", 0, 0, true)
	d.close()
	expectWill("now")
	if n, _ := watch.a.Retained(); n != 1 {
		t.Fatalf("%d retained", n)
	}

	// A delay, then the will.
	d = watch.peer()
	d.willConnect("late", 60, 1, false)
	d.close()
	watch.quiet()
	if !watch.a.willPending("late") {
		t.Fatal("no will pending")
	}
	expectWill("late") // next() waits up to 5 s

	// A reconnect within the delay cancels it.
	d = watch.peer()
	d.willConnect("back", 60, 3600, false)
	d.close()
	if !watch.a.willPending("back") {
		t.Fatal("no will pending")
	}
	d = watch.peer()
	d.connectPersistent(5, "back", 60)
	if watch.a.willPending("back") {
		t.Fatal("reconnect did not cancel the will")
	}
	watch.quiet()

	// The session ending first (expiry 1 s) sends it then.
	d = watch.peer()
	d.willConnect("short", 1, 3600, false)
	d.close()
	expectWill("short")

	// A clean DISCONNECT drops the will; 0x04 keeps it.
	d = watch.peer()
	d.willConnect("bye", 0, 0, false)
	d.send(d.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect}, ReasonCode: 0x04}))
	expectWill("bye")
	d = watch.peer()
	d.willConnect("bye2", 0, 0, false)
	d.send(d.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect}}))
	watch.quiet()
}

func (a *Adapter) willPending(cid string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.wills[cid] != nil
}
