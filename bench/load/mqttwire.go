package load

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// mqttWire is a lean MQTT 3.1.1 client connection for the load generator:
// packets are built into a buffer and written in batches, and PUBLISH
// payloads are read straight out of the read buffer, so the generator does
// not cap what a fast broker can show (paho.mqtt.golang costs goroutine
// hops, channel sends, a token and several allocations per message).
//
// A connection has at most two users: one goroutine that writes (out,
// flush) and one that reads (next, discard) and appends what it owes the
// broker in reply to owed, which next writes before it waits for input; a
// subscriber's goroutine is both. Every Write carries whole packets, and
// net.Conn serialises concurrent Writes, so the two (and keepAlive, and
// close) never interleave within a packet.
type mqttWire struct {
	nc    net.Conn
	rd    *bufio.Reader
	out   []byte      // the writer's packets not yet written
	owed  []byte      // the reader's acknowledgements not yet written
	wrote atomic.Bool // something was written since keepAlive last looked
	done  chan struct{}
	once  sync.Once
}

// mqttWireMaxPacket bounds the remaining length of a packet the client
// reads; the scenarios' topics and payloads fit well within it.
const mqttWireMaxPacket = 256 << 10

// mqttWireKeepAlive is the keepalive the client asks for: a long one, as
// devices use, rather than 0 (none), so that the brokers run their usual
// keepalive bookkeeping. A connection that has written nothing for 30 to
// 60 s sends PINGREQ (keepAlive), so a broker, which closes a connection
// silent for 1.5 times the keepalive [MQTT-3.1.2-24], never closes one of
// ours.
const mqttWireKeepAlive = 60 * time.Second

// dialMQTTWire connects as client id with a clean session or not, user
// guest (RabbitMQ's default user; Mosquitto allows anonymous clients and
// ignores it) and mqttWireKeepAlive, and waits for a successful CONNACK.
func dialMQTTWire(ctx context.Context, addr, id string, clean bool) (*mqttWire, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := &mqttWire{nc: nc, rd: bufio.NewReaderSize(nc, mqttWireMaxPacket+5), done: make(chan struct{})}
	if dl, ok := ctx.Deadline(); ok {
		_ = nc.SetDeadline(dl)
	}
	c.out = appendMQTTConnect(c.out, id, "guest", "guest", clean, mqttWireKeepAlive)
	if err := c.connect(); err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("connect %s: %w", id, err)
	}
	_ = nc.SetDeadline(time.Time{})
	go c.keepAlive(mqttWireKeepAlive / 2)
	return c, nil
}

func (c *mqttWire) connect() error {
	if err := c.flush(); err != nil {
		return err
	}
	p, n, err := c.next()
	if err != nil {
		return err
	}
	defer c.discard(n)
	if p.kind != mqttConnack {
		return fmt.Errorf("CONNACK expected, got %s", p.kind)
	}
	_, code, err := parseMQTTConnack(p)
	if err != nil {
		return err
	}
	if code != 0 {
		return fmt.Errorf("CONNACK refused, return code %d", code)
	}
	return nil
}

// keepAlive sends PINGREQ when nothing was written for a whole interval,
// until the connection closes. The PINGRESP is the reader's to skip.
func (c *mqttWire) keepAlive(interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		if !c.wrote.Swap(false) {
			if _, err := c.nc.Write([]byte{byte(mqttPingreq << 4), 0}); err != nil {
				return
			}
		}
	}
}

func (c *mqttWire) write(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	c.wrote.Store(true)
	_, err := c.nc.Write(b)
	return err
}

// flush writes out. Only the writer calls it.
func (c *mqttWire) flush() error {
	err := c.write(c.out)
	c.out = c.out[:0]
	return err
}

// next returns the next packet from the broker and its length, which the
// caller passes to discard once it is done with the packet: its body
// aliases the read buffer until then. Before it waits for bytes from the
// broker, whether between packets or within one, it writes owed, so that a
// broker waiting for those acknowledgements before it sends more is never
// waited for in turn. Only the reader calls it.
func (c *mqttWire) next() (mqttPacket, int, error) {
	need := 2
	for {
		if need > c.rd.Buffered() {
			err := c.write(c.owed)
			c.owed = c.owed[:0]
			if err != nil {
				return mqttPacket{}, 0, err
			}
		}
		if _, err := c.rd.Peek(need); err != nil {
			return mqttPacket{}, 0, err
		}
		b, _ := c.rd.Peek(c.rd.Buffered())
		p, n, err := parseMQTTPacket(b, mqttWireMaxPacket)
		if err != nil || n > 0 {
			return p, n, err
		}
		// Wait for the whole packet once its header says how long it is,
		// else for one more byte of the header.
		need = len(b) + 1
		if rem, h := mqttRemaining(b); h > 0 {
			need = h + rem
		}
	}
}

// discard drops the n bytes of the packet next returned.
func (c *mqttWire) discard(n int) { _, _ = c.rd.Discard(n) }

// close sends DISCONNECT and closes the socket; it may run on any
// goroutine, while others use c, and more than once.
func (c *mqttWire) close() {
	c.once.Do(func() {
		close(c.done)
		_ = c.nc.SetWriteDeadline(time.Now().Add(2 * time.Second))
		_, _ = c.nc.Write([]byte{byte(mqttDisconnect << 4), 0})
		_ = c.nc.Close()
	})
}

// MQTT 3.1.1 control packet types (§2.2.1).
type mqttKind byte

const (
	mqttConnect     mqttKind = 1
	mqttConnack     mqttKind = 2
	mqttPublish     mqttKind = 3
	mqttPuback      mqttKind = 4
	mqttPubrec      mqttKind = 5
	mqttPubrel      mqttKind = 6
	mqttPubcomp     mqttKind = 7
	mqttSubscribe   mqttKind = 8
	mqttSuback      mqttKind = 9
	mqttUnsubscribe mqttKind = 10
	mqttPingreq     mqttKind = 12
	mqttPingresp    mqttKind = 13
	mqttDisconnect  mqttKind = 14
)

var mqttKindNames = [16]string{"reserved", "CONNECT", "CONNACK", "PUBLISH", "PUBACK", "PUBREC", "PUBREL", "PUBCOMP",
	"SUBSCRIBE", "SUBACK", "UNSUBSCRIBE", "UNSUBACK", "PINGREQ", "PINGRESP", "DISCONNECT", "reserved"}

func (k mqttKind) String() string { return mqttKindNames[k&15] }

// mqttPacket is one control packet read by parseMQTTPacket; body (the
// variable header and payload) aliases the parsed buffer.
type mqttPacket struct {
	kind  mqttKind
	flags byte // the fixed header's low nibble: DUP, QoS and RETAIN for PUBLISH
	body  []byte
}

// qos is a PUBLISH's QoS.
func (p mqttPacket) qos() byte { return p.flags >> 1 & 3 }

var errMQTTMalformed = errors.New("mqtt: malformed packet")

// mqttRemaining decodes the fixed header at the start of b: the remaining
// length and the header's size, 0 if b holds only part of it, -1 if the
// length takes more than 4 bytes (§2.2.3).
func mqttRemaining(b []byte) (rem, n int) {
	for i := 1; i < len(b); i++ {
		rem |= int(b[i]&0x7f) << (7 * (i - 1))
		switch {
		case b[i]&0x80 == 0:
			return rem, i + 1
		case i == 4:
			return 0, -1
		}
	}
	return 0, 0
}

// parseMQTTPacket parses the packet at the start of b, whose remaining
// length may be at most limit, and returns it and its length; n == 0 and
// err == nil mean b holds only part of it. It checks the fixed header's
// reserved flags ([MQTT-2.2.2-2]) and a PUBLISH's QoS, nothing more of the
// body: the parse* functions below do.
func parseMQTTPacket(b []byte, limit int) (p mqttPacket, n int, err error) {
	rem, h := mqttRemaining(b)
	switch {
	case h < 0:
		return p, 0, fmt.Errorf("%w: remaining length longer than 4 bytes", errMQTTMalformed)
	case h == 0:
		return p, 0, nil
	case rem > limit:
		return p, 0, fmt.Errorf("%w: remaining length %d over %d", errMQTTMalformed, rem, limit)
	case len(b) < h+rem:
		return p, 0, nil
	}
	p = mqttPacket{kind: mqttKind(b[0] >> 4), flags: b[0] & 15, body: b[h : h+rem]}
	switch p.kind {
	case mqttPublish:
		if p.qos() == 3 {
			return mqttPacket{}, 0, fmt.Errorf("%w: PUBLISH with QoS 3", errMQTTMalformed) // [MQTT-3.3.1-4]
		}
	case mqttPubrel, mqttSubscribe, mqttUnsubscribe:
		if p.flags != 2 {
			return mqttPacket{}, 0, fmt.Errorf("%w: %s flags %#x", errMQTTMalformed, p.kind, p.flags)
		}
	default:
		if p.flags != 0 {
			return mqttPacket{}, 0, fmt.Errorf("%w: %s flags %#x", errMQTTMalformed, p.kind, p.flags)
		}
	}
	return p, h + rem, nil
}

// parseMQTTPublish returns a PUBLISH's topic, packet id (0 at QoS 0) and
// payload, aliasing p.body.
func parseMQTTPublish(p mqttPacket) (topic []byte, id uint16, payload []byte, err error) {
	b := p.body
	if len(b) < 2 || len(b) < 2+int(binary.BigEndian.Uint16(b)) {
		return nil, 0, nil, fmt.Errorf("%w: PUBLISH topic", errMQTTMalformed)
	}
	tl := int(binary.BigEndian.Uint16(b))
	topic, b = b[2:2+tl], b[2+tl:]
	if p.qos() > 0 {
		if len(b) < 2 {
			return nil, 0, nil, fmt.Errorf("%w: PUBLISH packet id", errMQTTMalformed)
		}
		if id = binary.BigEndian.Uint16(b); id == 0 {
			return nil, 0, nil, fmt.Errorf("%w: PUBLISH packet id 0", errMQTTMalformed) // [MQTT-2.3.1-1]
		}
		b = b[2:]
	}
	return topic, id, b, nil
}

// parseMQTTID returns the packet id of a PUBACK, PUBREC, PUBREL or
// PUBCOMP, whose remaining length is 2 in 3.1.1.
func parseMQTTID(p mqttPacket) (uint16, error) {
	if len(p.body) != 2 {
		return 0, fmt.Errorf("%w: %s of %d bytes", errMQTTMalformed, p.kind, len(p.body))
	}
	return binary.BigEndian.Uint16(p.body), nil
}

// parseMQTTConnack returns a CONNACK's session-present flag and return code.
func parseMQTTConnack(p mqttPacket) (present bool, code byte, err error) {
	if len(p.body) != 2 || p.body[0]&^1 != 0 {
		return false, 0, fmt.Errorf("%w: CONNACK % x", errMQTTMalformed, p.body)
	}
	return p.body[0] == 1, p.body[1], nil
}

// parseMQTTSuback returns a SUBACK's packet id and return codes, aliasing
// p.body.
func parseMQTTSuback(p mqttPacket) (id uint16, codes []byte, err error) {
	if len(p.body) < 3 {
		return 0, nil, fmt.Errorf("%w: SUBACK of %d bytes", errMQTTMalformed, len(p.body))
	}
	return binary.BigEndian.Uint16(p.body), p.body[2:], nil
}

// appendMQTTConnect appends a CONNECT at protocol level 4 (3.1.1) with a
// user name, a password, and the clean-session flag if clean.
func appendMQTTConnect(b []byte, client, user, pass string, clean bool, keepAlive time.Duration) []byte {
	flags := byte(0xc0) // user name, password
	if clean {
		flags |= 0x02
	}
	b = append(b, byte(mqttConnect<<4))
	b = appendVarint(b, 10+2+len(client)+2+len(user)+2+len(pass))
	b = appendString(b, "MQTT")
	b = append(b, 4, flags)
	b = binary.BigEndian.AppendUint16(b, uint16(min(keepAlive/time.Second, 65535)))
	b = appendString(b, client)
	b = appendString(b, user)
	return appendString(b, pass)
}

// appendMQTTPublish appends a PUBLISH of payload to topic at qos with
// packet id id (ignored at QoS 0), neither DUP nor RETAIN.
func appendMQTTPublish(b []byte, topic string, qos byte, id uint16, payload []byte) []byte {
	rem := 2 + len(topic) + len(payload)
	if qos > 0 {
		rem += 2
	}
	b = append(b, byte(mqttPublish<<4)|qos<<1)
	b = appendVarint(b, rem)
	b = appendString(b, topic)
	if qos > 0 {
		b = binary.BigEndian.AppendUint16(b, id)
	}
	return append(b, payload...)
}

// appendMQTTAck appends a PUBACK, PUBREC, PUBREL or PUBCOMP of packet id
// id; PUBREL has its reserved flags 0010 [MQTT-3.6.1-1].
func appendMQTTAck(b []byte, kind mqttKind, id uint16) []byte {
	first := byte(kind << 4)
	if kind == mqttPubrel {
		first |= 2
	}
	return append(b, first, 2, byte(id>>8), byte(id))
}

// mqttPacketIDs is how many packet ids there are (1..65535): a publisher
// never has more messages in flight.
const mqttPacketIDs = 65535

// mqttPacketID is the packet id a publisher gives its message seq: the ids
// in turn. The publisher sends seq only once every message before
// seq-mqttPacketIDs+1 is acknowledged, so the id is free then, and every
// message in flight is in [low, low+mqttPacketIDs), where low is the first
// unacknowledged one.
func mqttPacketID(seq uint64) uint16 { return uint16(seq%mqttPacketIDs) + 1 }

// mqttSeq inverts mqttPacketID for a message in flight: the message in
// [low, sent) whose packet id is id, if there is one.
func mqttSeq(id uint16, low, sent uint64) (uint64, bool) {
	if id == 0 {
		return 0, false
	}
	seq := low + (uint64(id-1)+mqttPacketIDs-low%mqttPacketIDs)%mqttPacketIDs
	return seq, seq < sent
}
