package amqp

import (
	"log/slog"
	"sync"
	"time"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
)

// Defaults for zero Config fields, RabbitMQ's.
const (
	DefaultFrameMax       = 131072
	DefaultChannelMax     = 2047
	DefaultHeartbeat      = 60 * time.Second
	DefaultMaxMessageSize = 128 << 20
	// DefaultHandshakeTimeout is RabbitMQ's handshake_timeout.
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxTxBytes       = 64 << 20
)

// Version is the broker version announced in connection.start.
const Version = "0.1.0"

// Config configures the AMQP adapter.
type Config struct {
	// Router is the routing graph sessions publish to and consume from.
	// Required.
	Router *router.Router
	// Log receives connection lifecycle messages; nil discards them.
	Log *slog.Logger
	// FrameMax is the largest frame the server accepts and offers in
	// connection.tune (DefaultFrameMax if 0; at least frame.FrameMinSize).
	FrameMax uint32
	// ChannelMax is the highest channel number offered in connection.tune
	// (DefaultChannelMax if 0).
	ChannelMax uint16
	// Heartbeat is the heartbeat interval offered in connection.tune
	// (DefaultHeartbeat if 0; negative disables). The client's tune-ok has
	// the last word, as in RabbitMQ.
	Heartbeat time.Duration
	// MaxMessageSize bounds a published body; larger ones fail with 406
	// PRECONDITION_FAILED (DefaultMaxMessageSize if 0).
	MaxMessageSize int64
	// HandshakeTimeout bounds the time from accepting a connection to its
	// connection.tune-ok (DefaultHandshakeTimeout if 0): a connection that
	// has not got that far is closed without a word, as in RabbitMQ.
	HandshakeTimeout time.Duration
	// MaxTxBytes bounds what the transactions (tx.select) of one
	// connection hold until tx.commit, over all its channels: bodies,
	// properties and a little per message. The publish that would exceed
	// it closes its channel with 406 PRECONDITION_FAILED
	// (DefaultMaxTxBytes if 0). RabbitMQ has no such bound.
	MaxTxBytes int
}

// Adapter opens AMQP 0-9-1 sessions. It implements protocols.Adapter and is
// safe from any goroutine.
type Adapter struct {
	cfg   Config
	start []byte // the connection.start frame, encoded once

	mu       sync.Mutex // guards sessions; below the router's alarm lock
	sessions map[*session]struct{}
}

var _ protocols.Adapter = (*Adapter)(nil)

// New returns an adapter for cfg, with defaults filled in.
func New(cfg Config) *Adapter {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.FrameMax == 0 {
		cfg.FrameMax = DefaultFrameMax
	}
	if cfg.FrameMax < frame.FrameMinSize {
		cfg.FrameMax = frame.FrameMinSize
	}
	if cfg.ChannelMax == 0 {
		cfg.ChannelMax = DefaultChannelMax
	}
	if cfg.Heartbeat == 0 {
		cfg.Heartbeat = DefaultHeartbeat
	}
	if cfg.Heartbeat < 0 {
		cfg.Heartbeat = 0
	}
	if cfg.MaxMessageSize <= 0 {
		cfg.MaxMessageSize = DefaultMaxMessageSize
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxTxBytes <= 0 {
		cfg.MaxTxBytes = DefaultMaxTxBytes
	}
	a := &Adapter{cfg: cfg, sessions: make(map[*session]struct{})}
	if cfg.Router != nil {
		cfg.Router.WatchAlarms(a.alarmChanged)
	}
	a.start = frame.AppendMethodFrame(nil, 0, &frame.ConnectionStart{
		VersionMajor:     0,
		VersionMinor:     9,
		ServerProperties: serverProperties(),
		Mechanisms:       "PLAIN AMQPLAIN",
		Locales:          "en_US",
	})
	return a
}

// serverProperties are connection.start's, with the capabilities RabbitMQ
// announces and clients look for.
func serverProperties() frame.Table {
	caps := frame.Table{}
	for _, c := range []string{
		"publisher_confirms", "exchange_exchange_bindings", "basic.nack",
		"consumer_cancel_notify", "connection.blocked", "authentication_failure_close",
		"per_consumer_qos", "direct_reply_to",
	} {
		caps = append(caps, frame.Field{Key: c, Value: true})
	}
	return frame.Table{
		{Key: "capabilities", Value: caps},
		{Key: "product", Value: "Junction"},
		{Key: "version", Value: Version},
		{Key: "platform", Value: "Go"},
		{Key: "copyright", Value: "The Junction authors"},
		{Key: "information", Value: "https://github.com/junction-broker/junction"},
	}
}

// Name implements protocols.Adapter.
func (a *Adapter) Name() string { return "amqp" }

// Open implements protocols.Adapter.
func (a *Adapter) Open(c protocols.Conn) protocols.Session {
	s := newSession(a, c)
	a.mu.Lock()
	a.sessions[s] = struct{}{}
	a.mu.Unlock()
	return s
}

// alarmChanged tells every session that the resource alarms changed: each
// blocks or unblocks its publishers on its own loop.
func (a *Adapter) alarmChanged(router.Alarm) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for s := range a.sessions {
		s.post(event{kind: evAlarm})
	}
}

func (a *Adapter) forget(s *session) {
	a.mu.Lock()
	delete(a.sessions, s)
	a.mu.Unlock()
}
