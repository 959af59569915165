package protocols

import "sync"

// HeldSet is the sessions an adapter holds back under a resource alarm
// (they stopped reading before a publish), to wake when the alarms clear.
// It is safe from any goroutine; its lock is a leaf, so Wake may run under
// the router's alarm lock.
type HeldSet[S comparable] struct {
	mu   sync.Mutex
	held map[S]struct{}
}

// Add lists s.
func (h *HeldSet[S]) Add(s S) {
	h.mu.Lock()
	if h.held == nil {
		h.held = make(map[S]struct{})
	}
	h.held[s] = struct{}{}
	h.mu.Unlock()
}

// Remove takes s off the list.
func (h *HeldSet[S]) Remove(s S) {
	h.mu.Lock()
	delete(h.held, s)
	h.mu.Unlock()
}

// Wake takes every session off the list and calls wake for each, under
// the set's lock: wake must only post to the session.
func (h *HeldSet[S]) Wake(wake func(S)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for s := range h.held {
		delete(h.held, s)
		wake(s)
	}
}

// Len reports how many sessions are listed.
func (h *HeldSet[S]) Len() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.held)
}
