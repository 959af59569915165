package router

import (
	"sort"
	"sync"

	"github.com/junction-broker/junction/storage"
)

// DeliveryTag numbers the deliveries of one channel, from 1.
type DeliveryTag uint64

// Delivery is a message handed to a consumer (or returned by Get).
type Delivery struct {
	Tag         DeliveryTag // 0 for no-ack deliveries of channels that do not count them
	Consumer    *Consumer   // nil for Get
	Queue       *Queue
	Message     *Message
	Redelivered bool
	// MessageCount is the number of messages left in the queue (Get only).
	MessageCount int
	// Seq is the message's position in Queue. With the queue it names the
	// message across redeliveries and, in durable queues, restarts.
	Seq storage.SeqNum
	// ExpiresAt is when the message expires in Queue (x-message-ttl or its
	// own expiration, whichever is first), in Unix nanoseconds; 0: never.
	ExpiresAt int64
}

// Handler receives a channel's deliveries. Both methods run with router
// locks held: they must record what happened and wake the connection,
// never block and never call into the router.
type Handler interface {
	// Deliver hands over a delivery.
	Deliver(d Delivery)
	// Cancelled tells that the router cancelled c, because its queue was
	// deleted (AMQP basic.cancel from the server).
	Cancelled(c *Consumer)
}

// ConsumeOptions are a consumer's properties.
type ConsumeOptions struct {
	NoAck     bool
	Exclusive bool
	Priority  int // x-priority: higher first
	Prefetch  int // per-consumer limit of unacknowledged deliveries; 0 unlimited
	Args      Table
}

// Consumer takes deliveries from one queue for one channel.
type Consumer struct {
	ch  *Channel
	q   *Queue
	Tag string
	ConsumeOptions

	// Guarded by ch.mu.
	inflight  int
	paused    bool
	starved   bool
	cancelled bool
}

// Queue returns the consumer's queue.
func (c *Consumer) Queue() *Queue { return c.q }

type unacked struct {
	tag  DeliveryTag
	q    *Queue
	e    qentry
	c    *Consumer // nil for Get
	held settleOp  // settled inside the open transaction, applied at commit
}

// settleOp is how a delivery is settled.
type settleOp uint8

const (
	opNone    settleOp = iota
	opAck              // acknowledged: removed from its queue
	opRequeue          // rejected with requeue: back to its position
	opDead             // rejected without requeue: dead-lettered or dropped
)

// Channel is a delivery context: it numbers deliveries, holds the
// unacknowledged ones until they are settled, and enforces prefetch. An
// AMQP channel, an MQTT session or a STOMP connection each use one.
type Channel struct {
	v     *VHost
	owner Owner
	h     Handler

	mu        sync.Mutex
	nextTag   DeliveryTag
	unacked   ring[unacked] // ascending tags
	settled   int           // entries in unacked already settled (q == nil)
	prefetch  int           // global: all consumers together; 0 unlimited
	inflight  int
	consumers consumerSet
	held      int // entries in unacked with held set
	closed    bool
	tx        bool // transactional: settlements wait for CommitTx

	smu     sync.Mutex // serialises settle calls; guards scratch
	scratch []batch
}

// NewChannel opens a channel on v for owner, delivering to h.
func (v *VHost) NewChannel(owner Owner, h Handler) *Channel {
	return &Channel{v: v, owner: owner, h: h}
}

// SetPrefetch limits unacknowledged deliveries for the whole channel
// (global, AMQP basic.qos global=true as RabbitMQ reads it) and kicks
// queues if the limit grew.
func (ch *Channel) SetPrefetch(n int) {
	ch.mu.Lock()
	ch.prefetch = n
	qs := ch.starvedQueues()
	ch.mu.Unlock()
	kickAll(qs)
}

// Pause stops deliveries to c until Resume, for example while the
// connection's outbound buffer is full.
func (c *Consumer) Pause() {
	c.ch.mu.Lock()
	c.paused = true
	c.ch.mu.Unlock()
}

// Resume restarts deliveries to c.
func (c *Consumer) Resume() {
	c.ch.mu.Lock()
	was := c.paused
	c.paused = false
	c.ch.mu.Unlock()
	if was {
		c.q.kick()
	}
}

// offer delivers the head of level l of q to c if c has credit.
// REQUIRES: q.mu held.
func (ch *Channel) offer(c *Consumer, q *Queue, l int) bool {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	if ch.closed || c.cancelled || c.paused {
		return false
	}
	if !c.NoAck && (c.Prefetch > 0 && c.inflight >= c.Prefetch || ch.prefetch > 0 && ch.inflight >= ch.prefetch) {
		c.starved = true
		return false
	}
	e := q.take(l, c.NoAck)
	ch.h.Deliver(ch.recordLocked(c, q, e, c.NoAck))
	return true
}

// record registers a delivery of e from q.
// REQUIRES: q.mu held.
func (ch *Channel) record(c *Consumer, q *Queue, e qentry, noAck bool) Delivery {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.recordLocked(c, q, e, noAck)
}

func (ch *Channel) recordLocked(c *Consumer, q *Queue, e qentry, noAck bool) Delivery {
	ch.nextTag++
	tag := ch.nextTag
	if !noAck {
		ch.unacked.push(unacked{tag: tag, q: q, e: e, c: c})
		ch.inflight++
		if c != nil {
			c.inflight++
		}
	}
	return Delivery{Tag: tag, Consumer: c, Queue: q, Message: e.m, Redelivered: e.redelivered, Seq: e.seq, ExpiresAt: e.expiresAt}
}

// find returns the index of tag in ch.unacked, or -1.
// REQUIRES: ch.mu.
func (ch *Channel) find(tag DeliveryTag) int {
	n := ch.unacked.len()
	i := sort.Search(n, func(i int) bool { return ch.unacked.at(i).tag >= tag })
	if i < n {
		if u := ch.unacked.at(i); u.tag == tag && u.q != nil && u.held == opNone {
			return i
		}
	}
	return -1
}

// batch is the deliveries of one settle call, grouped by queue.
type batch struct {
	q  *Queue
	es []qentry
}

// take removes deliveries up to tag (multiple) or tag alone from the
// unacked list. tag 0 with multiple means all. Deliveries already settled
// inside the open transaction are left alone unless withHeld.
// REQUIRES: ch.mu.
func (ch *Channel) take(tag DeliveryTag, multiple, withHeld bool, out []batch) ([]batch, bool) {
	if multiple {
		if tag != 0 && ch.find(tag) < 0 {
			return out, false
		}
		for i := 0; i < ch.unacked.len(); i++ {
			u := ch.unacked.at(i)
			if tag != 0 && u.tag > tag {
				break
			}
			if u.q != nil && (withHeld || u.held == opNone) {
				out = ch.takeAt(u, out)
			}
		}
	} else {
		i := ch.find(tag)
		if i < 0 {
			return out, false
		}
		out = ch.takeAt(ch.unacked.at(i), out)
	}
	for ch.unacked.len() > 0 && ch.unacked.peek().q == nil {
		ch.unacked.pop()
		ch.settled--
	}
	return out, true
}

func (ch *Channel) takeAt(u *unacked, out []batch) []batch {
	if u.held != opNone {
		ch.held--
	}
	ch.inflight--
	if u.c != nil {
		u.c.inflight--
	}
	var b *batch
	for i := range out {
		if out[i].q == u.q {
			b = &out[i]
		}
	}
	if b == nil {
		if len(out) < cap(out) {
			out = out[:len(out)+1]
			out[len(out)-1].q = u.q
			out[len(out)-1].es = out[len(out)-1].es[:0]
		} else {
			out = append(out, batch{q: u.q})
		}
		b = &out[len(out)-1]
	}
	b.es = append(b.es, u.e)
	*u = unacked{tag: u.tag}
	ch.settled++
	return out
}

// starvedQueues collects the queues of consumers that ran out of credit and
// clears their flag.
// REQUIRES: ch.mu.
func (ch *Channel) starvedQueues() []*Queue {
	var qs []*Queue
	for _, c := range ch.consumers.list {
		if c.starved {
			c.starved = false
			qs = append(qs, c.q)
		}
	}
	return qs
}

func kickAll(qs []*Queue) {
	for _, q := range qs {
		q.kick()
	}
}

func (ch *Channel) settle(tag DeliveryTag, multiple, requeue, dead, now bool) error {
	ch.smu.Lock()
	defer ch.smu.Unlock()
	ch.mu.Lock()
	if ch.tx && !now {
		err := ch.hold(tag, multiple, requeue, dead)
		ch.mu.Unlock()
		return err
	}
	bs, ok := ch.take(tag, multiple, false, ch.scratch[:0])
	if !ok {
		ch.mu.Unlock()
		return errorf(PreconditionFailed, "unknown delivery tag %d", tag)
	}
	qs := ch.starvedQueues()
	ch.mu.Unlock()
	for i := range bs {
		bs[i].q.settle(bs[i].es, requeue, dead)
		clear(bs[i].es)
	}
	ch.scratch = bs
	kickAll(qs)
	return nil
}

// Ack acknowledges delivery tag, or every delivery up to it when multiple
// (all of them when tag is 0). An unknown tag is a PreconditionFailed error.
func (ch *Channel) Ack(tag DeliveryTag, multiple bool) error {
	return ch.settle(tag, multiple, false, false, false)
}

// Nack rejects delivery tag (or up to it, when multiple). With requeue the
// messages go back to their position in their queues, marked redelivered;
// without, they are dead-lettered or dropped.
func (ch *Channel) Nack(tag DeliveryTag, multiple, requeue bool) error {
	return ch.settle(tag, multiple, requeue, !requeue, false)
}

// Recover requeues every unacknowledged delivery of the channel (but not
// those already settled in the open transaction), at once even in a
// transaction, as RabbitMQ does.
func (ch *Channel) Recover() {
	_ = ch.settle(0, true, true, false, true)
}

// SelectTx makes the channel transactional (AMQP tx.select): from now on Ack
// and Nack check their tags at once but take effect only at CommitTx, and
// RollbackTx undoes them. A channel stays transactional.
func (ch *Channel) SelectTx() {
	ch.smu.Lock()
	ch.mu.Lock()
	ch.tx = true
	ch.mu.Unlock()
	ch.smu.Unlock()
}

// hold marks deliveries settled inside the transaction.
// REQUIRES: ch.mu, ch.smu.
func (ch *Channel) hold(tag DeliveryTag, multiple, requeue, dead bool) error {
	op := opAck
	switch {
	case requeue:
		op = opRequeue
	case dead:
		op = opDead
	}
	i := ch.find(tag)
	if i < 0 && (tag != 0 || !multiple) {
		return errorf(PreconditionFailed, "unknown delivery tag %d", tag)
	}
	if !multiple {
		ch.unacked.at(i).held = op
		ch.held++
		return nil
	}
	for i := 0; i < ch.unacked.len(); i++ {
		u := ch.unacked.at(i)
		if tag != 0 && u.tag > tag {
			break
		}
		if u.q != nil && u.held == opNone {
			u.held = op
			ch.held++
		}
	}
	return nil
}

// CommitTx applies the settlements made since the last commit or rollback.
func (ch *Channel) CommitTx() {
	ch.smu.Lock()
	defer ch.smu.Unlock()
	for _, op := range [...]settleOp{opAck, opRequeue, opDead} {
		ch.mu.Lock()
		if ch.held == 0 {
			ch.mu.Unlock()
			return
		}
		bs := ch.scratch[:0]
		for i := 0; i < ch.unacked.len(); i++ {
			if u := ch.unacked.at(i); u.q != nil && u.held == op {
				bs = ch.takeAt(u, bs)
			}
		}
		for ch.unacked.len() > 0 && ch.unacked.peek().q == nil {
			ch.unacked.pop()
			ch.settled--
		}
		qs := ch.starvedQueues()
		ch.mu.Unlock()
		for i := range bs {
			bs[i].q.settle(bs[i].es, op == opRequeue, op == opDead)
			clear(bs[i].es)
		}
		ch.scratch = bs
		kickAll(qs)
	}
}

// RollbackTx forgets the settlements made since the last commit or
// rollback: those deliveries are unacknowledged again.
func (ch *Channel) RollbackTx() {
	ch.smu.Lock()
	defer ch.smu.Unlock()
	ch.mu.Lock()
	defer ch.mu.Unlock()
	for i := 0; ch.held > 0 && i < ch.unacked.len(); i++ {
		if u := ch.unacked.at(i); u.held != opNone {
			u.held = opNone
			ch.held--
		}
	}
}

// Unacked returns the number of unacknowledged deliveries.
func (ch *Channel) Unacked() int {
	ch.mu.Lock()
	defer ch.mu.Unlock()
	return ch.inflight
}

// Consume attaches a consumer to queue. An empty tag gets a generated one.
func (ch *Channel) Consume(queue, tag string, o ConsumeOptions) (*Consumer, error) {
	v := ch.v
	v.mu.RLock()
	q := v.queues[queue]
	v.mu.RUnlock()
	if q == nil {
		return nil, errorf(NotFound, "no queue '%s' in vhost '%s'", queue, v.Name)
	}
	if err := q.checkOwner(ch.owner); err != nil {
		return nil, err
	}
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return nil, errorf(NotAllowed, "channel closed")
	}
	if tag == "" {
		tag = genName("amq.ctag-")
	}
	if ch.consumers.get(tag) != nil {
		ch.mu.Unlock()
		return nil, errorf(NotAllowed, "attempt to reuse consumer tag '%s'", tag)
	}
	c := &Consumer{ch: ch, q: q, Tag: tag, ConsumeOptions: o}
	ch.consumers.add(c)
	ch.mu.Unlock()

	if err := q.addConsumer(c); err != nil {
		ch.mu.Lock()
		ch.consumers.remove(c)
		ch.mu.Unlock()
		return nil, err
	}
	q.kick()
	return c, nil
}

// Cancel detaches consumer tag. With requeue its unacknowledged deliveries
// go back to the queue (STOMP UNSUBSCRIBE, MQTT); without they stay on the
// channel to be settled (AMQP basic.cancel). It reports whether the tag
// was known.
func (ch *Channel) Cancel(tag string, requeue bool) bool {
	ch.mu.Lock()
	c := ch.consumers.get(tag)
	if c == nil {
		ch.mu.Unlock()
		return false
	}
	ch.consumers.remove(c)
	c.cancelled = true
	var bs []batch
	if requeue {
		bs = ch.takeConsumer(c)
	}
	ch.mu.Unlock()
	for _, b := range bs {
		b.q.settle(b.es, true, false)
	}
	c.q.removeConsumer(c)
	return true
}

// takeConsumer removes c's unacknowledged deliveries.
// REQUIRES: ch.mu.
func (ch *Channel) takeConsumer(c *Consumer) []batch {
	var bs []batch
	for i := 0; i < ch.unacked.len(); i++ {
		if u := ch.unacked.at(i); u.q != nil && u.c == c {
			bs = ch.takeAt(u, bs)
		}
	}
	for ch.unacked.len() > 0 && ch.unacked.peek().q == nil {
		ch.unacked.pop()
		ch.settled--
	}
	return bs
}

// Close cancels every consumer and requeues every unacknowledged delivery,
// marked redelivered. The channel cannot be used afterwards.
func (ch *Channel) Close() {
	ch.mu.Lock()
	if ch.closed {
		ch.mu.Unlock()
		return
	}
	ch.closed = true
	cs := ch.consumers.list
	for _, c := range cs {
		c.cancelled = true
	}
	ch.consumers = consumerSet{}
	bs, _ := ch.take(0, true, true, nil)
	ch.held = 0
	ch.mu.Unlock()
	for _, b := range bs {
		b.q.settle(b.es, true, false)
	}
	for _, c := range cs {
		c.q.removeConsumer(c)
	}
}

// serverCancel is the queue telling c it is gone.
func (ch *Channel) serverCancel(c *Consumer) {
	ch.mu.Lock()
	known := ch.consumers.get(c.Tag) == c
	if known {
		ch.consumers.remove(c)
		c.cancelled = true
	}
	ch.mu.Unlock()
	if known {
		ch.h.Cancelled(c)
	}
}

// consumerSet is a channel's consumers by tag: a slice while small, since
// nearly every channel has one or a few (an MQTT session exactly one) and
// a map of one costs some 250 bytes, with a map index once it is large.
type consumerSet struct {
	list  []*Consumer
	index map[string]int // tag → position in list; nil below consumerIndexMin
}

// consumerIndexMin is the size from which a consumerSet keeps an index.
const consumerIndexMin = 16

func (s *consumerSet) get(tag string) *Consumer {
	if s.index != nil {
		if i, ok := s.index[tag]; ok {
			return s.list[i]
		}
		return nil
	}
	for _, c := range s.list {
		if c.Tag == tag {
			return c
		}
	}
	return nil
}

// add adds c, whose tag must not be in s.
func (s *consumerSet) add(c *Consumer) {
	s.list = append(s.list, c)
	switch {
	case s.index != nil:
		s.index[c.Tag] = len(s.list) - 1
	case len(s.list) >= consumerIndexMin:
		s.index = make(map[string]int, len(s.list))
		for i, x := range s.list {
			s.index[x.Tag] = i
		}
	}
}

// remove removes c if it is in s; the last consumer takes its place.
func (s *consumerSet) remove(c *Consumer) {
	i := -1
	if s.index != nil {
		if j, ok := s.index[c.Tag]; ok && s.list[j] == c {
			i = j
		}
	} else {
		for j, x := range s.list {
			if x == c {
				i = j
				break
			}
		}
	}
	if i < 0 {
		return
	}
	last := len(s.list) - 1
	s.list[i] = s.list[last]
	s.list[last] = nil
	s.list = s.list[:last]
	if s.index != nil {
		delete(s.index, c.Tag)
		if i < last {
			s.index[s.list[i].Tag] = i
		}
	}
}
