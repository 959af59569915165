package router

import (
	"sync"
	"time"

	"github.com/junction-broker/junction/storage"
)

// Owner identifies the connection that owns exclusive queues and
// consumers; 0 is nobody. Adapters use their connection id.
type Owner uint64

// Overflow is a queue's behaviour when x-max-length or x-max-length-bytes is
// reached.
type Overflow uint8

// Overflow modes, as RabbitMQ's x-overflow argument names them.
const (
	DropHead Overflow = iota
	RejectPublish
	RejectPublishDLX
)

// Dead-letter reasons, as they appear in x-death.
const (
	ReasonRejected = "rejected"
	ReasonExpired  = "expired"
	ReasonMaxLen   = "maxlen"
)

// QueueOptions are a queue's declared properties.
type QueueOptions struct {
	Durable    bool
	Exclusive  bool
	AutoDelete bool
	Args       Table
}

// queueArgs are the parsed x-arguments of a queue. The small fields go
// last, where they share a word.
type queueArgs struct {
	ttl         int64 // x-message-ttl in ns; -1: none
	expires     int64 // x-expires in ns; 0: none
	maxLen      int64 // x-max-length; -1: none
	maxBytes    int64 // x-max-length-bytes; -1: none
	dlx         string
	dlrk        string
	overflow    Overflow
	hasDLX      bool
	hasDLRK     bool
	maxPriority uint8
	sac         bool
}

// qentry is one message in a queue (ready) or on a channel (unacked).
type qentry struct {
	seq         storage.SeqNum
	m           *Message // nil while paged out: reload with load
	expiresAt   int64    // unix ns; 0: never
	size        int32
	prio        uint8
	redelivered bool
	stored      bool // a durable copy is in the store under (queue, seq)
	paged       bool // a copy is in the store's paged space
	// rec is the durable copy handed to the store by this run of the
	// broker (nil for recovered messages): gone marks it dropped, so the
	// store need not write a message already gone.
	rec *storedRec
}

type deadLetter struct {
	m      *Message
	reason string
}

// Queue holds messages until consumers take and acknowledge them. Name and
// options are immutable; everything else is guarded by mu.
//
// Every MQTT session has one, so a queue is kept small: the flags go
// last, where they share a word, and the one level of a queue without
// priorities is part of the queue (level0), not an allocation of its own.
type Queue struct {
	vhost *VHost
	Name  string
	ID    storage.QueueID // non-zero for durable queues
	QueueOptions
	Owner Owner // for exclusive queues
	args  queueArgs
	idx   uint64 // creation order, for de-duplicating routes
	// bindings leads here; guarded by the vhost's lock, not mu.
	bindings []*Binding
	// The owner's other exclusive queues, declared before and after this
	// one (see VHost.exclusive); guarded by the vhost's lock.
	exclPrev, exclNext *Queue

	mu         sync.Mutex
	levels     []ring[qentry] // one per priority, highest last; level0[:] without priorities
	level0     [1]ring[qentry]
	ready      int
	readyBytes int64
	unacked    int
	nextSeq    storage.SeqNum
	consumers  []*Consumer // by priority, then registration order
	rr         int

	durLive ring[storage.SeqNum]        // stored seqs not yet gone, ascending
	durGone map[storage.SeqNum]struct{} // gone out of order, above durLive's head
	// delLow: every stored seq below it is covered by a range delete
	// already, so the next one starts there. Overlapping range deletes
	// (each from 0) made Pebble fragment its memtable's range tombstones
	// quadratically: gigabytes of heap under a steady persistent load.
	delLow storage.SeqNum
	ops    []storage.Op // pending no-sync ops, committed by flush

	ttlTimer *time.Timer
	ttlAt    int64
	expTimer *time.Timer
	lastUsed int64

	hadConsumer bool
	deleted     bool
	lowMoved    bool // durLive's head moved: flush deletes up to it
	// Reply is set on direct reply-to queues (DeclareReplyQueue); it
	// does not change.
	Reply bool
}

// Counts returns the number of ready messages and of consumers.
func (q *Queue) Counts() (messages, consumers int) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.ready, len(q.consumers)
}

// Unacked returns the number of delivered, unacknowledged messages.
func (q *Queue) Unacked() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.unacked
}

func (q *Queue) store() storage.Store { return q.vhost.r.store }

func (q *Queue) now() int64 { return q.vhost.r.now().UnixNano() }

func (q *Queue) level(m *Message) int {
	if q.args.maxPriority == 0 || m.Properties.Flags&HasPriority == 0 {
		return 0
	}
	p := m.Properties.Priority
	if p > q.args.maxPriority {
		p = q.args.maxPriority
	}
	return int(p)
}

// head returns the level of the next message to deliver, or -1.
// REQUIRES: q.mu.
func (q *Queue) head() int {
	for l := len(q.levels) - 1; l >= 0; l-- {
		if q.levels[l].len() > 0 {
			return l
		}
	}
	return -1
}

func (q *Queue) full(extra int64) bool {
	a := &q.args
	return a.maxLen >= 0 && int64(q.ready) >= a.maxLen ||
		a.maxBytes >= 0 && q.readyBytes+extra > a.maxBytes
}

func (q *Queue) over() bool {
	a := &q.args
	return a.maxLen >= 0 && int64(q.ready) > a.maxLen ||
		a.maxBytes >= 0 && q.readyBytes > a.maxBytes
}

// publish appends m. It returns false when the queue refused the message
// (reject-publish overflow). When a copy is stored, c gets a pending commit.
func (q *Queue) publish(m *Message, msgTTL int64, now int64, c **confirm, dls *[]deadLetter) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return true // lost to a concurrent delete, as if delivered just before it
	}
	size := int64(m.size())
	if q.args.overflow != DropHead && q.full(size) {
		if q.args.overflow == RejectPublishDLX && q.args.hasDLX {
			*dls = append(*dls, deadLetter{m, ReasonMaxLen})
		}
		return false
	}
	e := qentry{seq: q.nextSeq, m: m, size: int32(size), prio: uint8(q.level(m))}
	q.nextSeq++
	ttl := q.args.ttl
	if msgTTL >= 0 && (ttl < 0 || msgTTL < ttl) {
		ttl = msgTTL
	}
	if ttl >= 0 {
		e.expiresAt = now + ttl
	}
	r := q.vhost.r
	page := r.budget > 0 && r.mem.Load()+size > r.budget && q.ready > 0
	if q.Durable && m.Persistent() {
		e.stored = true
		q.durLive.push(e.seq)
		if *c == nil {
			*c = &confirm{}
		}
		(*c).add()
		rec := newStoredRec(e.expiresAt, m)
		e.rec = rec
		done := (*c).complete
		if page {
			// Over the memory budget: once the durable copy is applied
			// the body can leave memory and be read back on delivery.
			cc, seq := *c, e.seq
			done = func(err error) { cc.complete(err); q.onPaged(seq, err) }
		}
		q.store().Commit([]storage.Op{storage.Append(q.ID, e.seq, rec)}, true, done)
	} else if page {
		e.paged = true
		rec := storage.Bytes(encodeMessage(nil, e.expiresAt, m))
		seq := e.seq
		q.store().Commit([]storage.Op{{Kind: storage.OpAppend, Paged: true, Queue: q.ID, Seq: seq, Rec: rec}},
			false, func(err error) { q.onPaged(seq, err) })
	}
	r.mem.Add(size)
	q.levels[e.prio].push(e)
	q.ready++
	q.readyBytes += size
	for q.over() {
		l := q.head()
		q.dropReady(l, ReasonMaxLen, dls)
	}
	q.drain(now, dls)
	q.expire(now+1, dls) // a TTL of 0 expires what no consumer took at once
	q.armTTL()
	q.flush()
	return true
}

// onPaged drops the body of message seq from memory once its copy in the
// store is applied; a later delivery reads it back (load).
func (q *Queue) onPaged(seq storage.SeqNum, err error) {
	if err != nil {
		return // it stays in memory
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return
	}
	for l := range q.levels {
		r := &q.levels[l]
		lo, hi := 0, r.len()
		for lo < hi {
			mid := (lo + hi) / 2
			if r.at(mid).seq < seq {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		if lo < r.len() && r.at(lo).seq == seq {
			if e := r.at(lo); e.m != nil {
				e.m = nil
				q.vhost.r.mem.Add(-int64(e.size))
			}
			return
		}
	}
}

// load reads a paged-out message back into memory. It reports false if
// the copy cannot be read: the message is then dropped, as serving
// something else in its place would be worse.
// REQUIRES: q.mu.
func (q *Queue) load(e *qentry) bool {
	if e.m != nil {
		return true
	}
	b, err := q.store().Get(q.ID, e.seq, !e.stored)
	var m *Message
	if err == nil {
		m, _, err = decodeMessage(b)
	}
	if err != nil {
		q.vhost.r.log.Error("cannot read a paged-out message back; dropping it",
			"vhost", q.vhost.Name, "queue", q.Name, "seq", e.seq, "err", err)
		return false
	}
	e.m = m
	q.vhost.r.mem.Add(int64(e.size))
	return true
}

// dropReady removes the head of level l, dead-lettering it for reason.
// REQUIRES: q.mu.
func (q *Queue) dropReady(l int, reason string, dls *[]deadLetter) {
	e := q.levels[l].pop()
	q.ready--
	q.readyBytes -= int64(e.size)
	if q.args.hasDLX && q.load(&e) {
		*dls = append(*dls, deadLetter{e.m, reason})
	}
	q.gone(&e)
}

// expire drops every level's expired head messages.
// REQUIRES: q.mu.
func (q *Queue) expire(now int64, dls *[]deadLetter) {
	for l := range q.levels {
		for q.levels[l].len() > 0 {
			e := q.levels[l].peek()
			if e.expiresAt == 0 || e.expiresAt >= now {
				break
			}
			q.dropReady(l, ReasonExpired, dls)
		}
	}
}

// drain delivers ready messages to consumers with credit.
// REQUIRES: q.mu.
func (q *Queue) drain(now int64, dls *[]deadLetter) {
	for q.ready > 0 && len(q.consumers) > 0 {
		l := q.head()
		e := q.levels[l].peek()
		if e.expiresAt != 0 && e.expiresAt < now {
			q.dropReady(l, ReasonExpired, dls)
			continue
		}
		if !q.load(e) {
			q.dropUnreadable(l)
			continue
		}
		if !q.deliverHead(l) {
			return
		}
	}
}

// deliverHead offers the head of level l to the consumers in turn: the
// highest priority first, round-robin among equals; with single active
// consumer only to the first.
// REQUIRES: q.mu.
func (q *Queue) deliverHead(l int) bool {
	n := len(q.consumers)
	if q.args.sac {
		n = 1
	}
	for start := 0; start < n; {
		end := start + 1
		for end < n && q.consumers[end].Priority == q.consumers[start].Priority {
			end++
		}
		size := end - start
		for k := 0; k < size; k++ {
			c := q.consumers[start+(q.rr+k)%size]
			if c.ch.offer(c, q, l) {
				q.rr += k + 1
				return true
			}
		}
		start = end
	}
	return false
}

// take pops the head of level l for delivery.
// REQUIRES: q.mu.
// REQUIRES: the head is loaded (q.load).
func (q *Queue) take(l int, noAck bool) qentry {
	e := q.levels[l].pop()
	q.ready--
	q.readyBytes -= int64(e.size)
	if noAck {
		q.gone(&e)
	} else {
		q.unacked++
	}
	return e
}

// dropUnreadable removes the head of level l whose copy cannot be read.
// REQUIRES: q.mu.
func (q *Queue) dropUnreadable(l int) {
	e := q.levels[l].pop()
	q.ready--
	q.readyBytes -= int64(e.size)
	q.gone(&e)
}

// gone records that a message left the queue for good: its memory is
// released and its copies in the store are deleted.
// REQUIRES: q.mu.
func (q *Queue) gone(e *qentry) {
	if e.m != nil {
		q.vhost.r.mem.Add(-int64(e.size))
	}
	if e.paged {
		e.paged = false
		q.ops = append(q.ops, storage.Op{Kind: storage.OpDelete, Paged: true, Queue: q.ID, Seq: e.seq})
	}
	if !e.stored {
		return
	}
	e.stored = false
	if e.rec != nil {
		e.rec.dropped.Store(true)
		e.rec = nil
	}
	if q.durLive.len() > 0 && *q.durLive.peek() == e.seq {
		q.durLive.pop()
		for q.durLive.len() > 0 {
			h := *q.durLive.peek()
			if _, ok := q.durGone[h]; !ok {
				break
			}
			delete(q.durGone, h)
			q.durLive.pop()
		}
		q.lowMoved = true
		return
	}
	if q.durGone == nil {
		q.durGone = make(map[storage.SeqNum]struct{})
	}
	q.durGone[e.seq] = struct{}{}
	q.ops = append(q.ops, storage.Delete(q.ID, e.seq))
}

// flush commits pending deletes without sync: acknowledged messages are
// removed durably by the next synced commit. A contiguous acknowledged
// prefix becomes one range delete that also moves the store's cursor.
// REQUIRES: q.mu.
func (q *Queue) flush() {
	if q.lowMoved {
		low := q.nextSeq
		if q.durLive.len() > 0 {
			low = *q.durLive.peek()
		}
		if low > q.delLow {
			q.ops = append(q.ops, storage.DeleteRange(q.ID, q.delLow, low))
			q.delLow = low
		}
		q.lowMoved = false
	}
	if len(q.ops) > 0 && !q.deleted {
		q.store().Commit(q.ops, false, nil)
	}
	q.ops = nil
}

// settle finishes deliveries that consumers acknowledged (requeue false,
// dead false), rejected (dead true) or released (requeue true).
func (q *Queue) settle(es []qentry, requeue, dead bool) {
	var dls []deadLetter
	q.mu.Lock()
	if q.deleted {
		for i := range es {
			if es[i].m != nil {
				q.vhost.r.mem.Add(-int64(es[i].size))
			}
		}
		q.mu.Unlock()
		return
	}
	for i := range es {
		e := es[i]
		q.unacked--
		switch {
		case requeue:
			e.redelivered = true
			q.reinsert(e)
		default:
			q.gone(&e)
			if dead && q.args.hasDLX {
				dls = append(dls, deadLetter{e.m, ReasonRejected})
			}
		}
	}
	now := q.now()
	if requeue {
		q.drain(now, &dls)
		q.armTTL()
	}
	q.flush()
	q.mu.Unlock()
	q.vhost.deadLetter(q, dls)
}

// reinsert puts a released message back at its position by seq.
// REQUIRES: q.mu.
func (q *Queue) reinsert(e qentry) {
	r := &q.levels[e.prio]
	lo, hi := 0, r.len()
	for lo < hi {
		mid := (lo + hi) / 2
		if r.at(mid).seq < e.seq {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	r.insert(lo, e)
	q.ready++
	q.readyBytes += int64(e.size)
}

// kick delivers what consumers with new credit can take.
func (q *Queue) kick() {
	var dls []deadLetter
	q.mu.Lock()
	if !q.deleted {
		q.drain(q.now(), &dls)
		q.armTTL()
		q.flush()
	}
	q.mu.Unlock()
	q.vhost.deadLetter(q, dls)
}

// armTTL schedules expiry of the earliest expiring head message.
// REQUIRES: q.mu.
func (q *Queue) armTTL() {
	var at int64
	for l := range q.levels {
		if q.levels[l].len() > 0 {
			if x := q.levels[l].peek().expiresAt; x != 0 && (at == 0 || x < at) {
				at = x
			}
		}
	}
	if at == 0 || at == q.ttlAt {
		return
	}
	q.ttlAt = at
	d := time.Duration(at - q.now())
	if d < 0 {
		d = 0
	}
	if q.ttlTimer == nil {
		q.ttlTimer = time.AfterFunc(d, q.onTTL)
	} else {
		q.ttlTimer.Reset(d)
	}
}

func (q *Queue) onTTL() {
	var dls []deadLetter
	q.mu.Lock()
	if q.deleted {
		q.mu.Unlock()
		return
	}
	q.ttlAt = 0
	now := q.now()
	q.expire(now+1, &dls)
	q.drain(now, &dls)
	q.armTTL()
	q.flush()
	q.mu.Unlock()
	q.vhost.deadLetter(q, dls)
}

// touch records use of the queue for x-expires.
// REQUIRES: q.mu.
func (q *Queue) touch() {
	q.lastUsed = q.now()
	if q.args.expires > 0 && len(q.consumers) == 0 {
		d := time.Duration(q.args.expires)
		if q.expTimer == nil {
			q.expTimer = time.AfterFunc(d, q.onExpires)
		} else {
			q.expTimer.Reset(d)
		}
	}
}

func (q *Queue) onExpires() {
	q.mu.Lock()
	// expires > 0: SetExpires(0) may have raced with this timer firing.
	unused := !q.deleted && len(q.consumers) == 0 && q.args.expires > 0
	left := time.Duration(q.lastUsed + q.args.expires - q.now())
	if unused && left > 0 {
		q.expTimer.Reset(left)
	}
	q.mu.Unlock()
	if unused && left <= 0 {
		q.vhost.r.log.Info("deleting unused queue (x-expires)", "vhost", q.vhost.Name, "queue", q.Name)
		_, _ = q.vhost.deleteQueue(q, nil)
	}
}

// Get takes the next message for ch (AMQP basic.get). ok is false when the
// queue has no ready message. Without noAck the delivery must be settled
// through ch like any other.
func (q *Queue) Get(ch *Channel, noAck bool) (d Delivery, ok bool) {
	var dls []deadLetter
	q.mu.Lock()
	if !q.deleted {
		q.touch()
		now := q.now()
		q.expire(now, &dls)
		l := q.head()
		for l >= 0 && !q.load(q.levels[l].peek()) {
			q.dropUnreadable(l)
			l = q.head()
		}
		if l >= 0 {
			e := q.take(l, noAck)
			d = ch.record(nil, q, e, noAck)
			d.MessageCount = q.ready
			ok = true
		}
		q.armTTL()
		q.flush()
	}
	q.mu.Unlock()
	q.vhost.deadLetter(q, dls)
	return d, ok
}

// Purge removes every ready message and returns how many there were.
func (q *Queue) Purge() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	n := q.ready
	for l := range q.levels {
		for q.levels[l].len() > 0 {
			e := q.levels[l].pop()
			q.gone(&e)
		}
	}
	q.ready, q.readyBytes = 0, 0
	q.flush()
	return n
}
