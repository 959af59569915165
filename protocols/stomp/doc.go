// Package stomp is Junction's STOMP 1.0, 1.1 and 1.2 adapter, with
// RabbitMQ's destinations. It must not import the other protocol adapters.
//
// New returns the adapter; its sessions are sans-I/O (protocols.Session)
// and use the incremental, size-limited framer of protocols/stomp/frame.
//
// What this slice serves:
//
//   - CONNECT/STOMP with accept-version negotiation (1.0 when absent),
//     login/passcode through the router (no login means guest/guest, as
//     RabbitMQ's default_user), host as the vhost ("/" when absent), and
//     heart-beats both ways (missed client heart-beats end the connection
//     with an ERROR).
//
//   - Destinations /queue/q (durable queue q through the default
//     exchange), /topic/k (amq.topic; a subscription is a server-named
//     exclusive auto-delete queue), /exchange/x/k and /amq/queue/q
//     (existing queue, never declared).
//
//   - SEND with AMQP properties from headers (content-type,
//     correlation-id, reply-to, expiration, priority, persistent,
//     message-id or amqp-message-id, timestamp, type, app-id, user-id) and
//     other headers as the message's header table; RECEIPT only after the
//     message is committed.
//
//   - SUBSCRIBE with ack auto, client (cumulative within the subscription)
//     and client-individual, prefetch-count; MESSAGE frames carry the
//     delivery tag as message-id (and ack in 1.2), the AMQP message-id as
//     amqp-message-id; ACK, NACK (requeue unless requeue:false),
//     UNSUBSCRIBE (requeues unacknowledged messages), DISCONNECT.
//
//   - Topic permissions (perm.go): SEND to and SUBSCRIBE to a topic
//     exchange check write and read on the key, as RabbitMQ does; a
//     refusal is ERROR access_refused.
//
//   - Transactions (BEGIN, COMMIT, ABORT; SENDs and acks held until
//     COMMIT), durable topic subscriptions (durable:true or persistent:true
//     with an id), /temp-queue/ with reply-to and /reply-queue/, and x-*
//     queue arguments from headers.
//
//   - Bounds on what one connection can make the broker hold (Config):
//     the frame, its headers and header lines, the CONNECT deadline, its
//     subscriptions (temp queues included) and what its open transactions
//     hold; queue and exchange names and routing keys of at most 255 bytes
//     (AMQP short strings); headers in UTF-8 from 1.1 on, never with a NUL.
//     A client that sends without reading the replies has its input left
//     unread, up to the transport's inbound limit.
//
// Every SEND carries the broker's provenance headers (router.Publisher:
// protocol, user, and the CONNECT client-id header or the address).
package stomp
