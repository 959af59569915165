package mqtt

import (
	"log/slog"
	"sync"
	"time"

	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
)

// Defaults for zero Config fields.
const (
	DefaultVHost         = "/"
	DefaultExchange      = "amq.topic"
	DefaultMaxPacketSize = 2 << 20 // below protocols.DefaultMaxInbound with room for one read
	DefaultMaxInflight   = 32
	// DefaultRetainedMaxMessages and DefaultRetainedMaxBytes bound the
	// retained messages of the vhost (held in memory and in the store).
	DefaultRetainedMaxMessages = 100000
	DefaultRetainedMaxBytes    = 64 << 20
	// DefaultTopicAliasMax is the Topic Alias Maximum offered to MQTT 5
	// clients (Mosquitto offers 10).
	DefaultTopicAliasMax = 32
	// DefaultHandshakeTimeout is RabbitMQ's handshake timeout.
	DefaultHandshakeTimeout = 10 * time.Second
	// maxInflight bounds Config.MaxInflight.
	maxInflight = 16384
	// maxUnauthPacket bounds the first packet (CONNECT), as RabbitMQ's
	// mqtt.max_packet_size_unauthenticated does.
	maxUnauthPacket = 65536
)

// Config configures the MQTT adapter.
type Config struct {
	// Router is the routing graph sessions publish to and consume from.
	// Required.
	Router *router.Router
	// Store is the store Router was built on. Retained messages and
	// persistent sessions' MQTT state (subscription options, outbound QoS 2
	// in flight) are kept in it; nil keeps them in memory only, lost on
	// restart.
	Store storage.Store
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
	// MaxInflight bounds unacknowledged QoS 1 and 2 deliveries per session;
	// an MQTT 5 client's smaller Receive Maximum wins (DefaultMaxInflight
	// if 0, at most 16384).
	MaxInflight int
	// RetainedMaxMessages and RetainedMaxBytes bound the vhost's retained
	// messages (DefaultRetainedMaxMessages, DefaultRetainedMaxBytes if 0).
	// A retained publish that would pass either is not retained: MQTT 5
	// QoS 1 and 2 publishers get reason 0x97 (quota exceeded) and the
	// message is not routed; otherwise it is routed as usual and a warning
	// is logged. Emptying a topic is always possible.
	RetainedMaxMessages int
	RetainedMaxBytes    int64
	// TopicAliasMax is the Topic Alias Maximum offered to MQTT 5 clients
	// (DefaultTopicAliasMax if 0, none if negative, at most 65535).
	TopicAliasMax int
	// MaxKeepAlive caps the keepalive MQTT 5 clients may ask for (and
	// gives clients asking for none this one), announced as Server Keep
	// Alive; 0: the client's value is used.
	MaxKeepAlive time.Duration
	// HideRefusals makes MQTT 5 refusals by a topic permission (see
	// router.TopicPermission) reason code 0x80 (unspecified error) without
	// a Reason String instead of 0x87 (not authorized) with one: MQTT 5
	// §3.9.3 provides 0x80 for a server that does not wish to reveal why.
	HideRefusals bool
	// MaxQueuedMessages bounds each session's queue (x-max-length, the
	// oldest message dropped first); 0: no bound of its own.
	MaxQueuedMessages int
	// LosslessTopics selects the lossless topic mode (mqtt.topic_mode
	// "lossless", see topicMode) instead of RabbitMQ's swap of '/' and '.'.
	LosslessTopics bool
	// MaxMessageSize bounds a PUBLISH's payload (router.max_message_size);
	// a larger one ends the connection as a packet over MaxPacketSize does
	// (MQTT 5: DISCONNECT 0x95), PUBACK having no code for it. 0: only
	// MaxPacketSize bounds it.
	MaxMessageSize int64
	// HandshakeTimeout bounds the time from accepting a connection to its
	// CONNECT (DefaultHandshakeTimeout if 0): a connection that has not
	// sent a whole CONNECT by then is closed without a word.
	HandshakeTimeout time.Duration
	// Now is the clock (time.Now if nil); tests replace it.
	Now func() time.Time
}

// Adapter opens MQTT sessions. It implements protocols.Adapter and is safe
// from any goroutine.
type Adapter struct {
	cfg      Config
	topics   topicMode
	retained *retainStore

	// mu is taken before router locks (leaveShared looks up and deletes
	// queues under it), never under one: router callbacks only post to
	// sessions. Nothing holding it waits for a session.
	mu     sync.Mutex
	claims map[string]claim               // sessions by client id
	states map[string]*sessState          // persistent sessions by client id
	shared map[string]map[string]struct{} // shared queue → member client ids
	wills  map[string]*time.Timer         // delayed wills by client id

	// held: the sessions that stopped reading before a PUBLISH under a
	// resource alarm, to wake when it clears; only they are listed.
	held protocols.HeldSet[*session]
}

var _ protocols.Adapter = (*Adapter)(nil)

// claim is who has a client id: one map for both, not a map each, since
// the adapter holds an entry for every connection.
type claim struct {
	newest *session // the newest session with the id
	holder *session // the session holding the id's state
}

// New returns an adapter for cfg, with defaults filled in. It loads the
// retained messages and persistent sessions of cfg.VHost from cfg.Store.
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
	// Packet ids in use stay below 65535: the window, plus at most as many
	// ids restored from a previous connection, twice.
	cfg.MaxInflight = min(cfg.MaxInflight, maxInflight)
	if cfg.RetainedMaxMessages <= 0 {
		cfg.RetainedMaxMessages = DefaultRetainedMaxMessages
	}
	if cfg.RetainedMaxBytes <= 0 {
		cfg.RetainedMaxBytes = DefaultRetainedMaxBytes
	}
	switch {
	case cfg.TopicAliasMax == 0:
		cfg.TopicAliasMax = DefaultTopicAliasMax
	case cfg.TopicAliasMax < 0:
		cfg.TopicAliasMax = 0
	case cfg.TopicAliasMax > 65535:
		cfg.TopicAliasMax = 65535
	}
	if cfg.HandshakeTimeout <= 0 {
		cfg.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Adapter{cfg: cfg, claims: make(map[string]claim),
		states: make(map[string]*sessState), shared: make(map[string]map[string]struct{}),
		wills: make(map[string]*time.Timer)}
	if cfg.LosslessTopics {
		a.topics = losslessTopics
	}
	a.retained = newRetainStore(cfg.VHost, cfg.Store, cfg.RetainedMaxMessages, cfg.RetainedMaxBytes, cfg.Log)
	a.recover()
	if cfg.Router != nil {
		cfg.Router.WatchAlarms(a.alarmChanged)
		cfg.Router.SetRetainer(cfg.VHost, cfg.Exchange, retainer{a})
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
func (a *Adapter) Name() string { return "mqtt" }

// Open implements protocols.Adapter.
func (a *Adapter) Open(c protocols.Conn) protocols.Session { return newSession(a, c) }

// Retained returns the number of retained messages and the bytes they
// count against Config.RetainedMaxBytes.
func (a *Adapter) Retained() (messages int, bytes int64) { return a.retained.Len() }
