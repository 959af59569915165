package stomp

import "testing"

// FuzzSession feeds arbitrary client bytes to a connected session: whatever
// arrives, the session answers with frames that parse (or closes), keeps
// 0 <= n <= len(in), and never panics. Seeds are real client frames.
func FuzzSession(f *testing.F) {
	f.Add([]byte("SEND\ndestination:/queue/q\nreceipt:r\n\nbody\x00"))
	f.Add([]byte("SUBSCRIBE\nid:1\ndestination:/queue/q\nack:client\n\n\x00SEND\ndestination:/queue/q\n\nx\x00ACK\nid:1\n\n\x00"))
	f.Add([]byte("SUBSCRIBE\nid:1\ndestination:/topic/a.*\n\n\x00SEND\ndestination:/topic/a.b\ncontent-length:1\n\n\x00\x00"))
	f.Add([]byte("SUBSCRIBE\nid:2\ndestination:/exchange/amq.fanout\n\n\x00UNSUBSCRIBE\nid:2\n\n\x00NACK\nid:9\n\n\x00"))
	f.Add([]byte("\n\nDISCONNECT\nreceipt:bye\n\n\x00"))
	f.Add([]byte("BEGIN\ntransaction:t\n\n\x00"))
	f.Fuzz(func(t *testing.T, in []byte) {
		h := newHarness(t, Config{MaxFrameSize: 4096, MaxHeaders: 16, MaxHeaderLine: 512})
		h.connect()
		h.send(string(in))
		h2 := newHarness(t, Config{MaxFrameSize: 4096, MaxHeaders: 16, MaxHeaderLine: 512})
		h2.connect()
		h2.send(string(in[:len(in)/2]))
		h2.send(string(in[len(in)/2:]))
	})
}
