package protocols

import (
	"errors"
	"sync"
	"testing"
)

func TestJoinDone(t *testing.T) {
	var calls int
	var got error
	one := JoinDone(3, func(err error) { calls++; got = err })
	first, second := errors.New("first"), errors.New("second")
	one(nil)
	one(first)
	if calls != 0 {
		t.Fatal("done ran before the last call")
	}
	one(second)
	if calls != 1 || got != first {
		t.Fatalf("done ran %d times with %v, want once with the first error", calls, got)
	}

	var wg sync.WaitGroup
	ran := make(chan error, 2)
	many := JoinDone(100, func(err error) { ran <- err })
	for range 100 {
		wg.Add(1)
		go func() { defer wg.Done(); many(nil) }()
	}
	wg.Wait()
	if len(ran) != 1 || <-ran != nil {
		t.Fatal("done did not run exactly once without error")
	}
}
