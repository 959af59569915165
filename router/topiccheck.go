package router

// topicCheckerSize bounds the exchanges a TopicChecker keeps permissions
// for; RabbitMQ's channel keeps 12 checks.
const topicCheckerSize = 8

// noClientID passed as the client id leaves {client_id} as written: it is
// quoted into a pattern that matches only itself, as CheckTopic does.
// AMQP 0-9-1 and STOMP have no client id; RabbitMQ's variable map for
// them holds only username and vhost.
const noClientID = "{client_id}"

// TopicChecker is one connection's topic permissions (AMQP, STOMP) on the
// exchanges it used last: a check compiles nothing and allocates nothing,
// so one that allows costs a few string comparisons (and, for a user with
// permissions on the exchange, the exchange lookup and the regexps).
// Permissions cannot change while the broker runs, so entries never go
// stale. Not safe for concurrent use: one per connection, on its loop.
type TopicChecker struct {
	v     *VHost
	user  string
	names [topicCheckerSize]string
	acc   [topicCheckerSize]*TopicAccess // nil: no permissions, all allowed
	n     int                            // entries in use
	next  int                            // entry replaced next once all are in use
}

// NewTopicChecker returns user's checker on v; a nil v allows everything.
func NewTopicChecker(v *VHost, user string) TopicChecker {
	return TopicChecker{v: v, user: user}
}

// access returns the user's permissions on exchange, nil if there are none.
func (tc *TopicChecker) access(exchange string) *TopicAccess {
	for i := range tc.n {
		if tc.names[i] == exchange {
			return tc.acc[i]
		}
	}
	a := tc.v.TopicAccess(tc.user, exchange, noClientID)
	i := tc.n
	if i < topicCheckerSize {
		tc.n++
	} else {
		i, tc.next = tc.next, (tc.next+1)%topicCheckerSize
	}
	tc.names[i], tc.acc[i] = exchange, a
	return a
}

// Check returns nil if the user may publish to exchange with routing key
// key (read false) or bind from it with binding key key (read true), and
// otherwise an AccessRefused error with RabbitMQ's text. Only topic
// exchanges are checked, as in RabbitMQ; so is neither an exchange that
// does not exist nor, for a publish, an internal one (the router refuses
// both).
func (tc *TopicChecker) Check(exchange, key string, read bool) error {
	if exchange == "" || tc.v == nil { // the default exchange is a direct one
		return nil
	}
	a := tc.access(exchange)
	if a == nil {
		return nil
	}
	x := tc.v.Exchange(exchange)
	if x == nil || x.Kind != Topic || (!read && x.Internal) {
		return nil
	}
	return a.Check(key, read)
}
