package pebblestore

import (
	"testing"

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
