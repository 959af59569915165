package frame

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// allProperties has every property present with a non-zero value.
var allProperties = Properties{
	Flags: FlagContentType | FlagContentEncoding | FlagHeaders | FlagDeliveryMode | FlagPriority | FlagCorrelationID |
		FlagReplyTo | FlagExpiration | FlagMessageID | FlagTimestamp | FlagType | FlagUserID | FlagAppID | FlagClusterID,
	ContentType: "text/plain", ContentEncoding: "utf-8", Headers: Table{{"x-death", []any{Table{{"count", int64(1)}}}}},
	DeliveryMode: 2, Priority: 9, CorrelationID: "c", ReplyTo: "amq.rabbitmq.reply-to", Expiration: "1000", MessageID: "m",
	Timestamp: time.Unix(1700000000, 0).UTC(), Type: "t", UserID: "guest", AppID: "a", ClusterID: "cl",
}

func TestPropertiesRoundTrip(t *testing.T) {
	var d Decoder
	// Every single property alone, then all of them, then a present but
	// zero-valued set.
	cases := []Properties{allProperties, {Flags: FlagHeaders | FlagContentType | FlagTimestamp, Timestamp: time.Unix(0, 0).UTC()}, {}}
	for bit := uint16(1 << 15); bit >= FlagClusterID; bit >>= 1 {
		p := allProperties
		p.Flags = bit
		raw := p.Append(nil)
		var only Properties
		if err := only.Decode(raw); err != nil {
			t.Fatal(err)
		}
		cases = append(cases, only)
	}
	for _, p := range cases {
		raw := p.Append(nil)
		var got, viaDecoder Properties
		if err := got.Decode(raw); err != nil {
			t.Fatalf("%04x: %v", p.Flags, err)
		}
		if err := d.DecodeProperties(raw, &viaDecoder); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(p, got); diff != "" {
			t.Fatalf("%04x (-want +got):\n%s", p.Flags, diff)
		}
		if diff := cmp.Diff(p, viaDecoder); diff != "" {
			t.Fatalf("Decoder %04x (-want +got):\n%s", p.Flags, diff)
		}
		if again := got.Append(nil); !bytes.Equal(again, raw) {
			t.Fatalf("re-encoding differs: %x vs %x", raw, again)
		}
		for i := range len(raw) {
			var q Properties
			if err := q.Decode(raw[:i]); err == nil && i < len(raw) {
				t.Fatalf("%04x truncated at %d decoded", p.Flags, i)
			}
		}
	}
	if got := (*Properties)(nil).Append(nil); !bytes.Equal(got, []byte{0, 0}) {
		t.Fatalf("nil properties: %x", got)
	}
}

func TestPropertiesFlags(t *testing.T) {
	// Continuation words announcing nothing are accepted (§4.2.6.1).
	var p Properties
	if err := p.Decode([]byte{0x80, 0x01, 0x00, 0x01, 0x00, 0x00, 1, 'a'}); err != nil || p.ContentType != "a" || p.Flags != FlagContentType {
		t.Fatalf("continuation: %+v %v", p, err)
	}
	// Bit 1 is kept as RabbitMQ keeps it (ignored), and written back.
	if err := p.Decode([]byte{0x00, 0x02}); err != nil || p.Flags != 2 || !bytes.Equal(p.Append(nil), []byte{0, 2}) {
		t.Fatalf("bit 1: %+v %v", p, err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"empty", nil},
		{"half a flags word", []byte{0x80}},
		{"a property in a continuation word", []byte{0x00, 0x01, 0x80, 0x00}},
		{"continuation word missing", []byte{0x00, 0x01}},
		{"trailing bytes", []byte{0x00, 0x00, 0}},
		{"headers overrun", []byte{0x20, 0x00, 0, 0, 0, 5}},
		{"bad headers", []byte{0x20, 0x00, 0, 0, 0, 3, 1, 'k', 'Z'}},
	} {
		p := allProperties
		err := p.Decode(tc.in)
		var pe *Error
		if !errors.As(err, &pe) || pe.Code != FrameError || pe.ClassID != ClassBasic {
			t.Errorf("%s: %v", tc.name, err)
		}
		if diff := cmp.Diff(Properties{}, p); diff != "" {
			t.Errorf("%s: failed Decode leaves %+v", tc.name, p)
		}
	}
	if !allProperties.Has(FlagContentType|FlagAppID) || (&Properties{Flags: FlagAppID}).Has(FlagContentType|FlagAppID) {
		t.Fatal("Has")
	}
}

func TestContentHeader(t *testing.T) {
	payload := AppendContentHeader(nil, ClassBasic, 1<<40, &allProperties)
	h, err := ParseContentHeader(payload)
	if err != nil || h.ClassID != ClassBasic || h.Weight != 0 || h.BodySize != 1<<40 || !bytes.Equal(h.RawProperties, allProperties.Append(nil)) {
		t.Fatalf("%+v %v", h, err)
	}
	if _, err := ParseContentHeader(payload[:13]); !errors.Is(err, ErrShortHeader) {
		t.Fatalf("short header: %v", err)
	}
}
