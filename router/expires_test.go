package router

import (
	"testing"
	"time"
)

func TestQueueSetExpires(t *testing.T) {
	for _, tt := range []struct {
		name     string
		declared Table
		set      time.Duration
		keptAt   time.Duration // still there this long after the last use
		goneAt   time.Duration // deleted at this point (0: never)
	}{
		{"longer", args("x-expires", int32(1000)), 5 * time.Second, 4 * time.Second, 5100 * time.Millisecond},
		{"shorter", args("x-expires", int32(5000)), time.Second, 900 * time.Millisecond, 1100 * time.Millisecond},
		{"none to some", nil, 2 * time.Second, 1900 * time.Millisecond, 2100 * time.Millisecond},
		{"some to none", args("x-expires", int32(1000)), 0, 0, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			q := e.queue("q", QueueOptions{Durable: true, Args: tt.declared})
			q.SetExpires(tt.set)
			if got := q.Expires(); got != tt.set {
				t.Fatalf("Expires = %v, want %v", got, tt.set)
			}
			if tt.goneAt == 0 {
				// The countdown is off; onExpires only runs from it.
				q.mu.Lock()
				stopped := q.expTimer == nil || !q.expTimer.Stop()
				q.mu.Unlock()
				if !stopped {
					t.Fatal("x-expires timer still running")
				}
				return
			}
			e.clk.advance(tt.keptAt)
			q.onExpires()
			if e.v.Queue("q") == nil {
				t.Fatalf("deleted after %v", tt.keptAt)
			}
			e.clk.advance(tt.goneAt - tt.keptAt)
			q.onExpires()
			if e.v.Queue("q") != nil {
				t.Fatalf("not deleted after %v", tt.goneAt)
			}
		})
	}
}

// The declared x-expires comes back on restart: SetExpires is not stored.
func TestQueueSetExpiresRestart(t *testing.T) {
	e := newEnv(t)
	q := e.queue("q", QueueOptions{Durable: true, Args: args("x-expires", int32(1000))})
	q.SetExpires(time.Hour)
	e.open()
	if got := e.v.Queue("q").Expires(); got != time.Second {
		t.Fatalf("Expires after restart = %v, want the declared 1s", got)
	}
}
