package mqtt

import (
	"log/slog"
	"sync"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
)

// Defaults for zero Config fields.
const (
	DefaultVHost         = "/"
	DefaultExchange      = "amq.topic"
	DefaultMaxPacketSize = 2 << 20 // below protocols.DefaultMaxInbound with room for one read
	DefaultMaxInflight   = 32
	// maxUnauthPacket bounds the first packet (CONNECT), as RabbitMQ's
	// mqtt.max_packet_size_unauthenticated does.
	maxUnauthPacket = 65536
)

// Config configures the MQTT adapter.
type Config struct {
	// Router is the routing graph sessions publish to and consume from.
	// Required.
	Router *router.Router
	// Log receives connection lifecycle messages; nil discards them.
	Log *slog.Logger
	// VHost is the virtual host every session uses (DefaultVHost if "").
	VHost string
	// Exchange is the topic exchange MQTT publishes go to and
	// subscriptions are bound to (DefaultExchange if "").
	Exchange string
	// MaxPacketSize is the largest packet accepted, fixed header included
	// in the check's spirit: the remaining length may not exceed it
	// (DefaultMaxPacketSize if 0).
	MaxPacketSize int
	// MaxInflight bounds unacknowledged QoS 1 deliveries per session; an
	// MQTT 5 client's smaller Receive Maximum wins (DefaultMaxInflight if 0).
	MaxInflight int
}

// Adapter opens MQTT sessions. It implements protocols.Adapter and is safe
// from any goroutine.
type Adapter struct {
	cfg Config

	mu       sync.Mutex
	sessions map[string]*session // connected sessions by client id
}

var _ protocols.Adapter = (*Adapter)(nil)

// New returns an adapter for cfg, with defaults filled in.
func New(cfg Config) *Adapter {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.VHost == "" {
		cfg.VHost = DefaultVHost
	}
	if cfg.Exchange == "" {
		cfg.Exchange = DefaultExchange
	}
	if cfg.MaxPacketSize <= 0 {
		cfg.MaxPacketSize = DefaultMaxPacketSize
	}
	if cfg.MaxPacketSize > 268435455 {
		cfg.MaxPacketSize = 268435455
	}
	if cfg.MaxInflight <= 0 {
		cfg.MaxInflight = DefaultMaxInflight
	}
	return &Adapter{cfg: cfg, sessions: make(map[string]*session)}
}

// register makes s the session of client id and returns the one it takes
// over, if any.
func (a *Adapter) register(id string, s *session) *session {
	a.mu.Lock()
	defer a.mu.Unlock()
	old := a.sessions[id]
	a.sessions[id] = s
	return old
}

func (a *Adapter) unregister(id string, s *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.sessions[id] == s {
		delete(a.sessions, id)
	}
}

// Name implements protocols.Adapter.
func (a *Adapter) Name() string { return "mqtt" }

// Open implements protocols.Adapter.
func (a *Adapter) Open(c protocols.Conn) protocols.Session { return newSession(a, c) }
