package frame

import (
	"bytes"
	"encoding/binary"
	"math"
	"time"
)

// Table is a field table (AMQP 0-9-1 §4.2.5.5): ordered name-value pairs,
// kept in wire order with duplicates, so that decoding and re-encoding a
// table gives back the same bytes.
//
// Values have these Go types, one per field type that RabbitMQ reads and
// writes (rabbit_binary_parser, and the errata at
// https://www.rabbitmq.com/amqp-0-9-1-errata.html):
//
//	't' bool        'b' int8     'B' uint8    's' int16     'u' uint16
//	'I' int32       'i' uint32   'l' int64    'L' uint64    'f' float32
//	'd' float64     'D' Decimal  'S' string   'x' []byte    'A' []any
//	'T' time.Time   'F' Table    'V' nil
//
// Strings are written as 'S' (long string) and byte slices as 'x', as
// RabbitMQ and amqp091-go do. Encoding also accepts int (as 'l'). 'L' is
// kept apart from 'l' for a lossless round trip, although RabbitMQ reads
// both as signed 64-bit. The only bytes that do not survive a round trip
// are non-canonical booleans: any non-zero 't' octet decodes as true and
// is written back as 1. Timestamps are whole seconds in UTC.
type Table []Field

// Field is one entry of a Table. Key is a short string (at most 255 bytes;
// longer keys are truncated when encoded).
type Field struct {
	Key   string
	Value any
}

// Decimal is a field-table decimal ('D'): Value × 10^-Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// MaxTableDepth bounds the nesting of tables and arrays inside a field
// table. Deeper input is a decoding error (501), never a stack overflow.
const MaxTableDepth = 64

// Get returns the value of the first field named key.
func (t Table) Get(key string) (any, bool) {
	for i := range t {
		if t[i].Key == key {
			return t[i].Value, true
		}
	}
	return nil, false
}

// DecodeTable decodes the fields of a field table: b is the table's body,
// without its 4-byte length prefix. The result shares no memory with b.
func DecodeTable(b []byte) (Table, error) {
	t, text := decodeTable(b, 0)
	if text != "" {
		return nil, &Error{Code: codeMalformed, Text: text}
	}
	return t, nil
}

// AppendTable appends t with its 4-byte length prefix, as it appears in
// method arguments and properties. It panics if a value has a type outside
// those listed at Table: that is a bug in the caller, and decoded tables
// never contain one.
func AppendTable(dst []byte, t Table) []byte { return appendTable(dst, t) }

// decodeTable decodes the body of a table nested depth levels deep. It
// returns the failure's text, or "".
func decodeTable(b []byte, depth int) (Table, string) {
	if depth >= MaxTableDepth {
		return nil, "field table nested too deeply"
	}
	r := reader{b: b}
	var t Table
	for r.off < len(r.b) && r.text == "" {
		key := r.shortstr()
		v := decodeValue(&r, depth)
		if r.text != "" {
			break
		}
		t = append(t, Field{Key: key, Value: v})
	}
	return t, r.text
}

// decodeArray decodes the body of a field array ('A').
func decodeArray(b []byte, depth int) ([]any, string) {
	if depth >= MaxTableDepth {
		return nil, "field array nested too deeply"
	}
	r := reader{b: b}
	var a []any
	for r.off < len(r.b) && r.text == "" {
		v := decodeValue(&r, depth)
		if r.text != "" {
			break
		}
		a = append(a, v)
	}
	return a, r.text
}

func decodeValue(r *reader, depth int) any {
	switch typ := r.octet(); typ {
	case 't':
		return r.octet() != 0
	case 'b':
		return int8(r.octet())
	case 'B':
		return r.octet()
	case 's':
		return int16(r.short())
	case 'u':
		return r.short()
	case 'I':
		return int32(r.long())
	case 'i':
		return r.long()
	case 'l':
		return int64(r.longlong())
	case 'L':
		return r.longlong()
	case 'f':
		return math.Float32frombits(r.long())
	case 'd':
		return math.Float64frombits(r.longlong())
	case 'D':
		scale := r.octet()
		return Decimal{Scale: scale, Value: int32(r.long())}
	case 'S':
		return string(r.longstrBytes())
	case 'x':
		return bytes.Clone(r.longstrBytes())
	case 'T':
		return r.timestamp()
	case 'V':
		return nil
	case 'F':
		p := r.longstrBytesAs("nested table overruns its table")
		if r.text != "" {
			return nil
		}
		t, text := decodeTable(p, depth+1)
		if text != "" {
			r.fail(text)
		}
		return t
	case 'A':
		p := r.longstrBytesAs("field array overruns its table")
		if r.text != "" {
			return nil
		}
		a, text := decodeArray(p, depth+1)
		if text != "" {
			r.fail(text)
		}
		return a
	default:
		if r.text == "" {
			r.fail("unknown field type")
		}
		return nil
	}
}

// appendFields appends t's fields without a length prefix.
func (t Table) appendFields(b []byte) []byte {
	for i := range t {
		b = appendShortstr(b, t[i].Key)
		b = appendValue(b, t[i].Value)
	}
	return b
}

// appendValue appends a field value with its type octet.
func appendValue(b []byte, v any) []byte {
	switch v := v.(type) {
	case bool:
		if v {
			return append(b, 't', 1)
		}
		return append(b, 't', 0)
	case int8:
		return append(b, 'b', byte(v))
	case uint8:
		return append(b, 'B', v)
	case int16:
		return appendShort(append(b, 's'), uint16(v))
	case uint16:
		return appendShort(append(b, 'u'), v)
	case int32:
		return appendLong(append(b, 'I'), uint32(v))
	case uint32:
		return appendLong(append(b, 'i'), v)
	case int64:
		return appendLonglong(append(b, 'l'), uint64(v))
	case int:
		return appendLonglong(append(b, 'l'), uint64(v))
	case uint64:
		return appendLonglong(append(b, 'L'), v)
	case float32:
		return appendLong(append(b, 'f'), math.Float32bits(v))
	case float64:
		return appendLonglong(append(b, 'd'), math.Float64bits(v))
	case Decimal:
		return appendLong(append(b, 'D', v.Scale), uint32(v.Value))
	case string:
		return appendLongstr(append(b, 'S'), v)
	case []byte:
		b = appendLong(append(b, 'x'), uint32(len(v)))
		return append(b, v...)
	case time.Time:
		return appendTimestamp(append(b, 'T'), v)
	case nil:
		return append(b, 'V')
	case Table:
		return appendTable(append(b, 'F'), v)
	case []any:
		b = append(b, 'A')
		at := len(b)
		b = append(b, 0, 0, 0, 0)
		for _, e := range v {
			b = appendValue(b, e)
		}
		binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
		return b
	default:
		panic(&Error{Code: InternalError, Text: "frame: field table value of unsupported Go type"})
	}
}
