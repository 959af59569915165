package stomp

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
// and vhost). Each session checks through its router.TopicChecker.
