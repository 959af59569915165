package frame_test

import (
	"fmt"

	"github.com/junction-broker/junction/protocols/amqp/frame"
)

// A session's Feed: parse every complete frame, decode methods with a
// per-connection Decoder, and report how many bytes were consumed.
func Example() {
	in := frame.AppendMethodFrame(nil, 1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "a.b"})
	in = frame.AppendContent(in, 1, frame.ClassBasic, nil, []byte("hi"), frame.FrameMinSize)
	in = append(in, frame.AppendHeartbeat(nil)[:3]...) // a partial frame

	var d frame.Decoder
	consumed := 0
	for {
		f, n, err := frame.ParseFrame(in[consumed:], frame.FrameMinSize)
		if err != nil {
			fmt.Println("close with", err)
			return
		}
		if n == 0 {
			break // need more bytes
		}
		consumed += n
		switch f.Type {
		case frame.FrameMethod:
			m, err := d.DecodeMethod(f.Payload)
			if err != nil {
				fmt.Println("close with", err)
				return
			}
			if p, ok := m.(*frame.BasicPublish); ok {
				fmt.Println(m.Name(), p.Exchange, p.RoutingKey, m.HasContent())
			}
		case frame.FrameHeader:
			h, _ := frame.ParseContentHeader(f.Payload)
			fmt.Println("content of", h.BodySize, "bytes")
		case frame.FrameBody:
			fmt.Printf("body %q\n", f.Payload)
		}
	}
	fmt.Println("consumed", consumed, "of", len(in))
	// Output:
	// basic.publish amq.topic a.b true
	// content of 2 bytes
	// body "hi"
	// consumed 61 of 64
}
