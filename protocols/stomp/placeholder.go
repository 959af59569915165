package stomp

import (
	"bytes"
	"errors"
	"time"

	"github.com/junction-broker/junction/protocols"
)

var errNotReady = errors.New("stomp: STOMP sessions are not available in this build")

// Placeholder is an Adapter that answers the first frame with an ERROR.
type Placeholder struct{}

// Name implements protocols.Adapter.
func (Placeholder) Name() string { return "stomp" }

// Open implements protocols.Adapter.
func (Placeholder) Open(protocols.Conn) protocols.Session { return &refusal{} }

type refusal struct{}

var errorFrame = []byte("ERROR\ncontent-type:text/plain\nmessage:STOMP is not available in this build\n\n" +
	"This Junction build accepts STOMP connections but does not serve them yet.\x00")

// Feed waits for the end of the first frame's command line.
func (r *refusal) Feed(in []byte) (int, error) {
	if bytes.IndexByte(in, '\n') < 0 && len(in) < 1024 {
		return 0, nil
	}
	return len(in), errNotReady
}

func (r *refusal) Output(dst [][]byte) [][]byte { return dst }
func (r *refusal) Tick(time.Time) error         { return nil }
func (r *refusal) Closed(error)                 {}
func (r *refusal) Fail(error) []byte            { return errorFrame }
