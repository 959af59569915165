package frame

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// captured is one frame from testdata/amqp091-go.txt.
type captured struct {
	name    string
	typ     uint8
	channel uint16
	payload []byte
}

// readCapture loads the frames amqp091-go v1.10.0 sent (see the file's
// header for how they were captured).
func readCapture(t testing.TB) []captured {
	t.Helper()
	f, err := os.Open("testdata/amqp091-go.txt")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []captured
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Fields(line)
		typ, _ := strconv.Atoi(parts[1])
		ch, _ := strconv.Atoi(parts[2])
		p, err := hex.DecodeString(parts[3])
		if err != nil || len(parts) != 4 {
			t.Fatalf("bad line %q", line)
		}
		out = append(out, captured{parts[0], uint8(typ), uint16(ch), p})
	}
	return out
}

func byName(t *testing.T, frames []captured, name string) []byte {
	t.Helper()
	for _, c := range frames {
		if c.name == name {
			return c.payload
		}
	}
	t.Fatalf("no captured frame %q", name)
	return nil
}

// TestGoldenAMQP091Go decodes every frame a real client sent, re-encodes
// it byte for byte, and checks the fields of the interesting ones.
func TestGoldenAMQP091Go(t *testing.T) {
	frames := readCapture(t)
	for _, c := range frames {
		t.Run(c.name, func(t *testing.T) {
			wire := AppendFrame(nil, c.typ, c.channel, c.payload)
			if c.typ == 0 {
				if ok, n, err := ParseProtocolHeader(c.payload); !ok || n != 8 || err != nil {
					t.Fatalf("protocol header: %v %d %v", ok, n, err)
				}
				return
			}
			f, n, err := ParseFrame(wire, 4096)
			if err != nil || n != len(wire) || !bytes.Equal(f.Payload, c.payload) {
				t.Fatalf("ParseFrame: %v, n=%d", err, n)
			}
			switch c.typ {
			case FrameMethod:
				m, err := DecodeMethod(c.payload)
				if err != nil {
					t.Fatal(err)
				}
				if got := m.Append(nil); !bytes.Equal(got, c.payload) {
					t.Fatalf("re-encoded %s differs:\n got %x\nwant %x", m.Name(), got, c.payload)
				}
				if !bytes.Equal(AppendMethodFrame(nil, c.channel, m), wire) {
					t.Fatal("AppendMethodFrame differs from the client's frame")
				}
			case FrameHeader:
				h, err := ParseContentHeader(c.payload)
				if err != nil {
					t.Fatal(err)
				}
				var p Properties
				if err := p.Decode(h.RawProperties); err != nil {
					t.Fatal(err)
				}
				if got := AppendContentHeader(nil, h.ClassID, h.BodySize, &p); !bytes.Equal(got, c.payload) {
					t.Fatalf("re-encoded header differs:\n got %x\nwant %x", got, c.payload)
				}
			}
		})
	}

	decode := func(name string) Method {
		m, err := DecodeMethod(byName(t, frames, name))
		if err != nil {
			t.Fatal(err)
		}
		return m
	}
	for _, tc := range []struct {
		name string
		want Method
	}{
		{"basic.publish", &BasicPublish{Exchange: "ex", RoutingKey: "a.b.c", Mandatory: true}},
		{"basic.ack", &BasicAck{DeliveryTag: 5, Multiple: true}},
		{"basic.nack", &BasicNack{DeliveryTag: 7, Requeue: true}},
		{"basic.reject", &BasicReject{DeliveryTag: 8}},
		{"basic.consume", &BasicConsume{Queue: "q1", ConsumerTag: "ctag"}},
		{"basic.cancel", &BasicCancel{ConsumerTag: "ctag"}},
		{"basic.qos", &BasicQos{PrefetchCount: 10}},
		{"exchange.declare", &ExchangeDeclare{Exchange: "ex", Type: "topic", Durable: true}},
		{"queue.bind", &QueueBind{Queue: "q1", Exchange: "ex", RoutingKey: "a.*.c"}},
		{"confirm.select", &ConfirmSelect{}},
		{"channel.open", &ChannelOpen{}},
		{"connection.open", &ConnectionOpen{VirtualHost: "vh"}},
		{"connection.tune-ok", &ConnectionTuneOk{ChannelMax: 2047, FrameMax: 4096, Heartbeat: 10}}, // amqp091-go defaults to 10 s,
		{"connection.close", &ConnectionClose{ReplyCode: 200, ReplyText: "kthxbai"}},
	} {
		if diff := cmp.Diff(tc.want, decode(tc.name)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}

	so := decode("connection.start-ok").(*ConnectionStartOk)
	if so.Mechanism != "PLAIN" || so.Response != "\x00guest\x00guest" || so.Locale != "en_US" {
		t.Errorf("start-ok = %+v", so)
	}
	if v, _ := so.ClientProperties.Get("product"); v != "cap" {
		t.Errorf("client product = %v", v)
	}

	// queue.declare carried one argument of every type amqp091-go writes.
	qd := decode("queue.declare").(*QueueDeclare)
	if qd.Queue != "q1" || !qd.Durable || !qd.Exclusive || qd.AutoDelete || qd.Passive || qd.NoWait {
		t.Errorf("queue.declare = %+v", qd)
	}
	wantArgs := map[string]any{
		"x-max-length": int32(10), "t": true, "b": int8(-1), "B": uint8(200), "s": int16(-300), "l": int64(-1) << 40,
		"f": float32(1.5), "d": 2.25, "D": Decimal{Scale: 2, Value: 12345}, "S": "str", "x": []byte{0, 1, 2},
		"A": []any{int32(7), "e", Table{{"n", int64(1)}}}, "T": time.Unix(1700000000, 0).UTC(), "F": Table{{"inner", "v"}}, "V": nil,
	}
	if len(qd.Arguments) != len(wantArgs) {
		t.Errorf("%d arguments, want %d", len(qd.Arguments), len(wantArgs))
	}
	for k, want := range wantArgs {
		got, ok := qd.Arguments.Get(k)
		if !ok || !cmp.Equal(got, want) {
			t.Errorf("argument %q = %#v, want %#v", k, got, want)
		}
	}

	// The content: header with all 13 properties amqp091-go sets, then a
	// 5000-byte body split at frame-max 4096.
	h, _ := ParseContentHeader(byName(t, frames, "publish.header"))
	var p Properties
	if err := p.Decode(h.RawProperties); err != nil {
		t.Fatal(err)
	}
	want := Properties{
		Flags:       0xfff8, // every property but cluster-id
		ContentType: "application/json", ContentEncoding: "gzip", Headers: p.Headers, DeliveryMode: 2, Priority: 5,
		CorrelationID: "corr", ReplyTo: "rq", Expiration: "60000", MessageID: "mid", Timestamp: time.Unix(1700000000, 0).UTC(),
		Type: "ty", UserID: "guest", AppID: "app",
	}
	if h.ClassID != ClassBasic || h.Weight != 0 || h.BodySize != 5000 {
		t.Errorf("header = %+v", h)
	}
	if diff := cmp.Diff(want, p); diff != "" {
		t.Errorf("properties (-want +got):\n%s", diff)
	}
	if v, _ := p.Headers.Get("h"); v != "v" {
		t.Errorf("headers = %v", p.Headers)
	}
	if b1, b2 := byName(t, frames, "publish.body1"), byName(t, frames, "publish.body2"); len(b1) != 4088 || len(b2) != 912 {
		t.Errorf("body frames of %d and %d bytes", len(b1), len(b2))
	}
}

// TestGoldenHandDerived checks our encoder against bytes derived by hand
// from the spec (§4.2.3 frames, §4.2.5 fields, §4.2.6.1 content header).
func TestGoldenHandDerived(t *testing.T) {
	unhex := func(s string) []byte {
		b, err := hex.DecodeString(strings.ReplaceAll(s, " ", ""))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	d := BasicDeliver{ConsumerTag: "ctag", DeliveryTag: 9, Redelivered: true, Exchange: "ex", RoutingKey: "rk"}
	props := Properties{Flags: FlagContentType | FlagDeliveryMode, ContentType: "text/plain", DeliveryMode: 2}
	got := AppendMethodFrame(nil, 1, &d)
	got = AppendContent(got, 1, ClassBasic, &props, []byte("abc"), 4096)
	want := unhex(
		// method frame: type 1, channel 1, size 24; class 60 method 60;
		// "ctag"; delivery-tag 9; redelivered bit; "ex"; "rk"; end.
		"01 0001 00000018 003c 003c 04 63746167 0000000000000009 01 02 6578 02 726b ce" +
			// header frame: size 26; class 60, weight 0, body size 3;
			// flags 0x9000 (content-type, delivery-mode); "text/plain"; 2; end.
			"02 0001 0000001a 003c 0000 0000000000000003 9000 0a 746578742f706c61696e 02 ce" +
			// body frame.
			"03 0001 00000003 616263 ce")
	if !bytes.Equal(got, want) {
		t.Fatalf("deliver:\n got %x\nwant %x", got, want)
	}
	// connection.tune (class 10 method 30): channel-max 2047, frame-max
	// 131072, heartbeat 60.
	if got, want := AppendMethodFrame(nil, 0, &ConnectionTune{ChannelMax: 2047, FrameMax: 131072, Heartbeat: 60}),
		unhex("01 0000 0000000c 000a 001e 07ff 00020000 003c ce"); !bytes.Equal(got, want) {
		t.Fatalf("tune:\n got %x\nwant %x", got, want)
	}
	// queue.declare-ok: "q", message-count 3, consumer-count 1.
	if got, want := AppendMethodFrame(nil, 2, &QueueDeclareOk{Queue: "q", MessageCount: 3, ConsumerCount: 1}),
		unhex("01 0002 0000000e 0032 000b 01 71 00000003 00000001 ce"); !bytes.Equal(got, want) {
		t.Fatalf("declare-ok:\n got %x\nwant %x", got, want)
	}
}
