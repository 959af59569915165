package router

import (
	"encoding/binary"
	"errors"
	"math"
	"time"
)

// The router's binary encoding for durable records: metadata values and
// stored messages. It is private to the router and versioned by the first
// byte of each record.

var errCorrupt = errors.New("router: corrupt record")

type enc struct{ b []byte }

func (e *enc) u8(v uint8)   { e.b = append(e.b, v) }
func (e *enc) u16(v uint16) { e.b = binary.BigEndian.AppendUint16(e.b, v) }
func (e *enc) u32(v uint32) { e.b = binary.BigEndian.AppendUint32(e.b, v) }
func (e *enc) u64(v uint64) { e.b = binary.BigEndian.AppendUint64(e.b, v) }
func (e *enc) uvarint(v uint64) {
	e.b = binary.AppendUvarint(e.b, v)
}
func (e *enc) str(s string) { e.uvarint(uint64(len(s))); e.b = append(e.b, s...) }
func (e *enc) bytes(p []byte) {
	e.uvarint(uint64(len(p)))
	e.b = append(e.b, p...)
}
func (e *enc) bool(v bool) {
	if v {
		e.u8(1)
	} else {
		e.u8(0)
	}
}

// Value tags of the table encoding.
const (
	tagNil byte = iota
	tagBool
	tagInt8
	tagUint8
	tagInt16
	tagUint16
	tagInt32
	tagUint32
	tagInt64
	tagFloat32
	tagFloat64
	tagDecimal
	tagString
	tagBytes
	tagTime
	tagArray
	tagTable
	tagInt
)

func (e *enc) table(t Table) {
	e.uvarint(uint64(len(t)))
	for _, f := range t {
		e.str(f.Key)
		e.value(f.Value)
	}
}

func (e *enc) value(v any) {
	switch x := v.(type) {
	case nil:
		e.u8(tagNil)
	case bool:
		e.u8(tagBool)
		e.bool(x)
	case int8:
		e.u8(tagInt8)
		e.u8(uint8(x))
	case uint8:
		e.u8(tagUint8)
		e.u8(x)
	case int16:
		e.u8(tagInt16)
		e.u16(uint16(x))
	case uint16:
		e.u8(tagUint16)
		e.u16(x)
	case int32:
		e.u8(tagInt32)
		e.u32(uint32(x))
	case uint32:
		e.u8(tagUint32)
		e.u32(x)
	case int64:
		e.u8(tagInt64)
		e.u64(uint64(x))
	case int:
		e.u8(tagInt)
		e.u64(uint64(x))
	case float32:
		e.u8(tagFloat32)
		e.u32(math.Float32bits(x))
	case float64:
		e.u8(tagFloat64)
		e.u64(math.Float64bits(x))
	case Decimal:
		e.u8(tagDecimal)
		e.u8(x.Scale)
		e.u32(uint32(x.Value))
	case string:
		e.u8(tagString)
		e.str(x)
	case []byte:
		e.u8(tagBytes)
		e.bytes(x)
	case time.Time:
		e.u8(tagTime)
		e.u64(uint64(x.Unix()))
	case []any:
		e.u8(tagArray)
		e.uvarint(uint64(len(x)))
		for _, a := range x {
			e.value(a)
		}
	case Table:
		e.u8(tagTable)
		e.table(x)
	default:
		// Adapters only build the types listed on Table; anything else
		// is stored as its text so that nothing panics on the way to disk.
		e.u8(tagString)
		e.str(formatValue(x))
	}
}

type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() { d.err = errCorrupt; d.b = nil }

func (d *dec) need(n int) bool {
	if d.err != nil || len(d.b) < n {
		d.fail()
		return false
	}
	return true
}

func (d *dec) u8() uint8 {
	if !d.need(1) {
		return 0
	}
	v := d.b[0]
	d.b = d.b[1:]
	return v
}

func (d *dec) u16() uint16 {
	if !d.need(2) {
		return 0
	}
	v := binary.BigEndian.Uint16(d.b)
	d.b = d.b[2:]
	return v
}

func (d *dec) u32() uint32 {
	if !d.need(4) {
		return 0
	}
	v := binary.BigEndian.Uint32(d.b)
	d.b = d.b[4:]
	return v
}

func (d *dec) u64() uint64 {
	if !d.need(8) {
		return 0
	}
	v := binary.BigEndian.Uint64(d.b)
	d.b = d.b[8:]
	return v
}

func (d *dec) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) raw() []byte {
	n := d.uvarint()
	if d.err != nil || uint64(len(d.b)) < n {
		d.fail()
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) str() string   { return string(d.raw()) }
func (d *dec) bytes() []byte { return append([]byte(nil), d.raw()...) }
func (d *dec) bool() bool    { return d.u8() != 0 }

// maxDepth bounds nesting of decoded tables and arrays.
const maxDepth = 64

func (d *dec) table(depth int) Table {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) || depth > maxDepth {
		d.fail()
		return nil
	}
	if n == 0 {
		return nil
	}
	t := make(Table, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		k := d.str()
		t = append(t, Field{Key: k, Value: d.value(depth + 1)})
	}
	return t
}

func (d *dec) value(depth int) any {
	if depth > maxDepth {
		d.fail()
		return nil
	}
	switch d.u8() {
	case tagNil:
		return nil
	case tagBool:
		return d.bool()
	case tagInt8:
		return int8(d.u8())
	case tagUint8:
		return d.u8()
	case tagInt16:
		return int16(d.u16())
	case tagUint16:
		return d.u16()
	case tagInt32:
		return int32(d.u32())
	case tagUint32:
		return d.u32()
	case tagInt64:
		return int64(d.u64())
	case tagInt:
		return int(d.u64())
	case tagFloat32:
		return math.Float32frombits(d.u32())
	case tagFloat64:
		return math.Float64frombits(d.u64())
	case tagDecimal:
		s := d.u8()
		return Decimal{Scale: s, Value: int32(d.u32())}
	case tagString:
		return d.str()
	case tagBytes:
		return d.bytes()
	case tagTime:
		return time.Unix(int64(d.u64()), 0).UTC()
	case tagArray:
		n := d.uvarint()
		if d.err != nil || n > uint64(len(d.b)) {
			d.fail()
			return nil
		}
		a := make([]any, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			a = append(a, d.value(depth+1))
		}
		return a
	case tagTable:
		return d.table(depth + 1)
	}
	d.fail()
	return nil
}
