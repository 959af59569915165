package mqtt

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/junction-broker/junction/router"
)

// How an MQTT application message becomes a router message, and back.
//
//	QoS                      delivery mode (0: transient, 1 and 2: persistent)
//	                         and header x-mqtt-publish-qos (as RabbitMQ)
//	RETAIN                   header x-mqtt-retain = true (Retain As Published)
//	Content Type             content-type
//	Correlation Data         correlation-id (header x-mqtt-correlation-data
//	                         when longer than 255 bytes, AMQP's short string)
//	Response Topic           reply-to, the topic unchanged (header
//	                         x-mqtt-response-topic when longer than 255 bytes)
//	Message Expiry Interval  expiration, in milliseconds; the remaining
//	                         interval is sent on delivery
//	Payload Format Indicator header x-mqtt-payload-format (0 or 1)
//	User Property            headers, in order, repeats kept
//
// On delivery every header whose name does not start with "x-mqtt-" and
// whose value is a string, bytes, a number or a boolean becomes a User
// Property (numbers and booleans as text), so AMQP and STOMP headers reach
// MQTT 5 subscribers. The publishing client's id travels in header
// x-mqtt-client-id only while it has a No Local subscription.
const (
	hdrQoS         = "x-mqtt-publish-qos"
	hdrRetain      = "x-mqtt-retain"
	hdrClientID    = "x-mqtt-client-id"
	hdrPFI         = "x-mqtt-payload-format"
	hdrCorrelation = "x-mqtt-correlation-data"
	hdrResponse    = "x-mqtt-response-topic"
	// A retained message delivered on subscribe goes through the session's
	// own queue (default exchange, the queue name as routing key), so it
	// carries its topic and the filter of the subscription it is for.
	hdrTopic       = "x-mqtt-topic"
	hdrRetainedFor = "x-mqtt-retained-for"
	hdrPrefix      = "x-mqtt-"
)

// maxShortStr is the longest AMQP short string: longer correlation data and
// response topics travel in headers.
const maxShortStr = 255

// maxExpiryMs is the router's longest message TTL (RabbitMQ's 2^32-1 ms,
// about 49.7 days): longer MQTT expiry intervals are cut to it.
const maxExpiryMs = 1<<32 - 1

// qosValues are the x-mqtt-publish-qos values, boxed once.
var qosValues = [3]any{uint8(0), uint8(1), uint8(2)}

// setAppProps fills p's properties from the MQTT 5 application properties
// (everything but the headers).
func setAppProps(p *router.Properties, ap *appProps) {
	if ap.hasContentType {
		p.Flags |= router.HasContentType
		p.ContentType = ap.contentType
	}
	if ap.hasCorrelation && len(ap.correlation) <= maxShortStr {
		p.Flags |= router.HasCorrelationID
		p.CorrelationID = string(ap.correlation)
	}
	if ap.hasResponseTopic && len(ap.responseTopic) <= maxShortStr {
		p.Flags |= router.HasReplyTo
		p.ReplyTo = ap.responseTopic
	}
	if ap.hasExpiry && ap.expiry > 0 {
		p.Flags |= router.HasExpiration
		p.Expiration = strconv.FormatInt(min(int64(ap.expiry)*1000, maxExpiryMs), 10)
	}
}

// plainApp reports whether ap needs no headers of its own, so a
// message can share a prebuilt header table.
func plainApp(ap *appProps) bool {
	return len(ap.user) == 0 && !ap.hasPFI &&
		!(ap.hasCorrelation && len(ap.correlation) > maxShortStr) &&
		!(ap.hasResponseTopic && len(ap.responseTopic) > maxShortStr)
}

// buildHeaders returns a new header table: ap's user properties in order,
// then what the router properties cannot hold, then the adapter's own
// headers. clientID is "" unless No Local needs it.
func buildHeaders(qos byte, retain bool, clientID string, ap *appProps) router.Table {
	h := make(router.Table, 0, len(ap.user)+5)
	h = append(h, ap.user...)
	if ap.hasPFI {
		h = append(h, router.Field{Key: hdrPFI, Value: qosValues[min(ap.pfi, 1)]})
	}
	if ap.hasCorrelation && len(ap.correlation) > maxShortStr {
		h = append(h, router.Field{Key: hdrCorrelation, Value: ap.correlation})
	}
	if ap.hasResponseTopic && len(ap.responseTopic) > maxShortStr {
		h = append(h, router.Field{Key: hdrResponse, Value: ap.responseTopic})
	}
	h = append(h, router.Field{Key: hdrQoS, Value: qosValues[qos]})
	if retain {
		h = append(h, router.Field{Key: hdrRetain, Value: true})
	}
	if clientID != "" {
		h = append(h, router.Field{Key: hdrClientID, Value: clientID})
	}
	return h
}

// newMessage builds the router message for an application message. body
// becomes the message body as it is (the caller hands it over).
func newMessage(tm topicMode, topic string, qos byte, ap *appProps, body []byte, headers router.Table) *router.Message {
	m := &router.Message{RoutingKey: tm.key(topic), Body: body}
	p := &m.Properties
	p.Flags = router.HasDeliveryMode | router.HasHeaders
	p.DeliveryMode = router.Transient
	if qos > 0 {
		p.DeliveryMode = router.Persistent
	}
	p.Headers = headers
	setAppProps(p, ap)
	return m
}

// msgInfo is what deliver reads from a message's headers.
type msgInfo struct {
	qos         byte // the QoS it was published with
	retain      bool // published with RETAIN
	publisher   string
	topic       string // retained delivery: its topic
	retainedFor string // retained delivery: the subscription's filter
	retained    bool   // a retained delivery
	pfi         byte
	hasPFI      bool
	correlation []byte
	response    string
	user        bool // some header becomes a User Property
}

// readInfo scans m's headers once.
func readInfo(m *router.Message, mi *msgInfo) {
	*mi = msgInfo{}
	if m.Persistent() {
		mi.qos = 1
	}
	if m.Properties.Flags&router.HasHeaders == 0 {
		return
	}
	for i := range m.Properties.Headers {
		f := &m.Properties.Headers[i]
		if !strings.HasPrefix(f.Key, hdrPrefix) {
			mi.user = true
			continue
		}
		switch f.Key {
		case hdrQoS:
			if n, ok := router.Int(f.Value); ok && n >= 0 && n <= 2 {
				mi.qos = byte(n)
			}
		case hdrRetain:
			mi.retain, _ = f.Value.(bool)
		case hdrClientID:
			mi.publisher, _ = f.Value.(string)
		case hdrTopic:
			mi.topic, _ = f.Value.(string)
		case hdrRetainedFor:
			mi.retainedFor, mi.retained = f.Value.(string)
		case hdrPFI:
			if n, ok := router.Int(f.Value); ok && (n == 0 || n == 1) {
				mi.pfi, mi.hasPFI = byte(n), true
			}
		case hdrCorrelation:
			switch v := f.Value.(type) {
			case []byte:
				mi.correlation = v
			case string:
				mi.correlation = []byte(v)
			}
		case hdrResponse:
			mi.response, _ = f.Value.(string)
		}
	}
}

// mqttString reports whether s may be sent as an MQTT UTF-8 string
// (MQTT 5 §1.5.4: well-formed, no U+0000, at most 65535 bytes).
func mqttString(s string) bool {
	return len(s) <= 65535 && utf8.ValidString(s) && strings.IndexByte(s, 0) < 0
}

// appendPropStr appends a string property.
func appendPropStr(b []byte, id byte, s string) []byte {
	return appendString(append(b, id), s)
}

// appendUserProps appends the headers that become User Properties.
func appendUserProps(b []byte, h router.Table) []byte {
	var num [32]byte
	for i := range h {
		f := &h[i]
		if strings.HasPrefix(f.Key, hdrPrefix) || !mqttString(f.Key) {
			continue
		}
		var v []byte
		switch x := f.Value.(type) {
		case string:
			if !mqttString(x) {
				continue
			}
			b = appendPropStr(b, 0x26, f.Key)
			b = appendString(b, x)
			continue
		case []byte:
			if len(x) > 65535 || !utf8.Valid(x) || strings.IndexByte(string(x), 0) >= 0 {
				continue
			}
			v = x
		case bool:
			v = strconv.AppendBool(num[:0], x)
		case float32:
			v = strconv.AppendFloat(num[:0], float64(x), 'g', -1, 32)
		case float64:
			v = strconv.AppendFloat(num[:0], x, 'g', -1, 64)
		default:
			n, ok := router.Int(x)
			if !ok {
				continue // tables, arrays, timestamps: no text form
			}
			v = strconv.AppendInt(num[:0], n, 10)
		}
		b = appendPropStr(b, 0x26, f.Key)
		b = append(b, byte(len(v)>>8), byte(len(v)))
		b = append(b, v...)
	}
	return b
}
