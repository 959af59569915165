// Package mqtt is Junction's MQTT 3.1, 3.1.1 and 5.0 adapter: sessions are
// router queues bound to the MQTT exchange. It must not import the other
// protocol adapters.
//
// [New] returns the adapter. A session is sans-I/O (see package
// protocols): Feed frames packets incrementally (the remaining length is
// checked against Config.MaxPacketSize before anything is buffered), copies
// each complete packet and decodes it with this package's own small
// decoder (codec.go; the unit tests encode with mochi-mqtt's packets
// package and decode the server's answers with it).
//
// Conventions, RabbitMQ's (DESIGN.md §4): publishes go to Config.Exchange
// (amq.topic) with the topic as routing key, '/' → '.', '.' → '/', '+' →
// '*', '#' → '#'. Each session owns one queue, mqtt-subscription-<client
// id>qos1, exclusive for clean sessions and durable for persistent ones,
// bound once per subscription. Anonymous clients are guest/guest.
//
// What works: CONNECT/CONNACK (3.1, 3.1.1, 5.0; assigned client ids;
// refusals 0x01/0x02/0x04/0x05 and 0x84/0x85/0x86/0x87), keepalive at 1.5×,
// PINGREQ, DISCONNECT, session takeover (5.0: DISCONNECT 0x8E), wills
// (published when a connection ends without DISCONNECT; no delay),
// SUBSCRIBE/UNSUBSCRIBE (QoS granted up to 1), inbound QoS 0/1/2 (PUBACK
// and PUBREC only after the router's commit), outbound QoS 0/1 (QoS 1
// deliveries are persistent messages under a QoS 1 subscription; window:
// Config.MaxInflight or the 5.0 Receive Maximum), 5.0 content type.
//
// Missing: retained messages (5.0 announces Retain Available 0; 3.1.1
// retain flags are ignored), outbound QoS 2, session expiry, message
// expiry, topic aliases, user properties, shared subscriptions,
// subscription identifiers, No Local, AUTH, will delay.
//
// Placeholder answers every CONNECT with CONNACK "server unavailable"
// (3.1/3.1.1 return code 3, MQTT 5 reason code 0x88) and closes; cmd still
// uses it until it is rewired to New.
package mqtt
