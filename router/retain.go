package router

import "time"

// Retained messages across protocols. MQTT keeps the last message
// published with RETAIN on each topic and hands it to every later
// subscriber; that store belongs to the MQTT adapter. A Retainer opens it
// to clients of every protocol, through the one routing graph:
//
//   - a message published to the retainer's exchange with header
//     RetainHeader set to true (see True; an AMQP basic.publish, a STOMP SEND) is
//     handed to Retain before it is routed: it becomes the retained
//     message of its routing key, as an MQTT PUBLISH with RETAIN would;
//   - a queue bound to that exchange with binding argument RetainedArg set
//     to true (an AMQP queue.bind, a STOMP SUBSCRIBE) receives, right
//     after the binding is made, every retained message its binding key
//     matches, as an MQTT subscription does.
//
// The names come from MQTT, whose feature this is: an MQTT message
// published with RETAIN reaches AMQP and STOMP consumers with the same
// header.
const (
	RetainHeader = "x-mqtt-retain"
	RetainedArg  = "x-mqtt-retained"
)

// A Retainer keeps the retained messages of one exchange.
type Retainer interface {
	// Retain makes m the retained message of its routing key (an empty
	// body clears it). done runs once, when the change is as durable as
	// the message asks (persistent: on disk); it is not called when
	// Retain returns an error (the message was not retained, and is
	// routed anyway). Retain must not call into the router.
	Retain(m *Message, done func(error)) error
	// Retained calls fn with a new message for every retained message
	// whose routing key matches the topic binding key, each with the
	// retainer's exchange, its routing key and RetainHeader set.
	Retained(bindingKey string, now time.Time, fn func(*Message))
}

type retainKey struct{ vhost, exchange string }

// SetRetainer installs r for exchange in vhost, from now on and for the
// exchange declared later under that name. Adapters call it once, when
// they are made.
func (r *Router) SetRetainer(vhost, exchange string, rt Retainer) {
	r.retainMu.Lock()
	if r.retainers == nil {
		r.retainers = make(map[retainKey]Retainer)
	}
	r.retainers[retainKey{vhost, exchange}] = rt
	r.retainMu.Unlock()
	if v := r.VHost(vhost); v != nil {
		v.mu.Lock()
		if x := v.exchanges[exchange]; x != nil {
			x.retainer = rt
		}
		v.mu.Unlock()
	}
}

// retainerFor returns the retainer of exchange in vhost, or nil.
func (r *Router) retainerFor(vhost, exchange string) Retainer {
	r.retainMu.Lock()
	defer r.retainMu.Unlock()
	return r.retainers[retainKey{vhost, exchange}]
}

// wantsRetain reports whether m asks to be retained: header RetainHeader
// is true.
func wantsRetain(m *Message) bool {
	if m.Properties.Flags&HasHeaders == 0 {
		return false
	}
	for i := range m.Properties.Headers {
		if f := &m.Properties.Headers[i]; f.Key == RetainHeader {
			return True(f.Value)
		}
	}
	return false
}

// wantsRetained reports whether binding arguments ask for the retained
// messages: RetainedArg is true.
func wantsRetained(args Table) bool {
	v, _ := args.Get(RetainedArg)
	return True(v)
}

// True reports whether a header or argument value says yes: the boolean
// true, or the text "true" (STOMP headers are text).
func True(v any) bool {
	switch x := v.(type) {
	case bool:
		return x
	case string:
		return x == "true"
	}
	return false
}

// deliverRetained puts the retained messages b's key matches into b's
// queue, once, after b was made. Each is stored like a routed message
// (durable queue, persistent message: on disk).
func (v *VHost) deliverRetained(b *Binding, rt Retainer) {
	q := b.Queue
	now := v.r.now()
	rt.Retained(b.Key, now, func(m *Message) {
		msgTTL := int64(-1)
		if m.Properties.Flags&HasExpiration != 0 {
			if d, err := parseExpiration(m.Properties.Expiration); err == nil {
				msgTTL = int64(d)
			}
		}
		var (
			c   *confirm
			dls []deadLetter
		)
		q.publish(m, msgTTL, now.UnixNano(), &c, &dls) // a full queue refuses it, as it would a routed one
		if len(dls) > 0 {
			v.deadLetter(q, dls)
		}
		if c != nil {
			c.seal(nil, nil)
		}
	})
}
