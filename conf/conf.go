package conf

import (
	"bytes"
	_ "embed"
	"fmt"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
)

// DefaultTOML is default.toml: every key with its default value and the
// comment documenting it. Defaults decodes it.
//
//go:embed default.toml
var DefaultTOML []byte

// Config is the whole broker configuration. Its zero value is not useful:
// start from Defaults (Load does).
type Config struct {
	// DataDir holds all durable state. Key data_dir.
	DataDir string `toml:"data_dir"`
	// DebugListen is host:port for net/http/pprof; "" (the default) opens
	// no listener. Key debug_listen.
	DebugListen string `toml:"debug_listen"`

	Log       Log       `toml:"log"`
	Router    Router    `toml:"router"`
	Storage   Storage   `toml:"storage"`
	Transport Transport `toml:"transport"`
	AMQP      AMQP      `toml:"amqp"`
	MQTT      MQTT      `toml:"mqtt"`
	STOMP     STOMP     `toml:"stomp"`
}

// Log configures the broker's slog logger.
type Log struct {
	// Level is debug, info, warn or error (any case). Key log.level.
	Level string `toml:"level"`
	// Format is text or json. Key log.format.
	Format string `toml:"format"`
}

// Router configures the routing graph: the defaults created on first start
// and the limits on messages.
type Router struct {
	// DefaultVHost, DefaultUser and DefaultPass are created when the store
	// holds no vhost or user ("/", guest, guest).
	DefaultVHost string `toml:"default_vhost"`
	DefaultUser  string `toml:"default_user"`
	DefaultPass  string `toml:"default_pass"`
	// LoopbackUsers may log in only from a loopback address (["guest"]).
	LoopbackUsers []string `toml:"loopback_users"`
	// MemoryBudget bounds the bytes of message bodies held in memory (256 MiB).
	MemoryBudget Size `toml:"memory_budget"`
	// DiskFreeLimit raises the disk alarm when the data directory's file
	// system has less free space (50 MiB; 0 disables).
	DiskFreeLimit Size `toml:"disk_free_limit"`
	// MemoryHighWatermark raises the memory alarm when the process's
	// resident memory passes this fraction of the memory available to it
	// (the machine's, or the cgroup limit when lower); 0.6, 0 disables.
	// MemoryHighWatermarkAbsolute, when not 0, is the watermark instead.
	MemoryHighWatermark         float64 `toml:"memory_high_watermark"`
	MemoryHighWatermarkAbsolute Size    `toml:"memory_high_watermark_absolute"`
	// MaxMessageSize bounds one message body (128 MiB, at most 512 MiB).
	MaxMessageSize Size `toml:"max_message_size"`
	// MaxQueues bounds the queues of each vhost (0: no bound, the default).
	MaxQueues int `toml:"max_queues"`
	// TopicPermissions limit what users may publish and subscribe to on
	// topic exchanges ([[router.topic_permissions]]); none: everything.
	TopicPermissions []TopicPermission `toml:"topic_permissions"`
	// Provenance stamps every message with who published it (true).
	Provenance bool `toml:"provenance"`
}

// TopicPermission is one [[router.topic_permissions]] entry, RabbitMQ's
// topic permissions: the routing keys User may publish with (Write) and
// bind with, i.e. subscribe to (Read), on one topic exchange of one vhost.
// Patterns are Go regexps searched in the key (anchor with ^ and $); MQTT
// topics are matched in their routing-key form (test/nosubscribe is
// test.nosubscribe). {username}, {vhost} and {client_id} in a pattern are
// replaced by the client's values. A user with no entry for a vhost and
// exchange may do everything there.
type TopicPermission struct {
	// User is the user name; required.
	User string `toml:"user"`
	// VHost is the virtual host ("" after decoding: "/").
	VHost string `toml:"vhost"`
	// Exchange is the topic exchange ("" after decoding: "amq.topic").
	Exchange string `toml:"exchange"`
	// Write and Read are the patterns keys must match; nil (the key left
	// out): ".*", everything; "": nothing (RabbitMQ's synonym for "^$").
	Write *string `toml:"write"`
	Read  *string `toml:"read"`
	// DenyWrite and DenyRead refuse keys Write and Read allow (RE2 has no
	// lookahead); "": none.
	DenyWrite string `toml:"deny_write"`
	DenyRead  string `toml:"deny_read"`
}

// AllPattern is the Write and Read pattern of a TopicPermission that
// leaves them out.
const AllPattern = ".*"

// WritePattern returns Write, or AllPattern if it is nil.
func (p *TopicPermission) WritePattern() string { return orAll(p.Write) }

// ReadPattern returns Read, or AllPattern if it is nil.
func (p *TopicPermission) ReadPattern() string { return orAll(p.Read) }

func orAll(s *string) string {
	if s == nil {
		return AllPattern
	}
	return *s
}

// fillDefaults gives the entries' left-out keys their defaults.
func (r *Router) fillDefaults() {
	for i := range r.TopicPermissions {
		p := &r.TopicPermissions[i]
		if p.VHost == "" {
			p.VHost = "/"
		}
		if p.Exchange == "" {
			p.Exchange = "amq.topic"
		}
		if p.Write == nil {
			p.Write = new(string)
			*p.Write = AllPattern
		}
		if p.Read == nil {
			p.Read = new(string)
			*p.Read = AllPattern
		}
	}
}

// Storage configures the Pebble store under Config.DataDir.
type Storage struct {
	// MemtableSize is Pebble's memtable size (64 MiB).
	MemtableSize Size `toml:"memtable_size"`
	// CacheSize is Pebble's block cache size (128 MiB); 0 disables it.
	CacheSize Size `toml:"cache_size"`
}

// Transport configures connections: event loops, timers and per-connection
// buffer limits.
type Transport struct {
	// EventLoops is the number of gnet event loops; 0 means one per core.
	EventLoops int `toml:"event_loops"`
	// TickInterval drives heart-beats, keepalives and expiry (1s).
	TickInterval time.Duration `toml:"tick_interval"`
	// MaxInbound bounds unparsed input per connection (4 MiB).
	MaxInbound Size `toml:"max_inbound"`
	// MaxOutbound bounds unwritten output per connection (16 MiB).
	MaxOutbound Size `toml:"max_outbound"`
	// SlowConsumerTimeout is how long a connection may stay at MaxOutbound
	// before it is closed as a slow consumer (60s; 0 never closes one).
	SlowConsumerTimeout time.Duration `toml:"slow_consumer_timeout"`
	// MaxConnections bounds the open connections; 0 (the default) means
	// 90% of the process's open-files soft limit (see ConnectionLimit).
	MaxConnections int `toml:"max_connections"`
}

// ConnectionLimit returns the connection limit in force for
// MaxConnections given the process's open-files soft limit nofile
// (RLIMIT_NOFILE): MaxConnections itself if set, else 90% of nofile,
// leaving the rest for the store's files and for refusing connections
// beyond the limit. The result is at least 1.
func (t *Transport) ConnectionLimit(nofile uint64) int {
	if t.MaxConnections > 0 {
		return t.MaxConnections
	}
	return int(max(1, min(nofile/10*9+nofile%10*9/10, maxConnections)))
}

// AMQP configures the AMQP 0-9-1 listener and connection.tune.
type AMQP struct {
	// Listen is host:port; "" disables AMQP (":5672").
	Listen string `toml:"listen"`
	// FrameMax is offered in connection.tune (131072).
	FrameMax int `toml:"frame_max"`
	// ChannelMax is offered in connection.tune (2047).
	ChannelMax int `toml:"channel_max"`
	// Heartbeat is offered in connection.tune (60s); 0 offers none.
	Heartbeat time.Duration `toml:"heartbeat"`
}

// MQTT topic modes: how topics map to routing keys.
const (
	TopicModeSwap     = "swap"     // RabbitMQ's: "/" and "." swap places
	TopicModeLossless = "lossless" // topics with dots survive the round trip
)

// MQTT configures the MQTT listener and its place in the routing graph.
type MQTT struct {
	// Listen is host:port; "" disables MQTT (":1883").
	Listen string `toml:"listen"`
	// VHost is the virtual host MQTT connections use ("/").
	VHost string `toml:"vhost"`
	// Exchange receives MQTT publishes ("amq.topic").
	Exchange string `toml:"exchange"`
	// TopicMode is TopicModeSwap (default) or TopicModeLossless.
	TopicMode string `toml:"topic_mode"`
	// RetainedMaxMessages bounds the vhost's retained messages (100000).
	RetainedMaxMessages int `toml:"retained_max_messages"`
	// RetainedMaxBytes bounds their total size (64MiB).
	RetainedMaxBytes Size `toml:"retained_max_bytes"`
	// TopicAliasMaximum is offered to MQTT 5 clients (32); 0 offers none.
	TopicAliasMaximum int `toml:"topic_alias_maximum"`
	// MaxQueuedMessages bounds each session's queue (0: no bound of its
	// own); beyond it the oldest message is dropped.
	MaxQueuedMessages int `toml:"max_queued_messages"`
	// MaxKeepAlive caps MQTT 5 clients' keepalive (Server Keep Alive); 0
	// accepts the client's.
	MaxKeepAlive time.Duration `toml:"max_keepalive"`
	// RevealRefusals: MQTT 5 clients refused by a topic permission get
	// reason code 0x87 (not authorized) and a Reason String (true, the
	// default); false: 0x80 (unspecified error) and no Reason String.
	RevealRefusals bool `toml:"reveal_refusals"`
}

// STOMP configures the STOMP listener.
type STOMP struct {
	// Listen is host:port; "" disables STOMP (":61613").
	Listen string `toml:"listen"`
	// HeartBeat is offered in CONNECTED (10s); 0 offers none.
	HeartBeat time.Duration `toml:"heart_beat"`
}

// Defaults returns the configuration in default.toml.
func Defaults() Config {
	var c Config
	if err := decode(DefaultTOML, &c); err != nil {
		// default.toml is compiled in and covered by tests.
		panic(fmt.Sprintf("conf: embedded default.toml: %v", err))
	}
	return c
}

// decode decodes a TOML document into c, which holds the values to keep for
// keys the document leaves out. Every key the document holds must be decoded:
// unknown keys are reported together, each as an *Error naming it.
func decode(doc []byte, c *Config) error {
	md, err := toml.NewDecoder(bytes.NewReader(doc)).Decode(c)
	if err != nil {
		return err
	}
	c.Router.fillDefaults()
	var errs []error
	var table string // the last unknown key reported; its sub-keys are not
	for _, k := range md.Undecoded() {
		key := k.String()
		if table != "" && strings.HasPrefix(key, table+".") {
			continue
		}
		table = key
		errs = append(errs, &Error{Key: key, Msg: "unknown key"})
	}
	return join(errs)
}
