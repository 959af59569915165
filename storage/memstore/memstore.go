// Package memstore is an in-memory storage.Store for tests: the router's
// unit tests run against it, and it passes storage/storetest like every
// store. Nothing survives Close.
//
// Commit applies its ops at once, under the store's mutex, so they are
// visible to reads as soon as Commit returns; done then runs, in Commit
// order, on the store's one callback goroutine, never inside Commit.
// Because nothing is written anywhere, sync changes nothing. Tests steer the
// store with Fail, which makes every later Commit fail as a disk error
// would, and with Hold and Release, which keep callbacks back to observe
// what waits for durability.
//
// memstore imports only the standard library and storage.
package memstore

import (
	"bytes"
	"fmt"
	"slices"
	"sync"

	"github.com/junction-broker/junction/storage"
)

// opOverhead is what Pending counts for an op besides its key and record,
// roughly the key bytes a disk store would add.
const opOverhead = 17

// Store is an in-memory storage.Store. The zero value is not usable; call
// New. Every method is safe from any goroutine.
type Store struct {
	mu      sync.Mutex
	wake    *sync.Cond // signals the callback goroutine; uses mu
	idle    *sync.Cond // signals Close that callbacks drained; uses mu
	meta    map[storage.Kind]map[string][]byte
	spaces  [2]map[storage.QueueID]*queue // [0] durable, [1] paged
	calls   []call                        // dones waiting for the callback goroutine
	held    bool
	failErr error
	closed  bool
	exited  bool
	commits int64
	pending int64
}

// queue holds one queue's messages in one space. Stored slices are never
// modified, so scans can hand them out after the mutex is released.
type queue struct {
	msgs   map[storage.SeqNum][]byte
	cursor storage.SeqNum
}

type call struct {
	done func(error)
	err  error
	size int64
}

// New returns an empty store with its callback goroutine running.
func New() *Store {
	s := &Store{meta: map[storage.Kind]map[string][]byte{}}
	s.spaces[0] = map[storage.QueueID]*queue{}
	s.spaces[1] = map[storage.QueueID]*queue{}
	s.wake = sync.NewCond(&s.mu)
	s.idle = sync.NewCond(&s.mu)
	go s.callbacks()
	return s
}

// Fail makes every later Commit fail: its ops are not applied and its done
// gets an error wrapping both storage.ErrFailed and err (err may be nil).
// Commits made before Fail keep their outcome. It models a store that hit a
// disk error, which never recovers.
func (s *Store) Fail(err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.failErr == nil {
		if err == nil {
			s.failErr = fmt.Errorf("memstore: %w", storage.ErrFailed)
		} else {
			s.failErr = fmt.Errorf("memstore: %w: %w", storage.ErrFailed, err)
		}
	}
}

// Hold keeps every done callback back (in order) until Release, as a slow
// fsync would. Ops are still applied and visible at once.
func (s *Store) Hold() {
	s.mu.Lock()
	s.held = true
	s.mu.Unlock()
}

// Release lets held callbacks run, in Commit order, on the store's goroutine.
func (s *Store) Release() {
	s.mu.Lock()
	s.held = false
	s.wake.Signal()
	s.mu.Unlock()
}

// Commits reports how many Commits were applied (failed and closed ones
// are not counted).
func (s *Store) Commits() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

// Len reports how many messages q holds in the durable (paged false) or
// paged space, cursor or not.
func (s *Store) Len(q storage.QueueID, paged bool) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qu := s.space(paged)[q]; qu != nil {
		return len(qu.msgs)
	}
	return 0
}

// Commit implements storage.Store. The ops are applied before it returns;
// done runs later on the callback goroutine. The store copies every record
// before Commit returns, so callers could reuse them early, but the
// storage.Store contract does not promise that.
func (s *Store) Commit(ops []storage.Op, sync bool, done func(error)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.exited {
		if done != nil {
			go done(fmt.Errorf("memstore: commit: %w", storage.ErrClosed))
		}
		return
	}
	c := call{done: done}
	switch {
	case s.closed:
		c.err = fmt.Errorf("memstore: commit: %w", storage.ErrClosed)
	case s.failErr != nil:
		c.err = s.failErr
	default:
		s.commits++
		for i := range ops {
			c.size += s.apply(&ops[i])
		}
	}
	s.pending += c.size
	s.calls = append(s.calls, c)
	s.wake.Signal()
}

// apply runs one op and returns the bytes Pending counts for it.
// REQUIRES: s.mu held.
func (s *Store) apply(op *storage.Op) int64 {
	space := s.space(op.Paged)
	switch op.Kind {
	case storage.OpAppend:
		qu := space[op.Queue]
		if qu == nil {
			qu = &queue{msgs: map[storage.SeqNum][]byte{}}
			space[op.Queue] = qu
		}
		b := marshal(op.Rec)
		qu.msgs[op.Seq] = b
		return int64(len(b)) + opOverhead
	case storage.OpDelete:
		if qu := space[op.Queue]; qu != nil {
			delete(qu.msgs, op.Seq)
		}
	case storage.OpDeleteRange:
		if op.Seq >= op.End {
			break // empty: no messages and no cursor move
		}
		qu := space[op.Queue]
		if qu == nil {
			qu = &queue{msgs: map[storage.SeqNum][]byte{}}
			space[op.Queue] = qu
		}
		for seq := range qu.msgs {
			if seq >= op.Seq && seq < op.End {
				delete(qu.msgs, seq)
			}
		}
		qu.cursor = max(qu.cursor, op.End)
	case storage.OpDropQueue:
		delete(space, op.Queue)
	case storage.OpPutMeta:
		m := s.meta[op.Meta]
		if m == nil {
			m = map[string][]byte{}
			s.meta[op.Meta] = m
		}
		b := marshal(op.Rec)
		m[string(op.Key)] = b
		return int64(len(op.Key)+len(b)) + opOverhead
	case storage.OpDeleteMeta:
		delete(s.meta[op.Meta], string(op.Key))
	default:
		panic(fmt.Sprintf("memstore: unknown op kind %d", op.Kind))
	}
	return opOverhead + int64(len(op.Key))
}

func marshal(r storage.Record) []byte {
	if r == nil {
		return []byte{}
	}
	b := make([]byte, r.Size())
	r.MarshalTo(b)
	return b
}

func (s *Store) space(paged bool) map[storage.QueueID]*queue {
	if paged {
		return s.spaces[1]
	}
	return s.spaces[0]
}

// callbacks runs dones in Commit order until Close has drained them.
func (s *Store) callbacks() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		for (len(s.calls) == 0 || s.held) && !s.closed {
			s.wake.Wait()
		}
		if len(s.calls) == 0 { // closed and drained
			s.exited = true
			s.idle.Broadcast()
			return
		}
		calls := s.calls
		s.calls = nil
		for _, c := range calls {
			s.pending -= c.size
		}
		s.mu.Unlock()
		for _, c := range calls {
			if c.done != nil {
				c.done(c.err)
			}
		}
		s.mu.Lock()
	}
}

// ScanMeta implements storage.Store. fn runs without the store's mutex, on
// a snapshot taken when the scan starts, so it may call the store.
func (s *Store) ScanMeta(k storage.Kind, fn func(key, value []byte) error) error {
	s.mu.Lock()
	m := s.meta[k]
	keys := make([]string, 0, len(m))
	for key := range m {
		keys = append(keys, key)
	}
	vals := make([][]byte, len(keys))
	slices.Sort(keys)
	for i, key := range keys {
		vals[i] = m[key]
	}
	s.mu.Unlock()
	for i, key := range keys {
		if err := fn([]byte(key), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// Cursor implements storage.Store.
func (s *Store) Cursor(q storage.QueueID) storage.SeqNum {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qu := s.space(false)[q]; qu != nil {
		return qu.cursor
	}
	return 0
}

// ScanQueue implements storage.Store, on a snapshot as ScanMeta does.
func (s *Store) ScanQueue(q storage.QueueID, from storage.SeqNum, paged bool, fn func(seq storage.SeqNum, value []byte) error) error {
	s.mu.Lock()
	qu := s.space(paged)[q]
	if qu == nil {
		s.mu.Unlock()
		return nil
	}
	from = max(from, qu.cursor)
	seqs := make([]storage.SeqNum, 0, len(qu.msgs))
	for seq := range qu.msgs {
		if seq >= from {
			seqs = append(seqs, seq)
		}
	}
	slices.Sort(seqs)
	vals := make([][]byte, len(seqs))
	for i, seq := range seqs {
		vals[i] = qu.msgs[seq]
	}
	s.mu.Unlock()
	for i, seq := range seqs {
		if err := fn(seq, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// Get implements storage.Store.
func (s *Store) Get(q storage.QueueID, seq storage.SeqNum, paged bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if qu := s.space(paged)[q]; qu != nil {
		if b, ok := qu.msgs[seq]; ok {
			return bytes.Clone(b), nil
		}
	}
	return nil, fmt.Errorf("memstore: get q=%d seq=%d: %w", q, seq, storage.ErrNotFound)
}

// Pending implements storage.Store: the bytes of Commits whose done has not
// run yet.
func (s *Store) Pending() int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pending
}

// Close implements storage.Store. It releases held callbacks, waits until
// every done has run, and stops the callback goroutine. A second Close
// returns storage.ErrClosed. It must not be called from a done callback.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("memstore: close: %w", storage.ErrClosed)
	}
	s.closed = true
	s.held = false
	s.wake.Signal()
	for !s.exited {
		s.idle.Wait()
	}
	return nil
}

var _ storage.Store = (*Store)(nil)
