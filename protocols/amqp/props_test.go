package amqp

import (
	"reflect"
	"testing"
	"time"

	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
)

func TestPropsRoundTrip(t *testing.T) {
	ts := time.Unix(1700000000, 0).UTC()
	all := frame.Properties{
		Flags: frame.FlagContentType | frame.FlagContentEncoding | frame.FlagHeaders | frame.FlagDeliveryMode |
			frame.FlagPriority | frame.FlagCorrelationID | frame.FlagReplyTo | frame.FlagExpiration | frame.FlagMessageID |
			frame.FlagTimestamp | frame.FlagType | frame.FlagUserID | frame.FlagAppID | frame.FlagClusterID,
		ContentType: "ct", ContentEncoding: "ce", DeliveryMode: 2, Priority: 5, CorrelationID: "corr", ReplyTo: "rt",
		Expiration: "100", MessageID: "mid", Timestamp: ts, Type: "ty", UserID: "u", AppID: "app", ClusterID: "cl",
		Headers: frame.Table{
			{Key: "s", Value: "v"}, {Key: "i", Value: int32(1)}, {Key: "d", Value: frame.Decimal{Scale: 2, Value: 314}},
			{Key: "t", Value: frame.Table{{Key: "a", Value: []any{int8(1), "x", frame.Table{}}}}},
			{Key: "nil", Value: nil}, {Key: "bytes", Value: []byte("b")}, {Key: "when", Value: ts},
		},
	}
	for _, tc := range []struct {
		name string
		p    frame.Properties
	}{
		{"all", all},
		{"none", frame.Properties{}},
		{"empty but present", frame.Properties{Flags: frame.FlagContentType | frame.FlagMessageID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var rp router.Properties
			propsToRouter(&rp, &tc.p)
			var back frame.Properties
			propsToWire(&back, &rp, nil)
			a := tc.p.Append(nil)
			b := back.Append(nil)
			if !reflect.DeepEqual(a, b) {
				t.Fatalf("round trip changed the wire bytes\n got %x\nwant %x", b, a)
			}
		})
	}
	// Router-side values without a wire twin.
	var p frame.Properties
	propsToWire(&p, &router.Properties{Flags: router.HasHeaders, Headers: router.Table{{Key: "n", Value: 7}}}, nil)
	if v, _ := p.Headers.Get("n"); v != int64(7) {
		t.Fatalf("int encoded as %T", v)
	}
	var rp router.Properties
	propsToRouter(&rp, &frame.Properties{Flags: frame.FlagHeaders, Headers: frame.Table{{Key: "u", Value: uint64(9)}}})
	if v, _ := rp.Headers.Get("u"); v != int64(9) {
		t.Fatalf("uint64 read as %T", v)
	}
}

// TestDeliverAllocs pins the steady-state cost of encoding a delivery.
func TestDeliverAllocs(t *testing.T) {
	h := newHarness(t, Config{})
	h.handshake(0)
	h.openChannel(1)
	c := h.s.channels[1]
	m := router.NewMessage([]byte("hello"))
	m.Properties = router.Properties{Flags: router.HasHeaders | router.HasContentType, ContentType: "text/plain",
		Headers: router.Table{{Key: "k", Value: "v"}}}
	d := router.Delivery{Tag: 1, Consumer: &router.Consumer{Tag: "ctag"}, Message: m}
	var dst [][]byte
	allocs := testing.AllocsPerRun(1000, func() {
		h.s.encodeDelivery(c, &d)
		dst = h.s.Output(dst[:0])
	})
	if allocs != 0 {
		t.Fatalf("%.1f allocations per delivery", allocs)
	}
}
