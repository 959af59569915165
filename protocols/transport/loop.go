package transport

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/junction-broker/junction/protocols"
)

// Retry delays for stalled connections (see the package doc).
const (
	stallRetryMin = time.Millisecond
	stallRetryMax = 64 * time.Millisecond
)

// loop is our state for one gnet event loop. Fields marked "loop" are
// touched only on that loop's goroutine; tasks reach it through el.Execute.
type loop struct {
	s  *Server
	el gnet.EventLoop

	// Tasks, built once so posting them does not allocate a method value.
	tickTask     gnet.Runnable
	stallTask    gnet.Runnable
	shutdownTask gnet.Runnable

	tickQueued atomic.Bool // a tick task is queued

	conns   []*conn  // loop; open connections, in no order
	scratch []*conn  // loop; snapshot of conns being iterated
	iov     [][]byte // loop; Output's destination, reused

	stalls     []*conn       // loop; connections waiting for their backlog to drain
	stallSpare []*conn       // loop; the other half of the stalls double buffer
	stallDelay time.Duration // loop; delay before the next retry
	stallArmed bool          // loop; timer running or retry task queued
	retrying   bool          // loop; retryStalled is running and arms the timer itself
	timer      *time.Timer   // loop; created on first stall
}

func newLoop(s *Server, el gnet.EventLoop) *loop {
	l := &loop{s: s, el: el, stallDelay: stallRetryMin}
	l.tickTask = gnet.RunnableFunc(l.tick)
	l.stallTask = gnet.RunnableFunc(l.retryStalled)
	l.shutdownTask = gnet.RunnableFunc(l.shutdown)
	return l
}

func (l *loop) add(c *conn) {
	c.idx = len(l.conns)
	l.conns = append(l.conns, c)
}

func (l *loop) remove(c *conn) {
	last := len(l.conns) - 1
	moved := l.conns[last]
	l.conns[c.idx] = moved
	moved.idx = c.idx
	l.conns[last] = nil
	l.conns = l.conns[:last]
}

// snapshot copies conns, so closing connections while iterating is safe.
func (l *loop) snapshot() []*conn {
	l.scratch = append(l.scratch[:0], l.conns...)
	return l.scratch
}

func (l *loop) release(snap []*conn) {
	clear(snap)
	l.scratch = snap[:0]
}

// postTick queues a tick task unless one is queued. Ticker goroutine.
func (l *loop) postTick() {
	if l.tickQueued.CompareAndSwap(false, true) {
		if err := l.el.Execute(context.Background(), l.tickTask); err != nil {
			l.tickQueued.Store(false)
		}
	}
}

// tick runs every session's Tick and enforces close timeouts.
func (l *loop) tick(context.Context) error {
	l.tickQueued.Store(false)
	now := time.Now()
	snap := l.snapshot()
	for _, c := range snap {
		switch {
		case c.closed:
		case c.closing:
			c.expire(now)
		case c.broken:
		default:
			if err := c.tick(now); err != nil {
				c.beginClose(err, true)
			} else if c.refused && mono(now)-c.since > l.s.cfg.CloseTimeout {
				// The session has not refused the handshake in time (the
				// client sent none): no more waiting.
				c.beginClose(l.s.refusal, false)
			} else {
				c.checkSlow(now)
			}
			if c.advance() {
				c.close()
			}
		}
	}
	l.release(snap)
	return nil
}

// shutdown starts the close path with ErrShutdown on every connection.
func (l *loop) shutdown(context.Context) error {
	snap := l.snapshot()
	for _, c := range snap {
		if c.closed {
			continue
		}
		if c.finSent {
			c.close() // written out and lingering: shutdown waits for no peer
			continue
		}
		c.beginClose(protocols.ErrShutdown, true)
		if c.advance() {
			c.close()
		}
	}
	l.release(snap)
	return nil
}

// stall puts c on the stall list and makes sure a retry is scheduled.
func (l *loop) stall(c *conn) {
	if !c.stalled {
		c.stalled = true
		l.stalls = append(l.stalls, c)
	}
	if !l.retrying {
		l.armStallTimer()
	}
}

func (l *loop) armStallTimer() {
	if l.stallArmed {
		return
	}
	l.stallArmed = true
	if l.timer == nil {
		l.timer = time.AfterFunc(l.stallDelay, l.fireStallTimer)
	} else {
		l.timer.Reset(l.stallDelay)
	}
}

// fireStallTimer runs on the timer's goroutine.
func (l *loop) fireStallTimer() {
	if l.s.stopped.Load() {
		return
	}
	_ = l.el.Execute(context.Background(), l.stallTask)
}

// retryStalled moves every stalled connection along again.
func (l *loop) retryStalled(context.Context) error {
	l.stallArmed = false
	l.retrying = true
	list := l.stalls
	l.stalls = l.stallSpare[:0]
	progress := false
	for _, c := range list {
		c.stalled = false
		if c.closed {
			continue
		}
		if c.gc.OutboundBuffered() < c.stalledAt {
			progress = true
		}
		if c.advance() {
			c.close()
		}
	}
	clear(list)
	l.stallSpare = list[:0]
	l.retrying = false
	switch {
	case len(l.stalls) == 0:
		l.stallDelay = stallRetryMin
	case progress:
		l.stallDelay = stallRetryMin
		l.armStallTimer()
	default:
		l.stallDelay = min(2*l.stallDelay, stallRetryMax)
		l.armStallTimer()
	}
	return nil
}
