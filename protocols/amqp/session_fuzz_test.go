package amqp

import (
	"testing"

	"github.com/junction-broker/junction/protocols/amqp/frame"
)

// FuzzSession feeds arbitrary client bytes to a session that completed the
// handshake and opened channel 1: whatever arrives, the session answers
// with frames that parse (or closes), keeps 0 <= n <= len(in), and never
// panics. Seeds are real client frames.
func FuzzSession(f *testing.F) {
	f.Add(frame.AppendMethodFrame(nil, 1, &frame.QueueDeclare{Queue: "q"}))
	pub := frame.AppendMethodFrame(nil, 1, &frame.BasicPublish{RoutingKey: "q"})
	pub = frame.AppendContent(pub, 1, frame.ClassBasic, &frame.Properties{}, []byte("body"), 4096)
	f.Add(pub)
	f.Add(frame.AppendMethodFrame(nil, 1, &frame.BasicConsume{Queue: "q"}))
	f.Add(frame.AppendMethodFrame(nil, 2, &frame.ChannelOpen{}))
	f.Add(frame.AppendMethodFrame(nil, 0, &frame.ConnectionClose{ReplyCode: 200}))
	f.Add([]byte{1, 0, 1, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, in []byte) {
		h := newHarness(t, Config{})
		h.handshake(0)
		h.openChannel(1)
		h.got = nil
		h.send(in)
		// Feed again in two halves on a fresh session: the same bytes split
		// differently must not panic either.
		h2 := newHarness(t, Config{})
		h2.handshake(0)
		h2.openChannel(1)
		h2.send(in[:len(in)/2])
		h2.send(in[len(in)/2:])
	})
}
