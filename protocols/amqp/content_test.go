package amqp

import (
	"bytes"
	"testing"

	"github.com/junction-broker/junction/protocols/amqp/frame"
)

// TestGrowBody: the assembled body is the frames in order, its capacity
// never exceeds four times what arrived (64 KiB at least) nor the declared
// size, and an honest 1 MiB body in 128 KiB frames takes two allocations.
func TestGrowBody(t *testing.T) {
	for _, tc := range []struct {
		size, frame int
		allocs      int
	}{
		{1, 1, 1},
		{100 << 10, 1, 2},
		{256 << 10, 131064, 1},
		{1 << 20, 131064, 2},
		{16 << 20, 131064, 4},
	} {
		var body []byte
		allocs := 0
		src := make([]byte, tc.size)
		for i := range src {
			src[i] = byte(i * 7)
		}
		for got := 0; got < tc.size; {
			p := src[got:min(got+tc.frame, tc.size)]
			before := cap(body)
			body = growBody(body, p, uint64(tc.size))
			got += len(p)
			if cap(body) != before {
				allocs++
			}
			if c := cap(body); c > tc.size || c > max(4*got, minBodyAlloc) {
				t.Fatalf("size %d: capacity %d after %d bytes", tc.size, c, got)
			}
		}
		if !bytes.Equal(body, src) {
			t.Fatalf("size %d: body differs from the frames sent", tc.size)
		}
		if allocs != tc.allocs {
			t.Errorf("size %d in frames of %d: %d allocations, want %d", tc.size, tc.frame, allocs, tc.allocs)
		}
	}
}

// TestDeclaredSizeNotAllocated: a body declared at the size limit of
// which one byte arrived holds 64 KiB, not the declared size; a declared
// size over the limit closes the channel at the header.
func TestDeclaredSizeNotAllocated(t *testing.T) {
	h := newHarness(t, Config{MaxMessageSize: 8 << 20})
	h.handshake(0)
	h.openChannel(1)
	b := frame.AppendMethodFrame(nil, 1, &frame.BasicPublish{RoutingKey: "q"})
	b = frame.AppendFrame(b, frame.FrameHeader, 1, frame.AppendContentHeader(nil, frame.ClassBasic, 8<<20, nil))
	h.send(frame.AppendFrame(b, frame.FrameBody, 1, []byte("x")))
	h.quiet()
	if c := cap(h.s.channels[1].msg.Body); c > minBodyAlloc {
		t.Fatalf("holding %d bytes for the one byte of a body declared at 8 MiB", c)
	}
	h.openChannel(2)
	b = frame.AppendMethodFrame(nil, 2, &frame.BasicPublish{RoutingKey: "q"})
	h.send(frame.AppendFrame(b, frame.FrameHeader, 2, frame.AppendContentHeader(nil, frame.ClassBasic, 1<<63, nil)))
	h.expectChanClose(2, frame.PreconditionFailed, "message size 9223372036854775808 is larger than configured max size 8388608")
}

// TestContentHeaderWeight: AMQP 0-9-1 §4.2.6.1, weight must be zero;
// RabbitMQ's 505 otherwise.
func TestContentHeaderWeight(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	hdr := frame.AppendContentHeader(nil, frame.ClassBasic, 0, nil)
	hdr[3] = 7 // weight
	h.send(frame.AppendFrame(frame.AppendMethodFrame(nil, 1, &frame.BasicPublish{RoutingKey: "q"}), frame.FrameHeader, 1, hdr))
	h.expectConnClose(frame.UnexpectedFrame, "weight 7")
}

// TestFeedStopsWhileRepliesWait: a client pipelining methods whose replies
// it does not read (here basic.qos) gets no more frames taken once
// batchBytes of replies wait for Output; Output wakes the connection to go
// on. Without the bound the replies grew without end.
func TestFeedStopsWhileRepliesWait(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	h.quiet()
	qos := frame.AppendMethodFrame(nil, 1, &frame.BasicQos{PrefetchCount: 1})
	in := bytes.Repeat(qos, 4*batchBytes/len(qos))
	n, err := h.s.Feed(in)
	if err != nil || n == 0 || n == len(in) {
		t.Fatalf("Feed took %d of %d bytes (%v), want it to stop part way", n, len(in), err)
	}
	if got := len(h.s.cur.buf); got < batchBytes || got > batchBytes+64 {
		t.Fatalf("%d bytes of replies held, want about %d", got, batchBytes)
	}
	if m, err := h.s.Feed(in[n:]); m != 0 || err != nil {
		t.Fatalf("Feed took %d more bytes (%v) before Output", m, err)
	}
	select {
	case <-h.c.Woken():
	default:
	}
	if out := h.s.Output(nil); len(out) == 0 {
		t.Fatal("no output")
	}
	select {
	case <-h.c.Woken():
	default:
		t.Fatal("Output did not wake the connection to offer the held input")
	}
	if m, err := h.s.Feed(in[n:]); m == 0 || err != nil {
		t.Fatalf("Feed took %d bytes (%v) after Output", m, err)
	}
}
