package stomp

import (
	"log/slog"
	"time"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/protocols/stomp/frame"
	"github.com/junction-broker/junction/router"
)

// Version is the broker version announced in CONNECTED's server header.
const Version = "0.1.0"

// Config configures the STOMP adapter.
type Config struct {
	// Router is the routing graph sessions publish to and consume from.
	// Required.
	Router *router.Router
	// Log receives connection lifecycle messages; nil discards them.
	Log *slog.Logger
	// MaxFrameSize bounds one inbound frame, command to NUL
	// (frame.DefaultMaxFrameSize if 0). Keep it below the transport's
	// MaxInbound.
	MaxFrameSize int
	// MaxHeaders bounds the header lines of one frame
	// (frame.DefaultMaxHeaders if 0).
	MaxHeaders int
	// MaxHeaderLine bounds one header line (frame.DefaultMaxHeaderLine if 0).
	MaxHeaderLine int
	// HandshakeTimeout is how long a connection may take to send its
	// CONNECT frame before it is closed with an ERROR
	// (DefaultHandshakeTimeout if 0).
	HandshakeTimeout time.Duration
	// MaxTxBytes bounds what the open transactions of one connection hold
	// until COMMIT: the bodies and headers of their SEND, ACK and NACK
	// frames (DefaultMaxTxBytes if 0).
	MaxTxBytes int
	// MaxSubscriptions bounds the subscriptions of one connection,
	// /temp-queue/ ones included (DefaultMaxSubscriptions if 0).
	MaxSubscriptions int
	// MaxMessageSize bounds a SEND's body (router.max_message_size); a
	// larger one is answered with an ERROR. 0: only MaxFrameSize bounds it.
	MaxMessageSize int64
}

// Defaults for zero Config fields.
const (
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultMaxTxBytes       = 64 << 20
	DefaultMaxSubscriptions = 10_000
)

// Adapter opens STOMP 1.0-1.2 sessions. It implements protocols.Adapter
// and is safe from any goroutine.
type Adapter struct {
	cfg    Config
	limits frame.Limits

	// held: the sessions that stopped reading before a SEND under a
	// resource alarm, to wake when it clears; only they are listed.
	held protocols.HeldSet[*session]
}

var _ protocols.Adapter = (*Adapter)(nil)

// New returns an adapter for cfg, with defaults filled in.
func New(cfg Config) *Adapter {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := frame.Limits{MaxFrameSize: cfg.MaxFrameSize, MaxHeaders: cfg.MaxHeaders, MaxHeaderLine: cfg.MaxHeaderLine}.WithDefaults()
	cfg.MaxFrameSize, cfg.MaxHeaders, cfg.MaxHeaderLine = l.MaxFrameSize, l.MaxHeaders, l.MaxHeaderLine
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.MaxTxBytes <= 0 {
		cfg.MaxTxBytes = DefaultMaxTxBytes
	}
	if cfg.MaxSubscriptions <= 0 {
		cfg.MaxSubscriptions = DefaultMaxSubscriptions
	}
	a := &Adapter{cfg: cfg, limits: l}
	if cfg.Router != nil {
		cfg.Router.WatchAlarms(a.alarmChanged)
	}
	return a
}

// alarmChanged wakes the held publishers once no resource alarm is
// raised: the wake offers them their unread input again. It runs under
// the router's alarm lock and only posts.
func (a *Adapter) alarmChanged(raised router.Alarm) {
	if raised == 0 {
		a.held.Wake(func(s *session) { s.post(event{kind: evAlarm}) })
	}
}

// hold lists s to be woken when the resource alarms clear.
func (a *Adapter) hold(s *session) { a.held.Add(s) }

// unhold takes s off the held list.
func (a *Adapter) unhold(s *session) { a.held.Remove(s) }

// Name implements protocols.Adapter.
func (a *Adapter) Name() string { return "stomp" }

// Open implements protocols.Adapter.
func (a *Adapter) Open(c protocols.Conn) protocols.Session { return newSession(a, c) }
