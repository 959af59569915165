package load

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// mqttRaw is a table of raw packets as brokers send them, shared by the
// parse tests and the fuzzer's seeds.
var mqttRaw = []struct {
	name  string
	in    []byte
	kind  mqttKind
	flags byte
	body  string
}{
	{"CONNACK", []byte{0x20, 2, 0, 0}, mqttConnack, 0, "\x00\x00"},
	{"CONNACK session present", []byte{0x20, 2, 1, 0}, mqttConnack, 0, "\x01\x00"},
	{"SUBACK", []byte{0x90, 3, 0, 1, 1}, mqttSuback, 0, "\x00\x01\x01"},
	{"PUBLISH QoS 0", []byte("\x30\x06\x00\x01tabc"), mqttPublish, 0, "\x00\x01tabc"},
	{"PUBLISH QoS 1 DUP", []byte("\x3a\x07\x00\x01t\x01\x02pq"), mqttPublish, 0xa, "\x00\x01t\x01\x02pq"},
	{"PUBLISH QoS 2 RETAIN", []byte("\x35\x05\x00\x01t\x00\x09"), mqttPublish, 5, "\x00\x01t\x00\x09"},
	{"PUBACK", []byte{0x40, 2, 0xff, 0xff}, mqttPuback, 0, "\xff\xff"},
	{"PUBREC", []byte{0x50, 2, 0, 1}, mqttPubrec, 0, "\x00\x01"},
	{"PUBREL", []byte{0x62, 2, 1, 0}, mqttPubrel, 2, "\x01\x00"},
	{"PUBCOMP", []byte{0x70, 2, 0, 7}, mqttPubcomp, 0, "\x00\x07"},
	{"PINGRESP", []byte{0xd0, 0}, mqttPingresp, 0, ""},
	{"two-byte length", append([]byte{0x30, 0x80, 1}, mqttBody(128)...), mqttPublish, 0, string(mqttBody(128))},
	{"three-byte length", append([]byte{0x30, 0x80, 0x80, 1}, mqttBody(16384)...), mqttPublish, 0, string(mqttBody(16384))},
	{"over-long length encoding", []byte{0xd0, 0x80, 0}, mqttPingresp, 0, ""}, // 0 in two bytes: tolerated
}

// mqttBody is a PUBLISH body of n bytes with topic "t".
func mqttBody(n int) []byte {
	return append([]byte{0, 1, 't'}, bytes.Repeat([]byte{'x'}, n-3)...)
}

func TestParseMQTTPacket(t *testing.T) {
	for _, tc := range mqttRaw {
		t.Run(tc.name, func(t *testing.T) {
			p, n, err := parseMQTTPacket(tc.in, mqttWireMaxPacket)
			if err != nil || n != len(tc.in) {
				t.Fatalf("parse = %d, %v; want %d", n, err, len(tc.in))
			}
			if p.kind != tc.kind || p.flags != tc.flags || string(p.body) != tc.body {
				t.Errorf("parse = %s flags %#x body %q", p.kind, p.flags, p.body)
			}
			for k := range len(tc.in) {
				if _, n, err := parseMQTTPacket(tc.in[:k], mqttWireMaxPacket); n != 0 || err != nil {
					t.Fatalf("prefix of %d bytes: %d, %v; want need-more", k, n, err)
				}
			}
			more := append(append([]byte(nil), tc.in...), 0xd0, 0, 0x30)
			if _, n, err := parseMQTTPacket(more, mqttWireMaxPacket); n != len(tc.in) || err != nil {
				t.Errorf("with trailing bytes: %d, %v; want %d", n, err, len(tc.in))
			}
		})
	}
}

func TestParseMQTTPacketErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"length of 5 bytes", []byte{0x30, 0xff, 0xff, 0xff, 0xff, 1}},
		{"length of 5 bytes, known at the 4th", []byte{0x30, 0xff, 0xff, 0xff, 0x80}},
		{"over the limit", []byte{0x30, 0x81, 0x80, 0x10}}, // 262145
		{"PUBLISH QoS 3", []byte{0x36, 3, 0, 1, 't'}},
		{"PUBREL without its flags", []byte{0x60, 2, 0, 1}},
		{"PUBACK with flags", []byte{0x41, 2, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, n, err := parseMQTTPacket(tc.in, mqttWireMaxPacket); !errors.Is(err, errMQTTMalformed) || n != 0 {
				t.Errorf("parse = %d, %v; want errMQTTMalformed", n, err)
			}
		})
	}
	for _, tc := range []struct {
		name string
		p    mqttPacket
		f    func(mqttPacket) error
	}{
		{"PUBLISH topic past the end", mqttPacket{kind: mqttPublish, body: []byte{0, 5, 't'}}, mqttPublishErr},
		{"PUBLISH QoS 1 without id", mqttPacket{kind: mqttPublish, flags: 2, body: []byte{0, 1, 't', 0}}, mqttPublishErr},
		{"PUBLISH QoS 1 with id 0", mqttPacket{kind: mqttPublish, flags: 2, body: []byte{0, 1, 't', 0, 0}}, mqttPublishErr},
		{"PUBACK of 3 bytes", mqttPacket{kind: mqttPuback, body: []byte{0, 1, 0}}, func(p mqttPacket) error { _, err := parseMQTTID(p); return err }},
		{"CONNACK of 3 bytes", mqttPacket{kind: mqttConnack, body: []byte{0, 0, 0}}, func(p mqttPacket) error { _, _, err := parseMQTTConnack(p); return err }},
		{"SUBACK without codes", mqttPacket{kind: mqttSuback, body: []byte{0, 1}}, func(p mqttPacket) error { _, _, err := parseMQTTSuback(p); return err }},
	} {
		if err := tc.f(tc.p); !errors.Is(err, errMQTTMalformed) {
			t.Errorf("%s: %v; want errMQTTMalformed", tc.name, err)
		}
	}
}

func mqttPublishErr(p mqttPacket) error { _, _, _, err := parseMQTTPublish(p); return err }

func TestMQTTRemaining(t *testing.T) {
	for _, n := range []int{0, 1, 127, 128, 16383, 16384, 2097151, 2097152, 268435455} {
		b := appendVarint([]byte{0x30}, n)
		rem, h := mqttRemaining(b)
		if rem != n || h != len(b) {
			t.Errorf("%d: decoded %d in %d bytes, encoded in %d", n, rem, h, len(b))
		}
	}
}

// TestMQTTRoundTrip encodes what the client sends, then decodes it both
// with its own parser and with paho's, independently written.
func TestMQTTRoundTrip(t *testing.T) {
	long := strings.Repeat("b", 300)
	for _, qos := range []byte{0, 1, 2} {
		for _, body := range [][]byte{nil, []byte("x"), bytes.Repeat([]byte{7}, 1024)} {
			b := appendMQTTPublish(nil, long, qos, 65535, body)
			p, n, err := parseMQTTPacket(b, mqttWireMaxPacket)
			if err != nil || n != len(b) {
				t.Fatalf("QoS %d: parse = %d, %v", qos, n, err)
			}
			topic, id, payload, err := parseMQTTPublish(p)
			wantID := uint16(65535)
			if qos == 0 {
				wantID = 0
			}
			if err != nil || p.qos() != qos || string(topic) != long || id != wantID || !bytes.Equal(payload, body) {
				t.Errorf("QoS %d: PUBLISH decodes as qos %d topic %.10q id %d payload %d B, %v", qos, p.qos(), topic, id, len(payload), err)
			}
			pp, err := packets.ReadPacket(bytes.NewReader(b))
			if pub, ok := pp.(*packets.PublishPacket); err != nil || !ok || pub.Qos != qos || pub.TopicName != long ||
				pub.MessageID != wantID || !bytes.Equal(pub.Payload, body) || pub.Dup || pub.Retain {
				t.Errorf("QoS %d: paho decodes PUBLISH as %v, %v", qos, pp, err)
			}
		}
	}
	for _, kind := range []mqttKind{mqttPuback, mqttPubrec, mqttPubrel, mqttPubcomp} {
		b := appendMQTTAck(nil, kind, 0x1234)
		p, n, err := parseMQTTPacket(b, mqttWireMaxPacket)
		if err != nil || n != 4 || p.kind != kind {
			t.Fatalf("%s: parse = %s, %d, %v", kind, p.kind, n, err)
		}
		if id, err := parseMQTTID(p); id != 0x1234 || err != nil {
			t.Errorf("%s: id %#x, %v", kind, id, err)
		}
		if pp, err := packets.ReadPacket(bytes.NewReader(b)); err != nil || pp.Details().MessageID != 0x1234 {
			t.Errorf("%s: paho decodes %v, %v", kind, pp, err)
		}
	}
	for _, clean := range []bool{true, false} {
		b := appendMQTTConnect(nil, "bench-x-s0", "guest", "guest", clean, mqttWireKeepAlive)
		pp, err := packets.ReadPacket(bytes.NewReader(b))
		c, ok := pp.(*packets.ConnectPacket)
		if err != nil || !ok || c.ProtocolName != "MQTT" || c.ProtocolVersion != 4 || c.CleanSession != clean || c.Keepalive != 60 ||
			c.ClientIdentifier != "bench-x-s0" || c.Username != "guest" || string(c.Password) != "guest" || c.Validate() != packets.Accepted {
			t.Errorf("clean %v: CONNECT decodes as %+v, %v", clean, pp, err)
		}
		if clean && !bytes.Equal(b, appendConnect(nil, "bench-x-s0", "guest", "guest", mqttWireKeepAlive)) {
			t.Error("a clean CONNECT differs from the idle clients'")
		}
	}
}

func TestMQTTPacketID(t *testing.T) {
	for _, low := range []uint64{0, 1, 65533, 65534, 65535, 65536, 3*65535 - 2, 1 << 40} {
		for _, d := range []uint64{0, 1, 2, 65533, 65534} {
			seq := low + d
			id := mqttPacketID(seq)
			if id == 0 {
				t.Fatalf("seq %d: packet id 0", seq)
			}
			if got, ok := mqttSeq(id, low, seq+1); got != seq || !ok {
				t.Errorf("low %d: id %d maps back to %d, %v; want %d", low, id, got, ok, seq)
			}
			if _, ok := mqttSeq(id, low, seq); ok {
				t.Errorf("low %d: id %d of unsent seq %d is in flight", low, id, seq)
			}
		}
	}
	if mqttPacketID(65534) != 65535 || mqttPacketID(65535) != 1 {
		t.Errorf("ids wrap as %d, %d; want 65535, 1", mqttPacketID(65534), mqttPacketID(65535))
	}
	if _, ok := mqttSeq(0, 0, 10); ok {
		t.Error("packet id 0 is in flight")
	}
}

// FuzzParseMQTTPacket: no panic, 0 ≤ n ≤ len(in), and the result does not
// depend on how the bytes arrive: a packet parsed from in is need-more in
// every prefix and the same from exactly its bytes.
func FuzzParseMQTTPacket(f *testing.F) {
	for _, tc := range mqttRaw {
		f.Add(tc.in)
	}
	f.Add([]byte{0x30, 0xff, 0xff, 0xff, 0xff, 1})
	f.Fuzz(func(t *testing.T, in []byte) {
		p, n, err := parseMQTTPacket(in, 1<<16)
		if n < 0 || n > len(in) || (err != nil && n != 0) {
			t.Fatalf("n = %d of %d, err %v", n, len(in), err)
		}
		if err != nil && !errors.Is(err, errMQTTMalformed) {
			t.Fatalf("not errMQTTMalformed: %v", err)
		}
		if n == 0 {
			return
		}
		for k := range n {
			if _, m, err := parseMQTTPacket(in[:k], 1<<16); m != 0 || err != nil {
				t.Fatalf("prefix %d of a %d-byte packet: %d, %v", k, n, m, err)
			}
		}
		q, m, err := parseMQTTPacket(in[:n], 1<<16)
		if m != n || err != nil || q.kind != p.kind || q.flags != p.flags || !bytes.Equal(q.body, p.body) {
			t.Fatalf("the packet's own bytes parse differently: %d, %v", m, err)
		}
		if p.kind == mqttPublish { // must not panic
			_, _, _, _ = parseMQTTPublish(p)
		}
	})
}

// TestMQTTWireFlushesBeforeBlocking: a subscriber whose read buffer holds a
// partial packet writes its acknowledgements before it waits for the rest,
// as a broker that sends no more until they come needs.
func TestMQTTWireFlushesBeforeBlocking(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	sc := Scenario{Proto: MQTT, Producers: 1, Consumers: 1, Sinks: 1, Size: 64, QoS: 2, Window: 100}
	r := newRun(&sc)
	msg := func(seq uint64, qos byte, id uint16) []byte {
		b := payload(64)
		r.stamp(b, r.prods[0], seq)
		return appendMQTTPublish(nil, "t", qos, id, b)
	}
	broker := make(chan error, 1)
	go func() {
		broker <- func() error {
			s, err := ln.Accept()
			if err != nil {
				return err
			}
			defer s.Close()
			_ = s.SetDeadline(time.Now().Add(10 * time.Second))
			br := bufio.NewReader(s)
			expect := func(want []byte) error {
				got := make([]byte, len(want))
				if _, err := io.ReadFull(br, got); err != nil {
					return err
				}
				if !bytes.Equal(got, want) {
					return fmt.Errorf("got % x, want % x", got, want)
				}
				return nil
			}
			if _, err := packets.ReadPacket(br); err != nil { // CONNECT
				return err
			}
			second, rel := msg(1, 2, 8), appendMQTTAck(nil, mqttPubrel, 8)
			// Each write ends inside a packet, and the next comes only once
			// the client has acknowledged what came before: CONNACK, a QoS 1
			// PUBLISH and the first byte of a QoS 2 one; its rest and the
			// first byte of a PINGRESP; the PINGRESP's last byte and part of
			// a PUBREL; the PUBREL's last byte.
			out := append([]byte{0x20, 2, 0, 0}, msg(0, 1, 7)...)
			if _, err := s.Write(append(out, second[0])); err != nil {
				return err
			}
			if err := expect(appendMQTTAck(nil, mqttPuback, 7)); err != nil {
				return err
			}
			if _, err := s.Write(append(second[1:], 0xd0)); err != nil {
				return err
			}
			if err := expect(appendMQTTAck(nil, mqttPubrec, 8)); err != nil {
				return err
			}
			if _, err := s.Write(append([]byte{0}, rel[:3]...)); err != nil {
				return err
			}
			if _, err := s.Write(rel[3:]); err != nil {
				return err
			}
			return expect(appendMQTTAck(nil, mqttPubcomp, 8))
		}()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialMQTTWire(ctx, ln.Addr().String(), "t", true)
	if err != nil {
		t.Fatal(err)
	}
	consumed := make(chan error, 1)
	go func() { consumed <- c.consume(r, r.cons[0], 2, nil) }()
	if err := <-broker; err != nil {
		t.Fatalf("broker: %v", err)
	}
	c.close()
	if err := <-consumed; err == nil {
		t.Error("consume returned without an error")
	}
	if got := r.unique.Load(); got != 2 {
		t.Errorf("%d messages recorded, want 2", got)
	}
	if r.cons[0].low != 1 {
		t.Errorf("%d downgraded, want 1 (the QoS 1 one)", r.cons[0].low)
	}
}

// TestMQTTWireKeepAlive: a connection that writes nothing sends PINGREQs,
// and stops once closed.
func TestMQTTWireKeepAlive(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	broker := make(chan error, 1)
	go func() {
		broker <- func() error {
			s, err := ln.Accept()
			if err != nil {
				return err
			}
			defer s.Close()
			_ = s.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := packets.ReadPacket(s); err != nil { // CONNECT
				return err
			}
			if _, err := s.Write([]byte{0x20, 2, 0, 0}); err != nil {
				return err
			}
			for range 2 {
				p, err := packets.ReadPacket(s)
				if err != nil {
					return err
				}
				if _, ok := p.(*packets.PingreqPacket); !ok {
					return fmt.Errorf("got %v, want PINGREQ", p)
				}
			}
			return nil
		}()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := dialMQTTWire(ctx, ln.Addr().String(), "t", true)
	if err != nil {
		t.Fatal(err)
	}
	defer c.close()
	go c.keepAlive(5 * time.Millisecond) // the real interval is 30 s
	if err := <-broker; err != nil {
		t.Fatalf("broker: %v", err)
	}
}
