// Package amqp is Junction's AMQP 0-9-1 adapter: it translates AMQP
// connections, channels and methods into calls on the router, RabbitMQ's
// way. Its codec lives in protocols/amqp/frame. It imports protocols, its
// codec, router and storage, and must not import the other protocol
// adapters.
//
// # Sessions
//
// [New] returns the [Adapter]; each connection gets a session (session.go)
// that is sans-I/O and runs on its connection's event loop: the handshake
// (protocol header, start/start-ok with PLAIN and AMQPLAIN through
// Router.Authenticate, tune/tune-ok, open), heartbeats and deadlines on
// Tick, connection.close both ways. Channels (channel.go) map one-to-one
// onto router channels. Property and table translation is in props.go.
//
// # Results from other goroutines
//
// Router callbacks (deliveries and server cancels under router locks,
// done callbacks of publishes and durable declarations on storage
// goroutines) only append an event to the session's mutex-guarded inbox
// and Wake the connection; Output processes the inbox on the loop. A
// synchronous method whose reply waits for a storage commit (a durable
// declaration) holds back further input until the commit is done, so
// replies keep request order. Publisher confirms are sent from Publish's
// done, in sequence order, coalesced with multiple=true.
//
// # Errors
//
// Soft errors (311–313, 403–406) close the channel with channel.close and
// discard its frames until close-ok; hard errors send connection.close
// and accept only close-ok (or a deadline) afterwards; framing errors end
// the connection through Fail. During the handshake the connection closes
// right after connection.close, as RabbitMQ does.
//
// # Topic permissions
//
// The user's topic permissions (router.TopicAccess) are checked, on topic
// exchanges only, as RabbitMQ does: write on the routing key of a
// basic.publish, read on the binding key of queue.bind, queue.unbind,
// exchange.bind and exchange.unbind (on the source). A refusal closes the
// channel with 403 ACCESS_REFUSED. perm.go says more.
//
// # Output
//
// Deliveries are encoded into a reused buffer with bodies of 1 KiB and more
// sent by reference (frame.AppendContentVec); Output returns a bounded batch.
// When more than pauseBytes of deliveries wait in the inbox the session
// pauses all its consumers, and resumes them once the inbox is drained.
//
// Placeholder, the adapter that refuses every client with the protocol
// header, remains for builds and tests that want no AMQP service.
package amqp
