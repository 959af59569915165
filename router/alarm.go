package router

import (
	"sync"
	"sync/atomic"
)

// Alarm is a set of resource alarms. While any is raised, publishers are
// held back by their protocol's flow control (AMQP connection.blocked,
// MQTT and STOMP stop reading publishes), as RabbitMQ does under its
// memory and disk alarms; consumers go on draining.
type Alarm uint8

// The resource alarms.
const (
	// AlarmMemory: message bodies held in memory exceed the memory
	// budget, because paging out to the store cannot keep up.
	AlarmMemory Alarm = 1 << iota
	// AlarmDisk: free space on the data directory's file system is below
	// its limit.
	AlarmDisk
)

// String names the raised alarms as RabbitMQ's connection.blocked reasons
// do: "low on memory", "low on disk", "low on memory and disk".
func (a Alarm) String() string {
	switch a {
	case 0:
		return "none"
	case AlarmMemory:
		return "low on memory"
	case AlarmDisk:
		return "low on disk"
	}
	return "low on memory and disk"
}

// alarms holds the raised alarms and who to tell when they change.
type alarms struct {
	mu       sync.Mutex // a leaf: held while watchers run
	raised   Alarm
	fast     atomic.Uint32 // raised, for lock-free reads
	watchers map[int]func(Alarm)
	nextID   int
}

// Alarms returns the raised alarms.
func (r *Router) Alarms() Alarm { return Alarm(r.alarm.fast.Load()) }

// SetAlarm raises (on) or clears alarm a. Watchers run, in no order, when
// the set of raised alarms changes.
func (r *Router) SetAlarm(a Alarm, on bool) {
	al := &r.alarm
	al.mu.Lock()
	defer al.mu.Unlock()
	was := al.raised
	if on {
		al.raised |= a
	} else {
		al.raised &^= a
	}
	if al.raised == was {
		return
	}
	al.fast.Store(uint32(al.raised))
	if on {
		r.log.Warn("resource alarm raised: publishers are blocked until it clears", "alarm", a.String(),
			"memory_in_use", r.mem.Load(), "memory_budget", r.budget)
	} else {
		r.log.Info("resource alarm cleared", "alarm", a.String(), "still_raised", al.raised.String())
	}
	for _, f := range al.watchers {
		f(al.raised)
	}
}

// WatchAlarms calls f with the raised alarms whenever they change, until
// stop. f runs under a lock of its own (below no router lock): it must only
// note the change and return. Watchers must not call SetAlarm.
func (r *Router) WatchAlarms(f func(Alarm)) (stop func()) {
	al := &r.alarm
	al.mu.Lock()
	defer al.mu.Unlock()
	if al.watchers == nil {
		al.watchers = make(map[int]func(Alarm))
	}
	id := al.nextID
	al.nextID++
	al.watchers[id] = f
	return func() {
		al.mu.Lock()
		delete(al.watchers, id)
		al.mu.Unlock()
	}
}

// CheckMemory raises the memory alarm when message bodies in memory exceed
// the budget, or when the process's resident memory rss exceeds the high
// watermark limit (0: not checked), and clears it once both are back under
// 90% of theirs. The broker calls it periodically.
func (r *Router) CheckMemory(rss, limit int64) {
	in := r.mem.Load()
	over := r.budget > 0 && in > r.budget || limit > 0 && rss > limit
	under := (r.budget <= 0 || in < r.budget/10*9) && (limit <= 0 || rss < limit/10*9)
	raised := r.Alarms()&AlarmMemory != 0
	switch {
	case !raised && over:
		r.SetAlarm(AlarmMemory, true)
	case raised && under:
		r.SetAlarm(AlarmMemory, false)
	}
}
