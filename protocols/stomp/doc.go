// Package stomp is Junction's STOMP 1.0, 1.1 and 1.2 adapter, with
// RabbitMQ's destinations. It must not import the other protocol adapters.
//
// Until the adapter proper lands (the STOMP issue), Placeholder answers
// every client with an ERROR frame that says so, and closes.
package stomp
