package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"runtime/debug"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/junction-broker/junction/protocols"
)

// maxIOV is the most buffers one Writev may carry: gnet passes them to
// writev(2) unchunked, and Linux rejects more than IOV_MAX (1024) with
// EINVAL, which gnet treats as fatal for the connection.
const maxIOV = 1024

// pump results.
type pumpResult int

const (
	pumpIdle    pumpResult = iota // Output returned nothing: all pending output is written
	pumpStalled                   // backlog at the high-water mark; on the stall list
	pumpYield                     // pass budget used up; a Wake is queued
	pumpDead                      // gnet closed the connection during a write
)

// conn is one accepted connection: the protocols.Conn given to the adapter
// and the loop-side state of its session.
//
// Fields marked "loop" are touched only on the connection's loop goroutine.
// gc must not be used once closed is set: gnet recycles its fd.
//
// There is one per connection, idle ones included, so it is kept small:
// the server is l.s, addresses are held as values and formatted when
// asked for, times are offsets on the process's monotonic clock (see
// mono), and the flags share a word.
type conn struct {
	ep     *endpoint
	gc     gnet.Conn
	l      *loop
	id     uint64
	remote netip.AddrPort
	local  netip.AddrPort
	since  time.Duration // when it was accepted (mono)

	closeReq atomic.Pointer[error] // set by Close from any goroutine

	sess      protocols.Session // loop; nil if Open failed
	idx       int               // loop; position in l.conns
	stalledAt int               // loop; backlog when it stalled
	reason    error             // loop; why it is closing
	closeBy   time.Duration     // loop; closing: deadline for the final flush (mono)
	overSince time.Duration     // loop; when the backlog reached the mark without draining below it since (mono); 0: under it
	bytesIn   int64             // loop; bytes consumed by Feed
	bytesOut  int64             // loop; bytes handed to gnet

	wakeQueued atomic.Bool // a wake task is queued (or the conn is closed)
	refused    bool        // accepted beyond Config.MaxConns; immutable
	closed     bool        // loop; OnClose ran
	closing    bool        // loop; close path started
	finSent    bool        // loop; closing: written out, half-closed and the session told; waiting for the peer's EOF
	uncounted  bool        // loop; no longer in the open (or refusing) count
	broken     bool        // loop; the session panicked
	outputDone bool        // loop; closing: Output has been drained (or must not be called)
	wantFail   bool        // loop; closing: Fail bytes still to write
	stalled    bool        // loop; on l.stalls
}

var _ protocols.Conn = (*conn)(nil)

// epoch is the origin of mono.
var epoch = time.Now()

// mono returns t as an offset from epoch: 8 bytes instead of a time.Time's
// 24, and from the monotonic clock when t has a reading of it (time.Now).
func mono(t time.Time) time.Duration { return t.Sub(epoch) }

func (c *conn) ID() uint64         { return c.id }
func (c *conn) RemoteAddr() string { return c.remote.String() }
func (c *conn) LocalAddr() string  { return c.local.String() }

// Refusal implements protocols.Conn.
func (c *conn) Refusal() error {
	if c.refused {
		return c.l.s.refusal
	}
	return nil
}

// Wake queues one pass (Run) on the connection's loop unless one is queued.
func (c *conn) Wake() {
	if !c.wakeQueued.CompareAndSwap(false, true) || c.l.s.stopped.Load() {
		return
	}
	// Fails only when the engine is shutting down; gnet then closes the
	// connection anyway.
	_ = c.gc.EventLoop().Execute(context.Background(), (*wakeTask)(c))
}

// Close asks for the connection to be closed after its output is flushed.
func (c *conn) Close(err error) {
	if c.closeReq.CompareAndSwap(nil, &err) {
		c.Wake()
	}
}

// wakeTask is conn as a gnet.Runnable. A separate type keeps Run out of
// the method set an adapter can reach through protocols.Conn.
type wakeTask conn

func (w *wakeTask) Run(context.Context) error {
	(*conn)(w).wake()
	return nil
}

// wake is the pass Wake asks for; on the loop.
func (c *conn) wake() {
	if c.closed {
		return // leave wakeQueued set: further wakes are no-ops
	}
	c.wakeQueued.Store(false)
	if r := c.closeReq.Load(); r != nil {
		c.beginClose(*r, false)
	}
	if !c.closing && c.gc.InboundBuffered() > 0 {
		c.feedInbound() // the session may have paused consuming; offer again
	}
	if c.advance() {
		c.close()
	}
}

// action turns advance's verdict into gnet's return value for callbacks.
func (c *conn) action(closeNow bool) gnet.Action {
	if closeNow || c.closed {
		// If gnet already closed it (a write failed), Close is a no-op
		// for gnet's stale-connection check and skips buffering the
		// rest of the read into a released connection.
		return gnet.Close
	}
	return gnet.None
}

// close closes the socket now, from a task (not a gnet callback, which
// returns gnet.Close instead). OnClose runs before it returns.
func (c *conn) close() {
	if !c.closed {
		_ = c.gc.EventLoop().Close(c.gc)
	}
}

// feedInbound offers the unconsumed inbound bytes to Feed and enforces the
// inbound limit.
func (c *conn) feedInbound() {
	in, _ := c.gc.Peek(-1)
	if len(in) == 0 {
		return
	}
	n, err := c.feed(in)
	if n < 0 || n > len(in) {
		c.l.s.log.Error("session consumed out of range", "conn", c.id, "proto", c.ep.Adapter.Name(),
			"n", n, "len", len(in))
		if err == nil {
			err = fmt.Errorf("%w: Feed consumed %d of %d bytes", protocols.ErrInternal, n, len(in))
		}
		n = 0
	}
	if n > 0 {
		_, _ = c.gc.Discard(n)
		c.bytesIn += int64(n)
	}
	switch {
	case err != nil:
		c.beginClose(err, true)
	case c.gc.InboundBuffered() > c.ep.limits.MaxInbound:
		c.beginClose(protocols.ErrInboundLimit, true)
	}
}

// advance moves output along and, for a closing connection, the close path.
// It reports whether the socket should be closed now.
func (c *conn) advance() bool {
	if c.closed {
		return false
	}
	if !c.closing {
		c.pump()
		if !c.closing {
			return false
		}
	}
	return c.stepClose()
}

// pump writes the session's output while the backlog is under the
// high-water mark.
func (c *conn) pump() pumpResult {
	hwm := c.ep.limits.OutboundHighWater
	budget := 4 * hwm
	for {
		if c.closed {
			return pumpDead
		}
		if c.broken {
			return pumpIdle // never call Output on a session that panicked
		}
		if b := c.gc.OutboundBuffered(); b >= hwm {
			if !c.stalled {
				c.l.s.stalls.Add(1)
			}
			if c.overSince == 0 {
				c.overSince = max(mono(time.Now()), 1)
			}
			c.waitDrain(b)
			return pumpStalled
		}
		c.overSince = 0
		if budget <= 0 {
			c.Wake()
			return pumpYield
		}
		bufs := c.output(c.l.iov[:0])
		if len(bufs) == 0 {
			return pumpIdle
		}
		budget -= c.write(bufs)
		clear(bufs) // drop references to the session's buffers
		c.l.iov = bufs[:0]
	}
}

// write hands bufs to gnet, which writes what the socket takes and buffers
// the rest. It returns the bytes handed over.
func (c *conn) write(bufs [][]byte) int {
	total := 0
	for len(bufs) > 0 {
		chunk := bufs[:min(len(bufs), maxIOV)]
		bufs = bufs[len(chunk):]
		n, err := c.gc.Writev(chunk)
		if err != nil {
			return total // gnet has closed the connection; OnClose ran
		}
		total += n
	}
	c.wrote(total)
	return total
}

func (c *conn) writeOne(b []byte) {
	if _, err := c.gc.Write(b); err == nil {
		c.wrote(len(b))
	}
}

func (c *conn) wrote(n int) {
	c.bytesOut += int64(n)
	if !c.closed {
		if b := c.gc.OutboundBuffered(); b > 0 {
			storeMax(&c.l.s.outboundPeak, int64(b))
		}
	}
}

// waitDrain puts the connection on its loop's stall list until gnet's
// backlog (now b bytes) shrinks.
func (c *conn) waitDrain(b int) {
	c.stalledAt = b
	c.l.stall(c)
}

// beginClose starts the close path for reason; fail says whether the
// session's Fail bytes go last. Later calls are ignored.
func (c *conn) beginClose(reason error, fail bool) {
	if c.closing || c.closed {
		return
	}
	c.closing = true
	c.reason = reason
	c.wantFail = fail && c.sess != nil
	c.outputDone = c.broken || c.sess == nil
	c.closeBy = mono(time.Now()) + c.l.s.cfg.CloseTimeout
	discardInbound(c.gc)
}

// stepClose advances the close path and reports whether the socket can be
// closed now, i.e. everything is written and gnet's backlog is empty.
func (c *conn) stepClose() bool {
	if c.closed || c.finSent {
		return false // finSent: the peer's EOF (OnClose) or expire ends it
	}
	if !c.outputDone {
		if c.pump() != pumpIdle {
			return false // stalled or yielded: a later pass continues
		}
		c.outputDone = true
	}
	if c.wantFail {
		c.wantFail = false
		if b := c.fail(c.reason); len(b) > 0 {
			c.writeOne(b)
		}
		if c.closed {
			return false
		}
	}
	if b := c.gc.OutboundBuffered(); b > 0 {
		c.waitDrain(b)
		return false
	}
	// Everything is written: half-close, and read and drop what the peer
	// still sends until it hangs up (OnClose) or the close timeout ends
	// (expire). Closing at once with its input unread would make our
	// kernel reset the connection, and the peer's kernel drop our last
	// bytes, the protocol error included, before its application read
	// them. The session is done now: it is told at once. At shutdown the
	// broker does not wait for peers.
	if errors.Is(c.reason, protocols.ErrShutdown) || syscall.Shutdown(c.gc.Fd(), syscall.SHUT_WR) != nil {
		return true
	}
	c.finSent = true
	if c.sess != nil {
		c.closedCB(c.reason)
		c.sess = nil
	}
	if !c.refused {
		// The socket lingers; the connection is over. A refusal keeps
		// its place among the few in progress until its socket is gone,
		// so a flood of them holds few descriptors.
		c.uncount()
	}
	return false
}

// uncount takes the connection out of the open (or refusing) count, once.
func (c *conn) uncount() {
	if c.uncounted {
		return
	}
	c.uncounted = true
	if c.refused {
		c.l.s.refusing.Add(-1)
	} else {
		c.l.s.admitted.Add(-1)
	}
}

// checkSlow closes the connection as a slow consumer if its backlog has
// stayed at the high-water mark, without draining below it, for the
// listener's SlowConsumerTimeout. Its pending output is abandoned (the
// peer does not read it): Fail's bytes go after the backlog, and Closed
// returns the session's unacknowledged messages to their queues.
func (c *conn) checkSlow(now time.Time) {
	timeout := c.ep.limits.SlowConsumerTimeout
	if timeout <= 0 || c.overSince == 0 || mono(now)-c.overSince < timeout {
		return
	}
	b := c.gc.OutboundBuffered()
	if b < c.ep.limits.OutboundHighWater {
		c.overSince = 0 // drained meanwhile; the next stall starts a new count
		return
	}
	c.l.s.slowConsumers.Add(1)
	c.l.s.log.Warn("closing slow consumer", "conn", c.id, "proto", c.ep.Adapter.Name(), "remote", c.RemoteAddr(),
		"backlog", b, "high_water", c.ep.limits.OutboundHighWater, "timeout", timeout)
	c.beginClose(protocols.ErrSlowConsumer, true)
	c.outputDone = true
}

// expire cuts off a closing connection whose close timeout has passed.
func (c *conn) expire(now time.Time) {
	if c.closing && !c.closed && mono(now) > c.closeBy {
		if c.finSent {
			c.close() // written out; the peer just did not hang up
			return
		}
		if c.reason == nil {
			c.reason = protocols.ErrCloseTimeout
		} else {
			c.reason = fmt.Errorf("%w: %w", protocols.ErrCloseTimeout, c.reason)
		}
		c.close()
	}
}

// onClose runs in gnet's OnClose: the socket is going away.
func (c *conn) onClose(err error) {
	c.closed = true
	c.wakeQueued.Store(true) // no more wake tasks
	c.l.remove(c)
	reason := c.reason
	if !c.closing {
		switch {
		case c.l.s.stopped.Load():
			reason = protocols.ErrShutdown
		case err == nil || errors.Is(err, io.EOF):
			reason = protocols.ErrPeerClosed
		default:
			reason = fmt.Errorf("%w: %w", protocols.ErrPeerClosed, err)
		}
	}
	if c.sess != nil {
		c.closedCB(reason)
		c.sess = nil
	}
	c.uncount()
	lvl := slog.LevelInfo
	if c.refused {
		lvl = slog.LevelDebug // counted and logged per burst (Server.noteRefusal)
	}
	if c.l.s.log.Enabled(context.Background(), lvl) { // spares formatting the addresses
		c.l.s.log.Log(context.Background(), lvl, "connection closed", "conn", c.id, "proto", c.ep.Adapter.Name(),
			"remote", c.RemoteAddr(), "reason", reasonString(reason), "bytes_in", c.bytesIn, "bytes_out", c.bytesOut,
			"duration", (mono(time.Now()) - c.since).Round(time.Millisecond))
	}
}

func reasonString(err error) string {
	if err == nil {
		return "closed by session"
	}
	return err.Error()
}

// The panic fence: every call into the session goes through one of these.

func (c *conn) recovered(where string, r any) error {
	c.broken = true
	c.l.s.panics.Add(1)
	c.l.s.log.Error("session panic", "conn", c.id, "proto", c.ep.Adapter.Name(), "remote", c.RemoteAddr(),
		"call", where, "panic", r, "stack", string(debug.Stack()))
	return fmt.Errorf("%w: panic in %s %s: %v", protocols.ErrInternal, c.ep.Adapter.Name(), where, r)
}

func (c *conn) open() (sess protocols.Session) {
	defer func() {
		if r := recover(); r != nil {
			c.recovered("Open", r)
			sess = nil
		}
	}()
	sess = c.ep.Adapter.Open(c)
	if sess == nil {
		c.l.s.log.Error("adapter returned no session", "conn", c.id, "proto", c.ep.Adapter.Name())
	}
	return sess
}

func (c *conn) feed(in []byte) (n int, err error) {
	defer func() {
		if r := recover(); r != nil {
			n, err = 0, c.recovered("Feed", r)
		}
	}()
	return c.sess.Feed(in)
}

func (c *conn) output(dst [][]byte) (out [][]byte) {
	defer func() {
		if r := recover(); r != nil {
			clear(dst[:cap(dst)])
			out = dst[:0]
			c.beginClose(c.recovered("Output", r), true)
			c.outputDone = true
		}
	}()
	return c.sess.Output(dst)
}

func (c *conn) tick(now time.Time) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = c.recovered("Tick", r)
		}
	}()
	return c.sess.Tick(now)
}

func (c *conn) fail(reason error) (b []byte) {
	defer func() {
		if r := recover(); r != nil {
			c.recovered("Fail", r)
			b = nil
		}
	}()
	return c.sess.Fail(reason)
}

func (c *conn) closedCB(reason error) {
	defer func() {
		if r := recover(); r != nil {
			c.recovered("Closed", r)
		}
	}()
	c.sess.Closed(reason)
}
