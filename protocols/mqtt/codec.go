package mqtt

import (
	"bytes"
	"unicode/utf8"
)

// The inbound decoder. Decoded strings are copies; byte slices (payload,
// username, password) alias the packet, which the session owns.
//
// mochi-mqtt's packets package is the reference codec (the unit tests
// check this one against it), but the runtime does not import it: the
// interop module's go.sum does not list it yet. See doc.go.

// reader reads MQTT data types from one packet body; the first error
// sticks and turns every later read into a zero value.
type reader struct {
	b   []byte
	off int
	bad bool
}

func (r *reader) need(n int) bool {
	if r.bad || n < 0 || len(r.b)-r.off < n {
		r.bad = true
		return false
	}
	return true
}

func (r *reader) byte() byte {
	if !r.need(1) {
		return 0
	}
	r.off++
	return r.b[r.off-1]
}

func (r *reader) u16() uint16 {
	if !r.need(2) {
		return 0
	}
	r.off += 2
	return uint16(r.b[r.off-2])<<8 | uint16(r.b[r.off-1])
}

func (r *reader) u32() uint32 {
	if !r.need(4) {
		return 0
	}
	r.off += 4
	b := r.b[r.off-4:]
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func (r *reader) varint() int {
	n, mul := 0, 1
	for i := 0; i < 4; i++ {
		c := r.byte()
		if r.bad {
			return 0
		}
		n += int(c&0x7f) * mul
		if c&0x80 == 0 {
			return n
		}
		mul *= 128
	}
	r.bad = true
	return 0
}

// bin reads binary data with a two-byte length.
func (r *reader) bin() []byte {
	n := int(r.u16())
	if !r.need(n) {
		return nil
	}
	r.off += n
	return r.b[r.off-n : r.off : r.off]
}

// str reads a UTF-8 string (MQTT 3.1.1 §1.5.3: well-formed, no U+0000).
func (r *reader) str() string {
	b := r.bin()
	if r.bad {
		return ""
	}
	if !utf8.Valid(b) || bytes.IndexByte(b, 0) >= 0 {
		r.bad = true
		return ""
	}
	return string(b)
}

func (r *reader) rest() []byte {
	if r.bad {
		return nil
	}
	b := r.b[r.off:]
	r.off = len(r.b)
	return b
}

func (r *reader) done() bool { return r.off == len(r.b) }

// props are the MQTT 5 properties the session looks at.
type props struct {
	contentType   string
	receiveMax    uint16
	maxPacket     uint32
	topicAlias    uint16
	hasTopicAlias bool
	subID         bool
}

// props reads an MQTT 5 property list (§2.2.2) into p.
func (r *reader) props(p *props) {
	n := r.varint()
	if !r.need(n) {
		return
	}
	end := r.off + n
	sub := reader{b: r.b[:end], off: r.off}
	for !sub.bad && sub.off < end {
		switch id := sub.varint(); id {
		case 0x01, 0x17, 0x19, 0x24, 0x25, 0x28, 0x29, 0x2A: // byte
			sub.byte()
		case 0x13, 0x22: // two-byte integer
			sub.u16()
		case 0x21:
			p.receiveMax = sub.u16()
			if p.receiveMax == 0 {
				sub.bad = true // §3.1.2.11.3: 0 is a protocol error
			}
		case 0x23:
			p.topicAlias, p.hasTopicAlias = sub.u16(), true
		case 0x02, 0x11, 0x18: // four-byte integer
			sub.u32()
		case 0x27:
			p.maxPacket = sub.u32()
			if p.maxPacket == 0 {
				sub.bad = true
			}
		case 0x0B: // variable byte integer
			sub.varint()
			p.subID = true
		case 0x03:
			p.contentType = sub.str()
		case 0x08, 0x12, 0x15, 0x1A, 0x1C, 0x1F: // string
			sub.str()
		case 0x09, 0x16: // binary
			sub.bin()
		case 0x26: // string pair
			sub.str()
			sub.str()
		default:
			sub.bad = true
		}
	}
	if sub.bad {
		r.bad = true
		return
	}
	r.off = end
}

// connectPkt is a decoded CONNECT.
type connectPkt struct {
	name        string
	level       byte
	flags       byte
	keepalive   uint16
	props       props
	clientID    string
	willTopic   string
	willPayload []byte
	user, pass  []byte
}

func (c *connectPkt) clean() bool   { return c.flags&0x02 != 0 }
func (c *connectPkt) will() bool    { return c.flags&0x04 != 0 }
func (c *connectPkt) willQoS() byte { return c.flags >> 3 & 3 }
func (c *connectPkt) hasUser() bool { return c.flags&0x80 != 0 }
func (c *connectPkt) hasPass() bool { return c.flags&0x40 != 0 }
func (c *connectPkt) supported() bool {
	return c.name == "MQTT" && (c.level == 4 || c.level == 5) || c.name == "MQIsdp" && c.level == 3
}

// decodeConnect decodes a CONNECT body. On failure name and level are
// filled in as far as they were read, so the caller can answer an
// unsupported version in a form the client understands. ok is false for
// a malformed packet.
func decodeConnect(b []byte) (c connectPkt, ok bool) {
	r := reader{b: b}
	c.name = r.str()
	c.level = r.byte()
	if r.bad || !c.supported() {
		return c, false
	}
	c.flags = r.byte()
	c.keepalive = r.u16()
	if c.level == 5 {
		r.props(&c.props)
	}
	c.clientID = r.str()
	if c.will() {
		if c.level == 5 {
			var wp props
			r.props(&wp)
		}
		c.willTopic = r.str()
		c.willPayload = r.bin()
	}
	if c.hasUser() {
		c.user = r.bin()
	}
	if c.hasPass() {
		c.pass = r.bin()
	}
	switch {
	case r.bad || !r.done():
		return c, false
	case c.flags&0x01 != 0: // reserved [MQTT-3.1.2-3]
		return c, false
	case !c.will() && c.flags&0x38 != 0: // will QoS/retain without will [MQTT-3.1.2-11,13]
		return c, false
	case c.willQoS() == 3: // [MQTT-3.1.2-14]
		return c, false
	case c.level < 5 && c.hasPass() && !c.hasUser(): // [MQTT-3.1.2-22]
		return c, false
	}
	return c, true
}

// publishPkt is a decoded PUBLISH.
type publishPkt struct {
	qos     byte
	retain  bool
	topic   string
	id      uint16
	props   props
	payload []byte
}

func decodePublish(first byte, b []byte, v5 bool) (p publishPkt, ok bool) {
	r := reader{b: b}
	p.qos = first >> 1 & 3
	p.retain = first&1 != 0
	p.topic = r.str()
	if p.qos > 0 {
		p.id = r.u16()
		if p.id == 0 {
			return p, false
		}
	}
	if v5 {
		r.props(&p.props)
	}
	p.payload = r.rest()
	return p, !r.bad
}

// filter is one entry of a SUBSCRIBE or UNSUBSCRIBE.
type filter struct {
	topic string
	opts  byte // SUBSCRIBE: QoS in bits 0-1 (and MQTT 5 options above)
}

// decodeFilters decodes SUBSCRIBE (withOpts) or UNSUBSCRIBE.
func decodeFilters(b []byte, v5, withOpts bool) (id uint16, fs []filter, ok bool) {
	r := reader{b: b}
	id = r.u16()
	if v5 {
		var p props
		r.props(&p)
	}
	for !r.bad && !r.done() {
		f := filter{topic: r.str()}
		if withOpts {
			f.opts = r.byte()
			switch {
			case f.opts&3 == 3:
				r.bad = true
			case !v5 && f.opts&^3 != 0: // [MQTT-3.8.3-4]
				r.bad = true
			case v5 && (f.opts&0xC0 != 0 || f.opts>>4&3 == 3):
				r.bad = true
			}
		}
		fs = append(fs, f)
	}
	return id, fs, !r.bad && id != 0 && len(fs) > 0
}

// decodeID decodes the packet identifier of PUBACK, PUBREC, PUBREL or
// PUBCOMP; MQTT 5 reason codes and properties after it are ignored.
func decodeID(b []byte) (uint16, bool) {
	r := reader{b: b}
	id := r.u16()
	return id, !r.bad
}

// validFlags checks the fixed header's flag bits (MQTT 3.1.1 §2.2.2).
func validFlags(first byte) bool {
	flags := first & 0x0f
	switch first >> 4 {
	case tPublish:
		qos := flags >> 1 & 3
		return qos != 3 && !(qos == 0 && flags&0x08 != 0)
	case tPubrel, tSubscribe, tUnsubscribe:
		return flags == 0x02
	case 0:
		return false
	}
	return flags == 0
}
