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
}

var _ protocols.Adapter = (*Adapter)(nil)

// New returns an adapter for cfg, with defaults filled in.
func New(cfg Config) *Adapter {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	l := frame.Limits{MaxFrameSize: cfg.MaxFrameSize, MaxHeaders: cfg.MaxHeaders, MaxHeaderLine: cfg.MaxHeaderLine}.WithDefaults()
	cfg.MaxFrameSize, cfg.MaxHeaders, cfg.MaxHeaderLine = l.MaxFrameSize, l.MaxHeaders, l.MaxHeaderLine
	return &Adapter{cfg: cfg, limits: l}
}

// Name implements protocols.Adapter.
func (a *Adapter) Name() string { return "stomp" }

// Open implements protocols.Adapter.
func (a *Adapter) Open(c protocols.Conn) protocols.Session { return newSession(a, c) }
