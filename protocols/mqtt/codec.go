package mqtt

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"github.com/junction-broker/junction/router"
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

func (r *reader) u64() uint64 {
	hi := uint64(r.u32())
	return hi<<32 | uint64(r.u32())
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

// violates makes broken, unless an earlier error sticks, a protocol error
// of the properties p being read.
func (r *reader) violates(p *props, broken bool) {
	if broken && !r.bad {
		r.bad, p.proto = true, true
	}
}

// appProps are the MQTT 5 properties that travel with an application
// message (PUBLISH, will): props.go maps them onto router.Properties.
type appProps struct {
	pfi              byte // payload format indicator
	hasPFI           bool
	expiry           uint32 // message expiry interval, seconds
	hasExpiry        bool
	contentType      string
	hasContentType   bool
	responseTopic    string
	hasResponseTopic bool
	correlation      []byte // aliases the packet
	hasCorrelation   bool
	user             router.Table // user properties, in order; string values
}

// props are the MQTT 5 properties the session looks at.
type props struct {
	keepUser bool   // set by the caller: collect user properties into app.user
	seen     uint64 // property identifiers seen, for [MQTT-2.2.2-2]
	// proto: the properties broke a rule the spec calls a Protocol Error
	// (0x82: a property given twice, a value it rules out) rather than
	// being a Malformed Packet (0x81: cut short, bad UTF-8, an unknown
	// identifier). The packet is rejected either way.
	proto bool

	receiveMax       uint16
	maxPacket        uint32
	sessionExpiry    uint32
	hasSessionExpiry bool
	topicAliasMax    uint16
	reqResponse      byte
	reqProblem       byte
	hasReqProblem    bool
	authMethod       bool
	willDelay        uint32
	topicAlias       uint16
	hasTopicAlias    bool
	subID            int
	hasSubID         bool
	app              appProps
}

// props reads an MQTT 5 property list (§2.2.2) into p. A property given
// twice (other than User Property) and the values the spec rules out are
// protocol errors (p.proto; each property's section says so, e.g.
// §3.1.2.11.3 for a Receive Maximum of 0); the rest is malformed.
func (r *reader) props(p *props) {
	n := r.varint()
	if !r.need(n) {
		return
	}
	end := r.off + n
	sub := reader{b: r.b[:end], off: r.off}
	for !sub.bad && sub.off < end {
		id := sub.varint()
		if id != 0x26 && id < 64 {
			if p.seen&(1<<id) != 0 {
				sub.violates(p, true)
				break
			}
			p.seen |= 1 << id
		}
		switch id {
		case 0x01:
			p.app.pfi, p.app.hasPFI = sub.byte(), true
			sub.bad = sub.bad || p.app.pfi > 1
		case 0x02:
			p.app.expiry, p.app.hasExpiry = sub.u32(), true
		case 0x03:
			p.app.contentType, p.app.hasContentType = sub.str(), true
		case 0x08:
			p.app.responseTopic, p.app.hasResponseTopic = sub.str(), true
			sub.bad = sub.bad || !validTopic(p.app.responseTopic)
		case 0x09:
			p.app.correlation, p.app.hasCorrelation = sub.bin(), true
		case 0x0B:
			p.subID, p.hasSubID = sub.varint(), true
			sub.violates(p, p.subID == 0) // §3.8.2.1.2
		case 0x11:
			p.sessionExpiry, p.hasSessionExpiry = sub.u32(), true
		case 0x13:
			sub.u16()
		case 0x15:
			sub.str()
			p.authMethod = true
		case 0x16:
			sub.bin()
		case 0x17:
			p.reqProblem, p.hasReqProblem = sub.byte(), true
			sub.violates(p, p.reqProblem > 1) // §3.1.2.11.7
		case 0x18:
			p.willDelay = sub.u32()
		case 0x19:
			p.reqResponse = sub.byte()
			sub.violates(p, p.reqResponse > 1) // §3.1.2.11.6
		case 0x21:
			p.receiveMax = sub.u16()
			sub.violates(p, p.receiveMax == 0) // §3.1.2.11.3
		case 0x22:
			p.topicAliasMax = sub.u16()
		case 0x23:
			p.topicAlias, p.hasTopicAlias = sub.u16(), true
		case 0x24, 0x25, 0x28, 0x29, 0x2A: // byte
			sub.byte()
		case 0x27:
			p.maxPacket = sub.u32()
			sub.violates(p, p.maxPacket == 0) // §3.1.2.11.4
		case 0x12, 0x1A, 0x1C, 0x1F: // string
			sub.str()
		case 0x26: // string pair
			k, v := sub.str(), sub.str()
			if p.keepUser && !sub.bad {
				p.app.user = append(p.app.user, router.Field{Key: k, Value: v})
			}
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
	willProps   props
	willTopic   string
	willPayload []byte
	user, pass  []byte
}

func (c *connectPkt) clean() bool      { return c.flags&0x02 != 0 }
func (c *connectPkt) will() bool       { return c.flags&0x04 != 0 }
func (c *connectPkt) willQoS() byte    { return c.flags >> 3 & 3 }
func (c *connectPkt) willRetain() bool { return c.flags&0x20 != 0 }
func (c *connectPkt) hasUser() bool    { return c.flags&0x80 != 0 }
func (c *connectPkt) hasPass() bool    { return c.flags&0x40 != 0 }
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
			c.willProps.keepUser = true
			r.props(&c.willProps)
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
	case c.will() && !validTopic(c.willTopic): // [MQTT-3.1.3-11]
		return c, false
	}
	return c, true
}

// publishPkt is a decoded PUBLISH.
type publishPkt struct {
	qos     byte
	retain  bool
	dup     bool
	topic   string
	id      uint16
	props   props
	payload []byte
}

func decodePublish(first byte, b []byte, v5 bool) (p publishPkt, ok bool) {
	r := reader{b: b}
	p.qos = first >> 1 & 3
	p.retain = first&1 != 0
	p.dup = first&8 != 0
	p.topic = r.str()
	if p.qos > 0 {
		p.id = r.u16()
		if p.id == 0 {
			return p, false
		}
	}
	if v5 {
		p.props.keepUser = true
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

// decodeFilters decodes SUBSCRIBE (withOpts) or UNSUBSCRIBE; p gets the
// MQTT 5 properties (the subscription identifier).
func decodeFilters(b []byte, v5, withOpts bool, p *props) (id uint16, fs []filter, ok bool) {
	r := reader{b: b}
	id = r.u16()
	if v5 {
		r.props(p)
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

// decodeAck decodes PUBACK, PUBREC, PUBREL or PUBCOMP: the packet
// identifier and the MQTT 5 reason code (0 when absent, MQTT 5 §3.4.2.1);
// properties after it are ignored.
func decodeAck(b []byte) (id uint16, rc byte, ok bool) {
	r := reader{b: b}
	id = r.u16()
	if len(b) > 2 {
		rc = r.byte()
	}
	return id, rc, !r.bad && id != 0
}

// decodeDisconnect decodes an MQTT 5 DISCONNECT: the reason code (0 when
// absent) and the Session Expiry Interval, if any.
func decodeDisconnect(b []byte) (rc byte, p props, ok bool) {
	r := reader{b: b}
	if len(b) > 0 {
		rc = r.byte()
	}
	if len(b) > 1 {
		r.props(&p)
	}
	return rc, p, !r.bad && r.done()
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

// validTopic reports whether t may be a topic name: not empty, no
// wildcards (MQTT 3.1.1 §4.7.3, [MQTT-3.3.2-2]).
func validTopic(t string) bool { return t != "" && !strings.ContainsAny(t, "+#") }
