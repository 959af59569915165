package pebblestore

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/junction-broker/junction/storage"
)

// Defaults for the zero Options, sized for an edge broker
// (libraries.md §4.5).
const (
	DefaultMemTableSize  = 32 << 20
	DefaultCacheSize     = 64 << 20
	DefaultMaxBatchOps   = 4096
	DefaultMaxBatchBytes = 4 << 20
)

// pipelineDepth is how many batches may be written and waiting for their
// fsync at once.
const pipelineDepth = 4

// Options configures Open. The zero value is usable.
type Options struct {
	// Logger receives the store's and Pebble's messages. nil discards them.
	Logger *slog.Logger
	// MemTableSize is the size of Pebble's memtable; up to three may be in
	// memory at once. 0 means DefaultMemTableSize.
	MemTableSize int64
	// CacheSize is the size of Pebble's block cache. 0 means
	// DefaultCacheSize.
	CacheSize int64
	// MaxBatchOps and MaxBatchBytes cap one group-commit batch (a single
	// Commit bigger than that is still one batch). 0 means the defaults.
	MaxBatchOps   int
	MaxBatchBytes int
	// Fault, if not nil, is asked before every write and fsync of a file
	// in the store's directory, from Pebble's goroutines (so it must be
	// safe for concurrent use); an error it returns fails that operation
	// without doing it, as a failing disk would, and on a WAL or MANIFEST
	// file fails the store. It is for tests outside this package that
	// inject disk faults (the interop suite); nil in production.
	Fault func(op FileOp, path string) error

	// fs replaces the operating system's filesystem in tests (crash
	// cloning, error injection).
	fs vfs.FS
	// noWatch leaves out watchFS, so tests can drive Pebble into its own
	// error paths.
	noWatch bool
}

// Store is a storage.Store on a Pebble database. Every method is safe from
// any goroutine. See the package doc for the key layout and the commit
// pipeline.
type Store struct {
	db   *pebble.DB
	log  *slog.Logger
	opts Options

	// mu guards the pending list and the closing flag.
	mu      sync.Mutex
	pending []request
	closing bool
	wake    chan struct{} // cap 1: pending is not empty, or closing

	pendingBytes atomic.Int64
	batches      atomic.Int64 // batches applied, for tests and benchmarks

	// failure, once set, is the error every later Commit fails with.
	failure  atomic.Pointer[error]
	failedCh chan struct{} // closed on entering the failed state
	// wedged is set when a panic out of Pebble's commit path was recovered:
	// Pebble may hold its commit mutex, so Close must not call DB.Close.
	wedged atomic.Bool

	// cursors holds every queue's cursor (durable and paged). The committer
	// is its only writer; readers take curMu for reading.
	curMu   sync.RWMutex
	cursors map[cursorKey]storage.SeqNum

	// ranges merges the range deletes of the batch being built; the
	// committer's.
	ranges rangeMerger

	// readMu keeps reads and Close apart: reads hold it for reading, Close
	// for writing once it closes the database.
	readMu   sync.RWMutex
	dbClosed bool

	free     chan *flight // flights ready for the committer
	flights  chan *flight // committer → completer, in commit order
	finished chan struct{}
}

type cursorKey struct {
	q     storage.QueueID
	paged bool
}

// request is one Commit.
type request struct {
	ops  []storage.Op
	sync bool
	done func(error)
	size int64 // bytes counted in Pending
	err  error // set by Commit for invalid ops: nothing is written
}

// ErrInvalidOp is what done gets for a Commit holding an op the store
// does not know; the Commit writes nothing, and the store does not fail.
var ErrInvalidOp = errors.New("pebblestore: invalid op")

// Open opens (creating if needed) the store in dir, replays Pebble's WAL,
// loads the cursors, clears the paged space and starts the committer.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	if opts.MemTableSize <= 0 {
		opts.MemTableSize = DefaultMemTableSize
	}
	if opts.CacheSize <= 0 {
		opts.CacheSize = DefaultCacheSize
	}
	if opts.MaxBatchOps <= 0 {
		opts.MaxBatchOps = DefaultMaxBatchOps
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = DefaultMaxBatchBytes
	}
	s := &Store{
		failedCh: make(chan struct{}),
		log:      opts.Logger,
		opts:     opts,
		wake:     make(chan struct{}, 1),
		cursors:  map[cursorKey]storage.SeqNum{},
		free:     make(chan *flight, pipelineDepth),
		flights:  make(chan *flight, pipelineDepth),
		finished: make(chan struct{}),
	}
	fs := opts.fs
	if fs == nil {
		fs = vfs.Default
	}
	if opts.Fault != nil {
		fs = errorfs.Wrap(fs, faultInjector(opts.Fault))
	}
	if !opts.noWatch {
		fs = watchFS{FS: fs, s: s}
	}
	po := &pebble.Options{
		FS:                 fs,
		MemTableSize:       uint64(opts.MemTableSize),
		CacheSize:          opts.CacheSize,
		FormatMajorVersion: pebble.FormatNewest,
		Logger:             pebbleLogger{s},
		EventListener:      s.eventListener(),
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("pebblestore: open %s: %w", dir, err)
	}
	s.db = db
	if err := s.load(); err != nil {
		return nil, errors.Join(fmt.Errorf("pebblestore: open %s: %w", dir, err), db.Close())
	}
	for range pipelineDepth {
		// Keep a full batch's buffer across Resets: growing it again for
		// every big batch would cost an allocation and a copy each time.
		retain := opts.MaxBatchBytes + opts.MaxBatchBytes/4
		s.free <- &flight{batch: db.NewBatch(pebble.WithInitialSizeBytes(64<<10), pebble.WithMaxRetainedSizeBytes(retain))}
	}
	go s.commitLoop()
	go s.completeLoop()
	return s, nil
}

// load checks the format version, loads the durable cursors and clears
// the paged space. Pebble has replayed its WAL by then.
func (s *Store) load() error {
	v, closer, err := s.db.Get([]byte{prefixVersion})
	switch {
	case errors.Is(err, pebble.ErrNotFound):
		if err := s.db.Set([]byte{prefixVersion}, []byte(formatVersion), pebble.Sync); err != nil {
			return fmt.Errorf("writing the format version: %w", err)
		}
	case err != nil:
		return fmt.Errorf("reading the format version: %w", err)
	default:
		got := string(v)
		_ = closer.Close()
		if got != formatVersion {
			return fmt.Errorf("unknown store format %q (this build knows %q)", got, formatVersion)
		}
	}

	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixCursor}, UpperBound: []byte{prefixCursor + 1}})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) != cursorKeyLen || len(v) != 8 {
			_ = it.Close()
			return fmt.Errorf("corrupt cursor %x = %x", k, v)
		}
		q := storage.QueueID(binary.BigEndian.Uint64(k[1:]))
		s.cursors[cursorKey{q: q}] = storage.SeqNum(binary.BigEndian.Uint64(v))
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("loading cursors: %w", err)
	}

	it, err = s.db.NewIter(&pebble.IterOptions{LowerBound: []byte{prefixPaged}, UpperBound: []byte{prefixPaged + 1}})
	if err != nil {
		return err
	}
	found := it.First()
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("checking the paged space: %w", err)
	}
	if found {
		if err := s.db.DeleteRange([]byte{prefixPaged}, []byte{prefixPaged + 1}, pebble.Sync); err != nil {
			return fmt.Errorf("clearing the paged space: %w", err)
		}
		s.log.Info("cleared paged messages of the previous run")
	}
	return nil
}

// Commit implements storage.Store. It never blocks: the request joins the
// pending list and the committer is woken. The store owns ops and their
// records until done runs; records are marshalled on the committer
// goroutine.
func (s *Store) Commit(ops []storage.Op, sync bool, done func(error)) {
	var size int64
	var invalid error
	for i := range ops {
		if ops[i].Kind < storage.OpAppend || ops[i].Kind > storage.OpDropQueue {
			invalid = fmt.Errorf("%w: op %d has kind %d", ErrInvalidOp, i, ops[i].Kind)
		}
		size += opSize(&ops[i])
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		if done != nil {
			go done(fmt.Errorf("pebblestore: commit: %w", storage.ErrClosed))
		}
		return
	}
	s.pending = append(s.pending, request{ops: ops, sync: sync, done: done, size: size, err: invalid})
	s.mu.Unlock()
	s.pendingBytes.Add(size)
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// opSize is what an op adds to a batch, roughly: key, value and the
// batch's per-entry header.
func opSize(op *storage.Op) int64 {
	n := int64(msgKeyLen + 8)
	switch op.Kind {
	case storage.OpAppend:
		if op.Rec != nil {
			n += int64(op.Rec.Size())
		}
	case storage.OpPutMeta:
		n += int64(len(op.Key))
		if op.Rec != nil {
			n += int64(op.Rec.Size())
		}
	case storage.OpDeleteMeta:
		n += int64(len(op.Key))
	case storage.OpDeleteRange, storage.OpDropQueue:
		n += msgKeyLen + cursorKeyLen + 8
	}
	return n
}

// Pending implements storage.Store: bytes handed to Commit whose done has
// not run yet.
func (s *Store) Pending() int64 { return s.pendingBytes.Load() }

// err returns the failed state's error, or nil.
func (s *Store) err() error {
	if p := s.failure.Load(); p != nil {
		return *p
	}
	return nil
}

// fail puts the store in the failed state (once) with cause.
func (s *Store) fail(cause error) {
	err := fmt.Errorf("pebblestore: %w: %w", storage.ErrFailed, cause)
	if s.failure.CompareAndSwap(nil, &err) {
		s.log.Error("storage failed; every later commit fails until restart", "err", cause)
		close(s.failedCh)
	}
}

// Failed returns a channel closed when the store enters the failed state:
// it acknowledges nothing from then on, and the process should stop and
// let the next start recover from the write-ahead log. Safe from any
// goroutine.
func (s *Store) Failed() <-chan struct{} { return s.failedCh }

// Cursor implements storage.Store.
func (s *Store) Cursor(q storage.QueueID) storage.SeqNum { return s.cursor(q, false) }

// cursor returns q's cursor in the given space.
func (s *Store) cursor(q storage.QueueID, paged bool) storage.SeqNum {
	s.curMu.RLock()
	defer s.curMu.RUnlock()
	return s.cursors[cursorKey{q, paged}]
}

// ScanMeta implements storage.Store. It reads a consistent snapshot; key
// and value alias Pebble's buffers and are valid only during fn. fn must
// not call Close.
func (s *Store) ScanMeta(k storage.Kind, fn func(key, value []byte) error) error {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return fmt.Errorf("pebblestore: scan meta: %w", storage.ErrClosed)
	}
	lower, upper := metaBounds(k)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("pebblestore: scan meta kind=%d: %w", k, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("pebblestore: scan meta kind=%d: %w", k, err)
		}
		if err := fn(it.Key()[metaKeyBase:], v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("pebblestore: scan meta kind=%d: %w", k, err)
	}
	return nil
}

// ScanQueue implements storage.Store. It iterates a snapshot from
// max(from, cursor), so it never steps over the tombstones of acknowledged
// prefixes. value aliases Pebble's buffers and is valid only during fn. fn
// must not call Close.
func (s *Store) ScanQueue(q storage.QueueID, from storage.SeqNum, paged bool, fn func(seq storage.SeqNum, value []byte) error) error {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return fmt.Errorf("pebblestore: scan q=%d: %w", q, storage.ErrClosed)
	}
	// The cursor is read before the iterator takes its snapshot: anything
	// below a later cursor is deleted in that snapshot too.
	from = max(from, s.cursor(q, paged))
	var lower, upper [msgKeyLen]byte
	putMsgKey(lower[:], paged, q, from)
	putMsgKey(upper[:], paged, q, storage.MaxSeq)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lower[:], UpperBound: upper[:]})
	if err != nil {
		return fmt.Errorf("pebblestore: scan q=%d: %w", q, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			_ = it.Close()
			return fmt.Errorf("pebblestore: scan q=%d: %w", q, err)
		}
		if err := fn(msgSeq(it.Key()), v); err != nil {
			_ = it.Close()
			return err
		}
	}
	if err := errors.Join(it.Error(), it.Close()); err != nil {
		return fmt.Errorf("pebblestore: scan q=%d: %w", q, err)
	}
	return nil
}

// Get implements storage.Store. The returned slice is the caller's.
func (s *Store) Get(q storage.QueueID, seq storage.SeqNum, paged bool) ([]byte, error) {
	s.readMu.RLock()
	defer s.readMu.RUnlock()
	if s.dbClosed {
		return nil, fmt.Errorf("pebblestore: get q=%d seq=%d: %w", q, seq, storage.ErrClosed)
	}
	var key [msgKeyLen]byte
	putMsgKey(key[:], paged, q, seq)
	v, closer, err := s.db.Get(key[:])
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, fmt.Errorf("pebblestore: get q=%d seq=%d: %w", q, seq, storage.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("pebblestore: get q=%d seq=%d: %w", q, seq, err)
	}
	out := make([]byte, len(v))
	copy(out, v)
	return out, closer.Close()
}

// Close implements storage.Store: it stops taking Commits, commits what is
// pending with sync, runs every done, and closes Pebble. It returns an
// error wrapping storage.ErrFailed if the store failed, and
// storage.ErrClosed if it was closed before. It must not be called from a
// done callback or a scan callback.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return fmt.Errorf("pebblestore: close: %w", storage.ErrClosed)
	}
	s.closing = true
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	<-s.finished

	s.readMu.Lock()
	s.dbClosed = true
	s.readMu.Unlock()
	failed := s.err()
	if s.wedged.Load() {
		s.log.Error("not closing Pebble after a panic in its commit path; the database stays open until the process exits")
		return failed
	}
	for range pipelineDepth {
		f := <-s.free
		_ = f.batch.Close()
	}
	if err := s.db.Close(); err != nil {
		return errors.Join(failed, fmt.Errorf("pebblestore: close: %w", err))
	}
	return failed
}

var _ storage.Store = (*Store)(nil)
