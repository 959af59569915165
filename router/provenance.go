package router

import "strings"

// Provenance headers say who published a message, whatever protocol
// publishes or consumes it: AMQP and STOMP consumers see them as headers,
// MQTT 5 subscribers as User Properties. The broker sets them; a client
// cannot: headers with the prefix that a publisher sends are dropped
// first. Config.Provenance switches them off, and then such headers are
// ordinary headers, passed on as sent.
const (
	ProvenancePrefix = "x-junction-"
	HdrProtocol      = ProvenancePrefix + "protocol" // "amqp", "mqtt" or "stomp"
	HdrUser          = ProvenancePrefix + "user"     // the authenticated user name
	HdrClient        = ProvenancePrefix + "client"   // MQTT client id, AMQP connection name, ...
)

// Publisher is one connection's provenance, built once when it has logged
// in and shared by every message it publishes. Its zero value (and nil)
// stamps nothing.
type Publisher struct {
	fields Table // immutable once built; nil when provenance is off
}

// Publisher returns the provenance of a connection of protocol, logged in
// as user, known as client; nil when provenance is switched off.
func (r *Router) Publisher(protocol, user, client string) *Publisher {
	if !r.provenance {
		return nil
	}
	return &Publisher{fields: Table{
		{Key: HdrProtocol, Value: protocol},
		{Key: HdrUser, Value: user},
		{Key: HdrClient, Value: client},
	}}
}

// Headers returns the provenance headers alone, a table shared by every
// message of the connection (nobody may modify it), or nil.
func (p *Publisher) Headers() Table {
	if p == nil {
		return nil
	}
	return p.fields
}

// Stamp returns h without the provenance headers a client put in it,
// followed by p's: h itself when p is nil, p's shared table when h is
// empty. h must be the caller's own: its array may be reused.
func (p *Publisher) Stamp(h Table) Table {
	if p == nil {
		return h
	}
	if len(h) == 0 {
		return p.fields
	}
	out := h[:0]
	for _, f := range h {
		if !strings.HasPrefix(f.Key, ProvenancePrefix) {
			out = append(out, f)
		}
	}
	clear(h[len(out):])
	return append(out, p.fields...)
}

// Apply stamps m's headers (see Stamp) and marks them present.
func (p *Publisher) Apply(m *Message) {
	if p == nil {
		return
	}
	pr := &m.Properties
	if pr.Flags&HasHeaders == 0 {
		pr.Headers = nil
	}
	pr.Headers = p.Stamp(pr.Headers)
	pr.Flags |= HasHeaders
}
