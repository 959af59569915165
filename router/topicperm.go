package router

import (
	"fmt"
	"regexp"
	"strings"
)

// Topic permissions, RabbitMQ's topic authorisation: what a user may
// publish to and bind from a topic exchange, by routing key. They are
// checked by the adapters, which know the user and the exchange kind (the
// router's Publish and BindQueue do not take a user):
//
//	publish (AMQP basic.publish, MQTT PUBLISH, STOMP SEND)  write, key = routing key
//	bind    (AMQP queue.bind, MQTT SUBSCRIBE, STOMP SUBSCRIBE)  read, key = binding key
//
// The MQTT, AMQP and STOMP adapters check them.
//
// A user with no TopicPermission for a vhost and exchange may do anything
// there, as in RabbitMQ. With one, the key must match its Write (Read)
// pattern and must not match DenyWrite (DenyRead): Go's RE2 has no
// lookahead, so "everything but" needs the second pattern. Patterns are
// unanchored searches, as RabbitMQ's are: "^a\." and "\.b$" anchor. A read
// check sees the binding key as written, wildcards included: a user allowed
// "#" receives every message, whatever DenyRead says about single keys
// (RabbitMQ's semantics: it checks the binding, not each message).
//
// Variables in patterns are expanded, their values regexp-quoted:
// {username} and {vhost} when the permissions are set, {client_id} per
// client (TopicAccess); a protocol without client ids (CheckTopic) leaves
// "{client_id}" as written, where it matches only itself.

// TopicPermission grants one user topic access on one exchange of one
// vhost.
type TopicPermission struct {
	User     string
	VHost    string // "" is "/"
	Exchange string // "" is "amq.topic"
	// Write and Read are regexps a routing (binding) key must match to be
	// published (bound); "" allows nothing (RabbitMQ's synonym for "^$").
	Write, Read string
	// DenyWrite and DenyRead are regexps refusing a key even when Write
	// (Read) allows it; "" refuses nothing.
	DenyWrite, DenyRead string
}

type topicPermKey struct{ user, vhost, exchange string }

// topicPerm is one TopicPermission with {username} and {vhost} expanded.
// A pattern that still holds {client_id} is kept as source (clientVar) and
// compiled per client by TopicAccess; the compiled form treats it
// literally, as CheckTopic does.
type topicPerm struct {
	key       topicPermKey
	src       [4]string // write, read, deny write, deny read; expanded
	re        [4]*regexp.Regexp
	clientVar bool
}

const (
	permWrite = iota
	permRead
	permDenyWrite
	permDenyRead
)

var permNames = [4]string{"write", "read", "deny_write", "deny_read"}

// clientIDVar is the per-client variable of topic permission patterns.
const clientIDVar = "{client_id}"

var (
	matchNothing = regexp.MustCompile(`[^\x00-\x{10FFFF}]`)
	matchAll     = regexp.MustCompile(``)
)

// expandVars replaces the variables of pattern that vars names (pairs of
// variable and value), quoting the values.
func expandVars(pattern string, vars ...string) string {
	if !strings.Contains(pattern, "{") {
		return pattern
	}
	pairs := make([]string, 0, len(vars))
	for i := 0; i+1 < len(vars); i += 2 {
		pairs = append(pairs, vars[i], regexp.QuoteMeta(vars[i+1]))
	}
	return strings.NewReplacer(pairs...).Replace(pattern)
}

// compilePattern compiles a permission pattern. An empty allow pattern
// matches nothing; an empty deny pattern is nil (refuses nothing).
func compilePattern(src string, deny bool) (*regexp.Regexp, error) {
	if src == "" {
		if deny {
			return nil, nil
		}
		src = "^$"
	}
	return regexp.Compile(src)
}

// compileTopicPermissions checks and compiles ps. Errors name the entry by
// index and field, the way the configuration does.
func compileTopicPermissions(ps []TopicPermission) (map[topicPermKey]*topicPerm, error) {
	if len(ps) == 0 {
		return nil, nil
	}
	out := make(map[topicPermKey]*topicPerm, len(ps))
	for i, p := range ps {
		if p.User == "" {
			return nil, fmt.Errorf("topic permission %d: no user", i)
		}
		tp := &topicPerm{key: topicPermKey{p.User, p.VHost, p.Exchange}}
		if tp.key.vhost == "" {
			tp.key.vhost = "/"
		}
		if tp.key.exchange == "" {
			tp.key.exchange = "amq.topic"
		}
		if _, dup := out[tp.key]; dup {
			return nil, fmt.Errorf("topic permission %d: a second one for user '%s' on exchange '%s' in vhost '%s'", i, tp.key.user, tp.key.exchange, tp.key.vhost)
		}
		for j, src := range [4]string{p.Write, p.Read, p.DenyWrite, p.DenyRead} {
			src = expandVars(src, "{username}", tp.key.user, "{vhost}", tp.key.vhost)
			re, err := compilePattern(src, j >= permDenyWrite)
			if err != nil {
				return nil, fmt.Errorf("topic permission %d: %s: %w", i, permNames[j], err)
			}
			tp.src[j], tp.re[j] = src, re
			tp.clientVar = tp.clientVar || strings.Contains(src, clientIDVar)
		}
		out[tp.key] = tp
	}
	return out, nil
}

// TopicAccess is one client's topic permissions on one exchange of a
// vhost, ready for checking keys. A nil *TopicAccess allows everything.
// Safe from any goroutine.
type TopicAccess struct {
	user, vhost, exchange string
	re                    [4]*regexp.Regexp
}

// TopicAccess returns user's topic permissions on exchange, with
// {client_id} expanded to clientID; nil if none apply, i.e. everything is
// allowed. Call it once per connection (it compiles patterns that name the
// client) and Check per message.
func (v *VHost) TopicAccess(user, exchange, clientID string) *TopicAccess {
	tp := v.r.topics[topicPermKey{user, v.Name, exchange}]
	if tp == nil {
		return nil
	}
	a := &TopicAccess{user: user, vhost: v.Name, exchange: exchange, re: tp.re}
	if tp.clientVar {
		for j, src := range tp.src {
			if !strings.Contains(src, clientIDVar) {
				continue
			}
			re, err := compilePattern(expandVars(src, clientIDVar, clientID), j >= permDenyWrite)
			if err != nil {
				// The quoted id broke the pattern (inside a group name,
				// say): refuse rather than allow.
				re = matchNothing
				if j >= permDenyWrite {
					re = matchAll
				}
			}
			a.re[j] = re
		}
	}
	return a
}

// Check returns nil if a allows publishing with routing key key (read
// false) or binding with binding key key (read true), and otherwise an
// AccessRefused error with RabbitMQ's text. It allocates only to refuse.
func (a *TopicAccess) Check(key string, read bool) error {
	if a == nil {
		return nil
	}
	allow, deny, perm := a.re[permWrite], a.re[permDenyWrite], "write"
	if read {
		allow, deny, perm = a.re[permRead], a.re[permDenyRead], "read"
	}
	if allow.MatchString(key) && (deny == nil || !deny.MatchString(key)) {
		return nil
	}
	return errorf(AccessRefused, "%s access to topic '%s' in exchange '%s' in vhost '%s' refused for user '%s'",
		perm, key, a.exchange, a.vhost, a.user)
}

// CheckTopic checks one key against user's topic permissions on exchange
// (see TopicAccess.Check), for protocols without client ids: a pattern
// naming {client_id} keeps it literally.
func (v *VHost) CheckTopic(user, exchange, key string, read bool) error {
	tp := v.r.topics[topicPermKey{user, v.Name, exchange}]
	if tp == nil {
		return nil
	}
	a := TopicAccess{user: user, vhost: v.Name, exchange: exchange, re: tp.re}
	return a.Check(key, read)
}
