// Package mqtt is Junction's MQTT 3.1, 3.1.1 and 5.0 adapter: sessions are
// router queues bound to the MQTT exchange. It must not import the other
// protocol adapters.
//
// [New] returns the adapter. A session is sans-I/O (see package
// protocols): Feed frames packets incrementally (the remaining length is
// checked against Config.MaxPacketSize before anything is buffered), copies
// each complete packet and decodes it with this package's own small
// decoder (codec.go; the unit tests encode with mochi-mqtt's packets
// package and decode the server's answers with it). Storage work (routing
// commits, retained messages, session records) completes through done
// callbacks posted back to the session's loop; nothing blocks it.
//
// Conventions, RabbitMQ's (DESIGN.md §4): publishes go to Config.Exchange
// (amq.topic) with the topic as routing key, '/' → '.', '.' → '/', '+' →
// '*', '#' → '#'. Each session owns one queue, mqtt-subscription-<client
// id>qos1, bound once per subscription: exclusive for sessions that end
// with the connection, durable for persistent ones (MQTT 3.1.1 clean
// session 0: never expires; MQTT 5 Session Expiry Interval > 0: x-expires,
// so the queue and its messages go that long after the last connection).
// A shared subscription $share/<group>/<filter> is one durable queue per
// group and filter (mqtt-shared-<group>/<filter>) that every member
// consumes, so the router spreads its messages over them; it is deleted
// with its last member. Anonymous clients are guest/guest. How MQTT 5
// properties map onto router properties is in props.go.
//
// What works: CONNECT/CONNACK (3.1, 3.1.1, 5.0; assigned client ids;
// refusals with Reason Strings), keepalive at 1.5× (MQTT 5: capped by
// Config.MaxKeepAlive, announced as Server Keep Alive), PINGREQ,
// DISCONNECT (5.0: with a Session Expiry Interval, which like the
// CONNECT's changes the session queue's x-expires), session takeover (the
// new connection's CONNACK waits until the old one has closed; 5.0:
// DISCONNECT 0x8E), QoS 0, 1 and 2 both ways (PUBACK and PUBREC only after
// the router's commit; outbound QoS is the lower of the publish's and the
// subscription's; QoS 2 in flight both ways, outbound messages and
// inbound packet ids awaiting their PUBREL, survives reconnects, restarts
// and crashes of persistent sessions), the window (Config.MaxInflight or
// the 5.0 Receive Maximum); publishers held back (input unread from the
// next PUBLISH on) while a router resource alarm is raised; retained messages (retain.go: stored per vhost,
// sent on subscribe to exact and wildcard filters, bounded by
// Config.RetainedMaxMessages and RetainedMaxBytes); wills with the 5.0
// Will Delay Interval and will properties (will.go); 5.0 message expiry
// while queued with the remainder sent on delivery, topic aliases from the
// client (up to Config.TopicAliasMax) and towards it (outbound.go),
// subscription identifiers, No Local,
// Retain As Published, Retain Handling, shared subscriptions (also for
// 3.1.1 clients), user properties in order, payload format, content type,
// correlation data, response topic, Maximum Packet Size both ways,
// Request Problem and Response Information; topic permissions (perm.go);
// after a server DISCONNECT the session lingers, reading and dropping
// input, so the client sees the reason code rather than a reset (see
// lingerTimeout).
//
// Topics become routing keys in RabbitMQ's swap mode or the lossless mode
// (topicmap.go, Config.LosslessTopics).
//
// Missing: AUTH (enhanced authentication: CONNECT with an Authentication
// Method is refused with 0x8C). Pending delayed wills do not survive a
// restart. A
// shared subscription's QoS 2 message whose PUBREC has not come when its
// member disconnects goes back to the group, like QoS 1 ones.
//
// Memory: a broker holds many idle devices, so an idle connection keeps
// little beyond its session struct and, once it subscribes, its queue:
// maps, buffers, the router channel and the logger are made on first use,
// state few connections need waits in a part allocated when needed
// (session.more), and a connection without traffic for a tick interval
// gives its buffers back (session.trim). TestIdleSessionMemory pins it.
package mqtt
