package router

import (
	"bytes"
	"encoding/binary"
	"sort"
	"sync"

	"github.com/junction-broker/junction/storage"
)

// fakeStore is a synchronous in-memory store for router tests. Synced
// commits can be held back (hold) to observe what waits for durability,
// and the store can be made to fail.
type fakeStore struct {
	mu    sync.Mutex
	meta  map[string][]byte
	msgs  map[storage.QueueID]map[storage.SeqNum][]byte
	paged map[storage.QueueID]map[storage.SeqNum][]byte
	// async runs done callbacks in order on a goroutine, as a real
	// committer does; otherwise they run before Commit returns, which
	// keeps most tests free of waiting.
	async   bool
	dones   chan func()
	hold    bool
	held    []func()
	failErr error
	commits int
	ranges  [][2]storage.SeqNum // every OpDeleteRange, in order
	appends []storage.Record    // every OpAppend's record, in order
	cursors map[storage.QueueID]storage.SeqNum
}

func newFakeStore() *fakeStore {
	return &fakeStore{meta: map[string][]byte{}, msgs: map[storage.QueueID]map[storage.SeqNum][]byte{},
		paged: map[storage.QueueID]map[storage.SeqNum][]byte{}}
}

func metaKey(k storage.Kind, key []byte) string { return string(append([]byte{byte(k)}, key...)) }

func (s *fakeStore) Commit(ops []storage.Op, sync bool, done func(error)) {
	s.mu.Lock()
	if s.failErr != nil {
		s.mu.Unlock()
		if done != nil {
			done(s.failErr)
		}
		return
	}
	s.commits++
	for _, op := range ops {
		if op.Kind == storage.OpDeleteRange {
			s.ranges = append(s.ranges, [2]storage.SeqNum{op.Seq, op.End})
		}
		space := s.msgs
		if op.Paged {
			space = s.paged
		}
		switch op.Kind {
		case storage.OpAppend:
			s.appends = append(s.appends, op.Rec)
			m := space[op.Queue]
			if m == nil {
				m = map[storage.SeqNum][]byte{}
				space[op.Queue] = m
			}
			b := make([]byte, op.Rec.Size())
			op.Rec.MarshalTo(b)
			m[op.Seq] = b
		case storage.OpDelete:
			delete(space[op.Queue], op.Seq)
		case storage.OpDeleteRange:
			for k := range space[op.Queue] {
				if k >= op.Seq && k < op.End {
					delete(space[op.Queue], k)
				}
			}
			if !op.Paged && op.Seq < op.End {
				if s.cursors == nil {
					s.cursors = map[storage.QueueID]storage.SeqNum{}
				}
				s.cursors[op.Queue] = max(s.cursors[op.Queue], op.End)
			}
		case storage.OpDropQueue:
			delete(space, op.Queue)
		case storage.OpPutMeta:
			b := make([]byte, op.Rec.Size())
			op.Rec.MarshalTo(b)
			s.meta[metaKey(op.Meta, op.Key)] = b
		case storage.OpDeleteMeta:
			delete(s.meta, metaKey(op.Meta, op.Key))
		}
	}
	if sync && s.hold && done != nil {
		s.held = append(s.held, func() { done(nil) })
		s.mu.Unlock()
		return
	}
	if s.async && done != nil {
		if s.dones == nil {
			s.dones = make(chan func(), 1<<16)
			go func() {
				for f := range s.dones {
					f()
				}
			}()
		}
		s.dones <- func() { done(nil) }
		s.mu.Unlock()
		return
	}
	s.mu.Unlock()
	if done != nil {
		done(nil)
	}
}

// release completes held synced commits.
func (s *fakeStore) release() {
	s.mu.Lock()
	h := s.held
	s.held, s.hold = nil, false
	s.mu.Unlock()
	for _, f := range h {
		f()
	}
}

func (s *fakeStore) ScanMeta(k storage.Kind, fn func(key, value []byte) error) error {
	s.mu.Lock()
	var keys []string
	for key := range s.meta {
		if key[0] == byte(k) {
			keys = append(keys, key)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, key := range keys {
		vals[i] = s.meta[key]
	}
	s.mu.Unlock()
	for i, key := range keys {
		if err := fn([]byte(key[1:]), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) ScanQueue(q storage.QueueID, from storage.SeqNum, paged bool, fn func(storage.SeqNum, []byte) error) error {
	s.mu.Lock()
	var seqs []storage.SeqNum
	for k := range s.msgs[q] {
		if k >= from && (paged || k >= s.cursors[q]) {
			seqs = append(seqs, k)
		}
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	vals := make([][]byte, len(seqs))
	for i, k := range seqs {
		vals[i] = s.msgs[q][k]
	}
	s.mu.Unlock()
	for i, k := range seqs {
		if err := fn(k, vals[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *fakeStore) Get(q storage.QueueID, seq storage.SeqNum, paged bool) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	space := s.msgs
	if paged {
		space = s.paged
	}
	if b, ok := space[q][seq]; ok {
		return bytes.Clone(b), nil
	}
	return nil, storage.ErrNotFound
}

func (s *fakeStore) count(q storage.QueueID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs[q])
}

func (s *fakeStore) pagedCount(q storage.QueueID) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.paged[q])
}

func (s *fakeStore) Pending() int64 { return 0 }

// Cursor implements storage.Store: range deletes move it, as in the real
// stores, and ScanQueue starts there.
func (s *fakeStore) Cursor(q storage.QueueID) storage.SeqNum {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cursors[q]
}
func (s *fakeStore) Close() error { return nil }

var _ = binary.BigEndian
