package memstore

import (
	"errors"
	"testing"
	"time"

	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/storetest"
)

func TestConformance(t *testing.T) {
	storetest.Run(t, func(testing.TB) storage.Store { return New() })
}

func TestFail(t *testing.T) {
	s := New()
	defer s.Close()
	storetest.MustCommit(t, s, true, storage.Append(1, 1, storage.Bytes("a")))
	cause := errors.New("disk on fire")
	s.Fail(cause)
	for _, sync := range []bool{true, false} {
		err := storetest.Commit(t, s, sync, storage.Append(1, 2, storage.Bytes("b")))
		if !errors.Is(err, storage.ErrFailed) || !errors.Is(err, cause) {
			t.Errorf("Commit(sync=%v) after Fail: %v, want ErrFailed wrapping the cause", sync, err)
		}
	}
	if err := storetest.Commit(t, s, true); !errors.Is(err, storage.ErrFailed) {
		t.Errorf("barrier after Fail: %v, want ErrFailed", err)
	}
	if _, err := s.Get(1, 2, false); !errors.Is(err, storage.ErrNotFound) {
		t.Errorf("a failed Commit was applied: Get = %v", err)
	}
	if got := storetest.Scan(t, s, 1, 0, false); len(got) != 1 {
		t.Errorf("reads after Fail: %v, want the one message committed before", got)
	}
	if n := s.Commits(); n != 1 {
		t.Errorf("Commits() = %d, want 1", n)
	}
}

func TestHold(t *testing.T) {
	s := New()
	defer s.Close()
	s.Hold()
	ran := make(chan int, 3)
	for i := range 3 {
		s.Commit([]storage.Op{storage.Append(1, storage.SeqNum(i+1), storage.Bytes("xyz"))}, true, func(err error) {
			if err != nil {
				t.Error(err)
			}
			ran <- i
		})
	}
	// Applied at once, acknowledged only after Release.
	if n := s.Len(1, false); n != 3 {
		t.Fatalf("Len = %d, want 3", n)
	}
	if p := s.Pending(); p <= 0 {
		t.Errorf("Pending() = %d while callbacks are held, want > 0", p)
	}
	select {
	case i := <-ran:
		t.Fatalf("done %d ran while held", i)
	default:
	}
	s.Release()
	for want := range 3 {
		select {
		case got := <-ran:
			if got != want {
				t.Errorf("done %d ran in position %d", got, want)
			}
		case <-time.After(storetest.Timeout):
			t.Fatal("held dones did not run after Release")
		}
	}
}

func TestCloseReleasesHeld(t *testing.T) {
	s := New()
	s.Hold()
	ran := make(chan error, 1)
	s.Commit(nil, true, func(err error) { ran <- err })
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-ran:
		if err != nil {
			t.Errorf("held done got %v", err)
		}
	default:
		t.Fatal("Close returned before the held done ran")
	}
	if err := s.Close(); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("second Close: %v, want ErrClosed", err)
	}
}
