// Package storetest is the conformance suite for storage.Store: every store
// runs Run, and stores that keep data across Close also run RunPersistent.
// A store's own tests (crash, error injection, benchmarks) live beside it.
//
// The suite holds stores to the contract in package storage and to two
// things the contract implies and the router relies on: done callbacks run
// in Commit order, and Pending returns to 0 once every done has run.
//
// Every wait in the suite has a deadline (Timeout), so a store that loses a
// callback fails the test instead of hanging it.
package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/junction-broker/junction/storage"
)

// Timeout bounds every wait of the suite for a done callback or a Close.
var Timeout = 20 * time.Second

// Run runs the conformance suite. open returns a new, empty store for each
// subtest; the suite closes it.
func Run(t *testing.T, open func(t testing.TB) storage.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s storage.Store)
	}{
		{"AppendScanGet", testAppendScanGet},
		{"RecordMarshal", testRecordMarshal},
		{"Delete", testDelete},
		{"DeleteRange", testDeleteRange},
		{"CursorSkipsBelow", testCursorSkipsBelow},
		{"DropQueue", testDropQueue},
		{"PagedSpace", testPagedSpace},
		{"Meta", testMeta},
		{"ScanErrors", testScanErrors},
		{"CommitOrder", testCommitOrder},
		{"AtomicLargeCommit", testAtomicLargeCommit},
		{"Barrier", testBarrier},
		{"DoneNotInsideCommit", testDoneNotInsideCommit},
		{"DoneOnce", testDoneOnce},
		{"CloseCommitsPending", testCloseCommitsPending},
		{"CommitAfterClose", testCommitAfterClose},
		{"Concurrent", testConcurrent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := open(t)
			t.Cleanup(func() { _ = s.Close() })
			tc.fn(t, s)
		})
	}
}

// RunPersistent runs the checks that need a store to outlive Close. open
// opens (or reopens) the store kept in dir; each subtest gets its own dir
// and closes what it opens.
func RunPersistent(t *testing.T, open func(t testing.TB, dir string) storage.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, reopen func() storage.Store)
	}{
		{"Reopen", testReopen},
		{"ReopenCursor", testReopenCursor},
		{"ReopenDropQueue", testReopenDropQueue},
		{"ReopenPagedEmpty", testReopenPagedEmpty},
		{"ReopenNoSyncThenClose", testReopenNoSyncThenClose},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			var cur storage.Store
			t.Cleanup(func() {
				if cur != nil {
					_ = cur.Close()
				}
			})
			tc.fn(t, func() storage.Store {
				if cur != nil {
					if err := closeWait(cur); err != nil {
						t.Fatalf("Close: %v", err)
					}
				}
				cur = open(t, dir)
				return cur
			})
		})
	}
}

// Commit commits ops and waits for done, failing t if done does not run
// within Timeout. It returns done's error.
func Commit(t testing.TB, s storage.Store, sync bool, ops ...storage.Op) error {
	t.Helper()
	ch := make(chan error, 1)
	s.Commit(ops, sync, func(err error) { ch <- err })
	select {
	case err := <-ch:
		return err
	case <-time.After(Timeout):
		t.Fatalf("done did not run within %v", Timeout)
		return nil
	}
}

// MustCommit is Commit that fails t on an error.
func MustCommit(t testing.TB, s storage.Store, sync bool, ops ...storage.Op) {
	t.Helper()
	if err := Commit(t, s, sync, ops...); err != nil {
		t.Fatalf("Commit: %v", err)
	}
}

// Msg is one message as ScanQueue returned it.
type Msg struct {
	Seq   storage.SeqNum
	Value string
}

// Scan returns the messages ScanQueue(q, from, paged) yields.
func Scan(t testing.TB, s storage.Store, q storage.QueueID, from storage.SeqNum, paged bool) []Msg {
	t.Helper()
	var out []Msg
	if err := s.ScanQueue(q, from, paged, func(seq storage.SeqNum, v []byte) error {
		out = append(out, Msg{seq, string(v)})
		return nil
	}); err != nil {
		t.Fatalf("ScanQueue(q=%d, from=%d, paged=%v): %v", q, from, paged, err)
	}
	return out
}

// KV is one metadata record as ScanMeta returned it.
type KV struct{ Key, Value string }

// ScanMeta returns the records ScanMeta(k) yields.
func ScanMeta(t testing.TB, s storage.Store, k storage.Kind) []KV {
	t.Helper()
	var out []KV
	if err := s.ScanMeta(k, func(key, v []byte) error {
		out = append(out, KV{string(key), string(v)})
		return nil
	}); err != nil {
		t.Fatalf("ScanMeta(%d): %v", k, err)
	}
	return out
}

func val(q storage.QueueID, seq storage.SeqNum) string { return fmt.Sprintf("q%d-m%d", q, seq) }

func appends(q storage.QueueID, from, to storage.SeqNum) []storage.Op {
	var ops []storage.Op
	for seq := from; seq <= to; seq++ {
		ops = append(ops, storage.Append(q, seq, storage.Bytes(val(q, seq))))
	}
	return ops
}

func msgs(q storage.QueueID, seqs ...storage.SeqNum) []Msg {
	var out []Msg
	for _, seq := range seqs {
		out = append(out, Msg{seq, val(q, seq)})
	}
	return out
}

func span(from, to storage.SeqNum) []storage.SeqNum {
	var out []storage.SeqNum
	for seq := from; seq <= to; seq++ {
		out = append(out, seq)
	}
	return out
}

func paged(op storage.Op) storage.Op {
	op.Paged = true
	return op
}

func wantScan(t testing.TB, s storage.Store, q storage.QueueID, from storage.SeqNum, isPaged bool, want []Msg) {
	t.Helper()
	if diff := cmp.Diff(want, Scan(t, s, q, from, isPaged)); diff != "" {
		t.Errorf("ScanQueue(q=%d, from=%d, paged=%v) (-want +got):\n%s", q, from, isPaged, diff)
	}
}

func wantGet(t testing.TB, s storage.Store, q storage.QueueID, seq storage.SeqNum, isPaged bool, want string) {
	t.Helper()
	got, err := s.Get(q, seq, isPaged)
	if err != nil {
		t.Errorf("Get(q=%d, seq=%d, paged=%v): %v", q, seq, isPaged, err)
		return
	}
	if string(got) != want {
		t.Errorf("Get(q=%d, seq=%d, paged=%v) = %q, want %q", q, seq, isPaged, got, want)
	}
}

func wantNotFound(t testing.TB, s storage.Store, q storage.QueueID, seq storage.SeqNum, isPaged bool) {
	t.Helper()
	got, err := s.Get(q, seq, isPaged)
	if !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("Get(q=%d, seq=%d, paged=%v) = %q, %v; want ErrNotFound", q, seq, isPaged, got, err)
	}
}

// closeWait closes s, failing if Close takes longer than Timeout.
func closeWait(s storage.Store) error {
	ch := make(chan error, 1)
	go func() { ch <- s.Close() }()
	select {
	case err := <-ch:
		return err
	case <-time.After(Timeout):
		return fmt.Errorf("storetest: Close did not return within %v", Timeout)
	}
}

func testAppendScanGet(t *testing.T, s storage.Store) {
	MustCommit(t, s, true, appends(1, 1, 10)...)
	MustCommit(t, s, false, appends(2, 5, 7)...)
	// A queue ID whose bytes end in 0xff must not spill into the next one.
	MustCommit(t, s, true, appends(0xff, 1, 2)...)
	MustCommit(t, s, true, appends(0x100, 1, 2)...)
	MustCommit(t, s, true, storage.Append(3, storage.MaxSeq-1, storage.Bytes("last")))

	wantScan(t, s, 1, 0, false, msgs(1, span(1, 10)...))
	wantScan(t, s, 1, 4, false, msgs(1, span(4, 10)...))
	wantScan(t, s, 1, 10, false, msgs(1, 10))
	wantScan(t, s, 1, 11, false, nil)
	wantScan(t, s, 2, 0, false, msgs(2, 5, 6, 7))
	wantScan(t, s, 0xff, 0, false, msgs(0xff, 1, 2))
	wantScan(t, s, 0x100, 0, false, msgs(0x100, 1, 2))
	wantScan(t, s, 3, 0, false, []Msg{{storage.MaxSeq - 1, "last"}})
	wantScan(t, s, 4, 0, false, nil)

	wantGet(t, s, 1, 3, false, val(1, 3))
	wantGet(t, s, 2, 7, false, val(2, 7))
	wantGet(t, s, 3, storage.MaxSeq-1, false, "last")
	wantNotFound(t, s, 1, 11, false)
	wantNotFound(t, s, 2, 4, false)
	wantNotFound(t, s, 9, 1, false)
	wantNotFound(t, s, 1, 3, true)

	// Get returns a copy.
	b, err := s.Get(1, 3, false)
	if err != nil {
		t.Fatal(err)
	}
	clear(b)
	wantGet(t, s, 1, 3, false, val(1, 3))

	// Overwriting a message replaces it.
	MustCommit(t, s, true, storage.Append(1, 3, storage.Bytes("again")))
	wantGet(t, s, 1, 3, false, "again")

	// Empty records are records.
	MustCommit(t, s, true, storage.Append(5, 1, storage.Bytes(nil)), storage.PutMeta(storage.KindQueue, []byte("e"), storage.Bytes{}))
	wantScan(t, s, 5, 0, false, []Msg{{1, ""}})
	wantGet(t, s, 5, 1, false, "")
	if diff := cmp.Diff([]KV{{"e", ""}}, ScanMeta(t, s, storage.KindQueue)); diff != "" {
		t.Errorf("ScanMeta (-want +got):\n%s", diff)
	}
}

// checkedRecord fails the test unless MarshalTo gets exactly Size bytes.
type checkedRecord struct {
	t    testing.TB
	body []byte
}

func (r checkedRecord) Size() int { return len(r.body) }

func (r checkedRecord) MarshalTo(dst []byte) {
	if len(dst) != len(r.body) {
		r.t.Errorf("MarshalTo got %d bytes, Size is %d", len(dst), len(r.body))
	}
	copy(dst, r.body)
}

func testRecordMarshal(t *testing.T, s storage.Store) {
	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	MustCommit(t, s, true,
		storage.Append(1, 1, checkedRecord{t, []byte("small")}),
		storage.Append(1, 2, checkedRecord{t, big}),
		storage.PutMeta(storage.KindExchange, []byte("x"), checkedRecord{t, []byte("meta")}),
	)
	wantGet(t, s, 1, 1, false, "small")
	wantGet(t, s, 1, 2, false, string(big))
	if diff := cmp.Diff([]KV{{"x", "meta"}}, ScanMeta(t, s, storage.KindExchange)); diff != "" {
		t.Errorf("ScanMeta (-want +got):\n%s", diff)
	}
}

func testDelete(t *testing.T, s storage.Store) {
	MustCommit(t, s, true, appends(1, 1, 5)...)
	MustCommit(t, s, false, storage.Delete(1, 2), storage.Delete(1, 4), storage.Delete(1, 9), storage.Delete(7, 1))
	wantScan(t, s, 1, 0, false, msgs(1, 1, 3, 5))
	wantNotFound(t, s, 1, 2, false)
	// Point deletes do not move the cursor: the head is still visible.
	MustCommit(t, s, true, storage.Delete(1, 1))
	wantScan(t, s, 1, 0, false, msgs(1, 3, 5))
	// Append and delete in one Commit: the later op wins.
	MustCommit(t, s, true, storage.Append(1, 6, storage.Bytes("x")), storage.Delete(1, 6))
	wantNotFound(t, s, 1, 6, false)
	MustCommit(t, s, true, storage.Delete(1, 7), storage.Append(1, 7, storage.Bytes(val(1, 7))))
	wantScan(t, s, 1, 0, false, msgs(1, 3, 5, 7))
}

func testDeleteRange(t *testing.T, s storage.Store) {
	MustCommit(t, s, true, appends(1, 1, 20)...)
	MustCommit(t, s, true, appends(2, 1, 3)...)
	MustCommit(t, s, false, storage.DeleteRange(1, 1, 6))
	wantScan(t, s, 1, 0, false, msgs(1, span(6, 20)...))
	wantNotFound(t, s, 1, 5, false)
	wantGet(t, s, 1, 6, false, val(1, 6))
	// A scan from below the cursor starts at the cursor; from above, at from.
	wantScan(t, s, 1, 3, false, msgs(1, span(6, 20)...))
	wantScan(t, s, 1, 15, false, msgs(1, span(15, 20)...))
	wantScan(t, s, 2, 0, false, msgs(2, 1, 2, 3))

	// Ranges are end-exclusive; a range ending below the cursor changes nothing.
	MustCommit(t, s, true, storage.DeleteRange(1, 6, 10), storage.DeleteRange(1, 0, 8))
	wantScan(t, s, 1, 0, false, msgs(1, span(10, 20)...))
	// Empty and inverted ranges are no-ops: they do not move the cursor.
	MustCommit(t, s, true, storage.DeleteRange(1, 12, 12), storage.DeleteRange(2, 3, 1))
	wantScan(t, s, 1, 0, false, msgs(1, span(10, 20)...))
	wantScan(t, s, 2, 0, false, msgs(2, 1, 2, 3))

	// Range deletes and appends in one Commit, in op order.
	MustCommit(t, s, true, append(appends(1, 21, 25), storage.DeleteRange(1, 0, 23))...)
	wantScan(t, s, 1, 0, false, msgs(1, 23, 24, 25))
	// Everything gone: the queue is empty but keeps taking appends.
	MustCommit(t, s, true, storage.DeleteRange(1, 0, 26))
	wantScan(t, s, 1, 0, false, nil)
	MustCommit(t, s, true, appends(1, 26, 27)...)
	wantScan(t, s, 1, 0, false, msgs(1, 26, 27))
	// Up to MaxSeq clears every message.
	MustCommit(t, s, true, storage.DeleteRange(2, 0, storage.MaxSeq))
	wantScan(t, s, 2, 0, false, nil)
	wantNotFound(t, s, 2, 1, false)
}

// testCursorSkipsBelow pins the cursor rule: scans start at the cursor even
// if something below it was left (the router never leaves anything; the
// rule is what lets a store skip the tombstones).
func testCursorSkipsBelow(t *testing.T, s storage.Store) {
	MustCommit(t, s, true, appends(1, 1, 10)...)
	MustCommit(t, s, true, storage.DeleteRange(1, 5, 8))
	wantScan(t, s, 1, 0, false, msgs(1, 8, 9, 10))
	wantScan(t, s, 1, 2, false, msgs(1, 8, 9, 10))
	wantScan(t, s, 1, 9, false, msgs(1, 9, 10))
	// The cursor never moves back.
	MustCommit(t, s, true, storage.DeleteRange(1, 0, 3))
	wantScan(t, s, 1, 0, false, msgs(1, 8, 9, 10))
}

func testDropQueue(t *testing.T, s storage.Store) {
	MustCommit(t, s, true, appends(1, 1, 10)...)
	MustCommit(t, s, true, appends(2, 1, 3)...)
	MustCommit(t, s, true, paged(storage.Append(1, 1, storage.Bytes("p"))))
	MustCommit(t, s, true, storage.DeleteRange(1, 0, 5))
	MustCommit(t, s, false, storage.DropQueue(1))
	wantScan(t, s, 1, 0, false, nil)
	wantNotFound(t, s, 1, 7, false)
	wantScan(t, s, 2, 0, false, msgs(2, 1, 2, 3))
	wantGet(t, s, 1, 1, true, "p") // the paged space is separate
	// The cursor went with the queue: new messages from seq 1 are seen.
	MustCommit(t, s, true, appends(1, 1, 2)...)
	wantScan(t, s, 1, 0, false, msgs(1, 1, 2))
	// Drop and refill in one Commit.
	MustCommit(t, s, true, append([]storage.Op{storage.DeleteRange(1, 0, 3), storage.DropQueue(1)}, appends(1, 1, 1)...)...)
	wantScan(t, s, 1, 0, false, msgs(1, 1))
	// Dropping an unknown queue is fine.
	MustCommit(t, s, true, storage.DropQueue(99))
}

func testPagedSpace(t *testing.T, s storage.Store) {
	var ops []storage.Op
	for _, op := range appends(1, 1, 6) {
		ops = append(ops, paged(op))
	}
	MustCommit(t, s, false, ops...)
	MustCommit(t, s, true, storage.Append(1, 1, storage.Bytes("durable")))
	wantScan(t, s, 1, 0, true, msgs(1, span(1, 6)...))
	wantScan(t, s, 1, 0, false, []Msg{{1, "durable"}})
	wantGet(t, s, 1, 2, true, val(1, 2))
	wantGet(t, s, 1, 1, false, "durable")
	wantNotFound(t, s, 1, 2, false)

	MustCommit(t, s, false, paged(storage.Delete(1, 2)), paged(storage.DeleteRange(1, 0, 2)))
	wantScan(t, s, 1, 0, true, msgs(1, 3, 4, 5, 6))
	wantScan(t, s, 1, 0, false, []Msg{{1, "durable"}})
	// The paged cursor is the paged space's own.
	MustCommit(t, s, false, paged(storage.DeleteRange(1, 3, 5)))
	wantScan(t, s, 1, 0, true, msgs(1, 5, 6))
	MustCommit(t, s, true, appends(1, 2, 3)...)
	wantScan(t, s, 1, 0, false, []Msg{{1, "durable"}, {2, val(1, 2)}, {3, val(1, 3)}})

	MustCommit(t, s, false, paged(storage.DropQueue(1)))
	wantScan(t, s, 1, 0, true, nil)
	wantScan(t, s, 1, 0, false, []Msg{{1, "durable"}, {2, val(1, 2)}, {3, val(1, 3)}})
}

func testMeta(t *testing.T, s storage.Store) {
	put := func(k storage.Kind, key, v string) storage.Op {
		return storage.PutMeta(k, []byte(key), storage.Bytes(v))
	}
	MustCommit(t, s, true,
		put(storage.KindExchange, "b", "1"),
		put(storage.KindExchange, "a", "2"),
		put(storage.KindExchange, "a\x00", "3"),
		put(storage.KindExchange, "a\xff", "4"),
		put(storage.KindExchange, "", "5"),
		put(storage.KindQueue, "a", "q"),
		put(storage.KindBinding, "\xff\xff", "bind"),
		put(storage.KindCounter, "\x00", "c"),
	)
	MustCommit(t, s, false, put(storage.KindVHost, "/", "v"))
	want := []KV{{"", "5"}, {"a", "2"}, {"a\x00", "3"}, {"a\xff", "4"}, {"b", "1"}}
	if diff := cmp.Diff(want, ScanMeta(t, s, storage.KindExchange)); diff != "" {
		t.Errorf("ScanMeta(exchange) (-want +got):\n%s", diff)
	}
	for _, c := range []struct {
		k    storage.Kind
		want []KV
	}{
		{storage.KindQueue, []KV{{"a", "q"}}},
		{storage.KindBinding, []KV{{"\xff\xff", "bind"}}},
		{storage.KindCounter, []KV{{"\x00", "c"}}},
		{storage.KindVHost, []KV{{"/", "v"}}},
		{storage.KindUser, nil},
		{storage.KindSession, nil},
		{storage.KindRetained, nil},
		{storage.Kind(0xff), nil},
	} {
		if diff := cmp.Diff(c.want, ScanMeta(t, s, c.k)); diff != "" {
			t.Errorf("ScanMeta(%d) (-want +got):\n%s", c.k, diff)
		}
	}
	// Overwrite, delete, delete of a missing key; later ops win.
	MustCommit(t, s, true,
		put(storage.KindExchange, "a", "2'"),
		storage.DeleteMeta(storage.KindExchange, []byte("b")),
		storage.DeleteMeta(storage.KindExchange, []byte("zz")),
		storage.DeleteMeta(storage.KindQueue, []byte("a")),
		put(storage.KindQueue, "a", "q'"),
		storage.DeleteMeta(storage.KindExchange, []byte("")),
	)
	want = []KV{{"a", "2'"}, {"a\x00", "3"}, {"a\xff", "4"}}
	if diff := cmp.Diff(want, ScanMeta(t, s, storage.KindExchange)); diff != "" {
		t.Errorf("ScanMeta(exchange) after updates (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]KV{{"a", "q'"}}, ScanMeta(t, s, storage.KindQueue)); diff != "" {
		t.Errorf("ScanMeta(queue) after updates (-want +got):\n%s", diff)
	}
	// Metadata and messages do not see each other.
	MustCommit(t, s, true, appends(1, 1, 1)...)
	wantScan(t, s, 1, 0, false, msgs(1, 1))
	if diff := cmp.Diff([]KV{{"a", "q'"}}, ScanMeta(t, s, storage.KindQueue)); diff != "" {
		t.Errorf("ScanMeta(queue) after append (-want +got):\n%s", diff)
	}
	// The caller may reuse the key slice once done ran.
	key := []byte("k1")
	MustCommit(t, s, true, storage.PutMeta(storage.KindUser, key, storage.Bytes("u")))
	copy(key, "k2")
	if diff := cmp.Diff([]KV{{"k1", "u"}}, ScanMeta(t, s, storage.KindUser)); diff != "" {
		t.Errorf("ScanMeta(user) (-want +got):\n%s", diff)
	}
}

func testScanErrors(t *testing.T, s storage.Store) {
	MustCommit(t, s, true, appends(1, 1, 5)...)
	MustCommit(t, s, true,
		storage.PutMeta(storage.KindQueue, []byte("a"), storage.Bytes("1")),
		storage.PutMeta(storage.KindQueue, []byte("b"), storage.Bytes("2")))
	stop := errors.New("stop")
	n := 0
	err := s.ScanQueue(1, 0, false, func(seq storage.SeqNum, _ []byte) error {
		n++
		if seq == 2 {
			return stop
		}
		return nil
	})
	if !errors.Is(err, stop) || n != 2 {
		t.Errorf("ScanQueue stopped after %d calls with %v; want 2 calls and the callback's error", n, err)
	}
	n = 0
	err = s.ScanMeta(storage.KindQueue, func(_, _ []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ScanMeta stopped after %d calls with %v; want 1 call and the callback's error", n, err)
	}
}

// testCommitOrder checks that Commits take effect in the order they were
// made and that their dones run in that order, whatever their sync flags.
func testCommitOrder(t *testing.T, s storage.Store) {
	const n = 500
	var mu sync.Mutex
	var order []int
	all := make(chan struct{})
	for i := range n {
		ops := []storage.Op{
			storage.PutMeta(storage.KindCounter, []byte("c"), storage.Bytes(fmt.Sprint(i))),
			storage.Append(1, storage.SeqNum(i+1), storage.Bytes(val(1, storage.SeqNum(i+1)))),
		}
		if i%3 == 2 {
			ops = append(ops, storage.DeleteRange(1, 0, storage.SeqNum(i)))
		}
		s.Commit(ops, i%7 == 0, func(err error) {
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
			mu.Lock()
			order = append(order, i)
			if len(order) == n {
				close(all)
			}
			mu.Unlock()
		})
	}
	waitClosed(t, all, "dones")
	for i, got := range order {
		if got != i {
			t.Fatalf("done %d ran in position %d; dones must run in Commit order", got, i)
		}
	}
	if diff := cmp.Diff([]KV{{"c", fmt.Sprint(n - 1)}}, ScanMeta(t, s, storage.KindCounter)); diff != "" {
		t.Errorf("last write must win (-want +got):\n%s", diff)
	}
	// The last range delete was at i = 497 (End 497), then appends 498..500.
	wantScan(t, s, 1, 0, false, msgs(1, span(497, n)...))
	if p := s.Pending(); p != 0 {
		t.Errorf("Pending() = %d after every done ran, want 0", p)
	}
}

// testAtomicLargeCommit commits more ops and bytes in one Commit than a
// store is likely to put in one batch; it still applies as one.
func testAtomicLargeCommit(t *testing.T, s storage.Store) {
	body := bytes.Repeat([]byte{'x'}, 1024)
	var ops []storage.Op
	for seq := storage.SeqNum(1); seq <= 10000; seq++ {
		ops = append(ops, storage.Append(1, seq, storage.Bytes(body)))
	}
	first := make(chan error, 1)
	s.Commit(appends(2, 1, 1), true, func(err error) { first <- err })
	MustCommit(t, s, true, ops...)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	n := 0
	if err := s.ScanQueue(1, 0, false, func(seq storage.SeqNum, v []byte) error {
		n++
		if seq != storage.SeqNum(n) || !bytes.Equal(v, body) {
			return fmt.Errorf("message %d: seq %d, %d bytes", n, seq, len(v))
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != 10000 {
		t.Fatalf("scanned %d messages, want 10000", n)
	}
}

func testBarrier(t *testing.T, s storage.Store) {
	var ran atomic.Int64
	for i := range 200 {
		s.Commit(appends(1, storage.SeqNum(i+1), storage.SeqNum(i+1)), i%2 == 0, func(error) { ran.Add(1) })
	}
	ch := make(chan int64, 1)
	s.Commit(nil, false, func(err error) {
		if err != nil {
			t.Errorf("barrier: %v", err)
		}
		ch <- ran.Load()
	})
	select {
	case got := <-ch:
		if got != 200 {
			t.Errorf("barrier's done ran after %d of 200 earlier dones", got)
		}
	case <-time.After(Timeout):
		t.Fatal("barrier's done did not run")
	}
	if n := len(Scan(t, s, 1, 0, false)); n != 200 {
		t.Errorf("after the barrier %d messages are visible, want 200", n)
	}
	// A synced barrier works too.
	MustCommit(t, s, true)
}

// testDoneNotInsideCommit holds a lock across Commit that done takes: a
// store that ran done inside Commit would deadlock the committing goroutine.
func testDoneNotInsideCommit(t *testing.T, s storage.Store) {
	var mu sync.Mutex
	ran := make(chan struct{}, 3)
	returned := make(chan struct{})
	go func() {
		mu.Lock()
		done := func(error) {
			mu.Lock()
			ran <- struct{}{}
			mu.Unlock()
		}
		s.Commit(appends(1, 1, 1), true, done)
		s.Commit(nil, false, done)
		s.Commit(appends(1, 2, 2), false, done)
		mu.Unlock()
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(Timeout):
		t.Fatal("Commit did not return: done ran inside Commit")
	}
	for range 3 {
		select {
		case <-ran:
		case <-time.After(Timeout):
			t.Fatal("done did not run")
		}
	}
	// After Close too.
	if err := closeWait(s); err != nil {
		t.Fatal(err)
	}
	got := make(chan error, 1)
	mu.Lock()
	s.Commit(appends(1, 3, 3), true, func(err error) {
		mu.Lock()
		got <- err
		mu.Unlock()
	})
	mu.Unlock()
	select {
	case err := <-got:
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Commit after Close: %v, want ErrClosed", err)
		}
	case <-time.After(Timeout):
		t.Fatal("done of a Commit after Close did not run")
	}
}

func testDoneOnce(t *testing.T, s storage.Store) {
	const n = 300
	counts := make([]atomic.Int32, n)
	for i := range n {
		var ops []storage.Op
		if i%5 != 0 {
			ops = appends(storage.QueueID(i%3+1), storage.SeqNum(i+1), storage.SeqNum(i+1))
		}
		if i%11 == 0 {
			s.Commit(ops, true, nil) // nil done is allowed
			counts[i].Add(1)
			continue
		}
		s.Commit(ops, i%2 == 0, func(err error) {
			if err != nil {
				t.Errorf("commit %d: %v", i, err)
			}
			counts[i].Add(1)
		})
	}
	if err := closeWait(s); err != nil {
		t.Fatal(err)
	}
	for i := range counts {
		if c := counts[i].Load(); c != 1 {
			t.Errorf("done of commit %d ran %d times", i, c)
		}
	}
}

func testCloseCommitsPending(t *testing.T, s storage.Store) {
	var ok atomic.Int64
	const n = 1000
	for i := range n {
		s.Commit(appends(1, storage.SeqNum(i+1), storage.SeqNum(i+1)), false, func(err error) {
			if err == nil {
				ok.Add(1)
			}
		})
	}
	if err := closeWait(s); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := ok.Load(); got != n {
		t.Errorf("%d of %d dones ran with nil before Close returned", got, n)
	}
}

func testCommitAfterClose(t *testing.T, s storage.Store) {
	MustCommit(t, s, true, appends(1, 1, 1)...)
	if err := closeWait(s); err != nil {
		t.Fatalf("Close: %v", err)
	}
	for _, sync := range []bool{true, false} {
		if err := Commit(t, s, sync, appends(1, 2, 2)...); !errors.Is(err, storage.ErrClosed) {
			t.Errorf("Commit(sync=%v) after Close: %v, want ErrClosed", sync, err)
		}
	}
	if err := Commit(t, s, true); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("empty Commit after Close: %v, want ErrClosed", err)
	}
	s.Commit(appends(1, 3, 3), true, nil) // must not panic
}

// testConcurrent commits from many goroutines at once (run with -race):
// each goroutine's Commits apply in its order, and nothing is lost.
func testConcurrent(t *testing.T, s storage.Store) {
	const writers, per = 16, 200
	var wg sync.WaitGroup
	errs := make(chan error, writers*per*2)
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			q := storage.QueueID(w + 1)
			var inner sync.WaitGroup
			for i := range per {
				seq := storage.SeqNum(i + 1)
				ops := appends(q, seq, seq)
				if i%10 == 9 {
					ops = append(ops, storage.DeleteRange(q, 0, seq-5))
				}
				ops = append(ops, storage.PutMeta(storage.KindQueue, fmt.Appendf(nil, "w%02d", w), storage.Bytes(fmt.Sprint(i))))
				inner.Add(1)
				s.Commit(ops, i%4 == 0, func(err error) {
					if err != nil {
						errs <- err
					}
					inner.Done()
				})
				if i%50 == 0 {
					if err := s.ScanQueue(q, 0, false, func(storage.SeqNum, []byte) error { return nil }); err != nil {
						errs <- err
					}
					_ = s.Pending()
				}
			}
			inner.Wait()
		}()
	}
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	waitClosed(t, finished, "concurrent commits")
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	for w := range writers {
		q := storage.QueueID(w + 1)
		// The last range delete was at i = 199 (seq 200): End 195.
		wantScan(t, s, q, 0, false, msgs(q, span(195, per)...))
	}
	var want []KV
	for w := range writers {
		want = append(want, KV{fmt.Sprintf("w%02d", w), fmt.Sprint(per - 1)})
	}
	if diff := cmp.Diff(want, ScanMeta(t, s, storage.KindQueue)); diff != "" {
		t.Errorf("ScanMeta (-want +got):\n%s", diff)
	}
	if p := s.Pending(); p != 0 {
		t.Errorf("Pending() = %d after every done ran, want 0", p)
	}
}

func waitClosed(t testing.TB, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(Timeout):
		t.Fatalf("%s did not finish within %v", what, Timeout)
	}
}

func testReopen(t *testing.T, reopen func() storage.Store) {
	s := reopen()
	MustCommit(t, s, true, appends(1, 1, 5)...)
	MustCommit(t, s, true, appends(2, 1, 2)...)
	MustCommit(t, s, true, storage.Delete(1, 3),
		storage.PutMeta(storage.KindVHost, []byte("/"), storage.Bytes("v")),
		storage.PutMeta(storage.KindQueue, []byte("q1"), storage.Bytes("1")),
		storage.PutMeta(storage.KindQueue, []byte("q2"), storage.Bytes("2")))
	MustCommit(t, s, true, storage.DeleteMeta(storage.KindQueue, []byte("q2")))
	s = reopen()
	wantScan(t, s, 1, 0, false, msgs(1, 1, 2, 4, 5))
	wantScan(t, s, 2, 0, false, msgs(2, 1, 2))
	wantGet(t, s, 1, 4, false, val(1, 4))
	wantNotFound(t, s, 1, 3, false)
	if diff := cmp.Diff([]KV{{"/", "v"}}, ScanMeta(t, s, storage.KindVHost)); diff != "" {
		t.Errorf("ScanMeta(vhost) (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]KV{{"q1", "1"}}, ScanMeta(t, s, storage.KindQueue)); diff != "" {
		t.Errorf("ScanMeta(queue) (-want +got):\n%s", diff)
	}
	// The reopened store takes commits and keeps them too.
	MustCommit(t, s, true, appends(1, 6, 6)...)
	s = reopen()
	wantScan(t, s, 1, 0, false, msgs(1, 1, 2, 4, 5, 6))
}

func testReopenCursor(t *testing.T, reopen func() storage.Store) {
	s := reopen()
	MustCommit(t, s, true, appends(1, 1, 10)...)
	MustCommit(t, s, true, appends(2, 1, 10)...)
	MustCommit(t, s, true, storage.DeleteRange(1, 5, 8), storage.DeleteRange(2, 0, 4))
	s = reopen()
	wantScan(t, s, 1, 0, false, msgs(1, 8, 9, 10))
	wantScan(t, s, 2, 0, false, msgs(2, span(4, 10)...))
	MustCommit(t, s, true, storage.DeleteRange(2, 0, 6), storage.DeleteRange(2, 0, 5))
	s = reopen()
	wantScan(t, s, 2, 0, false, msgs(2, span(6, 10)...))
	wantScan(t, s, 1, 0, false, msgs(1, 8, 9, 10))
}

func testReopenDropQueue(t *testing.T, reopen func() storage.Store) {
	s := reopen()
	MustCommit(t, s, true, appends(1, 1, 10)...)
	MustCommit(t, s, true, storage.DeleteRange(1, 0, 5))
	MustCommit(t, s, true, storage.DropQueue(1))
	s = reopen()
	wantScan(t, s, 1, 0, false, nil)
	MustCommit(t, s, true, appends(1, 1, 2)...)
	s = reopen()
	wantScan(t, s, 1, 0, false, msgs(1, 1, 2))
}

func testReopenPagedEmpty(t *testing.T, reopen func() storage.Store) {
	s := reopen()
	var ops []storage.Op
	for _, op := range appends(1, 1, 10) {
		ops = append(ops, paged(op))
	}
	MustCommit(t, s, true, ops...)
	MustCommit(t, s, true, appends(1, 1, 2)...)
	MustCommit(t, s, true, paged(storage.DeleteRange(1, 0, 3)))
	wantScan(t, s, 1, 0, true, msgs(1, span(3, 10)...))
	s = reopen()
	wantScan(t, s, 1, 0, true, nil)
	wantNotFound(t, s, 1, 5, true)
	wantScan(t, s, 1, 0, false, msgs(1, 1, 2))
	// The paged cursor went too: paging restarts from seq 1.
	MustCommit(t, s, false, paged(storage.Append(1, 1, storage.Bytes("again"))))
	wantScan(t, s, 1, 0, true, []Msg{{1, "again"}})
	s = reopen()
	wantScan(t, s, 1, 0, true, nil)
}

func testReopenNoSyncThenClose(t *testing.T, reopen func() storage.Store) {
	s := reopen()
	for i := range 100 {
		seq := storage.SeqNum(i + 1)
		s.Commit(appends(1, seq, seq), false, nil)
	}
	s.Commit([]storage.Op{storage.PutMeta(storage.KindCounter, []byte("n"), storage.Bytes("100"))}, false, nil)
	s = reopen() // Close commits what is pending, with sync
	wantScan(t, s, 1, 0, false, msgs(1, span(1, 100)...))
	if diff := cmp.Diff([]KV{{"n", "100"}}, ScanMeta(t, s, storage.KindCounter)); diff != "" {
		t.Errorf("ScanMeta (-want +got):\n%s", diff)
	}
}
