package stomp

import (
	"log/slog"

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
}

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
