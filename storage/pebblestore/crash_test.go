package pebblestore

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/storetest"
)

// crashQueues is how many queues the crash test spreads its commits over.
const crashQueues = 4

// crashCommit returns global commit g (g ≥ 1) of the crash test: message g
// goes to queue g%crashQueues+1, the counter records g, and every 16th
// commit also acknowledges its queue's prefix up to g-8.
func crashCommit(g uint64) []storage.Op {
	q := storage.QueueID(g%crashQueues + 1)
	ops := []storage.Op{
		storage.Append(q, storage.SeqNum(g), storage.Bytes(fmt.Sprintf("m%d", g))),
		storage.PutMeta(storage.KindCounter, []byte("last"), storage.Bytes(strconv.FormatUint(g, 10))),
	}
	if g%16 == 0 && g > 8 {
		ops = append(ops, storage.DeleteRange(q, 0, storage.SeqNum(g-8)))
	}
	return ops
}

// crashState returns what ScanQueue shows for each queue after commits
// 1..k of crashCommit.
func crashState(k uint64) map[storage.QueueID][]storetest.Msg {
	cursor := map[storage.QueueID]storage.SeqNum{}
	out := map[storage.QueueID][]storetest.Msg{}
	for g := uint64(1); g <= k; g++ {
		q := storage.QueueID(g%crashQueues + 1)
		out[q] = append(out[q], storetest.Msg{Seq: storage.SeqNum(g), Value: fmt.Sprintf("m%d", g)})
		if g%16 == 0 && g > 8 {
			cursor[q] = storage.SeqNum(g - 8)
		}
	}
	for q, ms := range out {
		i := 0
		for i < len(ms) && ms[i].Seq < cursor[q] {
			i++
		}
		out[q] = ms[i:]
	}
	return out
}

// TestCrashKeepsSyncedCommits commits from several goroutines into a store
// on a crashable in-memory filesystem, takes a crash clone while commits
// are in flight (keeping a random half of the unsynced data), and reopens
// the clone: every commit acknowledged with sync must be there, and what
// is there must be exactly a prefix of the commits, in order.
func TestCrashKeepsSyncedCommits(t *testing.T) {
	for seed := range uint64(4) {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) { crashRound(t, seed) })
	}
}

func crashRound(t *testing.T, seed uint64) {
	fs := vfs.NewCrashableMem()
	s := mustOpen(t, "db", smallOpts(fs))

	var (
		mu        sync.Mutex // orders global commit numbers with Commit calls
		next      uint64
		ackMu     sync.Mutex
		maxSynced uint64 // highest g acknowledged with sync
		acks      int
	)
	enough := make(chan struct{})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				ch := make(chan error, 1)
				mu.Lock()
				next++
				g := next
				sync := g%3 != 0
				s.Commit(crashCommit(g), sync, func(err error) { ch <- err })
				mu.Unlock()
				select {
				case err := <-ch:
					if err != nil {
						t.Errorf("commit %d: %v", g, err)
						return
					}
				case <-time.After(storetest.Timeout):
					t.Errorf("commit %d: done did not run", g)
					return
				}
				if sync {
					ackMu.Lock()
					maxSynced = max(maxSynced, g)
					acks++
					if acks == 1500 {
						close(enough)
					}
					ackMu.Unlock()
				}
			}
		}()
	}
	select {
	case <-enough:
	case <-time.After(storetest.Timeout):
		t.Fatal("writers did not make progress")
	}
	// Everything acknowledged so far was synced before this point.
	ackMu.Lock()
	acked := maxSynced
	ackMu.Unlock()
	crashed := fs.CrashClone(vfs.CrashCloneCfg{UnsyncedDataPercent: 50, RNG: rand.New(rand.NewPCG(seed, 42))})
	close(stop)
	wg.Wait()
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	r := mustOpen(t, "db", smallOpts(crashed))
	defer r.Close()
	counter := storetest.ScanMeta(t, r, storage.KindCounter)
	if len(counter) != 1 {
		t.Fatalf("counter after crash: %v", counter)
	}
	k, err := strconv.ParseUint(counter[0].Value, 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	if k < acked {
		t.Fatalf("recovered up to commit %d, but commit %d was acknowledged with sync", k, acked)
	}
	want := crashState(k)
	for q := storage.QueueID(1); q <= crashQueues; q++ {
		got := storetest.Scan(t, r, q, 0, false)
		if fmt.Sprint(got) != fmt.Sprint(want[q]) {
			t.Fatalf("queue %d after recovering commits 1..%d:\n got %v\nwant %v", q, k, got, want[q])
		}
	}
	t.Logf("acknowledged (synced) up to %d, issued %d, recovered %d", acked, next, k)
}
