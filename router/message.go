package router

import (
	"strconv"
	"sync/atomic"
	"time"

	"github.com/junction-broker/junction/storage"
)

// PropFlag marks which optional properties a message carries. AMQP tells an
// absent property from an empty one; other protocols set the flags of what
// they fill in.
type PropFlag uint16

// Property flags, in the AMQP basic class order.
const (
	HasContentType PropFlag = 1 << iota
	HasContentEncoding
	HasHeaders
	HasDeliveryMode
	HasPriority
	HasCorrelationID
	HasReplyTo
	HasExpiration
	HasMessageID
	HasTimestamp
	HasType
	HasUserID
	HasAppID
	HasClusterID
)

// Delivery modes.
const (
	Transient  uint8 = 1
	Persistent uint8 = 2
)

// Properties are the protocol-neutral message properties: AMQP's basic
// properties, which MQTT 5 and STOMP map onto.
type Properties struct {
	Flags           PropFlag
	ContentType     string
	ContentEncoding string
	Headers         Table
	DeliveryMode    uint8
	Priority        uint8
	CorrelationID   string
	ReplyTo         string
	Expiration      string // milliseconds, as text (AMQP)
	MessageID       string
	Timestamp       int64 // seconds since the Unix epoch
	Type            string
	UserID          string
	AppID           string
	ClusterID       string
}

// Message is one published message. After Publish the router owns it and
// may share it between queues and consumers: nobody may modify it.
type Message struct {
	Exchange   string
	RoutingKey string
	Properties Properties
	Body       []byte
}

// Persistent reports whether the message asks to survive a restart.
func (m *Message) Persistent() bool { return m.Properties.DeliveryMode == Persistent }

// size is what the message counts against byte limits: its body, as
// RabbitMQ counts x-max-length-bytes.
func (m *Message) size() int { return len(m.Body) }

// Messages with small bodies are allocated together with their body: one
// allocation per message on the publish path (the body copy).
type (
	msg64 struct {
		m Message
		b [64]byte
	}
	msg256 struct {
		m Message
		b [256]byte
	}
	msg1024 struct {
		m Message
		b [1024]byte
	}
	msg4096 struct {
		m Message
		b [4096]byte
	}
)

// NewMessage returns a message whose Body is a copy of body. Bodies up to
// 4 KiB share one allocation with the message.
func NewMessage(body []byte) *Message {
	var m *Message
	switch n := len(body); {
	case n <= 64:
		x := new(msg64)
		m = &x.m
		m.Body = x.b[:n:n]
	case n <= 256:
		x := new(msg256)
		m = &x.m
		m.Body = x.b[:n:n]
	case n <= 1024:
		x := new(msg1024)
		m = &x.m
		m.Body = x.b[:n:n]
	case n <= 4096:
		x := new(msg4096)
		m = &x.m
		m.Body = x.b[:n:n]
	default:
		m = &Message{Body: make([]byte, n)}
	}
	copy(m.Body, body)
	return m
}

// parseExpiration reads the AMQP expiration property: a non-negative
// integer number of milliseconds, as text.
func parseExpiration(s string) (time.Duration, error) {
	ms, err := strconv.ParseUint(s, 10, 63)
	if err != nil || ms > uint64(maxTTL) {
		return 0, errorf(PreconditionFailed, "invalid expiration %q", s)
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// maxTTL is RabbitMQ's limit on TTLs in milliseconds.
const maxTTL = 1<<32 - 1

// Message record format, version 1:
//
//	u8 version | i64 expiresAt (unix ns, 0 = never) | exchange | routing key |
//	u16 flags | properties present in flags, in flag order | body
const msgVersion = 1

func encodeMessage(dst []byte, expiresAt int64, m *Message) []byte {
	return append(encodeMessageHead(dst, expiresAt, m), m.Body...)
}

// encodeMessageHead is encodeMessage without the body's bytes: everything
// up to and including the body's length.
func encodeMessageHead(dst []byte, expiresAt int64, m *Message) []byte {
	e := enc{b: dst}
	e.u8(msgVersion)
	e.u64(uint64(expiresAt))
	e.str(m.Exchange)
	e.str(m.RoutingKey)
	p := &m.Properties
	e.u16(uint16(p.Flags))
	if p.Flags&HasContentType != 0 {
		e.str(p.ContentType)
	}
	if p.Flags&HasContentEncoding != 0 {
		e.str(p.ContentEncoding)
	}
	if p.Flags&HasHeaders != 0 {
		e.table(p.Headers)
	}
	if p.Flags&HasDeliveryMode != 0 {
		e.u8(p.DeliveryMode)
	}
	if p.Flags&HasPriority != 0 {
		e.u8(p.Priority)
	}
	if p.Flags&HasCorrelationID != 0 {
		e.str(p.CorrelationID)
	}
	if p.Flags&HasReplyTo != 0 {
		e.str(p.ReplyTo)
	}
	if p.Flags&HasExpiration != 0 {
		e.str(p.Expiration)
	}
	if p.Flags&HasMessageID != 0 {
		e.str(p.MessageID)
	}
	if p.Flags&HasTimestamp != 0 {
		e.u64(uint64(p.Timestamp))
	}
	if p.Flags&HasType != 0 {
		e.str(p.Type)
	}
	if p.Flags&HasUserID != 0 {
		e.str(p.UserID)
	}
	if p.Flags&HasAppID != 0 {
		e.str(p.AppID)
	}
	if p.Flags&HasClusterID != 0 {
		e.str(p.ClusterID)
	}
	e.uvarint(uint64(len(m.Body)))
	return e.b
}

// storedRec is a durable queue's copy of a persistent message on its way
// to the store: encodeMessage's bytes, marshalled by the store's committer
// straight into its batch. The queue marks it dropped when the message
// leaves the queue (acknowledged, expired, purged); if that happens before
// the committer gets to it, as it does for a message consumed and
// acknowledged within one group commit, it is never written
// (storage.Droppable).
type storedRec struct {
	head    []byte // encodeMessageHead
	body    []byte // the message's body; nil once marshalled, so a paged-out body can go
	n       int
	dropped atomic.Bool
}

func newStoredRec(expiresAt int64, m *Message) *storedRec {
	head := encodeMessageHead(make([]byte, 0, 64), expiresAt, m)
	return &storedRec{head: head, body: m.Body, n: len(head) + len(m.Body)}
}

// Size implements storage.Record.
func (r *storedRec) Size() int { return r.n }

// MarshalTo implements storage.Record. The store calls it once, on its
// committer goroutine.
func (r *storedRec) MarshalTo(dst []byte) {
	copy(dst[copy(dst, r.head):], r.body)
	r.head, r.body = nil, nil
}

// Dropped implements storage.Droppable.
func (r *storedRec) Dropped() bool { return r.dropped.Load() }

var _ storage.Droppable = (*storedRec)(nil)

func decodeMessage(b []byte) (m *Message, expiresAt int64, err error) {
	d := dec{b: b}
	if d.u8() != msgVersion {
		return nil, 0, errCorrupt
	}
	expiresAt = int64(d.u64())
	m = &Message{Exchange: d.str(), RoutingKey: d.str()}
	p := &m.Properties
	p.Flags = PropFlag(d.u16())
	if p.Flags&HasContentType != 0 {
		p.ContentType = d.str()
	}
	if p.Flags&HasContentEncoding != 0 {
		p.ContentEncoding = d.str()
	}
	if p.Flags&HasHeaders != 0 {
		p.Headers = d.table(0)
	}
	if p.Flags&HasDeliveryMode != 0 {
		p.DeliveryMode = d.u8()
	}
	if p.Flags&HasPriority != 0 {
		p.Priority = d.u8()
	}
	if p.Flags&HasCorrelationID != 0 {
		p.CorrelationID = d.str()
	}
	if p.Flags&HasReplyTo != 0 {
		p.ReplyTo = d.str()
	}
	if p.Flags&HasExpiration != 0 {
		p.Expiration = d.str()
	}
	if p.Flags&HasMessageID != 0 {
		p.MessageID = d.str()
	}
	if p.Flags&HasTimestamp != 0 {
		p.Timestamp = int64(d.u64())
	}
	if p.Flags&HasType != 0 {
		p.Type = d.str()
	}
	if p.Flags&HasUserID != 0 {
		p.UserID = d.str()
	}
	if p.Flags&HasAppID != 0 {
		p.AppID = d.str()
	}
	if p.Flags&HasClusterID != 0 {
		p.ClusterID = d.str()
	}
	m.Body = d.bytes()
	if d.err != nil {
		return nil, 0, d.err
	}
	return m, expiresAt, nil
}
