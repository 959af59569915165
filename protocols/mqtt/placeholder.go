package mqtt

import (
	"errors"
	"time"

	"github.com/junction-broker/junction/protocols"
)

var errNotReady = errors.New("mqtt: MQTT sessions are not available in this build")

// Placeholder is an Adapter that refuses every CONNECT as "server
// unavailable".
type Placeholder struct{}

// Name implements protocols.Adapter.
func (Placeholder) Name() string { return "mqtt" }

// Open implements protocols.Adapter.
func (Placeholder) Open(protocols.Conn) protocols.Session { return &refusal{} }

type refusal struct {
	reply []byte
}

var (
	connackUnavailable3 = []byte{0x20, 0x02, 0x00, 0x03}       // [MQTT-3.2.2-3] return code 3
	connackUnavailable5 = []byte{0x20, 0x03, 0x00, 0x88, 0x00} // MQTT 5 §3.2.2.2 reason 0x88, no properties
)

// Feed waits for a CONNECT's protocol level to answer in the client's
// version; anything else is refused in 3.1.1's form.
func (r *refusal) Feed(in []byte) (int, error) {
	if len(in) < 2 {
		return 0, nil
	}
	if in[0] != 0x10 {
		r.reply = nil // not a CONNECT: the spec says close without a reply
		return len(in), errNotReady
	}
	// Skip the remaining-length varint, then the protocol name.
	i := 1
	for ; i < len(in) && i <= 4 && in[i]&0x80 != 0; i++ {
	}
	i++
	if i+2 > len(in) {
		return 0, nil
	}
	nameLen := int(in[i])<<8 | int(in[i+1])
	lvl := i + 2 + nameLen
	if lvl >= len(in) {
		if lvl > 64 {
			return len(in), errNotReady
		}
		return 0, nil
	}
	r.reply = connackUnavailable3
	if in[lvl] == 5 {
		r.reply = connackUnavailable5
	}
	return len(in), errNotReady
}

func (r *refusal) Output(dst [][]byte) [][]byte { return dst }
func (r *refusal) Tick(time.Time) error         { return nil }
func (r *refusal) Closed(error)                 {}
func (r *refusal) Fail(error) []byte            { return r.reply }
