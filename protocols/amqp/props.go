package amqp

import (
	"time"

	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
)

// The one table between AMQP's basic properties and the router's
// protocol-neutral ones. Presence flags map bit for bit: frame.Flag* (the
// wire's flags word, most significant first) ⇄ router.Has* (same order,
// least significant first).
var propFlags = [...]struct {
	wire uint16
	prop router.PropFlag
}{
	{frame.FlagContentType, router.HasContentType},
	{frame.FlagContentEncoding, router.HasContentEncoding},
	{frame.FlagHeaders, router.HasHeaders},
	{frame.FlagDeliveryMode, router.HasDeliveryMode},
	{frame.FlagPriority, router.HasPriority},
	{frame.FlagCorrelationID, router.HasCorrelationID},
	{frame.FlagReplyTo, router.HasReplyTo},
	{frame.FlagExpiration, router.HasExpiration},
	{frame.FlagMessageID, router.HasMessageID},
	{frame.FlagTimestamp, router.HasTimestamp},
	{frame.FlagType, router.HasType},
	{frame.FlagUserID, router.HasUserID},
	{frame.FlagAppID, router.HasAppID},
	{frame.FlagClusterID, router.HasClusterID},
}

// propsToRouter copies the decoded basic properties p into dst. Strings are
// shared (they are immutable); the headers table is converted, which
// allocates only when p has headers.
func propsToRouter(dst *router.Properties, p *frame.Properties) {
	var f router.PropFlag
	for _, pf := range propFlags {
		if p.Flags&pf.wire != 0 {
			f |= pf.prop
		}
	}
	*dst = router.Properties{
		Flags:           f,
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		DeliveryMode:    p.DeliveryMode,
		Priority:        p.Priority,
		CorrelationID:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		Expiration:      p.Expiration,
		MessageID:       p.MessageID,
		Type:            p.Type,
		UserID:          p.UserID,
		AppID:           p.AppID,
		ClusterID:       p.ClusterID,
	}
	if f&router.HasTimestamp != 0 {
		dst.Timestamp = p.Timestamp.Unix()
	}
	if f&router.HasHeaders != 0 {
		dst.Headers = tableToRouter(p.Headers)
	}
}

// propsToWire fills dst, the session's reused scratch, from p. headers is
// scratch for the converted top-level headers table; the returned slice is
// to be passed back next time so that flat headers cost no allocation.
func propsToWire(dst *frame.Properties, p *router.Properties, headers frame.Table) frame.Table {
	var f uint16
	for _, pf := range propFlags {
		if p.Flags&pf.prop != 0 {
			f |= pf.wire
		}
	}
	*dst = frame.Properties{
		Flags:           f,
		ContentType:     p.ContentType,
		ContentEncoding: p.ContentEncoding,
		DeliveryMode:    p.DeliveryMode,
		Priority:        p.Priority,
		CorrelationID:   p.CorrelationID,
		ReplyTo:         p.ReplyTo,
		Expiration:      p.Expiration,
		MessageID:       p.MessageID,
		Type:            p.Type,
		UserID:          p.UserID,
		AppID:           p.AppID,
		ClusterID:       p.ClusterID,
	}
	if f&frame.FlagTimestamp != 0 {
		dst.Timestamp = time.Unix(p.Timestamp, 0).UTC()
	}
	if f&frame.FlagHeaders != 0 {
		headers = appendTableToWire(headers[:0], p.Headers)
		dst.Headers = headers
	}
	return headers
}

// tableToRouter converts a decoded field table for the router, nil for an
// empty one. uint64 ('L') becomes int64, as RabbitMQ reads it.
func tableToRouter(t frame.Table) router.Table {
	if len(t) == 0 {
		return nil
	}
	out := make(router.Table, len(t))
	for i, f := range t {
		out[i] = router.Field{Key: f.Key, Value: valueToRouter(f.Value)}
	}
	return out
}

func valueToRouter(v any) any {
	switch x := v.(type) {
	case frame.Table:
		t := tableToRouter(x)
		if t == nil {
			t = router.Table{}
		}
		return t
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = valueToRouter(e)
		}
		return out
	case frame.Decimal:
		return router.Decimal{Scale: x.Scale, Value: x.Value}
	case uint64:
		return int64(x)
	}
	return v
}

// appendTableToWire appends t's fields, converted for the codec, to dst.
// Values of the same Go type on both sides are passed through without
// allocating; router int becomes int64 ('l').
func appendTableToWire(dst frame.Table, t router.Table) frame.Table {
	for _, f := range t {
		dst = append(dst, frame.Field{Key: f.Key, Value: valueToWire(f.Value)})
	}
	return dst
}

func tableToWire(t router.Table) frame.Table {
	if t == nil {
		return nil
	}
	return appendTableToWire(make(frame.Table, 0, len(t)), t)
}

func valueToWire(v any) any {
	switch x := v.(type) {
	case router.Table:
		t := tableToWire(x)
		if t == nil {
			t = frame.Table{}
		}
		return t
	case []any:
		out := make([]any, len(x))
		for i, e := range x {
			out[i] = valueToWire(e)
		}
		return out
	case router.Decimal:
		return frame.Decimal{Scale: x.Scale, Value: x.Value}
	case int:
		return int64(x)
	}
	return v
}
