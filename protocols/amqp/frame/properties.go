package frame

import (
	"encoding/binary"
	"time"
)

// Presence flags of the basic class's properties, as they sit in the
// property flags word (AMQP 0-9-1 §4.2.6.1: the first property is the most
// significant bit; bit 0 says another flags word follows).
const (
	FlagContentType     uint16 = 1 << 15
	FlagContentEncoding uint16 = 1 << 14
	FlagHeaders         uint16 = 1 << 13
	FlagDeliveryMode    uint16 = 1 << 12
	FlagPriority        uint16 = 1 << 11
	FlagCorrelationID   uint16 = 1 << 10
	FlagReplyTo         uint16 = 1 << 9
	FlagExpiration      uint16 = 1 << 8
	FlagMessageID       uint16 = 1 << 7
	FlagTimestamp       uint16 = 1 << 6
	FlagType            uint16 = 1 << 5
	FlagUserID          uint16 = 1 << 4
	FlagAppID           uint16 = 1 << 3
	FlagClusterID       uint16 = 1 << 2

	flagContinuation uint16 = 1 << 0
)

// Properties are the basic class's content properties, in spec order
// (class basic, properties; the same 14 that RabbitMQ's P_basic holds). A
// property is present, and encoded, exactly when its bit is set in Flags;
// a present property may hold its zero value.
type Properties struct {
	// Flags holds the presence bits (FlagContentType, ...) of the first
	// flags word. Bit 1 is kept as received (RabbitMQ ignores it); bit 0,
	// continuation, is never set here.
	Flags uint16

	ContentType     string    // shortstr, MIME type
	ContentEncoding string    // shortstr, MIME encoding
	Headers         Table     // table
	DeliveryMode    uint8     // octet, 1 transient, 2 persistent
	Priority        uint8     // octet, 0 to 9
	CorrelationID   string    // shortstr
	ReplyTo         string    // shortstr
	Expiration      string    // shortstr, per-message TTL in ms as decimal text
	MessageID       string    // shortstr
	Timestamp       time.Time // timestamp, whole seconds, UTC when decoded
	Type            string    // shortstr
	UserID          string    // shortstr
	AppID           string    // shortstr
	ClusterID       string    // shortstr, deprecated
}

// Has reports whether every property in flags is present.
func (p *Properties) Has(flags uint16) bool { return p.Flags&flags == flags }

// Decode decodes property flags and the property list (a content header's
// RawProperties) into p, overwriting it. Strings and headers are copies:
// p shares no memory with raw.
//
// Further flags words (continuation bit set) are accepted as long as they
// announce no property: the basic class defines 14, and a property we do
// not know cannot be skipped. Trailing bytes are an error.
func (p *Properties) Decode(raw []byte) error { return p.decode(raw, nil) }

func (p *Properties) decode(raw []byte, in *interner) error {
	*p = Properties{}
	r := reader{b: raw, in: in}
	w := r.short()
	p.Flags = w &^ flagContinuation
	for w&flagContinuation != 0 && r.text == "" {
		w = r.short()
		if w&^flagContinuation != 0 {
			r.fail("unknown content property flags")
		}
	}
	f := p.Flags
	if f&FlagContentType != 0 {
		p.ContentType = r.shortstr()
	}
	if f&FlagContentEncoding != 0 {
		p.ContentEncoding = r.shortstr()
	}
	if f&FlagHeaders != 0 {
		p.Headers = r.table()
	}
	if f&FlagDeliveryMode != 0 {
		p.DeliveryMode = r.octet()
	}
	if f&FlagPriority != 0 {
		p.Priority = r.octet()
	}
	if f&FlagCorrelationID != 0 {
		p.CorrelationID = r.shortstr()
	}
	if f&FlagReplyTo != 0 {
		p.ReplyTo = r.shortstr()
	}
	if f&FlagExpiration != 0 {
		p.Expiration = r.shortstr()
	}
	if f&FlagMessageID != 0 {
		p.MessageID = r.shortstr()
	}
	if f&FlagTimestamp != 0 {
		p.Timestamp = r.timestamp()
	}
	if f&FlagType != 0 {
		p.Type = r.shortstr()
	}
	if f&FlagUserID != 0 {
		p.UserID = r.shortstr()
	}
	if f&FlagAppID != 0 {
		p.AppID = r.shortstr()
	}
	if f&FlagClusterID != 0 {
		p.ClusterID = r.shortstr()
	}
	if r.text == "" && r.off != len(r.b) {
		r.text = "trailing bytes after content properties"
	}
	if r.text != "" {
		*p = Properties{}
		return &Error{Code: codeMalformed, ClassID: ClassBasic, Text: r.text}
	}
	return nil
}

// Append appends p's property flags and present properties (a content
// header's RawProperties) to dst. A nil p appends an empty flags word.
func (p *Properties) Append(dst []byte) []byte {
	if p == nil {
		return append(dst, 0, 0)
	}
	f := p.Flags &^ flagContinuation
	dst = appendShort(dst, f)
	if f&FlagContentType != 0 {
		dst = appendShortstr(dst, p.ContentType)
	}
	if f&FlagContentEncoding != 0 {
		dst = appendShortstr(dst, p.ContentEncoding)
	}
	if f&FlagHeaders != 0 {
		dst = appendTable(dst, p.Headers)
	}
	if f&FlagDeliveryMode != 0 {
		dst = append(dst, p.DeliveryMode)
	}
	if f&FlagPriority != 0 {
		dst = append(dst, p.Priority)
	}
	if f&FlagCorrelationID != 0 {
		dst = appendShortstr(dst, p.CorrelationID)
	}
	if f&FlagReplyTo != 0 {
		dst = appendShortstr(dst, p.ReplyTo)
	}
	if f&FlagExpiration != 0 {
		dst = appendShortstr(dst, p.Expiration)
	}
	if f&FlagMessageID != 0 {
		dst = appendShortstr(dst, p.MessageID)
	}
	if f&FlagTimestamp != 0 {
		dst = appendTimestamp(dst, p.Timestamp)
	}
	if f&FlagType != 0 {
		dst = appendShortstr(dst, p.Type)
	}
	if f&FlagUserID != 0 {
		dst = appendShortstr(dst, p.UserID)
	}
	if f&FlagAppID != 0 {
		dst = appendShortstr(dst, p.AppID)
	}
	if f&FlagClusterID != 0 {
		dst = appendShortstr(dst, p.ClusterID)
	}
	return dst
}

// ContentHeader is a content header frame's payload (§4.2.6.1).
type ContentHeader struct {
	ClassID  uint16 // must match the method's class (60 for basic)
	Weight   uint16 // must be 0; RabbitMQ rejects other values
	BodySize uint64 // total size of the body frames that follow
	// RawProperties holds the property flags and property list. It aliases
	// the payload it was parsed from: valid until the caller discards those
	// bytes. A broker can store and forward it as is, or decode it with
	// Properties.Decode.
	RawProperties []byte
}

// ParseContentHeader parses a content header frame's payload. It checks
// only the fixed part; the properties are decoded on demand.
func ParseContentHeader(payload []byte) (ContentHeader, error) {
	if len(payload) < 14 {
		return ContentHeader{}, ErrShortHeader
	}
	return ContentHeader{
		ClassID:       binary.BigEndian.Uint16(payload),
		Weight:        binary.BigEndian.Uint16(payload[2:]),
		BodySize:      binary.BigEndian.Uint64(payload[4:]),
		RawProperties: payload[12:],
	}, nil
}

// AppendContentHeader appends a content header frame's payload: class id,
// weight 0, body size and p (nil: no properties).
func AppendContentHeader(dst []byte, classID uint16, bodySize uint64, p *Properties) []byte {
	dst = appendShort(dst, classID)
	dst = appendShort(dst, 0)
	dst = appendLonglong(dst, bodySize)
	return p.Append(dst)
}
