package mqtt

import (
	"errors"
	"strconv"
	"strings"
	"time"

	"github.com/junction-broker/junction/router"
)

// retainer opens the vhost's retained messages to AMQP and STOMP clients
// (router.Retainer; the router's retain.go says how they ask): a publish
// to the MQTT exchange with header x-mqtt-retain = true sets the retained
// message of its topic, and a queue bound with argument x-mqtt-retained =
// true gets the retained messages its binding key matches.
type retainer struct{ a *Adapter }

var errNotTopic = errors.New("mqtt: routing key is not a valid MQTT topic name")

// Retain implements router.Retainer. MQTT's own publishes (they carry
// x-mqtt-publish-qos) were retained by the session already, within the
// quota it answers the client about.
func (r retainer) Retain(m *router.Message, done func(error)) error {
	if _, own := m.Properties.Headers.Get(hdrQoS); own {
		done(nil)
		return nil
	}
	topic := r.a.topics.topic(m.RoutingKey)
	if !validTopic(topic) || strings.ContainsAny(topic, "+#") {
		return errNotTopic
	}
	rm := &retainedMsg{topic: topic, app: appOf(m, r.a.topics), payload: m.Body}
	if m.Persistent() {
		rm.qos = 1
	}
	if m.Properties.Flags&router.HasExpiration != 0 {
		if ms, err := strconv.ParseInt(m.Properties.Expiration, 10, 64); err == nil && ms >= 0 {
			rm.expiresAt = r.a.cfg.Now().UnixNano() + min(ms, maxExpiryMs)*1e6
		}
	}
	return r.a.retained.set(rm, m.Persistent(), done)
}

// Retained implements router.Retainer.
func (r retainer) Retained(bindingKey string, now time.Time, fn func(*router.Message)) {
	ns := now.UnixNano()
	for _, rm := range r.a.retained.match(r.a.topics.filter(bindingKey), ns, nil) {
		h := buildHeaders(rm.qos, true, "", &rm.app, nil)
		m := newMessage(r.a.topics, rm.topic, rm.qos, &rm.app, rm.payload, h)
		m.Exchange = r.a.cfg.Exchange
		if rm.expiresAt > 0 {
			m.Properties.Flags |= router.HasExpiration
			m.Properties.Expiration = strconv.FormatInt(max((rm.expiresAt-ns)/1e6, 1), 10)
		}
		fn(m)
	}
}
