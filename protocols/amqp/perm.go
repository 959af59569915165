package amqp

import (
	"context"
	"log/slog"
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

// checkTopic checks a publish (read false) or binding (read true) against
// the user's topic permissions and logs a refusal: a warning for the
// first of the connection, debug after.
func (s *session) checkTopic(op, exchange, key string, read bool) error {
	err := s.topics.Check(exchange, key, read)
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
