// Package pebblestore is Junction's durable storage.Store, on Pebble
// (github.com/cockroachdb/pebble/v2). It is the only package that imports
// Pebble; nothing of Pebble shows in its exported API. It imports storage
// and Pebble, never the router or a protocol.
//
// # Key layout
//
// One Pebble database per node. Every key starts with a byte naming its
// family; integers are big-endian so that byte order is numeric order and a
// queue is one contiguous key range.
//
//	'q' | queueID (8 B) | seq (8 B)   durable message     value: the record
//	'p' | queueID (8 B) | seq (8 B)   paged message       value: the record
//	'c' | queueID (8 B)               durable cursor      value: seq (8 B)
//	'm' | kind (1 B) | key            metadata record     value: the record
//	'v'                               format version      value: "1"
//
// Queue q's durable messages are the range ['q'|q|0, 'q'|q|MaxSeq); the
// paged space mirrors it under 'p'. Metadata of one Kind is the range
// ['m'|kind, 'm'|kind+1), in key order. The value bytes are what the
// router's storage.Record wrote; the store never looks inside.
//
// # Cursors
//
// A range delete of an acknowledged prefix leaves a range tombstone that
// every iterator starting below it must step over until a compaction
// drops it (libraries.md §4.4 measured 10 ms per head seek over 1 000 of
// them, 1 µs from the cursor). So OpDeleteRange also writes the queue's
// cursor 'c'|q = End in the same batch when End is past the current one,
// and ScanQueue starts at max(from, cursor): no scan reads the tombstones.
// OpDropQueue deletes the whole range and the cursor. The store keeps every
// cursor in memory too (loaded at Open), so a scan costs no extra read.
// Paged cursors live only in memory, because the paged space does not
// survive a restart.
//
// # Commits
//
// Commit appends its request to a pending list under a mutex and wakes the
// committer goroutine; it never blocks on disk. The committer takes
// everything pending, and writes it into one Pebble batch (records are
// marshalled straight into the batch with SetDeferred), cut at
// Options.MaxBatchOps ops or Options.MaxBatchBytes bytes, but never inside
// one Commit, which is always one batch and so atomic. The batch is synced
// if any of its Commits asked for sync. It is applied with
// DB.ApplyNoSyncWait and handed to the completer goroutine, which waits for
// its fsync (Batch.SyncWait) and then runs the dones of its Commits in
// order. Meanwhile the committer builds and writes the next batch, so the
// WAL fsync of one batch overlaps the writing of the next, and everything
// that arrives during one fsync shares the next (group commit). At most
// pipelineDepth batches are in flight; after that the committer waits and
// Pending grows, which is the router's signal to stop granting credit.
//
// # Failures
//
// A write or sync error fails every Commit of that batch (done gets an
// error wrapping storage.ErrFailed and the cause) and puts the store in the
// failed state: every later Commit fails the same way without touching
// Pebble, and batches already in flight behind the failed one are not
// acknowledged either, whatever their own outcome, since nothing is
// acknowledged over a disk whose state is unknown. Reads keep working and
// may show ops of failed Commits: Pebble makes a batch visible before its
// fsync.
//
// Pebble reports some errors through Logger.Fatalf (a commit pipeline error
// in DB.Apply: "pebble: fatal commit error") or plain panics (a WAL write
// error seen by the next commit in DB.commitWrite panics while holding the
// commit pipeline's mutex; a MANIFEST write or sync error in a flush or
// compaction calls Fatalf on Pebble's own goroutine). Pebble's default
// logger exits the process there. This store's logger routes Pebble's
// Infof to slog at Debug, Errorf at Error, and turns Fatalf into the failed
// state followed by a panic. The committer recovers panics from Apply: the
// process survives, the batch fails, and the store stays failed. Because
// such a panic can leave Pebble's commit mutex held, Close then does not
// call DB.Close (it would deadlock) and leaves the database open until the
// process exits. A Fatalf on one of Pebble's background goroutines is not
// recoverable there; the panic ends the process after the store has been
// marked failed and the error logged, which is the fail-stop Pebble itself
// would do. To stay out of those paths, the store watches its filesystem
// (watchFS): the first error writing or syncing a WAL or MANIFEST file
// fails the store at once, on Pebble's flusher goroutine, so the committer
// normally hands Pebble nothing more, and the failed batch's SyncWait
// returns the error cleanly. A batch already on its way into Pebble at that
// moment can still meet the error inside Pebble: its panic is recovered as
// above, but if it needs a new WAL (memtable rotation), Pebble's
// rotateWAL panics with its mutex unlocked and the deferred unlock turns
// that into a runtime fatal error that no recover can catch. So after a
// disk error, expect at worst the process to stop and at best Close to
// leave Pebble open; the broker should exit either way, and Pebble's WAL
// replay recovers at the next start.
//
// # Durability
//
// done(nil) for a synced Commit runs after the WAL fsync that covers it.
// NoSync Commits are written to the WAL and made durable by the next synced
// batch or by Close (Pebble syncs the WAL when it closes). Recovery is
// Pebble's WAL replay at Open; then the paged space is cleared with one
// range delete.
//
// # Build
//
// Pebble compiles the DataDog zstd C library when cgo is on. Pure-Go builds
// use CGO_ENABLED=0 (no tag needed) or, with cgo on (as -race requires),
// the build tag pebblegozstd. Both work; the store never compresses with
// zstd itself (Pebble's default table compression is Snappy).
package pebblestore
