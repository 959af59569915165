// Package protocolstest holds test doubles for the transport contracts in
// package protocols, shared by the adapters' session tests. It imports the
// standard library only and is never linked into the broker.
package protocolstest

import "sync"

// Conn is an in-memory protocols.Conn: it records Close and signals Wake on
// a channel instead of driving an event loop. Safe from any goroutine.
type Conn struct {
	id    uint64
	local string
	wake  chan struct{}

	mu       sync.Mutex
	remote   string
	refusal  error
	closed   bool
	closeErr error
}

// NewConn returns a Conn with the given identity and addresses.
func NewConn(id uint64, remote, local string) *Conn {
	return &Conn{id: id, remote: remote, local: local, wake: make(chan struct{}, 1)}
}

// ID implements protocols.Conn.
func (c *Conn) ID() uint64 { return c.id }

// RemoteAddr implements protocols.Conn.
func (c *Conn) RemoteAddr() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.remote
}

// SetRemote changes the peer address RemoteAddr reports, for tests of
// address-dependent rules such as loopback-only users.
func (c *Conn) SetRemote(addr string) {
	c.mu.Lock()
	c.remote = addr
	c.mu.Unlock()
}

// LocalAddr implements protocols.Conn.
func (c *Conn) LocalAddr() string { return c.local }

// Wake implements protocols.Conn; wakes coalesce into one pending signal
// on Woken.
func (c *Conn) Wake() {
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// Woken receives once for any number of Wake calls since the last receive.
func (c *Conn) Woken() <-chan struct{} { return c.wake }

// Close implements protocols.Conn; the first call's reason is kept.
func (c *Conn) Close(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.closed {
		c.closed, c.closeErr = true, err
	}
}

// IsClosed reports whether Close was called.
func (c *Conn) IsClosed() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closed
}

// CloseErr returns the reason given to the first Close.
func (c *Conn) CloseErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closeErr
}

// Refusal implements protocols.Conn.
func (c *Conn) Refusal() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.refusal
}

// SetRefusal makes Refusal return err, as the transport does for a
// connection accepted beyond its connection limit. Call it before the
// session's handshake.
func (c *Conn) SetRefusal(err error) {
	c.mu.Lock()
	c.refusal = err
	c.mu.Unlock()
}
