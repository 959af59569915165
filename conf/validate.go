package conf

import (
	"errors"
	"fmt"
	"net"
	"regexp"
	"regexp/syntax"
	"strconv"
	"strings"
	"time"
)

// Limits Validate enforces.
const (
	// MaxMessageSizeLimit is the largest router.max_message_size (RabbitMQ's
	// own ceiling).
	MaxMessageSizeLimit = 512 * MiB
	// MinFrameMax is AMQP 0-9-1's frame-min-size.
	MinFrameMax = 4096
	// maxConnections bounds transport.max_connections (and what 0 turns
	// into): no host keeps more descriptors open.
	maxConnections = 1 << 26
)

// Log levels and formats Validate accepts.
var (
	logLevels  = []string{"debug", "info", "warn", "error"}
	logFormats = []string{"text", "json"}
	topicModes = []string{TopicModeSwap, TopicModeLossless}
)

// Validate reports every invalid value in c at once: an errors.Join of
// *Error values, each naming its key. It returns nil if c is valid.
func (c *Config) Validate() error {
	v := &validator{}
	if c.DataDir == "" {
		v.add("data_dir", "required")
	}
	v.oneOf("log.level", strings.ToLower(c.Log.Level), c.Log.Level, logLevels)
	v.oneOf("log.format", strings.ToLower(c.Log.Format), c.Log.Format, logFormats)

	r := &c.Router
	v.required("router.default_vhost", r.DefaultVHost)
	v.required("router.default_user", r.DefaultUser)
	for i, u := range r.LoopbackUsers {
		if u == "" {
			v.add(fmt.Sprintf("router.loopback_users[%d]", i), "empty user name")
		}
	}
	v.sizeRange("router.max_message_size", r.MaxMessageSize, 1, MaxMessageSizeLimit)
	v.sizeRange("router.memory_budget", r.MemoryBudget, MiB, 1<<62)
	v.sizeRange("router.disk_free_limit", r.DiskFreeLimit, 0, 1<<62)
	if w := r.MemoryHighWatermark; !(w >= 0 && w <= 1) {
		v.add("router.memory_high_watermark", fmt.Sprintf("%v is not a fraction between 0 and 1", w))
	}
	v.sizeRange("router.memory_high_watermark_absolute", r.MemoryHighWatermarkAbsolute, 0, 1<<62)
	if r.MaxQueues < 0 {
		v.add("router.max_queues", fmt.Sprintf("%d is negative (0: no limit)", r.MaxQueues))
	}
	if r.MemoryBudget > 0 && r.MemoryBudget < r.MaxMessageSize {
		v.add("router.memory_budget", fmt.Sprintf("%v is smaller than router.max_message_size (%v): the largest message could never be accepted", r.MemoryBudget, r.MaxMessageSize))
	}

	v.topicPermissions(r.TopicPermissions)

	v.sizeRange("storage.memtable_size", c.Storage.MemtableSize, MiB, GiB)
	v.sizeRange("storage.cache_size", c.Storage.CacheSize, 0, 1<<62)

	t := &c.Transport
	if t.EventLoops < 0 || t.EventLoops > 1024 {
		v.add("transport.event_loops", fmt.Sprintf("%d is not between 0 (one per core) and 1024", t.EventLoops))
	}
	v.durationRange("transport.tick_interval", t.TickInterval, 10*time.Millisecond, time.Minute)
	v.sizeRange("transport.max_inbound", t.MaxInbound, 4*KiB, GiB)
	v.sizeRange("transport.max_outbound", t.MaxOutbound, 4*KiB, GiB)
	v.durationRange("transport.slow_consumer_timeout", t.SlowConsumerTimeout, 0, 24*time.Hour)
	if t.MaxConnections < 0 || t.MaxConnections > maxConnections {
		v.add("transport.max_connections", fmt.Sprintf("%d is not between 0 (90%% of the open-files limit) and %d", t.MaxConnections, maxConnections))
	}

	a := &c.AMQP
	if a.FrameMax < MinFrameMax || a.FrameMax > 1<<31-1 {
		v.add("amqp.frame_max", fmt.Sprintf("%d is not between %d and %d", a.FrameMax, MinFrameMax, 1<<31-1))
	}
	if a.ChannelMax < 1 || a.ChannelMax > 65535 {
		v.add("amqp.channel_max", fmt.Sprintf("%d is not between 1 and 65535", a.ChannelMax))
	}
	v.durationRange("amqp.heartbeat", a.Heartbeat, 0, 65535*time.Second)
	if a.Heartbeat%time.Second != 0 {
		v.add("amqp.heartbeat", fmt.Sprintf("%v is not a whole number of seconds", a.Heartbeat))
	}

	m := &c.MQTT
	v.required("mqtt.vhost", m.VHost)
	v.required("mqtt.exchange", m.Exchange)
	v.oneOf("mqtt.topic_mode", m.TopicMode, m.TopicMode, topicModes)
	if m.RetainedMaxMessages < 1 || m.RetainedMaxMessages > 100_000_000 {
		v.add("mqtt.retained_max_messages", fmt.Sprintf("%d is not between 1 and 100000000", m.RetainedMaxMessages))
	}
	v.sizeRange("mqtt.retained_max_bytes", m.RetainedMaxBytes, KiB, 16*GiB)
	if m.MaxQueuedMessages < 0 {
		v.add("mqtt.max_queued_messages", fmt.Sprintf("%d is negative", m.MaxQueuedMessages))
	}
	if m.TopicAliasMaximum < 0 || m.TopicAliasMaximum > 65535 {
		v.add("mqtt.topic_alias_maximum", fmt.Sprintf("%d is not between 0 and 65535", m.TopicAliasMaximum))
	}
	v.durationRange("mqtt.max_keepalive", m.MaxKeepAlive, 0, 65535*time.Second)
	if m.MaxKeepAlive%time.Second != 0 {
		v.add("mqtt.max_keepalive", fmt.Sprintf("%v is not a whole number of seconds", m.MaxKeepAlive))
	}

	v.durationRange("stomp.heart_beat", c.STOMP.HeartBeat, 0, 24*time.Hour)
	if c.STOMP.HeartBeat%time.Millisecond != 0 {
		v.add("stomp.heart_beat", fmt.Sprintf("%v is not a whole number of milliseconds", c.STOMP.HeartBeat))
	}

	protocols := []listener{
		{"amqp.listen", a.Listen},
		{"mqtt.listen", m.Listen},
		{"stomp.listen", c.STOMP.Listen},
	}
	v.listeners(protocols)
	v.debugListen(c.DebugListen, protocols)
	return join(v.errs)
}

type validator struct{ errs []error }

func (v *validator) add(key, msg string) { v.errs = append(v.errs, &Error{Key: key, Msg: msg}) }

func (v *validator) required(key, s string) {
	if s == "" {
		v.add(key, "required")
	}
}

// oneOf checks norm (val as compared) against allowed; messages quote val.
func (v *validator) oneOf(key, norm, val string, allowed []string) {
	for _, a := range allowed {
		if norm == a {
			return
		}
	}
	v.add(key, fmt.Sprintf("%q is not one of %s", val, strings.Join(allowed, ", ")))
}

func (v *validator) sizeRange(key string, s, lo, hi Size) {
	if s < lo || s > hi {
		v.add(key, fmt.Sprintf("%v is not between %v and %v", s, lo, hi))
	}
}

func (v *validator) durationRange(key string, d, lo, hi time.Duration) {
	if d < lo || d > hi {
		v.add(key, fmt.Sprintf("%v is not between %v and %v", d, lo, hi))
	}
}

type listener struct{ key, addr string }

// listeners checks each enabled address and that no two listeners share a
// port, and that at least one protocol is enabled.
func (v *validator) listeners(ls []listener) {
	seen := map[string]string{} // host:port -> key
	enabled := 0
	for _, l := range ls {
		if l.addr == "" {
			continue // disabled
		}
		enabled++
		host, port, err := net.SplitHostPort(l.addr)
		if err != nil {
			v.add(l.key, fmt.Sprintf("%q: %s (want host:port, like \":5672\")", l.addr, addrErr(err)))
			continue
		}
		p, err := strconv.ParseUint(port, 10, 16)
		if err != nil {
			v.add(l.key, fmt.Sprintf("%q: invalid port", l.addr))
			continue
		}
		if p == 0 {
			continue // any free port: never a conflict
		}
		hp := net.JoinHostPort(host, port)
		if other, ok := seen[hp]; ok {
			v.add(l.key, fmt.Sprintf("%q: same address as %s", l.addr, other))
			continue
		}
		seen[hp] = l.key
	}
	if enabled == 0 {
		v.add("amqp.listen, mqtt.listen, stomp.listen", "all empty: enable at least one protocol")
	}
}

// debugListen checks debug_listen, when set: host:port, and not the
// address of a protocol listener.
func (v *validator) debugListen(addr string, protocols []listener) {
	if addr == "" {
		return // off
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.add("debug_listen", fmt.Sprintf("%q: %s (want host:port, like \"127.0.0.1:6060\")", addr, addrErr(err)))
		return
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil {
		v.add("debug_listen", fmt.Sprintf("%q: invalid port", addr))
		return
	} else if p == 0 {
		return // any free port: never a conflict
	}
	hp := net.JoinHostPort(host, port)
	for _, l := range protocols {
		if h, p, err := net.SplitHostPort(l.addr); err == nil && net.JoinHostPort(h, p) == hp {
			v.add("debug_listen", fmt.Sprintf("%q: same address as %s", addr, l.key))
			return
		}
	}
}

func addrErr(err error) string {
	var ae *net.AddrError
	if errors.As(err, &ae) {
		return ae.Err
	}
	return err.Error()
}

// topicPermissions checks each [[router.topic_permissions]] entry: a user,
// patterns that compile, and no second entry for a user, vhost and
// exchange.
func (v *validator) topicPermissions(ps []TopicPermission) {
	type target struct{ user, vhost, exchange string }
	seen := map[target]int{}
	for i := range ps {
		p := &ps[i]
		key := fmt.Sprintf("router.topic_permissions[%d].", i)
		if p.User == "" {
			v.add(key+"user", "required")
		}
		t := target{p.User, p.VHost, p.Exchange}
		if t.vhost == "" {
			t.vhost = "/"
		}
		if t.exchange == "" {
			t.exchange = "amq.topic"
		}
		if j, dup := seen[t]; dup && p.User != "" {
			v.add(key+"user", fmt.Sprintf("a second entry for user %q on exchange %q in vhost %q (the first is router.topic_permissions[%d])", t.user, t.exchange, t.vhost, j))
		} else {
			seen[t] = i
		}
		for _, f := range []struct{ name, pattern string }{
			{"write", p.WritePattern()}, {"read", p.ReadPattern()},
			{"deny_write", p.DenyWrite}, {"deny_read", p.DenyRead},
		} {
			// Variables ({username}, {vhost}, {client_id}) compile as
			// literals; their values are quoted when they are expanded.
			if _, err := regexp.Compile(f.pattern); err != nil {
				v.add(key+f.name, fmt.Sprintf("%q is not a regexp: %s", f.pattern, reErr(err)))
			}
		}
	}
}

// reErr is a regexp error without the pattern, which the caller quotes.
func reErr(err error) string {
	var se *syntax.Error
	if errors.As(err, &se) {
		return se.Code.String()
	}
	return err.Error()
}
