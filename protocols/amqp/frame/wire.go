package frame

import (
	"encoding/binary"
	"time"
	"unicode/utf8"
)

// reader decodes AMQP 0-9-1 domain types (§4.2.5) from b. Errors are
// sticky: after the first failure every read returns a zero value and
// text says what went wrong, so generated code needs no checks between
// fields. Every declared length is checked against the bytes that remain
// before anything is allocated.
type reader struct {
	b    []byte
	off  int
	text string    // first failure; "" while all is well
	in   *interner // nil: allocate every short string
}

func (r *reader) fail(text string) {
	if r.text == "" {
		r.text = text
	}
	r.off = len(r.b) // stop further reads
}

// take returns the next n bytes (aliasing r.b) or fails.
func (r *reader) take(n int, what string) []byte {
	if r.text != "" {
		return nil
	}
	if n < 0 || n > len(r.b)-r.off {
		r.fail(what)
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

func (r *reader) octet() uint8 {
	if p := r.take(1, "octet overruns payload"); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) short() uint16 {
	if p := r.take(2, "short overruns payload"); p != nil {
		return binary.BigEndian.Uint16(p)
	}
	return 0
}

func (r *reader) long() uint32 {
	if p := r.take(4, "long overruns payload"); p != nil {
		return binary.BigEndian.Uint32(p)
	}
	return 0
}

func (r *reader) longlong() uint64 {
	if p := r.take(8, "longlong overruns payload"); p != nil {
		return binary.BigEndian.Uint64(p)
	}
	return 0
}

// shortstrBytes returns a short string's bytes, aliasing r.b.
func (r *reader) shortstrBytes() []byte {
	n := int(r.octet())
	return r.take(n, "short string overruns payload")
}

// shortstr decodes a short string (§4.2.5.3) without validating UTF-8:
// RabbitMQ does not validate the short strings of content-carrying methods
// (basic.publish, basic.deliver, ...) or of properties.
func (r *reader) shortstr() string {
	return r.in.get(r.shortstrBytes())
}

// shortstrUTF8 decodes a short string that must be UTF-8, as RabbitMQ
// requires for every short string of a method without content
// (rabbit_binary_parser:assert_utf8: 501 "Malformed UTF-8 in shortstr").
func (r *reader) shortstrUTF8() string {
	p := r.shortstrBytes()
	if !utf8.Valid(p) {
		r.fail("malformed UTF-8 in shortstr")
		return ""
	}
	return r.in.get(p)
}

// longstrBytes returns a long string's bytes, aliasing r.b.
func (r *reader) longstrBytes() []byte {
	return r.longstrBytesAs("long string overruns payload")
}

// longstr decodes a long string (§4.2.5.3) into a new string.
func (r *reader) longstr() string {
	return string(r.longstrBytes())
}

// timestamp decodes a 64-bit POSIX time_t in seconds (§4.2.5.4), as UTC.
func (r *reader) timestamp() time.Time {
	return time.Unix(int64(r.longlong()), 0).UTC()
}

// table decodes a length-prefixed field table (§4.2.5.5).
func (r *reader) table() Table {
	p := r.longstrBytesAs("field table overruns payload")
	if r.text != "" {
		return nil
	}
	t, text := decodeTable(p, 0)
	if text != "" {
		r.fail(text)
		return nil
	}
	return t
}

// longstrBytesAs reads a 4-byte length and that many bytes (aliasing
// r.b); what names the failure when the length overruns the payload.
func (r *reader) longstrBytesAs(what string) []byte {
	n := r.long()
	if r.text != "" {
		return nil
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		r.fail(what)
		return nil
	}
	return r.take(int(n), what)
}

// finish returns the decoding error, if any, for method (classID,
// methodID). Trailing bytes are an error: RabbitMQ's decode_method_fields
// matches the whole payload.
func (r *reader) finish(classID, methodID uint16) error {
	if r.text == "" && r.off != len(r.b) {
		r.text = "trailing bytes after method arguments"
	}
	if r.text == "" {
		return nil
	}
	return &Error{Code: codeMalformed, ClassID: classID, MethodID: methodID, Text: r.text}
}

// interner caches recently decoded short strings so that a session seeing
// the same exchange, routing key or consumer tag again does not allocate a
// new string for it. It is direct-mapped and bounded: 64 entries of at most
// 255 bytes. The zero value is ready; a nil *interner allocates every time.
type interner struct {
	s [64]string
}

func (in *interner) get(p []byte) string {
	if in == nil || len(p) == 0 {
		return string(p)
	}
	// FNV-1a over at most the first and last 16 bytes: cheap, and keys
	// that share long prefixes (app.events.*) still spread.
	h := uint32(2166136261)
	mix := func(q []byte) {
		for _, c := range q {
			h ^= uint32(c)
			h *= 16777619
		}
	}
	if len(p) <= 32 {
		mix(p)
	} else {
		mix(p[:16])
		mix(p[len(p)-16:])
	}
	h ^= uint32(len(p))
	slot := &in.s[h&uint32(len(in.s)-1)]
	if *slot == string(p) { // no allocation: the compiler compares in place
		return *slot
	}
	s := string(p)
	*slot = s
	return s
}

// Append helpers for the domain types (§4.2.5). Network byte order.

func appendOctet(b []byte, v uint8) []byte { return append(b, v) }

func appendShort(b []byte, v uint16) []byte { return binary.BigEndian.AppendUint16(b, v) }

func appendLong(b []byte, v uint32) []byte { return binary.BigEndian.AppendUint32(b, v) }

func appendLonglong(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// appendShortstr appends a short string. Values longer than 255 bytes are
// truncated to 255: a short string cannot say more, and every name the
// broker echoes came from a short string in the first place.
func appendShortstr(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	b = append(b, byte(len(s)))
	return append(b, s...)
}

func appendLongstr(b []byte, s string) []byte {
	b = appendLong(b, uint32(len(s)))
	return append(b, s...)
}

func appendTimestamp(b []byte, t time.Time) []byte { return appendLonglong(b, uint64(t.Unix())) }

// appendTable appends t with its 4-byte length prefix.
func appendTable(b []byte, t Table) []byte {
	at := len(b)
	b = append(b, 0, 0, 0, 0)
	b = t.appendFields(b)
	binary.BigEndian.PutUint32(b[at:], uint32(len(b)-at-4))
	return b
}

// openMethod checks a method payload's ids and returns a reader over its
// arguments.
func openMethod(payload []byte, classID, methodID uint16) (reader, error) {
	if len(payload) < 4 {
		return reader{}, ErrShortMethod
	}
	c, m := binary.BigEndian.Uint16(payload), binary.BigEndian.Uint16(payload[2:])
	if c != classID || m != methodID {
		return reader{}, &Error{Code: CommandInvalid, ClassID: c, MethodID: m, Text: "method is not the one expected"}
	}
	return reader{b: payload, off: 4}, nil
}

// appendIDs appends a method's class and method ids.
func appendIDs(b []byte, classID, methodID uint16) []byte {
	return append(b, byte(classID>>8), byte(classID), byte(methodID>>8), byte(methodID))
}
