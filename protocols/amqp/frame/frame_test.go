package frame

import (
	"bytes"
	"errors"
	"testing"
)

// heartbeat is a heartbeat frame as every client sends it (§4.2.7).
var heartbeat = []byte{8, 0, 0, 0, 0, 0, 0, 0xCE}

func TestParseFrame(t *testing.T) {
	method := AppendMethodFrame(nil, 5, &BasicAck{DeliveryTag: 1})
	big := AppendFrame(nil, FrameBody, 1, make([]byte, 4096)) // payload = frame-max: allowed by the fudge
	over := AppendFrame(nil, FrameBody, 1, make([]byte, 4097))
	badEnd := bytes.Clone(method)
	badEnd[len(badEnd)-1] = 0xCD
	for _, tc := range []struct {
		name     string
		in       []byte
		frameMax uint32
		want     Frame
		n        int
		err      error
	}{
		{"empty", nil, 4096, Frame{}, 0, nil},
		{"heartbeat", heartbeat, 4096, Frame{Type: FrameHeartbeat, Payload: []byte{}}, 8, nil},
		{"heartbeat then more", append(bytes.Clone(heartbeat), 1, 0), 4096, Frame{Type: FrameHeartbeat, Payload: []byte{}}, 8, nil},
		{"method", method, 4096, Frame{Type: FrameMethod, Channel: 5, Payload: method[7 : len(method)-1]}, len(method), nil},
		{"payload frame-max minus 8", AppendFrame(nil, FrameBody, 1, make([]byte, 4088)), 4096, Frame{Type: FrameBody, Channel: 1, Payload: make([]byte, 4088)}, 4096, nil},
		{"payload frame-max (fudge)", big, 4096, Frame{Type: FrameBody, Channel: 1, Payload: make([]byte, 4096)}, len(big), nil},
		{"payload over fudge", over, 4096, Frame{}, 0, ErrFrameTooLarge},
		{"too large before payload", over[:7], 4096, Frame{}, 0, ErrFrameTooLarge},
		{"no limit", over, 0, Frame{Type: FrameBody, Channel: 1, Payload: make([]byte, 4097)}, len(over), nil},
		{"huge declared size, no limit", []byte{3, 0, 1, 0xff, 0xff, 0xff, 0xff}, 0, Frame{}, 0, nil},
		{"bad end", badEnd, 4096, Frame{}, 0, ErrFrameEnd},
		{"unknown type", []byte{4}, 4096, Frame{}, 0, ErrFrameType},
		{"protocol header mid-stream", []byte(ProtocolHeader), 4096, Frame{}, 0, ErrFrameType},
		{"heartbeat with payload", []byte{8, 0, 0, 0, 0, 0, 1, 0, 0xCE}, 4096, Frame{}, 0, ErrHeartbeatPayload},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, n, err := ParseFrame(tc.in, tc.frameMax)
			if !errors.Is(err, tc.err) || n != tc.n || f.Type != tc.want.Type || f.Channel != tc.want.Channel || !bytes.Equal(f.Payload, tc.want.Payload) {
				t.Fatalf("ParseFrame = %+v, %d, %v; want %+v, %d, %v", f, n, err, tc.want, tc.n, tc.err)
			}
			var pe *Error
			if err != nil && (!errors.As(err, &pe) || pe.Code != FrameError) {
				t.Fatalf("error %v is not a 501 *Error", err)
			}
		})
	}
}

// TestParseFramePrefixes: every proper prefix of a valid frame means "need
// more", never an error.
func TestParseFramePrefixes(t *testing.T) {
	buf := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "x", RoutingKey: "k"})
	for i := range len(buf) {
		if f, n, err := ParseFrame(buf[:i], 4096); n != 0 || err != nil || f.Payload != nil {
			t.Fatalf("prefix %d: got n=%d err=%v", i, n, err)
		}
	}
}

func TestParseFrameAliases(t *testing.T) {
	buf := AppendFrame(nil, FrameBody, 1, []byte("abc"))
	f, _, _ := ParseFrame(buf, 0)
	buf[7] = 'X'
	if string(f.Payload) != "Xbc" {
		t.Fatal("Payload does not alias buf")
	}
	if cap(f.Payload) != len(f.Payload) {
		t.Fatal("Payload's capacity reaches into the frame-end: appending to it would clobber buf")
	}
}

func TestProtocolHeader(t *testing.T) {
	for _, tc := range []struct {
		in  string
		ok  bool
		n   int
		err error
	}{
		{"", false, 0, nil},
		{"AMQ", false, 0, nil},
		{"AMQP\x00\x00\x09", false, 0, nil},
		{"AMQP\x00\x00\x09\x01", true, 8, nil},
		{"AMQP\x00\x00\x09\x01\x01\x00", true, 8, nil},
		{"AMQP\x00\x00\x09\x00", false, 0, ErrProtocolHeader}, // 0-9
		{"AMQP\x01\x01\x00\x09", false, 0, ErrProtocolHeader}, // 0-9, old style
		{"AMQP\x00\x01\x00\x00", false, 0, ErrProtocolHeader}, // AMQP 1.0
		{"GET / HTTP/1.1", false, 0, ErrProtocolHeader},
		{"X", false, 0, ErrProtocolHeader},
	} {
		ok, n, err := ParseProtocolHeader([]byte(tc.in))
		if ok != tc.ok || n != tc.n || !errors.Is(err, tc.err) {
			t.Errorf("ParseProtocolHeader(%q) = %v, %d, %v; want %v, %d, %v", tc.in, ok, n, err, tc.ok, tc.n, tc.err)
		}
	}
	if got := string(AppendProtocolHeader([]byte("x"))); got != "xAMQP\x00\x00\x09\x01" {
		t.Fatalf("AppendProtocolHeader = %q", got)
	}
	if !bytes.Equal(AppendHeartbeat(nil), heartbeat) {
		t.Fatal("AppendHeartbeat")
	}
}

func TestErrorText(t *testing.T) {
	e := &Error{Code: NotFound, ClassID: 50, MethodID: 10, Text: "no queue 'q'"}
	if got, want := e.Error(), "amqp frame: 404 NOT_FOUND - no queue 'q' (class 50, method 10)"; got != want {
		t.Fatalf("Error() = %q, want %q", got, want)
	}
	if !e.Soft() {
		t.Fatal("404 is soft")
	}
	// Soft agrees with STYLE.md snippet C's ranges for every code.
	for c := uint16(0); c < 1000; c++ {
		want := c >= 311 && c <= 313 || c >= 403 && c <= 406
		if got := (&Error{Code: c}).Soft(); got != want {
			t.Errorf("Soft(%d) = %v", c, got)
		}
	}
}
