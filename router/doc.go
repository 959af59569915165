// Package router is Junction's routing graph: vhosts, exchanges of every
// type, bindings (exchange-to-queue and exchange-to-exchange), queues and
// their arguments, consumers, delivery, acknowledgement, requeue, TTL,
// dead-lettering and the durable metadata behind them.
//
// It knows no protocol and no storage engine: adapters translate their
// protocol into calls on a VHost and a Channel, and durable state goes
// through the storage.Store interface. It must not import anything under
// protocols/ or storage/pebblestore.
//
// # Concurrency
//
// Every exported method is safe from any goroutine. Locks, outermost first:
// Router.mu, VHost.mu (topology), Queue.mu, Channel.mu, and the topic cache
// lock. A Handler's Deliver runs with a queue and a channel lock held: it
// must only record the delivery and wake its connection, never call back
// into the router.
//
// # Durability
//
// Persistent messages (delivery mode 2) routed to durable queues are written
// to the store; Publish calls done only when every such copy is committed
// with sync. Transient messages and copies in transient queues live in
// memory. Acknowledgements delete stored copies without sync: they become
// durable with the next synced commit, so a crash can only redeliver, never
// lose, an acknowledged-by-broker message.
package router
