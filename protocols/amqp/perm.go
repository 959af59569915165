package amqp

import (
	"context"
	"log/slog"

	"github.com/junction-broker/junction/router"
)

// Topic permissions (router.TopicAccess, configured as
// router.topic_permissions) are checked as RabbitMQ's rabbit_channel does,
// on topic exchanges only:
//
//	basic.publish                  write, the routing key, once the content header is in
//	queue.bind, queue.unbind       read, the binding key, on the exchange
//	exchange.bind, exchange.unbind read, the binding key, on the source
//
// A refusal closes the channel with 403 ACCESS_REFUSED and RabbitMQ's
// text ("write access to topic 'k' in exchange 'amq.topic' in vhost '/'
// refused for user 'guest'"). Unbinding is checked like binding because
// RabbitMQ checks both through one function (binding_action_with_checks).
// A publish is refused at its content header, before the body is
// buffered; its body frames are read and discarded as for a message too
// large. An exchange that does not exist is not checked: the router
// answers 404 for it.
//
// AMQP 0-9-1 has no client id, so a pattern naming {client_id} keeps it
// as written, as RabbitMQ does for network connections (its variable map
// holds only username and vhost there).

// topicCacheSize bounds the exchanges a connection keeps permissions for;
// RabbitMQ's channel keeps 12 checks.
const topicCacheSize = 8

// topicCache is one connection's topic permissions on the exchanges it
// used last: looking one up compiles nothing and allocates nothing, so a
// check that allows costs a few string comparisons (and, for a user with
// permissions on the exchange, the exchange lookup and the regexps).
// Permissions cannot change while the broker runs, so entries never go
// stale. Touched only on the loop.
type topicCache struct {
	v     *router.VHost
	user  string
	names [topicCacheSize]string
	acc   [topicCacheSize]*router.TopicAccess // nil: no permissions, all allowed
	n     int                                 // entries in use
	next  int                                 // entry replaced next once all are in use
}

// noClientID passed as the client id leaves {client_id} as written: the
// router quotes it into a pattern that matches only itself, which is what
// VHost.CheckTopic does with it.
const noClientID = "{client_id}"

func newTopicCache(v *router.VHost, user string) topicCache {
	return topicCache{v: v, user: user}
}

// access returns the user's permissions on exchange, nil if there are none.
func (tc *topicCache) access(exchange string) *router.TopicAccess {
	for i := range tc.n {
		if tc.names[i] == exchange {
			return tc.acc[i]
		}
	}
	a := tc.v.TopicAccess(tc.user, exchange, noClientID)
	i := tc.n
	if i < topicCacheSize {
		tc.n++
	} else {
		i, tc.next = tc.next, (tc.next+1)%topicCacheSize
	}
	tc.names[i], tc.acc[i] = exchange, a
	return a
}

// check returns nil if the user may publish to exchange with routing key
// key (read false) or bind from it with binding key key (read true), and
// otherwise the router's AccessRefused error. Only topic exchanges are
// checked, as in RabbitMQ; so is neither an exchange that does not exist
// nor, for a publish, an internal one (the router refuses both).
func (tc *topicCache) check(exchange, key string, read bool) error {
	if exchange == "" || tc.v == nil { // the default exchange is a direct one
		return nil
	}
	a := tc.access(exchange)
	if a == nil {
		return nil
	}
	x := tc.v.Exchange(exchange)
	if x == nil || x.Kind != router.Topic || (!read && x.Internal) {
		return nil
	}
	return a.Check(key, read)
}

// checkTopic checks a publish (read false) or binding (read true) against
// the user's topic permissions and logs a refusal: a warning for the
// first of the connection, debug after.
func (s *session) checkTopic(op, exchange, key string, read bool) error {
	err := s.topics.check(exchange, key, read)
	if err == nil {
		return nil
	}
	s.refusals++
	if s.refusals == 1 {
		s.log.Warn("refused by topic permissions", "op", op, "exchange", exchange, "key", key, "err", err)
	} else if s.log.Enabled(context.Background(), slog.LevelDebug) {
		s.log.Debug("refused by topic permissions", "op", op, "exchange", exchange, "key", key, "err", err)
	}
	return err
}
