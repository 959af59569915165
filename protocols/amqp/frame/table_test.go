package frame

import (
	"bytes"
	"encoding/hex"
	"errors"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// everyType holds one field of every type, in wire order, duplicates
// included.
var everyType = Table{
	{"t", true}, {"f0", false}, {"b", int8(-128)}, {"B", uint8(255)}, {"s", int16(-32768)}, {"u", uint16(65535)},
	{"I", int32(math.MinInt32)}, {"i", uint32(math.MaxUint32)}, {"l", int64(math.MinInt64)}, {"L", uint64(math.MaxUint64)},
	{"f", float32(-1.25)}, {"d", math.Inf(-1)}, {"D", Decimal{Scale: 3, Value: -123456}}, {"S", "long string ✓"},
	{"S0", ""}, {"x", []byte{0, 0xff}}, {"T", time.Unix(1700000000, 0).UTC()}, {"T0", time.Unix(-1, 0).UTC()}, {"V", nil},
	{"A", []any{int8(1), "two", []any{[]any{}, Table{}}, Table{{"in", uint16(3)}}, nil, []byte{}}},
	{"F", Table{{"nested", Table{{"deeper", []any{true}}}}}},
	{"t", false}, // duplicate key: kept, in order
}

func TestTableRoundTrip(t *testing.T) {
	enc := AppendTable(nil, everyType)
	got, err := DecodeTable(enc[4:])
	if err != nil {
		t.Fatal(err)
	}
	// Empty tables and arrays decode as nil.
	want := append(Table(nil), everyType...)
	want[19].Value = []any{int8(1), "two", []any{[]any(nil), Table(nil)}, Table{{"in", uint16(3)}}, nil, []byte{}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if again := AppendTable(nil, got); !bytes.Equal(again, enc) {
		t.Fatalf("re-encoding differs:\n%x\n%x", enc, again)
	}
}

// TestTableWire pins each type's octet and layout (RabbitMQ's field types,
// rabbit_binary_parser; 'S' for strings and 'x' for bytes as amqp091-go).
func TestTableWire(t *testing.T) {
	for _, tc := range []struct {
		v    any
		want string
	}{
		{true, "7401"}, {false, "7400"}, {int8(-2), "62fe"}, {uint8(2), "4202"}, {int16(-2), "73fffe"}, {uint16(2), "750002"},
		{int32(-2), "49fffffffe"}, {uint32(2), "6900000002"}, {int64(-2), "6cfffffffffffffffe"}, {uint64(2), "4c0000000000000002"},
		{2, "6c0000000000000002"}, {float32(1), "663f800000"}, {float64(1), "643ff0000000000000"}, {Decimal{2, 5}, "440200000005"},
		{"ab", "53000000026162"}, {[]byte("ab"), "78000000026162"}, {time.Unix(2, 0), "540000000000000002"}, {nil, "56"},
		{Table{{"k", nil}}, "4600000003016b56"}, {[]any{int8(1)}, "41000000026201"}, {Table(nil), "4600000000"},
	} {
		got := hex.EncodeToString(appendValue(nil, tc.v))
		if got != tc.want {
			t.Errorf("%#v: got %s, want %s", tc.v, got, tc.want)
		}
	}
	// Any non-zero boolean octet is true, as in RabbitMQ (Value /= 0).
	tab, err := DecodeTable([]byte{1, 'k', 't', 7})
	if err != nil || tab[0].Value != true {
		t.Fatalf("t=7: %v %v", tab, err)
	}
}

func TestTableErrors(t *testing.T) {
	deep := func(n int, typ byte) []byte {
		// n nested tables or arrays, innermost empty.
		b := []byte{}
		for range n {
			var w []byte
			if typ == 'F' {
				w = append([]byte{1, 'k', 'F'}, appendLong(nil, uint32(len(b)))...)
			} else {
				w = append([]byte{'A'}, appendLong(nil, uint32(len(b)))...)
			}
			b = append(w, b...)
		}
		return b
	}
	okTables := append([]byte{1, 'k'}, deep(MaxTableDepth-1, 'F')[2:]...)
	if _, err := DecodeTable(okTables); err != nil {
		t.Fatalf("depth %d: %v", MaxTableDepth-1, err)
	}
	for _, tc := range []struct {
		name string
		in   []byte
	}{
		{"key overruns", []byte{5, 'a'}},
		{"value missing", []byte{1, 'k'}},
		{"unknown type", []byte{1, 'k', 'Z', 0}},
		{"0-9-1 'U' is not RabbitMQ's", []byte{1, 'k', 'U', 0, 0}},
		{"int overruns", []byte{1, 'k', 'I', 0, 0}},
		{"longstr overruns", []byte{1, 'k', 'S', 0, 0, 0, 9, 'a'}},
		{"longstr length near 4G", []byte{1, 'k', 'x', 0xff, 0xff, 0xff, 0xff}},
		{"nested table overruns", []byte{1, 'k', 'F', 0, 0, 0, 9}},
		{"bad field inside nested table", []byte{1, 'k', 'F', 0, 0, 0, 2, 1, 'j'}},
		{"bad element inside array", []byte{1, 'k', 'A', 0, 0, 0, 1, 'Q'}},
		{"tables nested too deeply", append([]byte{1, 'k'}, deep(MaxTableDepth, 'F')[2:]...)},
		{"arrays nested too deeply", append([]byte{1, 'k'}, deep(MaxTableDepth, 'A')...)},
		{"a million nested arrays", append([]byte{1, 'k'}, deepArrays(1_000_000)...)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tab, err := DecodeTable(tc.in)
			var pe *Error
			if tab != nil || !errors.As(err, &pe) || pe.Code != FrameError {
				t.Fatalf("got %v, %v", tab, err)
			}
		})
	}
}

func TestTableUnsupportedType(t *testing.T) {
	defer func() {
		if r := recover(); r == nil || !strings.Contains(r.(error).Error(), "unsupported") {
			t.Fatalf("recovered %v", r)
		}
	}()
	AppendTable(nil, Table{{"k", struct{}{}}})
}

func TestTableGet(t *testing.T) {
	if v, ok := everyType.Get("t"); !ok || v != true {
		t.Fatal("Get returns the first of duplicates")
	}
	if _, ok := everyType.Get("missing"); ok {
		t.Fatal("Get of a missing key")
	}
}

// deepArrays returns n nested field arrays, built in linear time.
func deepArrays(n int) []byte {
	b := make([]byte, 5*n)
	for i := range n {
		b[5*i] = 'A'
		appendLong(b[5*i+1:5*i+1], uint32(5*(n-1-i)))
	}
	return b
}
