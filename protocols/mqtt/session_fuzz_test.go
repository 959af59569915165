package mqtt

import (
	"testing"

	"github.com/mochi-mqtt/server/v2/packets"
)

// FuzzSession feeds arbitrary client bytes to a session after a successful
// CONNECT (3.1.1 and 5.0): whatever arrives, the session keeps
// 0 <= n <= len(in), answers with packets mochi's decoder accepts (the
// harness fails otherwise), and never panics. Seeds are real client
// packets.
func FuzzSession(f *testing.F) {
	h := &harness{t: f, v: 4}
	sub := &packets.Packet{FixedHeader: packets.FixedHeader{Type: tSubscribe, Qos: 1}, PacketID: 1,
		Filters: packets.Subscriptions{{Filter: "a/+/c", Qos: 1}, {Filter: "#"}}}
	for _, v := range []byte{4, 5} {
		h.v = v
		f.Add(v, h.encode(sub))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1}, TopicName: "a/b/c", PacketID: 2, Payload: []byte("x")}))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 2}, TopicName: "a/b/c", PacketID: 3, Payload: []byte("x")}))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPubrel, Qos: 1}, PacketID: 3}))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tUnsubscribe, Qos: 1}, PacketID: 4, Filters: packets.Subscriptions{{Filter: "#"}}}))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect}}))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1, Retain: true}, TopicName: "r/t", PacketID: 5, Payload: []byte("kept")}))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tSubscribe, Qos: 1}, PacketID: 6,
			Filters: packets.Subscriptions{{Filter: "$share/g/a/#", Qos: 2}, {Filter: "r/+", Qos: 2}}}))
		f.Add(v, append(h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 2}, TopicName: "a/b", PacketID: 7, Payload: []byte("x")}),
			h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPubrec}, PacketID: 1})...))
		f.Add(v, h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPubcomp}, PacketID: 1}))
	}
	h.v = 5
	f.Add(byte(5), h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tPublish, Qos: 1}, TopicName: "a/b", PacketID: 8, Payload: []byte("x"),
		Properties: packets.Properties{TopicAlias: 1, TopicAliasFlag: true, User: []packets.UserProperty{{Key: "k", Val: "v"}}, MessageExpiryInterval: 5,
			ContentType: "c", ResponseTopic: "r", CorrelationData: []byte("d"), PayloadFormat: 1, PayloadFormatFlag: true}, Mods: packets.Mods{AllowResponseInfo: true}}))
	f.Add(byte(5), []byte{0x30, 0x06, 0x00, 0x00, 0x03, 0x23, 0x00, 0x01}) // publish by an unset alias
	f.Add(byte(5), h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tSubscribe, Qos: 1}, PacketID: 9,
		Filters: packets.Subscriptions{{Filter: "s/#", Qos: 1, NoLocal: true, RetainAsPublished: true, RetainHandling: 1}}, Properties: packets.Properties{SubscriptionIdentifier: []int{42}}}))
	f.Add(byte(5), h.encode(&packets.Packet{FixedHeader: packets.FixedHeader{Type: tDisconnect}, Properties: packets.Properties{SessionExpiryInterval: 9, SessionExpiryIntervalFlag: true}}))
	f.Add(byte(5), []byte{0x82, 0x05, 0x00, 0x01, 0x00, 0x00, 0x01, 'a'}) // v5 SUBSCRIBE without options byte
	f.Add(byte(4), []byte{0x30, 0xff, 0xff, 0xff, 0xff, 0x7f})
	f.Fuzz(func(t *testing.T, v byte, in []byte) {
		if v != 5 {
			v = 4
		}
		h := newHarness(t, Config{MaxPacketSize: 4096})
		h.connectOK(v, "f")
		h.subscribe(100, 1, "#")
		h.send(in)
		// The same bytes split differently on a fresh session.
		h2 := newHarness(t, Config{MaxPacketSize: 4096})
		h2.connectOK(v, "f2")
		h2.send(in[:len(in)/2])
		h2.send(in[len(in)/2:])
	})
}
