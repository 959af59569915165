package amqp

import (
	"errors"
	"time"

	"github.com/junction-broker/junction/protocols"
)

// protocolHeader is AMQP 0-9-1's, sent back to refuse a connection
// (AMQP 0-9-1 §4.2.2).
var protocolHeader = []byte("AMQP\x00\x00\x09\x01")

var errNotReady = errors.New("amqp: AMQP sessions are not available in this build")

// Placeholder is an Adapter that refuses every connection with the
// protocol header, as a server that does not support the client's protocol
// does.
type Placeholder struct{}

// Name implements protocols.Adapter.
func (Placeholder) Name() string { return "amqp" }

// Open implements protocols.Adapter.
func (Placeholder) Open(protocols.Conn) protocols.Session { return &refusal{} }

type refusal struct{ done bool }

func (r *refusal) Feed(in []byte) (int, error) {
	if len(in) < len(protocolHeader) {
		return 0, nil
	}
	return len(in), errNotReady
}

func (r *refusal) Output(dst [][]byte) [][]byte { return dst }
func (r *refusal) Tick(time.Time) error         { return nil }
func (r *refusal) Closed(error)                 {}

func (r *refusal) Fail(error) []byte {
	if r.done {
		return nil
	}
	r.done = true
	return protocolHeader
}
