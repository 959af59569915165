package protocols

import "sync/atomic"

// JoinDone returns a callback to be called n times, from any goroutines;
// done runs once, at the n-th call, with the first non-nil error passed.
// Adapters use it to answer one client request (a transaction's commit)
// after every router call it made has completed.
func JoinDone(n int, done func(error)) func(error) {
	var left atomic.Int64
	var first atomic.Pointer[error]
	left.Store(int64(n))
	return func(err error) {
		if err != nil {
			first.CompareAndSwap(nil, &err)
		}
		if left.Add(-1) == 0 {
			var e error
			if p := first.Load(); p != nil {
				e = *p
			}
			done(e)
		}
	}
}
