package frame

import "encoding/binary"

//go:generate go run ./internal/gen

// Method is one of the generated method structs (spec_gen.go), always as a
// pointer: *BasicPublish, *ConnectionStart, ... Switch on its type to use
// it.
type Method interface {
	// ID returns the method's class and method ids.
	ID() (classID, methodID uint16)
	// Name returns the spec name, "basic.publish".
	Name() string
	// HasContent reports whether a content header and body follow
	// (basic.publish, basic.return, basic.deliver, basic.get-ok).
	HasContent() bool
	// Synchronous reports whether the sender waits for a reply method
	// (the spec's synchronous="1"; nowait can waive it).
	Synchronous() bool
	// Decode decodes a whole method frame payload, ids included.
	Decode(payload []byte) error
	// Append appends the method as a method frame payload, ids included.
	Append(dst []byte) []byte

	decodeArgs(r *reader)
	appendArgs(b []byte) []byte
}

// DecodeMethod decodes a method frame's payload (§4.2.4: class id, method
// id, arguments) into a new method struct. The result shares no memory
// with payload. It fails with 540 NOT_IMPLEMENTED for a (class, method)
// the spec does not define (see unknownMethod) and with 501 FRAME_ERROR
// for arguments that do not decode, including trailing bytes, as RabbitMQ
// does.
//
// DecodeMethod allocates the struct and its strings; a session on the hot
// path uses a Decoder instead.
func DecodeMethod(payload []byte) (Method, error) {
	if len(payload) < 4 {
		return nil, ErrShortMethod
	}
	c, mid := binary.BigEndian.Uint16(payload), binary.BigEndian.Uint16(payload[2:])
	r := reader{b: payload, off: 4}
	m := decodeNew(key(c, mid), &r)
	if m == nil {
		return nil, unknownMethod(c, mid)
	}
	if err := r.finish(c, mid); err != nil {
		return nil, err
	}
	return m, nil
}

// Decoder decodes methods without allocating in steady state: it decodes
// each method into a struct of its own that it reuses, and it caches
// recently seen short strings (exchange names, routing keys, consumer
// tags) so that repeating them costs no allocation. Tables and long
// strings are still allocated.
//
// The zero value is ready to use. A Decoder is not safe for concurrent use:
// keep one per connection, on its event loop.
type Decoder struct {
	slots methodSlots
	in    interner
}

// DecodeMethod is like the package's DecodeMethod, but the returned Method
// points into d and is valid only until the next call of d.DecodeMethod
// that decodes the same method; copy what must live longer (the strings may
// be kept: they are immutable). It still shares no memory with payload.
func (d *Decoder) DecodeMethod(payload []byte) (Method, error) {
	if len(payload) < 4 {
		return nil, ErrShortMethod
	}
	c, mid := binary.BigEndian.Uint16(payload), binary.BigEndian.Uint16(payload[2:])
	r := reader{b: payload, off: 4, in: &d.in}
	m := d.slots.decode(key(c, mid), &r)
	if m == nil {
		return nil, unknownMethod(c, mid)
	}
	if err := r.finish(c, mid); err != nil {
		return nil, err
	}
	return m, nil
}

// DecodeProperties is like Properties.Decode but reuses d's cache of short
// strings, so repeated content types, reply-to queues and app ids do not
// allocate. Unique values (message ids, say) and headers still do.
func (d *Decoder) DecodeProperties(raw []byte, p *Properties) error {
	return p.decode(raw, &d.in)
}
