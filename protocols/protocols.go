// Package protocols holds the contracts between the network transport
// (protocols/transport, the only gnet user) and the protocol adapters
// (protocols/amqp, protocols/mqtt, protocols/stomp).
//
// It owns only interfaces, limits and the sentinel errors the transport uses
// to say why it closes a connection. It imports the standard library only;
// adapters and transports import it, never each other.
//
// # Model
//
// The transport accepts a connection, asks the listener's [Adapter] to
// [Adapter.Open] a [Session] for it, and from then on drives the session from
// the connection's event loop: inbound bytes go to [Session.Feed], outbound
// bytes come from [Session.Output], a periodic [Session.Tick] lets the session
// enforce keepalives and heart-beats, [Session.Fail] supplies the protocol's
// last words when the transport gives up on a connection, and
// [Session.Closed] says the connection is gone.
//
// A session is sans-I/O: it never reads or writes a socket and never blocks.
// Work that must not run on the loop (fsync, lookups) runs elsewhere and
// comes back through [Conn.Wake], which makes the transport call Output on
// the loop soon after.
//
// # Concurrency
//
// Every Session method is called on the connection's event-loop goroutine,
// never concurrently with another Session method of the same connection.
// Sessions of different connections may run in parallel on different loops.
// Conn methods are safe from any goroutine.
//
// # Buffers
//
// Bytes passed to Feed are borrowed from the transport and valid only during
// the call: copy exactly what is kept, once. Buffers returned by Output and
// Fail belong to the session and must stay untouched until the next call of
// Output, Fail or Closed on that session; the transport copies whatever the
// socket does not take at once.
package protocols

import (
	"errors"
	"strconv"
	"time"
)

// Reasons the transport gives to Fail and Closed. Adapters map them to the
// protocol's own close frame (AMQP connection.close 320/541, MQTT 5
// DISCONNECT 0x8B/0x83, STOMP ERROR); match them with errors.Is.
var (
	// ErrShutdown: the broker is shutting down (AMQP 320 CONNECTION_FORCED,
	// MQTT 5 0x8B Server shutting down).
	ErrShutdown = errors.New("protocols: server shutting down")
	// ErrInternal: a bug in the broker, e.g. a recovered panic in the
	// session (AMQP 541 INTERNAL_ERROR, MQTT 5 0x83 Implementation specific
	// error). The transport does not call Output after it.
	ErrInternal = errors.New("protocols: internal error")
	// ErrInboundLimit: the session left more than Limits.MaxInbound bytes
	// unconsumed (AMQP 501 FRAME_ERROR, MQTT 5 0x95 Packet too large).
	ErrInboundLimit = errors.New("protocols: inbound buffer limit exceeded")
	// ErrPeerClosed: the peer closed or reset the connection. Closed only;
	// the transport wraps the socket error, if any, with it.
	ErrPeerClosed = errors.New("protocols: connection closed by peer")
	// ErrCloseTimeout: a connection that was closing could not flush its
	// final bytes within the transport's close timeout and was cut off.
	ErrCloseTimeout = errors.New("protocols: close timed out flushing output")
	// ErrSlowConsumer: the connection's outbound backlog stayed at the
	// high-water mark for the transport's slow-consumer timeout (AMQP 320
	// CONNECTION_FORCED, MQTT 5 0x97 Quota exceeded, STOMP ERROR). The
	// transport calls Fail without draining Output first: the peer is not
	// reading, so what the session still holds is released by Closed.
	ErrSlowConsumer = errors.New("protocols: slow consumer")
	// ErrConnLimit: the connection was accepted beyond the transport's
	// connection limit; Conn.Refusal returns a *ConnLimitError matching it.
	ErrConnLimit = errors.New("protocols: connection limit reached")
)

// ConnLimitError is the refusal of a connection accepted while the
// transport's connection limit was reached. It matches ErrConnLimit.
type ConnLimitError struct {
	Limit int // the limit in force
}

func (e *ConnLimitError) Error() string {
	return "protocols: connection limit (" + strconv.Itoa(e.Limit) + ") is reached"
}

// Is makes errors.Is(err, ErrConnLimit) hold.
func (e *ConnLimitError) Is(target error) bool { return target == ErrConnLimit }

// Conn is what a session sees of its connection. All methods are safe from
// any goroutine, also after the connection is gone (then they do nothing).
type Conn interface {
	// ID is unique among the connections of one process; it appears in the
	// transport's logs as "conn".
	ID() uint64
	// RemoteAddr is the peer's address ("127.0.0.1:51234").
	RemoteAddr() string
	// LocalAddr is the address the peer connected to ("127.0.0.1:5672").
	LocalAddr() string
	// Wake makes the transport call the session's Output on the loop soon;
	// Output is where a session takes in results posted to it from other
	// goroutines. Wakes coalesce: any number of calls before the loop gets
	// to the connection cause one pass. While the connection's outbound
	// backlog is at Limits.OutboundHighWater, Output waits until it drains.
	// During the pass the transport also offers the session any inbound
	// bytes it left unconsumed, so a session that paused consuming (flow
	// control) resumes by calling Wake.
	Wake()
	// Close asks the transport to close the connection with reason err
	// (logged, and passed to Session.Closed; nil means a normal close the
	// session asked for). The transport stops reading, keeps calling Output
	// until it returns nothing, flushes what it got, then closes; it does
	// not call Fail, so a session that wants to say goodbye queues the frame
	// in its output before calling Close. Close is asynchronous: on the
	// loop, returning an error from Feed or Tick takes effect at once. Later
	// calls are ignored.
	Close(err error)
	// Refusal is nil for a connection the session may serve. For one the
	// transport must not keep, it says why (a *ConnLimitError when the
	// connection limit was reached): the session answers the client's
	// handshake with its protocol's refusal at the point where the protocol
	// allows one, and closes; nothing else is served. The transport cuts a
	// refused connection off after its close timeout in any case, does not
	// count it as open and logs it only in a per-burst warning, so the
	// session should refuse without logging above Debug. Fixed at Open.
	Refusal() error
}

// Session is one connection's protocol state. Every method is called on the
// connection's event-loop goroutine only, so a session needs no locks for
// state it touches only from these methods. No method may block.
type Session interface {
	// Feed consumes complete frames from the front of in and returns how
	// many bytes it consumed. n == 0 && err == nil means "need more bytes";
	// 0 < n < len(in) leaves the rest (an incomplete frame, or frames the
	// session chose not to take yet), which is offered again together with
	// later bytes on the next read or Wake. in is borrowed: valid only
	// during the call. A non-nil err ends the connection: the transport
	// writes the pending Output, then Fail(err), then closes.
	// Contract: 0 <= n <= len(in).
	Feed(in []byte) (n int, err error)
	// Output appends the session's pending outbound buffers to dst and
	// returns it; nothing appended means nothing pending. The transport
	// calls it after Feed, after Tick, on Wake, and again while the
	// connection's outbound backlog is under Limits.OutboundHighWater, so
	// one call may return a bounded batch. The buffers stay valid until the
	// next Output, Fail or Closed call.
	Output(dst [][]byte) [][]byte
	// Tick is called about every transport tick interval with the current
	// time, for keepalive and heart-beat checks. A non-nil err closes the
	// connection as Feed's error does.
	Tick(now time.Time) error
	// Fail returns the protocol's final frame for err (a connection.close,
	// DISCONNECT or ERROR frame), or nil. It is called at most once, after
	// Output has returned nothing (after a panic or ErrSlowConsumer,
	// without asking Output), and nothing is asked of the session afterwards
	// except Closed. The transport writes the bytes and closes once they are
	// flushed.
	Fail(err error) []byte
	// Closed says the connection is gone; err says why (see the Err
	// variables). The session releases everything it holds: unacknowledged
	// deliveries are requeued, subscriptions dropped. Called exactly once
	// for every opened session, also after a panic.
	Closed(err error)
}

// Adapter opens sessions for one protocol.
type Adapter interface {
	// Name is the protocol's short name for logs ("amqp", "mqtt", "stomp").
	Name() string
	// Open is called on the connection's event loop when a connection is
	// accepted and returns its session. c stays valid for the session's
	// lifetime and may be handed to other goroutines.
	Open(c Conn) Session
}

// Defaults for zero Limits fields.
const (
	DefaultMaxInbound        = 4 << 20 // 4 MiB
	DefaultOutboundHighWater = 1 << 20 // 1 MiB
)

// Limits bound the transport's per-connection buffers. Zero fields mean the
// defaults above. Protocol flow control (prefetch, receive maximum, ack
// windows) should keep a well-behaved peer far below them; they are the last
// line of defence.
type Limits struct {
	// MaxInbound is the most inbound bytes a connection may hold unconsumed
	// after Feed returns; beyond it the connection is closed with
	// ErrInboundLimit. It must exceed the largest frame the protocol allows
	// plus one socket read (64 KiB).
	MaxInbound int
	// OutboundHighWater is the outbound backlog, in bytes buffered in the
	// transport because the socket would not take them, at which the
	// transport stops calling Output. It resumes once the backlog drains
	// below it. The backlog therefore stays under OutboundHighWater plus
	// one Output batch; the session bounds what it queues itself.
	OutboundHighWater int
	// SlowConsumerTimeout is how long the backlog may stay at or above
	// OutboundHighWater without once draining below it; then the
	// connection is closed with ErrSlowConsumer. Zero or negative: never.
	SlowConsumerTimeout time.Duration
}

// WithDefaults returns l with zero fields set to the package defaults.
func (l Limits) WithDefaults() Limits {
	if l.MaxInbound <= 0 {
		l.MaxInbound = DefaultMaxInbound
	}
	if l.OutboundHighWater <= 0 {
		l.OutboundHighWater = DefaultOutboundHighWater
	}
	return l
}
