// Package amqp is Junction's AMQP 0-9-1 adapter: it translates AMQP
// connections, channels and methods into calls on the router and storage.
// Its codec lives in protocols/amqp/frame. It must not import the other
// protocol adapters.
//
// Until the adapter proper lands (the AMQP issue), Placeholder answers every
// client the way the spec tells a server to answer a protocol it does not
// speak: it sends its own protocol header and closes.
package amqp
