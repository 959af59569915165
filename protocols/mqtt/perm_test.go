package mqtt

import (
	"testing"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
	"github.com/mochi-mqtt/server/v2/packets"
)

// newPermHarness is newHarness with topic permissions: guest may not
// subscribe to test/nosubscribe, and may publish under public/ (but not to
// a last level "secret") and under own/<client id>/.
func newPermHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	st := memstore.New()
	rt, err := router.New(router.Config{Store: st, TopicPermissions: []router.TopicPermission{{
		User: "guest", Write: `^(?:own\.{client_id}|public)\.`, Read: ".*",
		DenyRead: `^test\.nosubscribe$`, DenyWrite: `\.secret$`,
	}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg.Router, cfg.Store = rt, st
	return openHarness(t, New(cfg), st)
}

// A refused filter fails alone: 0x80 for 3.1.1, 0x87 with a Reason String
// for MQTT 5 (0x80 without one if Config.HideRefusals).
func TestSubscribeRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		v      byte
		hide   bool
		rc     byte
		reason string
	}{
		{"3.1.1", 4, false, 0x80, ""},
		{"5", 5, false, rcNotAuthorized, "read access to topic 'test.nosubscribe' in exchange 'amq.topic' in vhost '/' refused for user 'guest'"},
		{"5 hidden", 5, true, rcUnspecified, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newPermHarness(t, Config{HideRefusals: tc.hide})
			h.connectOK(tc.v, "c")
			ack := h.subscribe(1, 1, "public/a", "test/nosubscribe", "test/+")
			if want := []byte{1, tc.rc, 1}; string(ack.ReasonCodes) != string(want) {
				t.Fatalf("SUBACK codes %x, want %x", ack.ReasonCodes, want)
			}
			if ack.Properties.ReasonString != tc.reason {
				t.Fatalf("Reason String %q, want %q", ack.Properties.ReasonString, tc.reason)
			}
			// The refused filter is no subscription; the others work.
			if h.s.st.subs.get("test/nosubscribe") != nil || h.s.st.subs.len() != 2 {
				t.Fatalf("subscriptions %v", h.s.st.subs.list)
			}
			h.publish("public/a", 0, 0, "x")
			if m := h.expect(tPublish); m.TopicName != "public/a" {
				t.Fatalf("got %+v", m)
			}
		})
	}
}

// A refused publish is not routed (nor retained): MQTT 5 QoS 1 and 2 get
// 0x87; QoS 0 and MQTT 3.1.1 ones are acknowledged as usual.
func TestPublishRefused(t *testing.T) {
	for _, v := range []byte{4, 5} {
		sub := newPermHarness(t, Config{})
		sub.connectOK(4, "sub")
		sub.subscribe(1, 2, "#")
		h := sub.peer()
		h.connectOK(v, "pub")
		for qos := byte(0); qos <= 2; qos++ {
			id := uint16(10 + qos)
			h.send(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: qos, Retain: true},
				TopicName: "public/secret", PacketID: id, Payload: []byte("no")}))
			if qos == 0 {
				continue
			}
			typ := byte(tPuback)
			if qos == 2 {
				typ = tPubrec
			}
			ack := h.expect(typ)
			want := byte(0)
			if v == 5 {
				want = rcNotAuthorized
			}
			if ack.PacketID != id || ack.ReasonCode != want {
				t.Fatalf("v%d QoS %d: %s %+v", v, qos, packets.PacketNames[typ], ack)
			}
			if v == 5 && ack.Properties.ReasonString == "" {
				t.Fatalf("v%d QoS %d: no Reason String", v, qos)
			}
			if qos == 2 {
				h.ack(tPubrel, id)
				h.expect(tPubcomp)
			}
		}
		// The client's own prefix and other topics go through.
		h.publish("own/pub/t", 1, 1, "mine")
		h.expect(tPuback)
		h.publish("own/other/t", 1, 2, "not mine")
		if ack := h.expect(tPuback); v == 5 && ack.ReasonCode != rcNotAuthorized {
			t.Fatalf("v%d: PUBACK %+v", v, ack)
		}
		h.publish("public/secretive", 0, 0, "fine")
		for _, want := range []string{"own/pub/t", "public/secretive"} {
			if m := sub.expect(tPublish); m.TopicName != want {
				t.Fatalf("v%d: subscriber got %q, want %q", v, m.TopicName, want)
			}
		}
		sub.quiet()
		if n, _ := sub.a.Retained(); n != 0 {
			t.Fatalf("v%d: %d retained messages", v, n)
		}
		if h.s.refusals != 4 {
			t.Fatalf("v%d: %d refusals counted", v, h.s.refusals)
		}
	}
}

// A will the user may not publish refuses the CONNECT.
func TestWillRefused(t *testing.T) {
	for _, tc := range []struct {
		v, rc byte
		hide  bool
	}{{4, 0x05, false}, {5, rcNotAuthorized, false}, {5, rcUnspecified, true}} {
		h := newPermHarness(t, Config{HideRefusals: tc.hide})
		h.v = tc.v
		pk := connectPacket(tc.v, "w", true, 0, "", "")
		pk.Connect.WillFlag, pk.Connect.WillTopic, pk.Connect.WillPayload = true, "public/secret", []byte("bye")
		h.send(h.encode(pk))
		ack := h.expect(tConnack)
		if ack.ReasonCode != tc.rc || (tc.v == 5 && (ack.Properties.ReasonString == "") != tc.hide) {
			t.Fatalf("v%d hide %v: CONNACK %+v", tc.v, tc.hide, ack)
		}
		if !h.closed {
			t.Fatalf("v%d: connection still open", tc.v)
		}
	}
}
