package router

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
	"time"
)

// Field is one named value of a Table.
type Field struct {
	Key   string
	Value any
}

// Table is an ordered list of fields: message headers and declaration
// arguments. Order and repeated keys are kept (MQTT user properties need
// both); lookups return the first match.
//
// Values are one of: nil, bool, int8, uint8, int16, uint16, int32, uint32,
// int64, float32, float64, Decimal, string, []byte, time.Time, []any (an
// array of these) and Table.
type Table []Field

// Decimal is an AMQP decimal value: Value / 10^Scale.
type Decimal struct {
	Scale uint8
	Value int32
}

// Get returns the first value under key.
func (t Table) Get(key string) (any, bool) {
	for i := range t {
		if t[i].Key == key {
			return t[i].Value, true
		}
	}
	return nil, false
}

// String returns the value under key if it is a string or bytes.
func (t Table) String(key string) (string, bool) {
	v, ok := t.Get(key)
	if !ok {
		return "", false
	}
	switch s := v.(type) {
	case string:
		return s, true
	case []byte:
		return string(s), true
	}
	return "", false
}

// Clone returns a deep copy of t.
func (t Table) Clone() Table {
	if t == nil {
		return nil
	}
	c := make(Table, len(t))
	for i, f := range t {
		c[i] = Field{Key: f.Key, Value: cloneValue(f.Value)}
	}
	return c
}

func cloneValue(v any) any {
	switch x := v.(type) {
	case []byte:
		return bytes.Clone(x)
	case Table:
		return x.Clone()
	case []any:
		c := make([]any, len(x))
		for i := range x {
			c[i] = cloneValue(x[i])
		}
		return c
	}
	return v
}

// Int converts any integer value to int64.
func Int(v any) (int64, bool) {
	switch x := v.(type) {
	case int8:
		return int64(x), true
	case uint8:
		return int64(x), true
	case int16:
		return int64(x), true
	case uint16:
		return int64(x), true
	case int32:
		return int64(x), true
	case uint32:
		return int64(x), true
	case int64:
		return x, true
	case int:
		return int64(x), true
	case float64:
		if x == math.Trunc(x) {
			return int64(x), true
		}
	case float32:
		if float64(x) == math.Trunc(float64(x)) {
			return int64(x), true
		}
	}
	return 0, false
}

// AppendText appends the text form of a header value, as protocols whose
// headers are text (STOMP headers, MQTT 5 User Properties) carry it:
// strings and bytes as they are, booleans and numbers written out. ok is
// false for values with no text form (tables, arrays, decimals,
// timestamps, void); whether the text is valid where it goes is the
// caller's to check.
func AppendText(dst []byte, v any) (_ []byte, ok bool) {
	switch x := v.(type) {
	case string:
		return append(dst, x...), true
	case []byte:
		return append(dst, x...), true
	case bool:
		return strconv.AppendBool(dst, x), true
	case float32:
		return strconv.AppendFloat(dst, float64(x), 'g', -1, 32), true
	case float64:
		return strconv.AppendFloat(dst, x, 'g', -1, 64), true
	}
	n, ok := Int(v)
	if !ok {
		return dst, false
	}
	return strconv.AppendInt(dst, n, 10), true
}

// Equal reports whether two values are equal, comparing integers by value
// whatever their width (as RabbitMQ does for argument equivalence).
func Equal(a, b any) bool {
	if ia, ok := Int(a); ok {
		ib, ok := Int(b)
		return ok && ia == ib
	}
	switch x := a.(type) {
	case string:
		switch y := b.(type) {
		case string:
			return x == y
		case []byte:
			return x == string(y)
		}
		return false
	case []byte:
		switch y := b.(type) {
		case string:
			return string(x) == y
		case []byte:
			return bytes.Equal(x, y)
		}
		return false
	case Table:
		y, ok := b.(Table)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if x[i].Key != y[i].Key || !Equal(x[i].Value, y[i].Value) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !Equal(x[i], y[i]) {
				return false
			}
		}
		return true
	case time.Time:
		y, ok := b.(time.Time)
		return ok && x.Equal(y)
	}
	return a == b
}

// formatValue renders v for error texts.
func formatValue(v any) string {
	switch x := v.(type) {
	case nil:
		return "none"
	case []byte:
		return string(x)
	}
	return fmt.Sprint(v)
}
