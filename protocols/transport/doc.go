// Package transport runs Junction's plain-TCP listeners on one gnet v2
// engine and drives protocol sessions (package protocols) on its event
// loops. It is the only package that imports gnet; it must not import the
// router, storage or any protocol adapter.
//
// It owns: the listeners and the engine's lifecycle, one conn per accepted
// connection (the protocols.Conn handed to the adapter), the per-connection
// outbox discipline, the inbound and outbound limits, the keepalive timer,
// the panic fence around every session call, and the connection gauge and
// counters in Stats.
//
// # Engine
//
// One gnet engine (gnet.Rotate) serves every configured listener, one event
// loop per core (Config.EventLoops overrides), SO_REUSEPORT off, so one acceptor
// reactor hands connections to the loops round-robin. A connection's listener
// is found from its local port (getsockname on the accepted socket: gnet
// reports the configured address, which says port 0 for ephemeral
// listeners). gnet binds all listeners before it calls OnBoot and reports a
// bind error by returning it from Rotate; Start runs Rotate on its own
// goroutine and waits for OnBoot or that error. Because gnet leaks the
// listeners it already bound when a later one fails, Start first probes
// every fixed port with net.Listen and reports a port in use itself.
//
// # Concurrency
//
// All session calls, and all mutable conn and loop state, live on the
// connection's loop goroutine. Other goroutines reach a loop only through
// gnet's EventLoop.Execute: Conn.Wake and Conn.Close from adapters, the
// ticker, the back-pressure timer and Shutdown. Wakes coalesce through one
// atomic flag per connection, so a burst of Wake calls costs one Execute.
//
// # Outbound: the high-water mark
//
// After Feed, after Tick and on Wake the loop pulls the session's pending
// buffers with Output and writes them with Writev, and repeats while the
// connection's gnet outbound backlog (OutboundBuffered) is below
// Limits.OutboundHighWater. The backlog thus stays below the mark plus one
// Output batch. A pass also stops after writing four high-water marks'
// worth and re-queues itself with Wake, so one fast producer cannot hold a
// loop.
//
// gnet has no "output drained" callback: its EPOLLOUT handler flushes the
// backlog without telling the handler. A connection that stops at the mark
// is therefore put on its loop's stall list, and a per-loop timer (armed
// only while the list is non-empty) re-runs the list on the loop through
// Execute: after 1 ms, doubling up to 64 ms while no stalled connection
// makes progress, back to 1 ms when one does. Draining resumes as soon as
// the backlog is under the mark again. The alternatives were worse: the
// keepalive tick (hundreds of ms) throttles a merely busy consumer, and
// re-queueing with Execute at once spins the loop.
//
// # Slow consumers
//
// A connection whose backlog reaches the mark and stays there, never once
// draining below it, for Limits.SlowConsumerTimeout is a slow consumer:
// the tick closes it with protocols.ErrSlowConsumer and a warning naming
// the peer and the backlog. Its session's Output is not drained first (the
// peer reads nothing, and pulling more would only grow the backlog): Fail's
// bytes are queued after the backlog, in case the peer reads again within
// the close timeout, and Closed hands the session's unacknowledged
// messages back to their queues. The mark is checked where the pass checks
// it, so a backlog that dips below the mark between two passes counts as
// drained only if a pass sees it.
//
// # Connection limit
//
// Config.MaxConns bounds the open connections over all listeners. OnOpen
// counts a connection in (an atomic add, undone if it passes the limit);
// the close path counts it out once its socket is written out and
// half-closed (a refused one only when its socket is gone). A connection
// beyond the limit is not counted and still gets a session, with Conn.Refusal set, so the session answers the
// client's handshake with its protocol's refusal; the tick cuts it off after
// CloseTimeout if the client sends no handshake. It is not logged as opened
// or closed: the first refusal after refusalBurstGap without any is logged
// at Warn, the rest counted in Stats.Refused. While a few refusals are under
// way (a share of MaxConns), further connections beyond the limit are closed
// at once without a session, so that a flood holds few descriptors.
//
// # Closing
//
// Every close the transport starts goes through one path: stop reading
// (inbound bytes are discarded), take the session's remaining Output (under
// the high-water mark as usual), write Session.Fail's bytes if the reason
// calls for them, and once gnet's backlog is empty shut down the socket's
// write side: the session's Closed runs and the connection leaves the open
// count, while the socket stays to read and drop what the peer still sends
// until the peer hangs up or Config.CloseTimeout ends. Closing with the
// peer's bytes unread would make the kernel reset the connection, and the
// peer's kernel drop the close frame before its application reads it. A
// backlog that does not drain within CloseTimeout is cut off (reason
// wrapped with ErrCloseTimeout); at shutdown the socket closes as soon as
// it is written out. So a close frame is on the wire, and readable, even
// when the peer reads slowly or keeps sending. Reasons: a Feed or Tick error, ErrInboundLimit, ErrInternal
// (panic), ErrShutdown, ErrSlowConsumer (Fail is called for all of these)
// and Conn.Close (Fail is not). A panic stops all further session calls
// but Fail and Closed.
//
// # Shutdown
//
// Shutdown marks the server draining (new connections are closed as soon as
// they are accepted, without a session), runs the close path with
// ErrShutdown on every connection of every loop, waits until all are closed
// or ctx ends, then stops the engine (gnet closes whatever is left, calling
// Closed with ErrShutdown) and waits for Rotate to return, which also closes
// the listening sockets.
//
// # Timer
//
// gnet's ticker goroutine (WithTicker) calls OnTick every
// Config.TickInterval; OnTick posts one task per loop (skipped while the
// previous one is still queued), and the task calls Tick on each of the
// loop's sessions and enforces close timeouts.
//
// # Panic fence
//
// Every call into a session (Open, Feed, Output, Tick, Fail, Closed) runs
// under recover. A panic is logged at Error with the stack, conn id,
// protocol and remote address, counted in Stats.Panics, and closes only
// that connection, with Fail(ErrInternal) bytes when Fail itself does not
// panic.
package transport
