package frame

import (
	"bytes"
	"testing"
)

// parseAllFrames parses buf completely, failing the test on any error.
func parseAllFrames(t testing.TB, buf []byte, frameMax uint32) []Frame {
	t.Helper()
	var out []Frame
	for len(buf) > 0 {
		f, n, err := ParseFrame(buf, frameMax)
		if err != nil || n == 0 {
			t.Fatalf("ParseFrame: n=%d err=%v", n, err)
		}
		out = append(out, f)
		buf = buf[n:]
	}
	return out
}

func TestAppendContentSplits(t *testing.T) {
	props := &Properties{Flags: FlagContentType, ContentType: "x"}
	for _, tc := range []struct {
		frameMax uint32
		size     int
		frames   []int // body frame payload sizes
	}{
		{4096, 0, nil},
		{4096, 1, []int{1}},
		{4096, 4088, []int{4088}},
		{4096, 4089, []int{4088, 1}},
		{4096, 3 * 4088, []int{4088, 4088, 4088}},
		{131072, 200000, []int{131064, 68936}},
		{0, 300000, []int{300000}},
	} {
		body := make([]byte, tc.size)
		for i := range body {
			body[i] = byte(i)
		}
		out := AppendContent([]byte("prefix"), 7, ClassBasic, props, body, tc.frameMax)
		if string(out[:6]) != "prefix" {
			t.Fatal("dst prefix lost")
		}
		frames := parseAllFrames(t, out[6:], tc.frameMax)
		h, err := ParseContentHeader(frames[0].Payload)
		if err != nil || frames[0].Type != FrameHeader || frames[0].Channel != 7 || h.BodySize != uint64(tc.size) {
			t.Fatalf("header frame %+v %v", h, err)
		}
		var sizes []int
		var got []byte
		for _, f := range frames[1:] {
			if f.Type != FrameBody || f.Channel != 7 {
				t.Fatalf("frame %+v", f)
			}
			if tc.frameMax != 0 && len(f.Payload)+FrameOverhead > int(tc.frameMax) {
				t.Fatalf("body frame of %d bytes exceeds frame-max %d", len(f.Payload)+FrameOverhead, tc.frameMax)
			}
			sizes = append(sizes, len(f.Payload))
			got = append(got, f.Payload...)
		}
		if !bytes.Equal(got, body) || len(sizes) != len(tc.frames) {
			t.Fatalf("frameMax %d size %d: body frames %v, want %v", tc.frameMax, tc.size, sizes, tc.frames)
		}
		for i := range sizes {
			if sizes[i] != tc.frames[i] {
				t.Fatalf("frameMax %d size %d: body frames %v, want %v", tc.frameMax, tc.size, sizes, tc.frames)
			}
		}

		// The vectored variant produces the same bytes, and references body.
		vec, dst := AppendContentVec(nil, []byte("prefix"), 7, ClassBasic, props, body, tc.frameMax)
		if string(dst[:6]) != "prefix" {
			t.Fatal("vec: dst prefix lost")
		}
		if joined := bytes.Join(vec, nil); !bytes.Equal(joined, out[6:]) {
			t.Fatalf("vec differs from AppendContent (frameMax %d size %d)", tc.frameMax, tc.size)
		}
		for i := 1; i < len(vec); i += 2 {
			if len(vec[i]) > 0 && &vec[i][0] != &body[(i/2)*max(1, sizes[0])] {
				t.Fatal("vec copies the body")
			}
		}
		if want := 1 + 2*len(tc.frames); len(vec) != want {
			t.Fatalf("vec has %d entries, want %d", len(vec), want)
		}
	}
}

func TestAppendMethodFrameReusesCapacity(t *testing.T) {
	buf := make([]byte, 0, 256)
	out := AppendMethodFrame(buf, 1, &BasicAck{DeliveryTag: 3})
	if &out[:1][0] != &buf[:1][0] {
		t.Fatal("AppendMethodFrame reallocated a buffer with room")
	}
}

// TestZeroAllocs pins the steady-state hot paths at zero allocations
// (STYLE §3.4).
func TestZeroAllocs(t *testing.T) {
	publish := AppendMethodFrame(nil, 1, &BasicPublish{Exchange: "amq.topic", RoutingKey: "sensors.eu.temp", Mandatory: true})
	props := Properties{Flags: FlagContentType | FlagDeliveryMode, ContentType: "application/json", DeliveryMode: 2}
	publish = AppendContent(publish, 1, ClassBasic, &props, make([]byte, 256), 131072)
	publish = AppendMethodFrame(publish, 1, &BasicAck{DeliveryTag: 42, Multiple: true})
	var d Decoder
	var p Properties
	parse := func() {
		buf := publish
		for len(buf) > 0 {
			f, n, err := ParseFrame(buf, 131072)
			if err != nil || n == 0 {
				t.Fatal(err)
			}
			switch f.Type {
			case FrameMethod:
				if _, err := d.DecodeMethod(f.Payload); err != nil {
					t.Fatal(err)
				}
			case FrameHeader:
				h, err := ParseContentHeader(f.Payload)
				if err != nil {
					t.Fatal(err)
				}
				if err := d.DecodeProperties(h.RawProperties, &p); err != nil {
					t.Fatal(err)
				}
			}
			buf = buf[n:]
		}
	}
	parse() // warm the string cache
	if n := testing.AllocsPerRun(100, parse); n != 0 {
		t.Errorf("parsing publish+header+body+ack: %v allocs, want 0", n)
	}

	deliver := &BasicDeliver{ConsumerTag: "amq.ctag-1", DeliveryTag: 1, Exchange: "amq.topic", RoutingKey: "sensors.eu.temp"}
	body := make([]byte, 256)
	buf := make([]byte, 0, 1024)
	vec := make([][]byte, 0, 8)
	if n := testing.AllocsPerRun(100, func() {
		deliver.DeliveryTag++
		out := AppendMethodFrame(buf[:0], 1, deliver)
		_ = AppendContent(out, 1, ClassBasic, &props, body, 131072)
		_, _ = AppendContentVec(vec[:0], buf[:0], 1, ClassBasic, &props, body, 131072)
		_ = AppendHeartbeat(buf[:0])
	}); n != 0 {
		t.Errorf("encoding deliver: %v allocs, want 0", n)
	}
}
