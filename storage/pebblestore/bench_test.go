package pebblestore

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/storetest"
)

const benchMsgSize = 1024

// benchBody is incompressible, like libraries.md §4.7's payloads.
var benchBody = func() storage.Bytes {
	b := make([]byte, benchMsgSize)
	r := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}()

// benchRec is benchBody as a Record, boxed once so that -benchmem shows
// the store's allocations, not the benchmark's.
var benchRec storage.Record = benchBody

func benchOpen(b *testing.B) *Store {
	b.Helper()
	s, err := Open(b.TempDir(), Options{}) // the real disk, default sizes
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func reportRate(b *testing.B, s *Store) {
	el := b.Elapsed().Seconds()
	b.ReportMetric(float64(b.N)/el, "msg/s")
	if n := s.batches.Load(); n > 0 {
		b.ReportMetric(float64(b.N)/float64(n), "msg/batch")
	}
}

func closeBench(b *testing.B, s *Store) {
	if err := s.Close(); err != nil {
		b.Fatal(err)
	}
}

// BenchmarkCommitSyncParallel: many goroutines, each committing one
// persistent 1 KiB message with sync and waiting for its done, as
// goroutine-per-connection publishers would.
func BenchmarkCommitSyncParallel(b *testing.B) {
	for _, goroutines := range []int{64, 256} {
		b.Run(fmt.Sprint("goroutines=", goroutines), func(b *testing.B) {
			s := benchOpen(b)
			defer closeBench(b, s)
			var queues atomic.Uint64
			b.SetBytes(benchMsgSize)
			b.ReportAllocs()
			b.SetParallelism((goroutines + 1) / 2) // × GOMAXPROCS (2 here)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				q := storage.QueueID(queues.Add(1))
				ch := make(chan error, 1)
				done := func(err error) { ch <- err }
				ops := make([]storage.Op, 1)
				for seq := storage.SeqNum(1); pb.Next(); seq++ {
					ops[0] = storage.Append(q, seq, benchRec)
					s.Commit(ops, true, done)
					if err := <-ch; err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			reportRate(b, s)
		})
	}
}

// BenchmarkCommitSyncPipelined: one submitter keeps a window of synced
// one-message Commits in flight and moves on as dones arrive, as an event
// loop publishing for many connections does.
func BenchmarkCommitSyncPipelined(b *testing.B) {
	for _, window := range []int{128, 1024} {
		b.Run(fmt.Sprint("inflight=", window), func(b *testing.B) {
			s := benchOpen(b)
			defer closeBench(b, s)
			sem := make(chan struct{}, window)
			var failed atomic.Bool
			done := func(err error) {
				if err != nil {
					failed.Store(true)
				}
				<-sem
			}
			// One ops slice per slot: the store owns it until done runs.
			ops := make([][]storage.Op, window)
			for i := range ops {
				ops[i] = make([]storage.Op, 1)
			}
			b.SetBytes(benchMsgSize)
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				sem <- struct{}{}
				o := ops[i%window]
				o[0] = storage.Append(1, storage.SeqNum(i+1), benchRec)
				s.Commit(o, true, done)
			}
			for range window {
				sem <- struct{}{}
			}
			b.StopTimer()
			if failed.Load() {
				b.Fatal("a commit failed")
			}
			reportRate(b, s)
		})
	}
}

var errChunk = errors.New("chunk full")

// BenchmarkConsumeDeleteRange: a consumer reads a backlog of 1 KiB
// messages 100 at a time with ScanQueue (a new iterator per chunk, from the
// position after the last chunk) and acknowledges each chunk with one
// NoSync DeleteRange, as the router's ack coalescing does.
func BenchmarkConsumeDeleteRange(b *testing.B) {
	const chunk, round = 100, 100_000
	s := benchOpen(b)
	defer closeBench(b, s)
	b.SetBytes(benchMsgSize)
	b.ReportAllocs()
	b.StopTimer()
	var next storage.SeqNum = 1 // first unconsumed
	var appended storage.SeqNum
	var sum int
	for left := b.N; left > 0; {
		n := min(left, round)
		left -= n
		// Preload n messages, untimed.
		var wg sync.WaitGroup
		for start := appended + 1; start <= appended+storage.SeqNum(n); start += 1000 {
			var ops []storage.Op
			for seq := start; seq < start+1000 && seq <= appended+storage.SeqNum(n); seq++ {
				ops = append(ops, storage.Append(1, seq, benchBody))
			}
			wg.Add(1)
			s.Commit(ops, false, func(error) { wg.Done() })
		}
		wg.Wait()
		appended += storage.SeqNum(n)
		storetest.MustCommit(b, s, true)

		b.StartTimer()
		for next <= appended {
			got := 0
			var last storage.SeqNum
			err := s.ScanQueue(1, next, false, func(seq storage.SeqNum, v []byte) error {
				sum += int(v[0])
				last = seq
				got++
				if got == chunk {
					return errChunk
				}
				return nil
			})
			if err != nil && !errors.Is(err, errChunk) {
				b.Fatal(err)
			}
			if got == 0 {
				b.Fatalf("queue empty at %d of %d", next, appended)
			}
			s.Commit([]storage.Op{storage.DeleteRange(1, next, last+1)}, false, nil)
			next = last + 1
		}
		b.StopTimer()
	}
	storetest.MustCommit(b, s, true)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msg/s")
	_ = sum
}

// BenchmarkCommitNoSyncPipelined is the NoSync ceiling of the same
// pipeline, for comparison (4096 Commits in flight).
func BenchmarkCommitNoSyncPipelined(b *testing.B) {
	const window = 4096
	s := benchOpen(b)
	defer closeBench(b, s)
	sem := make(chan struct{}, window)
	done := func(error) { <-sem }
	ops := make([][]storage.Op, window)
	for i := range ops {
		ops[i] = make([]storage.Op, 1)
	}
	b.SetBytes(benchMsgSize)
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		sem <- struct{}{}
		o := ops[i%window]
		o[0] = storage.Append(1, storage.SeqNum(i+1), benchRec)
		s.Commit(o, false, done)
	}
	storetest.MustCommit(b, s, true)
	b.StopTimer()
	reportRate(b, s)
}
