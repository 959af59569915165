package mqtt

import (
	"bytes"
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
//	Response Topic           reply-to, as a routing key (a/b is a.b; header
//	                         x-mqtt-response-topic, the topic, when longer
//	                         than 255 bytes); on delivery the key becomes
//	                         the topic again. A responder that publishes
//	                         to the MQTT exchange with reply-to as routing
//	                         key reaches the requester's subscription.
//	Message Expiry Interval  expiration, in milliseconds; the remaining
//	                         interval is sent on delivery
//	Payload Format Indicator header x-mqtt-payload-format (0 or 1)
//	User Property            headers, in order, repeats kept; except
//	x-amqp-<property>        the AMQP property (below)
//
// On delivery every header whose name does not start with "x-mqtt-" and
// whose value is a string, bytes, a number or a boolean becomes a User
// Property (numbers and booleans as text), so AMQP and STOMP headers reach
// MQTT 5 subscribers. The AMQP properties MQTT 5 has no field for travel
// as User Properties named x-amqp-content-encoding, -priority,
// -message-id, -timestamp (seconds), -type, -user-id, -app-id and
// -cluster-id, after the headers; an MQTT 5 publish carrying them sets
// those properties (x-amqp-user-id only when it names the publisher's
// user, as AMQP requires), so an AMQP message that goes through an MQTT 5
// client comes back whole. The publishing client's id travels in header
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

// User Properties that carry the AMQP properties MQTT 5 has no field for.
const (
	upPrefix          = "x-amqp-"
	upContentEncoding = upPrefix + "content-encoding"
	upPriority        = upPrefix + "priority"
	upMessageID       = upPrefix + "message-id"
	upTimestamp       = upPrefix + "timestamp"
	upType            = upPrefix + "type"
	upUserID          = upPrefix + "user-id"
	upAppID           = upPrefix + "app-id"
	upClusterID       = upPrefix + "cluster-id"
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
func setAppProps(p *router.Properties, ap *appProps, tm topicMode) {
	if ap.hasContentType {
		p.Flags |= router.HasContentType
		p.ContentType = ap.contentType
	}
	if ap.hasCorrelation && len(ap.correlation) <= maxShortStr {
		p.Flags |= router.HasCorrelationID
		p.CorrelationID = string(ap.correlation)
	}
	if ap.hasResponseTopic && len(ap.responseTopic) <= maxShortStr {
		// As a routing key, so that an AMQP or STOMP responder publishes
		// its answer to the MQTT exchange with reply_to as the key. (A
		// lossless key longer than a short string, a topic of many
		// escaped characters, is lost.)
		if k := tm.key(ap.responseTopic); len(k) <= maxShortStr {
			p.Flags |= router.HasReplyTo
			p.ReplyTo = k
		}
	}
	if ap.hasExpiry && ap.expiry > 0 {
		p.Flags |= router.HasExpiration
		p.Expiration = strconv.FormatInt(min(int64(ap.expiry)*1000, maxExpiryMs), 10)
	}
	for _, f := range ap.user {
		if strings.HasPrefix(f.Key, upPrefix) {
			v, _ := f.Value.(string)
			setAMQPProp(p, f.Key, v)
		}
	}
}

// setAMQPProp sets the AMQP property User Property key carries (the first
// one wins); values that are no valid property value are dropped.
func setAMQPProp(p *router.Properties, key, v string) {
	short := len(v) <= maxShortStr
	switch {
	case key == upContentEncoding && short && p.Flags&router.HasContentEncoding == 0:
		p.ContentEncoding, p.Flags = v, p.Flags|router.HasContentEncoding
	case key == upPriority && p.Flags&router.HasPriority == 0:
		if n, err := strconv.ParseUint(v, 10, 8); err == nil {
			p.Priority, p.Flags = uint8(n), p.Flags|router.HasPriority
		}
	case key == upMessageID && short && p.Flags&router.HasMessageID == 0:
		p.MessageID, p.Flags = v, p.Flags|router.HasMessageID
	case key == upTimestamp && p.Flags&router.HasTimestamp == 0:
		if n, err := strconv.ParseInt(v, 10, 64); err == nil {
			p.Timestamp, p.Flags = n, p.Flags|router.HasTimestamp
		}
	case key == upType && short && p.Flags&router.HasType == 0:
		p.Type, p.Flags = v, p.Flags|router.HasType
	case key == upAppID && short && p.Flags&router.HasAppID == 0:
		p.AppID, p.Flags = v, p.Flags|router.HasAppID
	case key == upClusterID && short && p.Flags&router.HasClusterID == 0:
		p.ClusterID, p.Flags = v, p.Flags|router.HasClusterID
	}
	// upUserID: see session.message, which knows the user.
}

// appendAMQPProps appends the User Properties that carry p's AMQP
// properties MQTT 5 has no field for.
func appendAMQPProps(b []byte, p *router.Properties) []byte {
	const text = router.HasContentEncoding | router.HasMessageID | router.HasType | router.HasUserID | router.HasAppID | router.HasClusterID
	if p.Flags&(text|router.HasPriority|router.HasTimestamp) == 0 {
		return b
	}
	str := func(b []byte, key, v string) []byte {
		if !mqttString(v) {
			return b
		}
		return appendString(appendPropStr(b, 0x26, key), v)
	}
	var num [24]byte
	if p.Flags&router.HasContentEncoding != 0 {
		b = str(b, upContentEncoding, p.ContentEncoding)
	}
	if p.Flags&router.HasPriority != 0 {
		b = str(b, upPriority, string(strconv.AppendUint(num[:0], uint64(p.Priority), 10)))
	}
	if p.Flags&router.HasMessageID != 0 {
		b = str(b, upMessageID, p.MessageID)
	}
	if p.Flags&router.HasTimestamp != 0 {
		b = str(b, upTimestamp, string(strconv.AppendInt(num[:0], p.Timestamp, 10)))
	}
	if p.Flags&router.HasType != 0 {
		b = str(b, upType, p.Type)
	}
	if p.Flags&router.HasUserID != 0 {
		b = str(b, upUserID, p.UserID)
	}
	if p.Flags&router.HasAppID != 0 {
		b = str(b, upAppID, p.AppID)
	}
	if p.Flags&router.HasClusterID != 0 {
		b = str(b, upClusterID, p.ClusterID)
	}
	return b
}

// plainApp reports whether ap needs no headers of its own, so a
// message can share a prebuilt header table.
func plainApp(ap *appProps) bool {
	return len(ap.user) == 0 && !ap.hasPFI &&
		!(ap.hasCorrelation && len(ap.correlation) > maxShortStr) &&
		!(ap.hasResponseTopic && len(ap.responseTopic) > maxShortStr)
}

// buildHeaders returns a new header table: ap's user properties in order
// (without provenance headers when pub sets them), then what the router
// properties cannot hold, then the adapter's own headers, then pub's
// provenance. clientID is "" unless No Local needs it.
func buildHeaders(qos byte, retain bool, clientID string, ap *appProps, pub *router.Publisher) router.Table {
	prov := pub.Headers()
	h := make(router.Table, 0, len(ap.user)+5+len(prov))
	for _, f := range ap.user {
		if strings.HasPrefix(f.Key, upPrefix) {
			continue // an AMQP property: setAppProps
		}
		if prov == nil || !strings.HasPrefix(f.Key, router.ProvenancePrefix) {
			h = append(h, f)
		}
	}
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
	return append(h, prov...)
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
	setAppProps(p, ap, tm)
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
			mi.retain = router.True(f.Value)
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

// appendUserProps appends the headers that become User Properties; lean
// leaves out the broker's provenance.
func appendUserProps(b []byte, h router.Table, lean bool) []byte {
	var num [32]byte
	for i := range h {
		f := &h[i]
		if strings.HasPrefix(f.Key, hdrPrefix) || !mqttString(f.Key) || lean && strings.HasPrefix(f.Key, router.ProvenancePrefix) {
			continue
		}
		if x, ok := f.Value.(string); ok {
			if mqttString(x) {
				b = appendPropStr(b, 0x26, f.Key)
				b = appendString(b, x)
			}
			continue
		}
		v, ok := headerText(num[:0], f.Value)
		if !ok {
			continue
		}
		b = appendPropStr(b, 0x26, f.Key)
		b = append(b, byte(len(v)>>8), byte(len(v)))
		b = append(b, v...)
	}
	return b
}

// headerText appends the text a header value becomes as a User Property
// value (router.AppendText), if that is an MQTT string.
func headerText(dst []byte, v any) ([]byte, bool) {
	n := len(dst)
	dst, ok := router.AppendText(dst, v)
	if !ok || len(dst)-n > 65535 || !utf8.Valid(dst[n:]) || bytes.IndexByte(dst[n:], 0) >= 0 {
		return dst[:n], false
	}
	return dst, true
}

// appOf returns the MQTT 5 application properties m carries, as a
// delivery would send them (without the expiry, which the caller knows):
// the inverse of setAppProps and buildHeaders.
func appOf(m *router.Message, tm topicMode) appProps {
	var mi msgInfo
	readInfo(m, &mi)
	p := &m.Properties
	var ap appProps
	if p.Flags&router.HasContentType != 0 && mqttString(p.ContentType) {
		ap.contentType, ap.hasContentType = p.ContentType, true
	}
	switch {
	case mi.correlation != nil:
		ap.correlation, ap.hasCorrelation = mi.correlation, true
	case p.Flags&router.HasCorrelationID != 0:
		ap.correlation, ap.hasCorrelation = []byte(p.CorrelationID), true
	}
	switch {
	case mi.response != "":
		ap.responseTopic, ap.hasResponseTopic = mi.response, true
	case p.Flags&router.HasReplyTo != 0 && mqttString(p.ReplyTo):
		ap.responseTopic, ap.hasResponseTopic = tm.topic(p.ReplyTo), true
	}
	ap.pfi, ap.hasPFI = mi.pfi, mi.hasPFI
	if mi.user {
		for i := range p.Headers {
			f := &p.Headers[i]
			if strings.HasPrefix(f.Key, hdrPrefix) || !mqttString(f.Key) {
				continue
			}
			if v, ok := headerText(nil, f.Value); ok {
				ap.user = append(ap.user, router.Field{Key: f.Key, Value: string(v)})
			}
		}
	}
	return ap
}
