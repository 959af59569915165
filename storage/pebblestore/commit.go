package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/junction-broker/junction/storage"
)

// flight is one batch on its way through the pipeline: built and applied by
// the committer, then waited for and acknowledged by the completer. Flights
// are reused; there are pipelineDepth of them.
type flight struct {
	batch *pebble.Batch
	reqs  []request
	size  int64
	wait  bool  // the batch was applied with ApplyNoSyncWait: SyncWait before acking
	err   error // the batch failed before it reached the completer
}

// commitLoop is the committer goroutine: it takes everything pending, cuts
// it into batches, applies each and passes it to the completer in order.
// It returns once the store is closing and nothing is pending.
func (s *Store) commitLoop() {
	defer close(s.flights)
	var reqs []request
	scratch := map[cursorKey]storage.SeqNum{}
	for {
		s.mu.Lock()
		for len(s.pending) == 0 && !s.closing {
			s.mu.Unlock()
			<-s.wake
			s.mu.Lock()
		}
		reqs, s.pending = s.pending, reqs[:0]
		closing := s.closing
		s.mu.Unlock()
		if len(reqs) == 0 {
			return // closing, and everything is committed
		}
		for i := 0; i < len(reqs); {
			j := s.cut(reqs, i)
			f := <-s.free
			f.reqs = append(f.reqs[:0], reqs[i:j]...)
			s.write(f, closing, scratch)
			s.flights <- f
			i = j
		}
		clear(reqs) // drop the references to ops and dones
		if cap(reqs) > 1<<16 {
			reqs = nil // do not keep a burst's worth of pending list
		}
	}
}

// cut returns the end of the batch that starts at reqs[i]: at least one
// request, then as many as fit in MaxBatchOps and MaxBatchBytes.
func (s *Store) cut(reqs []request, i int) int {
	ops, bytes := len(reqs[i].ops), reqs[i].size
	j := i + 1
	for ; j < len(reqs); j++ {
		ops += len(reqs[j].ops)
		bytes += reqs[j].size
		if ops > s.opts.MaxBatchOps || bytes > int64(s.opts.MaxBatchBytes) {
			break
		}
	}
	return j
}

// write builds f's batch and applies it. closing forces a sync, since Close
// commits what is pending with sync. On return f.err is set if the batch
// failed, and f.wait if its fsync is still to be waited for.
func (s *Store) write(f *flight, closing bool, scratch map[cursorKey]storage.SeqNum) {
	f.size, f.wait, f.err = 0, false, nil
	sync := closing
	for i := range f.reqs {
		f.size += f.reqs[i].size
		sync = sync || f.reqs[i].sync
	}
	if err := s.err(); err != nil {
		f.err = err
		return
	}
	b := f.batch
	b.Reset()
	clear(scratch)
	ranges := &s.ranges
	ranges.reset()
	for i := range f.reqs {
		if f.reqs[i].err != nil {
			continue // rejected by Commit; only its done runs
		}
		for j := range f.reqs[i].ops {
			op := &f.reqs[i].ops[j]
			var err error
			switch {
			case op.Kind == storage.OpDeleteRange:
				err = ranges.add(op, func(op *storage.Op) error { return s.add(b, op, scratch) })
			case op.Kind == storage.OpDropQueue:
				// Whatever was merged for the queue goes before its drop,
				// which removes its cursor.
				if err = ranges.flush(func(op *storage.Op) error { return s.add(b, op, scratch) }); err == nil {
					err = s.add(b, op, scratch)
				}
			default:
				err = s.add(b, op, scratch)
			}
			if err != nil {
				f.err = fmt.Errorf("pebblestore: commit: %w", err)
				return
			}
		}
	}
	if err := ranges.flush(func(op *storage.Op) error { return s.add(b, op, scratch) }); err != nil {
		f.err = fmt.Errorf("pebblestore: commit: %w", err)
		return
	}
	if b.Empty() {
		if !sync {
			return // a barrier: nothing to write, nothing to wait for
		}
		// A synced barrier still makes earlier NoSync commits durable.
		if err := b.LogData(nil, nil); err != nil {
			f.err = fmt.Errorf("pebblestore: commit: %w", err)
			return
		}
	}
	if err := s.apply(b, sync); err != nil {
		s.fail(err)
		f.err = s.err()
		return
	}
	f.wait = sync
	s.batches.Add(1)
	if len(scratch) > 0 {
		s.curMu.Lock()
		for k, c := range scratch {
			if c == 0 {
				delete(s.cursors, k)
			} else {
				s.cursors[k] = c
			}
		}
		s.curMu.Unlock()
	}
}

// apply hands b to Pebble. A synced batch returns once it is in the WAL and
// visible; the completer waits for its fsync. A panic out of Pebble (its
// Fatalf, see pebbleLogger, or a WAL error it panics on) becomes an error
// and marks the store wedged.
func (s *Store) apply(b *pebble.Batch, sync bool) (err error) {
	defer func() {
		if r := recover(); r != nil {
			s.wedged.Store(true)
			err = fmt.Errorf("pebble panicked in commit: %v", r)
		}
	}()
	if sync {
		return s.db.ApplyNoSyncWait(b, pebble.Sync)
	}
	return s.db.Apply(b, pebble.NoSync)
}

// add writes op into b. scratch holds the cursors this batch has moved so
// far (0: dropped).
func (s *Store) add(b *pebble.Batch, op *storage.Op, scratch map[cursorKey]storage.SeqNum) error {
	switch op.Kind {
	case storage.OpAppend:
		if d, ok := op.Rec.(storage.Droppable); ok && d.Dropped() {
			return nil // consumed and acknowledged before it was written
		}
		size := 0
		if op.Rec != nil {
			size = op.Rec.Size()
		}
		d := b.SetDeferred(msgKeyLen, size)
		putMsgKey(d.Key, op.Paged, op.Queue, op.Seq)
		if op.Rec != nil {
			op.Rec.MarshalTo(d.Value)
		}
		return d.Finish()
	case storage.OpDelete:
		d := b.DeleteDeferred(msgKeyLen)
		putMsgKey(d.Key, op.Paged, op.Queue, op.Seq)
		return d.Finish()
	case storage.OpDeleteRange:
		if op.Seq >= op.End {
			return nil // empty: no messages and no cursor move
		}
		d := b.DeleteRangeDeferred(msgKeyLen, msgKeyLen)
		putMsgKey(d.Key, op.Paged, op.Queue, op.Seq)
		putMsgKey(d.Value, op.Paged, op.Queue, op.End)
		if err := d.Finish(); err != nil {
			return err
		}
		k := cursorKey{op.Queue, op.Paged}
		cur, ok := scratch[k]
		if !ok {
			cur = s.cursors[k] // the committer is the only writer: no lock needed to read
		}
		if op.End <= cur {
			return nil
		}
		scratch[k] = op.End
		if op.Paged {
			return nil // paged cursors live in memory only
		}
		d = b.SetDeferred(cursorKeyLen, 8)
		putCursorKey(d.Key, op.Queue)
		binary.BigEndian.PutUint64(d.Value, uint64(op.End))
		return d.Finish()
	case storage.OpDropQueue:
		d := b.DeleteRangeDeferred(msgKeyLen, msgKeyLen)
		putMsgKey(d.Key, op.Paged, op.Queue, 0)
		putMsgKey(d.Value, op.Paged, op.Queue, storage.MaxSeq)
		if err := d.Finish(); err != nil {
			return err
		}
		scratch[cursorKey{op.Queue, op.Paged}] = 0
		if op.Paged {
			return nil
		}
		d = b.DeleteDeferred(cursorKeyLen)
		putCursorKey(d.Key, op.Queue)
		return d.Finish()
	case storage.OpPutMeta:
		size := 0
		if op.Rec != nil {
			size = op.Rec.Size()
		}
		d := b.SetDeferred(metaKeyBase+len(op.Key), size)
		putMetaKey(d.Key, op.Meta, op.Key)
		if op.Rec != nil {
			op.Rec.MarshalTo(d.Value)
		}
		return d.Finish()
	case storage.OpDeleteMeta:
		d := b.DeleteDeferred(metaKeyBase + len(op.Key))
		putMetaKey(d.Key, op.Meta, op.Key)
		return d.Finish()
	}
	return fmt.Errorf("unknown op kind %d", op.Kind)
}

// completeLoop is the completer goroutine: for each flight, in commit
// order, it waits for the fsync if needed, then runs the dones. Once the
// committer has finished it returns, and Close may proceed.
func (s *Store) completeLoop() {
	defer close(s.finished)
	for f := range s.flights {
		err := f.err
		if err == nil && f.wait {
			if werr := f.batch.SyncWait(); werr != nil {
				s.fail(werr)
			}
		}
		if err == nil {
			// Also fails a batch that succeeded behind a failed one: nothing
			// is acknowledged once the disk's state is unknown.
			err = s.err()
		}
		if err != nil && !errors.Is(err, storage.ErrFailed) {
			s.fail(err)
			err = s.err()
		}
		s.pendingBytes.Add(-f.size)
		for i := range f.reqs {
			if d := f.reqs[i].done; d != nil {
				if r := f.reqs[i].err; r != nil {
					d(r)
				} else {
					d(err)
				}
			}
		}
		clear(f.reqs)
		s.free <- f
	}
}

// rangeMerger joins the range deletes of one batch that continue each
// other: a queue whose consumers acknowledge in order sends one
// DeleteRange [low, new low) per settled group, and a batch holds many of
// them. One tombstone instead of hundreds spares Pebble's memtable and
// flush the work of fragmenting them (and compactions the reading). The
// merged range goes into the batch after the ops that came between, which
// is safe: those are appends of higher sequence numbers, point deletes and
// metadata, never a key in the range.
type rangeMerger struct {
	open map[cursorKey]*storage.Op // the range being extended, per queue and space
	ops  []storage.Op              // backing for open's values
}

func (m *rangeMerger) reset() {
	if m.open == nil {
		m.open = map[cursorKey]*storage.Op{}
	}
	clear(m.open)
	m.ops = m.ops[:0]
}

// add extends the queue's open range with op when op starts where it ends,
// or else writes the open range (with emit) and opens op.
func (m *rangeMerger) add(op *storage.Op, emit func(*storage.Op) error) error {
	if op.Seq >= op.End {
		return nil // empty: no messages and no cursor move
	}
	k := cursorKey{op.Queue, op.Paged}
	if cur := m.open[k]; cur != nil {
		if op.Seq == cur.End {
			cur.End = op.End
			return nil
		}
		if err := emit(cur); err != nil {
			return err
		}
		*cur = *op
		return nil
	}
	if len(m.ops) == cap(m.ops) {
		// Growing would move the ops open points to: start a new backing
		// array; the old one stays referenced by open.
		m.ops = make([]storage.Op, 0, max(8, 2*cap(m.ops)))
	}
	m.ops = append(m.ops, *op)
	m.open[k] = &m.ops[len(m.ops)-1]
	return nil
}

// flush writes every open range with emit and closes them.
func (m *rangeMerger) flush(emit func(*storage.Op) error) error {
	for k, op := range m.open {
		if err := emit(op); err != nil {
			return err
		}
		delete(m.open, k)
	}
	return nil
}
