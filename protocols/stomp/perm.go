package stomp

import "github.com/junction-broker/junction/router"

// Topic permissions (router.TopicAccess, configured as
// router.topic_permissions) are checked as RabbitMQ's STOMP plugin does
// (rabbit_stomp_processor), on topic exchanges only:
//
//	SEND to /topic/k, /exchange/x/k         write on k, at the SEND (in a transaction: at COMMIT)
//	SUBSCRIBE to /topic/k, /exchange/x/k    read on k, before the subscription's queue is declared
//
// A refusal is an ERROR frame with message:access_refused and RabbitMQ's
// text as its body ("write access to topic 'k' in exchange 'amq.topic' in
// vhost '/' refused for user 'guest'"), and the connection closes, as
// RabbitMQ's STOMP closes it on an access refusal. Checking before the
// declaration means a refused durable subscription leaves no queue
// behind (RabbitMQ deletes the queue it declared).
//
// STOMP has no client id, so a pattern naming {client_id} keeps it as
// written, as RabbitMQ does (its STOMP variable map holds only username
// and vhost).

// topicCacheSize bounds the exchanges a connection keeps permissions for;
// RabbitMQ keeps 12 checks per connection.
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
	tc.names[i], tc.acc[i] = exchange, a // header strings are the session's own
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
