package conf

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   []string // "key: message" substrings, in order; nil: valid
	}{
		{"defaults", func(*Config) {}, nil},
		{"uppercase level", func(c *Config) { c.Log.Level = "DEBUG"; c.Log.Format = "JSON" }, nil},
		{"port zero", func(c *Config) { c.AMQP.Listen = ":0"; c.MQTT.Listen = ":0"; c.STOMP.Listen = "127.0.0.1:0" }, nil},
		{"ipv6 host", func(c *Config) { c.AMQP.Listen = "[::1]:5672" }, nil},
		{"host name", func(c *Config) { c.AMQP.Listen = "localhost:5672" }, nil},
		{"no loopback users", func(c *Config) { c.Router.LoopbackUsers = nil }, nil},
		{"heartbeats off", func(c *Config) { c.AMQP.Heartbeat = 0; c.STOMP.HeartBeat = 0 }, nil},
		{"empty data dir", func(c *Config) { c.DataDir = "" }, []string{"data_dir: required"}},
		{"memory watermark off", func(c *Config) { c.Router.MemoryHighWatermark = 0 }, nil},
		{"memory watermark", func(c *Config) { c.Router.MemoryHighWatermark = 1.5 },
			[]string{"router.memory_high_watermark: 1.5 is not a fraction between 0 and 1"}},
		{"log level", func(c *Config) { c.Log.Level = "loud" }, []string{`log.level: "loud" is not one of debug, info, warn, error`}},
		{"log format", func(c *Config) { c.Log.Format = "xml" }, []string{`log.format: "xml" is not one of text, json`}},
		{"listen port", func(c *Config) { c.AMQP.Listen = "x:y" }, []string{`amqp.listen: "x:y": invalid port`}},
		{"listen port range", func(c *Config) { c.MQTT.Listen = ":65536" }, []string{`mqtt.listen: ":65536": invalid port`}},
		{"listen no port", func(c *Config) { c.STOMP.Listen = "localhost" }, []string{`stomp.listen: "localhost": missing port in address`}},
		{"listen same port", func(c *Config) { c.STOMP.Listen = ":5672" }, []string{`stomp.listen: ":5672": same address as amqp.listen`}},
		{"debug listen", func(c *Config) { c.DebugListen = "127.0.0.1:6060" }, nil},
		{"debug listen any port", func(c *Config) { c.DebugListen, c.AMQP.Listen = "127.0.0.1:0", "127.0.0.1:0" }, nil},
		{"debug listen no port", func(c *Config) { c.DebugListen = "localhost" }, []string{`debug_listen: "localhost": missing port in address`}},
		{"debug listen bad port", func(c *Config) { c.DebugListen = ":http" }, []string{`debug_listen: ":http": invalid port`}},
		{"debug listen on a protocol's port", func(c *Config) { c.DebugListen = ":1883" }, []string{`debug_listen: ":1883": same address as mqtt.listen`}},
		{"all disabled", func(c *Config) { c.AMQP.Listen, c.MQTT.Listen, c.STOMP.Listen = "", "", "" },
			[]string{"amqp.listen, mqtt.listen, stomp.listen: all empty"}},
		{"vhost and user", func(c *Config) { c.Router.DefaultVHost, c.Router.DefaultUser = "", "" },
			[]string{"router.default_vhost: required", "router.default_user: required"}},
		{"loopback user", func(c *Config) { c.Router.LoopbackUsers = []string{"guest", ""} }, []string{"router.loopback_users[1]: empty user name"}},
		{"message size", func(c *Config) { c.Router.MaxMessageSize = 0 }, []string{"router.max_message_size: 0B is not between 1B and 512MiB"}},
		{"budget below message", func(c *Config) { c.Router.MemoryBudget = 64 * MiB },
			[]string{"router.memory_budget: 64MiB is smaller than router.max_message_size (128MiB)"}},
		{"memtable", func(c *Config) { c.Storage.MemtableSize = 2 * GiB }, []string{"storage.memtable_size: 2GiB is not between 1MiB and 1GiB"}},
		{"cache negative", func(c *Config) { c.Storage.CacheSize = -1 }, []string{"storage.cache_size: -1B is not between 0B"}},
		{"event loops", func(c *Config) { c.Transport.EventLoops = -1 }, []string{"transport.event_loops: -1 is not between 0"}},
		{"tick", func(c *Config) { c.Transport.TickInterval = time.Millisecond }, []string{"transport.tick_interval: 1ms is not between 10ms and 1m0s"}},
		{"limits off", func(c *Config) {
			c.Transport.SlowConsumerTimeout, c.Transport.MaxConnections, c.Router.MaxQueues = 0, 0, 0
		}, nil},
		{"limits set", func(c *Config) {
			c.Transport.SlowConsumerTimeout, c.Transport.MaxConnections, c.Router.MaxQueues = time.Second, 1, 1
		}, nil},
		{"limits out of range", func(c *Config) {
			c.Transport.SlowConsumerTimeout, c.Transport.MaxConnections, c.Router.MaxQueues = -time.Second, -1, -1
		}, []string{"router.max_queues: -1 is negative (0: no limit)", "transport.slow_consumer_timeout: -1s is not between 0s and 24h0m0s",
			"transport.max_connections: -1 is not between 0 (90% of the open-files limit) and 67108864"}},
		{"connections above the ceiling", func(c *Config) { c.Transport.MaxConnections = 1<<26 + 1 },
			[]string{"transport.max_connections: 67108865 is not between 0"}},
		{"buffers", func(c *Config) { c.Transport.MaxInbound, c.Transport.MaxOutbound = 0, 2*GiB },
			[]string{"transport.max_inbound: 0B is not between 4KiB and 1GiB", "transport.max_outbound: 2GiB is not between"}},
		{"frame max", func(c *Config) { c.AMQP.FrameMax = 4095 }, []string{"amqp.frame_max: 4095 is not between 4096"}},
		{"channel max", func(c *Config) { c.AMQP.ChannelMax = 65536 }, []string{"amqp.channel_max: 65536 is not between 1 and 65535"}},
		{"heartbeat", func(c *Config) { c.AMQP.Heartbeat = -time.Second }, []string{"amqp.heartbeat: -1s is not between 0s"}},
		{"heartbeat fraction", func(c *Config) { c.AMQP.Heartbeat = 1500 * time.Millisecond }, []string{"amqp.heartbeat: 1.5s is not a whole number of seconds"}},
		{"mqtt", func(c *Config) { c.MQTT.VHost, c.MQTT.Exchange, c.MQTT.TopicMode = "", "", "Swap" },
			[]string{"mqtt.vhost: required", "mqtt.exchange: required", `mqtt.topic_mode: "Swap" is not one of swap, lossless`}},
		{"mqtt limits", func(c *Config) {
			c.MQTT.RetainedMaxMessages, c.MQTT.RetainedMaxBytes, c.MQTT.TopicAliasMaximum, c.MQTT.MaxKeepAlive = 0, 100, 65536, 1500*time.Millisecond
		}, []string{"mqtt.retained_max_messages: 0 is not between 1", "mqtt.retained_max_bytes: 100B is not between 1KiB",
			"mqtt.topic_alias_maximum: 65536 is not between 0 and 65535", "mqtt.max_keepalive: 1.5s is not a whole number of seconds"}},
		{"topic permissions", func(c *Config) {
			c.Router.TopicPermissions = []TopicPermission{
				{User: "a", DenyRead: `^test\.nosubscribe$`},
				{User: "b", VHost: "/", Exchange: "x", Write: ptr(`^{client_id}\.`), Read: ptr("")},
				{User: "b", Exchange: "y"},
			}
		}, nil},
		{"topic permission problems", func(c *Config) {
			c.Router.TopicPermissions = []TopicPermission{
				{User: "", Write: ptr("(")},
				{User: "a", Read: ptr("a**"), DenyWrite: "[z-a]", DenyRead: `\p{Nope}`},
				{User: "a", VHost: "/", Exchange: "amq.topic"},
			}
		}, []string{
			"router.topic_permissions[0].user: required",
			`router.topic_permissions[0].write: "(" is not a regexp: missing closing )`,
			`router.topic_permissions[1].read: "a**" is not a regexp: invalid nested repetition operator`,
			`router.topic_permissions[1].deny_write: "[z-a]" is not a regexp: invalid character class range`,
			`router.topic_permissions[1].deny_read: "\\p{Nope}" is not a regexp: invalid character class range`,
			`router.topic_permissions[2].user: a second entry for user "a" on exchange "amq.topic" in vhost "/" (the first is router.topic_permissions[1])`,
		}},
		{"stomp heart-beat", func(c *Config) { c.STOMP.HeartBeat = time.Microsecond }, []string{"stomp.heart_beat: 1µs is not a whole number of milliseconds"}},
		{"many at once", func(c *Config) { c.DataDir, c.Log.Level, c.AMQP.Listen = "", "loud", "x:y" },
			[]string{"data_dir: required", "log.level:", "amqp.listen:"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Defaults()
			tc.change(&c)
			err := c.Validate()
			ps := Problems(err)
			if len(ps) != len(tc.want) {
				t.Fatalf("got %d problems, want %d:\n%v", len(ps), len(tc.want), err)
			}
			for i, p := range ps {
				if !strings.Contains(p.Error(), tc.want[i]) {
					t.Errorf("problem %d: %q, want it to contain %q", i, p.Error(), tc.want[i])
				}
			}
		})
	}
}

func TestProblems(t *testing.T) {
	a, b := &Error{Key: "a", Msg: "x"}, &Error{Key: "b", Msg: "y"}
	if got := Problems(nil); got != nil {
		t.Fatalf("Problems(nil) = %v", got)
	}
	err := join([]error{a, join([]error{b})})
	if got := Problems(err); !slices.Equal(got, []*Error{a, b}) {
		t.Fatalf("Problems = %v", got)
	}
	if join(nil) != nil {
		t.Fatal("join(nil) != nil")
	}
}

func TestLogger(t *testing.T) {
	for _, tc := range []struct {
		level, format string
		debug, warn   bool
	}{
		{"debug", "text", true, true},
		{"info", "json", false, true},
		{"WARN", "JSON", false, true},
		{"error", "text", false, false},
	} {
		t.Run(tc.level+"/"+tc.format, func(t *testing.T) {
			c := Defaults()
			c.Log = Log{Level: tc.level, Format: tc.format}
			var buf bytes.Buffer
			log := c.Logger(&buf)
			log.Debug("d")
			log.Warn("w", "k", 1)
			out := buf.String()
			if got := strings.Contains(out, "msg=d") || strings.Contains(out, `"msg":"d"`); got != tc.debug {
				t.Errorf("debug written = %v, want %v:\n%s", got, tc.debug, out)
			}
			if got := strings.Contains(out, "msg=w") || strings.Contains(out, `"msg":"w"`); got != tc.warn {
				t.Errorf("warn written = %v, want %v:\n%s", got, tc.warn, out)
			}
			if strings.EqualFold(tc.format, "json") && out != "" {
				for l := range strings.Lines(out) {
					if !json.Valid([]byte(l)) {
						t.Errorf("not JSON: %q", l)
					}
				}
			}
		})
	}
	if got := (Log{Level: "bogus"}).SlogLevel(); got != slog.LevelInfo {
		t.Errorf("bogus level = %v, want info", got)
	}
}
