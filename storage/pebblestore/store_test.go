package pebblestore

import (
	"cmp"
	"slices"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/storetest"
)

// smallOpts keeps test stores small and makes the conformance suite's big
// commits cross the batch caps and Pebble's large-batch threshold.
func smallOpts(fs vfs.FS) Options {
	return Options{MemTableSize: 4 << 20, CacheSize: 8 << 20, MaxBatchOps: 64, MaxBatchBytes: 64 << 10, fs: fs}
}

func mustOpen(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t testing.TB) storage.Store {
		return mustOpen(t, t.TempDir(), smallOpts(nil))
	})
}

func TestConformanceMemFS(t *testing.T) {
	storetest.Run(t, func(t testing.TB) storage.Store {
		return mustOpen(t, "db", smallOpts(vfs.NewMem()))
	})
}

func TestConformancePersistent(t *testing.T) {
	storetest.RunPersistent(t, func(t testing.TB, dir string) storage.Store {
		return mustOpen(t, dir, smallOpts(nil))
	})
}

// droppable is a storage.Droppable record for TestDroppedAppendsAreNotWritten.
type droppable struct {
	storage.Bytes
	dropped bool
}

func (d droppable) Dropped() bool { return d.dropped }

// TestDroppedAppendsAreNotWritten: an append whose record reports Dropped
// when the committer reaches it is skipped, and its synced Commit still
// completes; the others in the batch are written.
func TestDroppedAppendsAreNotWritten(t *testing.T) {
	s := mustOpen(t, t.TempDir(), smallOpts(nil))
	defer s.Close()
	done := make(chan error, 1)
	s.Commit([]storage.Op{
		storage.Append(1, 1, droppable{Bytes: storage.Bytes("gone"), dropped: true}),
		storage.Append(1, 2, droppable{Bytes: storage.Bytes("kept")}),
		storage.Append(1, 3, storage.Bytes("plain")),
	}, true, func(err error) { done <- err })
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("commit: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("commit not done after 10s")
	}
	if b, err := s.Get(1, 1, false); err == nil {
		t.Errorf("dropped append was written: %q", b)
	}
	for seq, want := range map[storage.SeqNum]string{2: "kept", 3: "plain"} {
		if b, err := s.Get(1, seq, false); err != nil || string(b) != want {
			t.Errorf("Get(1, %d) = %q, %v; want %q", seq, b, err, want)
		}
	}
}

// TestRangeMergerJoinsContinuingRanges: range deletes of one batch that
// continue each other become one per queue and space; a gap, or another
// queue, starts another; empty ones vanish.
func TestRangeMergerJoinsContinuingRanges(t *testing.T) {
	var m rangeMerger
	m.reset()
	var got []storage.Op
	emit := func(op *storage.Op) error { got = append(got, *op); return nil }
	for _, op := range []storage.Op{
		storage.DeleteRange(1, 0, 5),
		storage.DeleteRange(1, 5, 9),
		storage.DeleteRange(2, 3, 4),
		storage.DeleteRange(1, 9, 9), // empty
		storage.DeleteRange(1, 9, 12),
		{Kind: storage.OpDeleteRange, Paged: true, Queue: 1, Seq: 12, End: 20},
		storage.DeleteRange(1, 15, 16), // a gap: 12..15 still stored
		storage.DeleteRange(2, 4, 6),
	} {
		if err := m.add(&op, emit); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.flush(emit); err != nil {
		t.Fatal(err)
	}
	type r struct {
		q          storage.QueueID
		paged      bool
		from, till storage.SeqNum
	}
	var rs []r
	for _, op := range got {
		rs = append(rs, r{op.Queue, op.Paged, op.Seq, op.End})
	}
	slices.SortFunc(rs, func(a, b r) int {
		return cmp.Or(cmp.Compare(a.q, b.q), cmp.Compare(btoi(a.paged), btoi(b.paged)), cmp.Compare(a.from, b.from))
	})
	want := []r{{1, false, 0, 12}, {1, false, 15, 16}, {1, true, 12, 20}, {2, false, 3, 6}}
	if !slices.Equal(rs, want) {
		t.Fatalf("merged ranges %v, want %v", rs, want)
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
