package pebblestore

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"
	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/storetest"
)

// lockedBuffer collects log output from any goroutine.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// walFault injects errorfs.ErrInjected into the given operations on WAL
// files once it is switched on.
type walFault struct {
	on    atomic.Bool
	kinds map[errorfs.OpKind]bool
	hits  atomic.Int64
}

func (f *walFault) String() string { return "walFault" }

func (f *walFault) MaybeError(op errorfs.Op) error {
	if f.on.Load() && f.kinds[op.Kind] && strings.HasSuffix(op.Path, ".log") {
		f.hits.Add(1)
		return errorfs.ErrInjected
	}
	return nil
}

// TestDiskErrorNeverAcks makes the WAL fail while commits are in flight,
// then checks what every store must: done gets an error wrapping
// storage.ErrFailed, no Commit after the first failure gets done(nil), the
// store stays failed, and Close returns instead of hanging.
func TestDiskErrorNeverAcks(t *testing.T) {
	for _, c := range []struct {
		name   string
		kinds  []errorfs.OpKind
		nosync int  // every nosync-th commit is NoSync (0: none)
		wedge  bool // no watchFS: Pebble must panic in its commit path
	}{
		{"sync", []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}, 0, false},
		{"write", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}, 0, false},
		{"write-nosync", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}, 2, false},
		{"sync-nosync", []errorfs.OpKind{errorfs.OpFileSync, errorfs.OpFileSyncData, errorfs.OpFileSyncTo}, 2, false},
		// Mostly NoSync and without watchFS: Pebble's WAL writer records
		// the write error, and the next NoSync commit makes Pebble panic
		// in its commit path, holding its commit mutex; the store
		// recovers the panic.
		{"write-mostly-nosync", []errorfs.OpKind{errorfs.OpFileWrite, errorfs.OpFileWriteAt}, 1000, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			fault := &walFault{kinds: map[errorfs.OpKind]bool{}}
			for _, k := range c.kinds {
				fault.kinds[k] = true
			}
			var logs lockedBuffer
			opts := smallOpts(errorfs.Wrap(vfs.NewMem(), fault))
			opts.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			opts.noWatch = c.wedge
			s := mustOpen(t, "db", opts)
			diskErrorRound(t, s, fault, c.nosync, c.wedge)
			// Elsewhere the committer may also have applied a batch behind
			// the failing one before the failure was known, with the same
			// panic: wedged is possible in every case.
			if c.wedge && !s.wedged.Load() {
				// Timing: Pebble's WAL writer had not noticed the failed
				// write before the last (synced) commit did. The store's
				// promises were checked all the same.
				t.Logf("Pebble did not panic in its commit path this run; the recovery path was not exercised")
			}
			t.Logf("wedged: %v", s.wedged.Load())
			if !strings.Contains(logs.String(), "storage failed") {
				t.Errorf("the failure was not logged; log:\n%s", logs.String())
			}
		})
	}
}

func diskErrorRound(t *testing.T, s *Store, fault *walFault, nosync int, early bool) {
	const n = 3000
	// The fault starts once commit faultAt is acknowledged. Without
	// watchFS the fault must come while Pebble's first memtable (256 KiB)
	// has room: a memtable rotation over a failed WAL panics inside Pebble
	// with its mutex state broken, a runtime fatal error nothing recovers.
	faultAt, total := n/3, n
	if early {
		// Without watchFS the store learns of the failure only when Pebble
		// panics, and until its WAL writer has noticed, commits keep
		// landing in the memtable: everything must fit in the first
		// memtable whatever the timing (420 × 512 B), or a rotation over
		// the failed WAL is the fatal error above (seen in CI under load).
		faultAt, total = 20, 420
	}
	type outcome struct {
		err  error
		sync bool
	}
	var (
		mu       sync.Mutex // orders commit numbers with Commit calls
		next     int
		outcomes [n]outcome
		ran      [n]atomic.Int32
		wg       sync.WaitGroup
	)
	wg.Add(total)
	body := bytes.Repeat([]byte{'x'}, 512)
	for w := range 4 {
		window := make(chan struct{}, 16) // commits in flight per writer
		go func() {
			for {
				window <- struct{}{}
				mu.Lock()
				if next == total {
					mu.Unlock()
					return
				}
				i := next
				next++
				// The last is synced: it sees the failure if nothing else did.
				sync := nosync == 0 || i%nosync == 0 || i == total-1
				outcomes[i].sync = sync
				s.Commit([]storage.Op{storage.Append(storage.QueueID(w+1), storage.SeqNum(i+1), storage.Bytes(body))}, sync,
					func(err error) {
						outcomes[i].err = err
						ran[i].Add(1)
						if i == faultAt {
							fault.on.Store(true) // the disk breaks with commits in flight
						}
						<-window
						wg.Done()
					})
				mu.Unlock()
			}
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(storetest.Timeout):
		t.Fatal("dones did not all run")
	}
	if fault.hits.Load() == 0 {
		t.Fatal("no error was injected")
	}
	first := -1
	for i := range total {
		if c := ran[i].Load(); c != 1 {
			t.Fatalf("done of commit %d ran %d times", i, c)
		}
		err := outcomes[i].err
		if err != nil && !errors.Is(err, storage.ErrFailed) {
			t.Errorf("commit %d: %v, want an error wrapping ErrFailed", i, err)
		}
		if first < 0 && err != nil {
			first = i
		}
		if first >= 0 && err == nil {
			t.Fatalf("commit %d acknowledged after commit %d failed", i, first)
		}
	}
	if first < 0 {
		t.Fatal("no commit failed")
	}
	if first <= faultAt {
		t.Errorf("commit %d failed before the fault was switched on by commit %d's done", first, faultAt)
	}
	t.Logf("first failure at commit %d of %d (fault on after commit %d): %v", first, total, faultAt, outcomes[first].err)

	select {
	case <-s.Failed():
	default:
		t.Error("Failed() not closed after a disk error: the broker would keep running")
	}
	// Failed for good, even with the disk healthy again.
	fault.on.Store(false)
	for _, sync := range []bool{true, false} {
		if err := storetest.Commit(t, s, sync, storage.Append(9, 1, storage.Bytes("after"))); !errors.Is(err, storage.ErrFailed) {
			t.Errorf("Commit(sync=%v) after the failure: %v, want ErrFailed", sync, err)
		}
	}
	if err := storetest.Commit(t, s, true); !errors.Is(err, storage.ErrFailed) {
		t.Errorf("barrier after the failure: %v, want ErrFailed", err)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	select {
	case err := <-closed:
		if !errors.Is(err, storage.ErrFailed) {
			t.Errorf("Close of a failed store: %v, want ErrFailed", err)
		}
	case <-time.After(storetest.Timeout):
		t.Fatal("Close hung on a failed store")
	}
}

// TestFatalfFailsStore checks the logger's Fatalf: it fails the store and
// panics, and the panic is what the committer recovers.
func TestFatalfFailsStore(t *testing.T) {
	s := mustOpen(t, "db", smallOpts(vfs.NewMem()))
	defer s.Close()
	func() {
		defer func() {
			r := recover()
			if _, ok := r.(fatalError); !ok {
				t.Errorf("Fatalf panicked with %v, want a fatalError", r)
			}
		}()
		pebbleLogger{s}.Fatalf("boom %d", 1)
	}()
	err := storetest.Commit(t, s, true, storage.Append(1, 1, storage.Bytes("x")))
	if !errors.Is(err, storage.ErrFailed) || !strings.Contains(err.Error(), "boom 1") {
		t.Errorf("Commit after Fatalf: %v, want ErrFailed with the fatal message", err)
	}
}

// TestFaultOption checks Options.Fault, the hook that tests outside this
// package inject disk faults with: it sees the WAL's writes and fsyncs, a
// failed fsync fails the store, and the directory opened again without
// the hook still holds what was acknowledged before.
func TestFaultOption(t *testing.T) {
	dir := t.TempDir()
	var on atomic.Bool
	var writes, syncs atomic.Int64
	fault := func(op FileOp, path string) error {
		if !strings.HasSuffix(path, ".log") {
			return nil
		}
		switch op {
		case FileWrite:
			writes.Add(1)
		case FileSync:
			syncs.Add(1)
			if on.Load() {
				return errorfs.ErrInjected
			}
		}
		return nil
	}
	opts := smallOpts(nil)
	opts.Fault = fault
	s := mustOpen(t, dir, opts)
	storetest.MustCommit(t, s, true, storage.Append(1, 1, storage.Bytes("acked")))
	if writes.Load() == 0 || syncs.Load() == 0 {
		t.Fatalf("Fault saw %d WAL writes and %d syncs, want both", writes.Load(), syncs.Load())
	}
	on.Store(true)
	if err := storetest.Commit(t, s, true, storage.Append(1, 2, storage.Bytes("lost"))); !errors.Is(err, storage.ErrFailed) {
		t.Fatalf("Commit over a failing fsync: %v, want ErrFailed", err)
	}
	select {
	case <-s.Failed():
	default:
		t.Fatal("Failed() not closed after a failed fsync")
	}
	if err := s.Close(); !errors.Is(err, storage.ErrFailed) {
		t.Fatalf("Close: %v, want ErrFailed", err)
	}
	s = mustOpen(t, dir, smallOpts(nil))
	defer s.Close()
	got, err := s.Get(1, 1, false)
	if err != nil || string(got) != "acked" {
		t.Fatalf("after reopening: %q, %v; want the acknowledged record", got, err)
	}
}
