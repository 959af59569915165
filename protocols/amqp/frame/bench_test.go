package frame

import "testing"

// BenchmarkAppendDeliver encodes basic.deliver + content header + a
// 256-byte body into a reused buffer, as a session's outbox does.
func BenchmarkAppendDeliver(b *testing.B) {
	d := &BasicDeliver{ConsumerTag: "amq.ctag-1", Exchange: "amq.topic", RoutingKey: "sensors.eu.temp"}
	props := &Properties{Flags: FlagContentType | FlagDeliveryMode, ContentType: "application/json", DeliveryMode: 2}
	body := make([]byte, 256)
	buf := make([]byte, 0, 1024)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		d.DeliveryTag++
		buf = AppendMethodFrame(buf[:0], 1, d)
		buf = AppendContent(buf, 1, ClassBasic, props, body, 131072)
	}
}

// BenchmarkAppendDeliverVec is BenchmarkAppendDeliver for writev: the body
// is referenced, not copied.
func BenchmarkAppendDeliverVec(b *testing.B) {
	d := &BasicDeliver{ConsumerTag: "amq.ctag-1", Exchange: "amq.topic", RoutingKey: "sensors.eu.temp"}
	props := &Properties{Flags: FlagContentType | FlagDeliveryMode, ContentType: "application/json", DeliveryMode: 2}
	body := make([]byte, 256)
	buf := make([]byte, 0, 1024)
	vec := make([][]byte, 0, 8)
	b.ReportAllocs()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		d.DeliveryTag++
		buf = AppendMethodFrame(buf[:0], 1, d)
		vec, buf = AppendContentVec(vec[:0], buf, 1, ClassBasic, props, body, 131072)
	}
}

// publishSequence is what a publisher in confirm mode sends per message:
// basic.publish, content header, 256-byte body; plus one basic.ack as a
// consumer sends.
func publishSequence() []byte {
	buf := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "amq.topic", RoutingKey: "sensors.eu.temp"})
	props := &Properties{Flags: FlagContentType | FlagDeliveryMode, ContentType: "application/json", DeliveryMode: 2}
	buf = AppendContent(buf, 1, ClassBasic, props, make([]byte, 256), 131072)
	return AppendMethodFrame(buf, 1, &BasicAck{DeliveryTag: 7})
}

// BenchmarkParsePublish parses the frame sequence with a Decoder: frames,
// methods, content header and properties.
func BenchmarkParsePublish(b *testing.B) {
	in := publishSequence()
	var d Decoder
	var p Properties
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		buf := in
		for len(buf) > 0 {
			f, n, err := ParseFrame(buf, 131072)
			if err != nil || n == 0 {
				b.Fatal(err)
			}
			switch f.Type {
			case FrameMethod:
				if _, err := d.DecodeMethod(f.Payload); err != nil {
					b.Fatal(err)
				}
			case FrameHeader:
				h, err := ParseContentHeader(f.Payload)
				if err != nil {
					b.Fatal(err)
				}
				if err := d.DecodeProperties(h.RawProperties, &p); err != nil {
					b.Fatal(err)
				}
			}
			buf = buf[n:]
		}
	}
}

// BenchmarkDecodeMethodNoCache is the package-level DecodeMethod on
// basic.publish: a new struct and two new strings per call.
func BenchmarkDecodeMethodNoCache(b *testing.B) {
	in := (&BasicPublish{Exchange: "amq.topic", RoutingKey: "sensors.eu.temp"}).Append(nil)
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeMethod(in); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeTable decodes typical queue.declare arguments.
func BenchmarkDecodeTable(b *testing.B) {
	in := AppendTable(nil, Table{{"x-queue-type", "quorum"}, {"x-max-length", int64(1000)}, {"x-dead-letter-exchange", "dlx"}})[4:]
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeTable(in); err != nil {
			b.Fatal(err)
		}
	}
}
