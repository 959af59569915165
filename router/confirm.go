package router

import "sync"

// confirm collects the commits of one publish's stored copies and calls
// done once, when the last completes, with the first error.
type confirm struct {
	mu      sync.Mutex
	pending int
	sealed  bool
	err     error
	done    func(error)
}

func (c *confirm) add() {
	c.mu.Lock()
	c.pending++
	c.mu.Unlock()
}

func (c *confirm) complete(err error) {
	c.mu.Lock()
	if err != nil && c.err == nil {
		c.err = err
	}
	c.pending--
	fire := c.sealed && c.pending == 0
	c.mu.Unlock()
	if fire && c.done != nil {
		c.done(c.err)
	}
}

// seal marks the end of additions; done runs now if nothing is pending.
func (c *confirm) seal(err error, done func(error)) {
	c.mu.Lock()
	if err != nil && c.err == nil {
		c.err = err
	}
	c.done = done
	c.sealed = true
	fire := c.pending == 0
	c.mu.Unlock()
	if fire && done != nil {
		done(c.err)
	}
}
