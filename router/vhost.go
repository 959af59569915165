package router

import (
	"crypto/rand"
	"encoding/base64"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/junction-broker/junction/storage"
)

// VHost is a namespace of exchanges and queues. Its topology (the maps and
// every exchange's bindings) is guarded by mu; queues guard their contents.
type VHost struct {
	r    *Router
	Name string

	mu        sync.RWMutex
	exchanges map[string]*Exchange
	queues    map[string]*Queue
	// exclusive holds each owner's last declared exclusive queue; the
	// owner's others are linked to it through exclPrev. A map of slices
	// would cost every connection a slice of one.
	exclusive map[Owner]*Queue
	// replies counts the direct reply-to queues in queues: they are not
	// counted against Config.MaxQueues (in RabbitMQ they are no queues).
	replies int
}

func newVHost(r *Router, name string) *VHost {
	v := &VHost{r: r, Name: name, exchanges: make(map[string]*Exchange),
		queues: make(map[string]*Queue), exclusive: make(map[Owner]*Queue)}
	std := []struct {
		name string
		kind ExchangeKind
	}{{"", Direct}, {"amq.direct", Direct}, {"amq.fanout", Fanout}, {"amq.topic", Topic},
		{"amq.headers", Headers}, {"amq.match", Headers}}
	for _, s := range std {
		v.exchanges[s.name] = newExchange(v, s.name, s.kind, ExchangeOptions{Durable: true})
	}
	return v
}

// Exchange returns the named exchange, or nil.
func (v *VHost) Exchange(name string) *Exchange {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.exchanges[name]
}

// Queue returns the named queue, or nil.
func (v *VHost) Queue(name string) *Queue {
	v.mu.RLock()
	defer v.mu.RUnlock()
	return v.queues[name]
}

// Queues returns the vhost's queues in name order.
func (v *VHost) Queues() []*Queue {
	v.mu.RLock()
	qs := make([]*Queue, 0, len(v.queues))
	for _, q := range v.queues {
		qs = append(qs, q)
	}
	v.mu.RUnlock()
	slices.SortFunc(qs, func(a, b *Queue) int { return strings.Compare(a.Name, b.Name) })
	return qs
}

func genName(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + base64.RawURLEncoding.EncodeToString(b[:])
}

// DeclareExchange creates an exchange or checks that an existing one is
// equivalent. passive only checks existence. done runs once a durable
// declaration is committed (at once otherwise); it may be nil.
func (v *VHost) DeclareExchange(name, kind string, o ExchangeOptions, passive bool, done func(error)) (*Exchange, error) {
	v.mu.Lock()
	x := v.exchanges[name]
	if passive {
		v.mu.Unlock()
		if x == nil {
			return nil, errorf(NotFound, "no exchange '%s' in vhost '%s'", name, v.Name)
		}
		callDone(done, nil)
		return x, nil
	}
	if name == "" {
		v.mu.Unlock()
		return nil, errorf(AccessRefused, "operation not permitted on the default exchange")
	}
	k, ok := ParseKind(kind)
	if !ok {
		v.mu.Unlock()
		return nil, errorf(CommandInvalid, "unknown exchange type '%s'", kind)
	}
	if x != nil {
		v.mu.Unlock()
		if err := x.equivalent(k, o); err != nil {
			return nil, err
		}
		callDone(done, nil)
		return x, nil
	}
	if strings.HasPrefix(name, "amq.") {
		v.mu.Unlock()
		return nil, errorf(AccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", name)
	}
	if err := validExchangeArgs(o.Args); err != nil {
		v.mu.Unlock()
		return nil, err
	}
	x = newExchange(v, name, k, o)
	v.exchanges[name] = x
	if o.Durable {
		v.r.commitMeta([]storage.Op{putExchange(x)}, done)
		done = nil
	}
	v.mu.Unlock()
	callDone(done, nil)
	return x, nil
}

func callDone(done func(error), err error) {
	if done != nil {
		done(err)
	}
}

func (x *Exchange) equivalent(k ExchangeKind, o ExchangeOptions) error {
	bad := func(arg string, got, cur any) error {
		return errorf(PreconditionFailed, "inequivalent arg '%s' for exchange '%s' in vhost '%s': received '%s' but current is '%s'",
			arg, x.Name, x.vhost.Name, formatValue(got), formatValue(cur))
	}
	switch {
	case k != x.Kind:
		return bad("type", k, x.Kind)
	case o.Durable != x.Durable:
		return bad("durable", o.Durable, x.Durable)
	case o.AutoDelete != x.AutoDelete:
		return bad("auto_delete", o.AutoDelete, x.AutoDelete)
	case o.Internal != x.Internal:
		return bad("internal", o.Internal, x.Internal)
	}
	for _, key := range []string{"alternate-exchange"} {
		a, _ := o.Args.Get(key)
		b, _ := x.Args.Get(key)
		if !Equal(a, b) {
			return bad(key, a, b)
		}
	}
	return nil
}

func validExchangeArgs(args Table) error {
	if v, ok := args.Get("alternate-exchange"); ok {
		switch v.(type) {
		case string, []byte:
		default:
			return errorf(PreconditionFailed, "invalid arg 'alternate-exchange': expected a string")
		}
	}
	return nil
}

// DeleteExchange removes an exchange and its bindings; ifUnused refuses
// when it is the source of a binding.
func (v *VHost) DeleteExchange(name string, ifUnused bool, done func(error)) error {
	v.mu.Lock()
	x := v.exchanges[name]
	switch {
	case name == "":
		v.mu.Unlock()
		return errorf(AccessRefused, "operation not permitted on the default exchange")
	case strings.HasPrefix(name, "amq."):
		v.mu.Unlock()
		return errorf(AccessRefused, "exchange name '%s' contains reserved prefix 'amq.*'", name)
	case x == nil:
		v.mu.Unlock()
		return errorf(NotFound, "no exchange '%s' in vhost '%s'", name, v.Name)
	case ifUnused && len(x.bindings) > 0:
		v.mu.Unlock()
		return errorf(PreconditionFailed, "exchange '%s' in vhost '%s' in use", name, v.Name)
	}
	var ops []storage.Op
	v.removeExchange(x, &ops)
	v.r.commitMeta(ops, done)
	v.mu.Unlock()
	return nil
}

// removeExchange deletes x with every binding from or to it.
// REQUIRES: v.mu held for writing.
func (v *VHost) removeExchange(x *Exchange, ops *[]storage.Op) {
	delete(v.exchanges, x.Name)
	if x.Durable {
		*ops = append(*ops, storage.DeleteMeta(storage.KindExchange, exchangeKey(x)))
	}
	for _, b := range slices.Clone(x.bindings) {
		v.unbindLocked(b, ops)
	}
	for _, b := range slices.Clone(x.inbound) {
		v.unbindLocked(b, ops)
	}
}

// unbindLocked removes b, auto-deleting its source if it was the last.
// REQUIRES: v.mu held for writing.
func (v *VHost) unbindLocked(b *Binding, ops *[]storage.Op) {
	b.Source.removeBinding(b)
	if b.durable() {
		*ops = append(*ops, storage.DeleteMeta(storage.KindBinding, bindingKey(b)))
	}
	if x := b.Source; x.AutoDelete && x.everBound && len(x.bindings) == 0 && v.exchanges[x.Name] == x {
		v.removeExchange(x, ops)
	}
}

func (b *Binding) durable() bool {
	if !b.Source.Durable {
		return false
	}
	if b.Queue != nil {
		return b.Queue.Durable && !b.Queue.Exclusive
	}
	return b.Dest.Durable
}

// DeclareQueue creates a queue or checks that an existing one is
// equivalent. An empty name makes a server-named queue (amq.gen-…).
// Exclusive queues belong to owner. done runs once a durable declaration
// is committed; it may be nil.
func (v *VHost) DeclareQueue(name string, o QueueOptions, passive bool, owner Owner, done func(error)) (*Queue, error) {
	v.mu.Lock()
	q := v.queues[name]
	if passive || q != nil {
		v.mu.Unlock()
		if q == nil {
			return nil, errorf(NotFound, "no queue '%s' in vhost '%s'", name, v.Name)
		}
		if err := q.checkOwner(owner); err != nil && !(passive && q.Reply) {
			return nil, err
		}
		if !passive {
			if err := q.equivalent(o); err != nil {
				return nil, err
			}
		}
		q.mu.Lock()
		q.touch()
		q.mu.Unlock()
		callDone(done, nil)
		return q, nil
	}
	if name == "" {
		name = genName("amq.gen-")
	} else if strings.HasPrefix(name, "amq.") {
		v.mu.Unlock()
		return nil, errorf(AccessRefused, "queue name '%s' contains reserved prefix 'amq.*'", name)
	}
	args, err := parseQueueArgs(v.Name, name, o)
	if err != nil {
		v.mu.Unlock()
		return nil, err
	}
	if limit := v.r.maxQueues; limit > 0 && len(v.queues)-v.replies >= limit {
		v.mu.Unlock()
		e := errorf(PreconditionFailed, "cannot declare queue '%s': queue limit in vhost '%s' (%d) is reached", name, v.Name, limit)
		e.is = ErrQueueLimit
		return nil, e
	}
	q = v.newQueue(name, o, args)
	if o.Exclusive {
		q.Owner = owner
		v.addExclusive(q)
	}
	// Every queue gets an id: durable ones for their messages, all of them
	// for messages paged out of memory.
	q.ID = v.r.nextQueueID()
	if q.Durable {
		v.r.commitMeta([]storage.Op{putQueue(q)}, done)
		done = nil
	}
	v.queues[name] = q
	q.mu.Lock()
	q.touch()
	q.mu.Unlock()
	v.mu.Unlock()
	callDone(done, nil)
	return q, nil
}

// ReplyQueuePrefix starts the name of every direct reply-to queue
// (RabbitMQ's amq.rabbitmq.reply-to).
const ReplyQueuePrefix = "amq.rabbitmq.reply-to."

// DeclareReplyQueue creates a direct reply-to queue for owner: transient,
// auto-deleted with its consumer, exclusive to owner for consuming, and
// named ReplyQueuePrefix and a random token, so a publish to the default
// exchange with that name as routing key, from any protocol, reaches it.
// Unlike other exclusive queues, anyone may check it exists with a passive
// declare (a replier asking whether the requester still waits).
func (v *VHost) DeclareReplyQueue(owner Owner) *Queue {
	name := genName(ReplyQueuePrefix)
	q := v.newQueue(name, QueueOptions{Exclusive: true, AutoDelete: true}, queueArgs{ttl: -1, maxLen: -1, maxBytes: -1})
	q.Owner, q.Reply = owner, true
	q.ID = v.r.nextQueueID()
	v.mu.Lock()
	v.addExclusive(q)
	v.queues[name] = q
	v.replies++
	v.mu.Unlock()
	return q
}

func (v *VHost) newQueue(name string, o QueueOptions, args queueArgs) *Queue {
	q := &Queue{vhost: v, Name: name, QueueOptions: o, args: args, idx: v.r.queueIdx.Add(1)}
	// Exclusive queues die with their connection: they are never stored,
	// and neither are their messages.
	q.Durable = o.Durable && !o.Exclusive
	if args.maxPriority == 0 {
		q.levels = q.level0[:]
	} else {
		q.levels = make([]ring[qentry], int(args.maxPriority)+1)
	}
	return q
}

func (q *Queue) checkOwner(owner Owner) error {
	if q.Exclusive && q.Owner != owner {
		return errorf(ResourceLocked, "cannot obtain exclusive access to locked queue '%s' in vhost '%s'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.", q.Name, q.vhost.Name)
	}
	return nil
}

func (q *Queue) equivalent(o QueueOptions) error {
	bad := func(arg string, got, cur any) error {
		return errorf(PreconditionFailed, "inequivalent arg '%s' for queue '%s' in vhost '%s': received '%s' but current is '%s'",
			arg, q.Name, q.vhost.Name, formatValue(got), formatValue(cur))
	}
	switch {
	case o.Durable != q.QueueOptions.Durable:
		return bad("durable", o.Durable, q.QueueOptions.Durable)
	case o.AutoDelete != q.AutoDelete:
		return bad("auto_delete", o.AutoDelete, q.AutoDelete)
	case o.Exclusive != q.Exclusive:
		return bad("exclusive", o.Exclusive, q.Exclusive)
	}
	for _, key := range queueArgNames {
		a, okA := o.Args.Get(key)
		b, okB := q.Args.Get(key)
		if okA != okB || !Equal(a, b) {
			if !okA {
				a = nil
			}
			if !okB {
				b = nil
			}
			return bad(key, a, b)
		}
	}
	return nil
}

// DeleteQueue removes a queue, cancelling its consumers and dropping its
// messages. It returns how many ready messages were dropped.
func (v *VHost) DeleteQueue(name string, ifUnused, ifEmpty bool, owner Owner, done func(error)) (int, error) {
	q := v.Queue(name)
	if q == nil {
		return 0, errorf(NotFound, "no queue '%s' in vhost '%s'", name, v.Name)
	}
	if err := q.checkOwner(owner); err != nil {
		return 0, err
	}
	q.mu.Lock()
	inUse, notEmpty := len(q.consumers) > 0, q.ready > 0
	q.mu.Unlock()
	if ifUnused && inUse {
		return 0, errorf(PreconditionFailed, "queue '%s' in vhost '%s' in use", name, v.Name)
	}
	if ifEmpty && notEmpty {
		return 0, errorf(PreconditionFailed, "queue '%s' in vhost '%s' is not empty", name, v.Name)
	}
	return v.deleteQueue(q, done)
}

// deleteQueue removes q from the graph.
func (v *VHost) deleteQueue(q *Queue, done func(error)) (int, error) {
	var ops []storage.Op
	v.mu.Lock()
	if v.queues[q.Name] != q {
		v.mu.Unlock()
		callDone(done, nil)
		return 0, nil
	}
	delete(v.queues, q.Name)
	if q.Reply {
		v.replies--
	}
	if q.Exclusive {
		v.removeExclusive(q)
	}
	for _, b := range slices.Clone(q.bindings) {
		v.unbindLocked(b, &ops)
	}
	q.mu.Lock()
	q.deleted = true
	n := q.ready
	cs := q.consumers
	q.consumers = nil
	for l := range q.levels {
		for i := 0; i < q.levels[l].len(); i++ {
			if e := q.levels[l].at(i); e.m != nil {
				v.r.mem.Add(-int64(e.size))
			}
		}
		q.levels[l].clear()
	}
	q.ready, q.readyBytes = 0, 0
	if q.ttlTimer != nil {
		q.ttlTimer.Stop()
	}
	if q.expTimer != nil {
		q.expTimer.Stop()
	}
	q.mu.Unlock()
	if q.Durable {
		ops = append(ops, storage.DeleteMeta(storage.KindQueue, queueKey(q)), storage.DropQueue(q.ID))
	}
	ops = append(ops, storage.Op{Kind: storage.OpDropQueue, Paged: true, Queue: q.ID})
	v.r.commitMeta(ops, done)
	v.mu.Unlock()
	for _, c := range cs {
		c.ch.serverCancel(c)
	}
	return n, nil
}

// addConsumer registers c, enforcing exclusive consumption.
func (q *Queue) addConsumer(c *Consumer) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.deleted {
		return errorf(NotFound, "no queue '%s' in vhost '%s'", q.Name, q.vhost.Name)
	}
	if len(q.consumers) > 0 && (c.Exclusive || q.consumers[0].Exclusive) {
		return errorf(AccessRefused, "queue '%s' in vhost '%s' in exclusive use", q.Name, q.vhost.Name)
	}
	i := len(q.consumers)
	for i > 0 && q.consumers[i-1].Priority < c.Priority {
		i--
	}
	q.consumers = slices.Insert(q.consumers, i, c)
	q.hadConsumer = true
	if q.expTimer != nil {
		q.expTimer.Stop()
	}
	return nil
}

// removeConsumer detaches c; an auto-delete queue goes with its last one.
func (q *Queue) removeConsumer(c *Consumer) {
	q.mu.Lock()
	if i := slices.Index(q.consumers, c); i >= 0 {
		q.consumers = slices.Delete(q.consumers, i, i+1)
	}
	last := len(q.consumers) == 0 && !q.deleted
	if last {
		q.touch()
	}
	q.mu.Unlock()
	if last && q.AutoDelete && q.hadConsumer {
		_, _ = q.vhost.deleteQueue(q, nil)
	} else if !last {
		q.kick() // with single active consumer, the next one takes over
	}
}

// OwnerGone deletes the exclusive queues of owner: its connection closed.
func (v *VHost) OwnerGone(owner Owner) {
	v.mu.RLock()
	var qs []*Queue
	for q := v.exclusive[owner]; q != nil; q = q.exclPrev {
		qs = append(qs, q)
	}
	v.mu.RUnlock()
	for _, q := range slices.Backward(qs) { // in the order declared
		_, _ = v.deleteQueue(q, nil)
	}
}

// addExclusive records exclusive queue q as its owner's last.
// REQUIRES: v.mu held for writing.
func (v *VHost) addExclusive(q *Queue) {
	if last := v.exclusive[q.Owner]; last != nil {
		last.exclNext, q.exclPrev = q, last
	}
	v.exclusive[q.Owner] = q
}

// removeExclusive unlinks exclusive queue q from its owner's list.
// REQUIRES: v.mu held for writing.
func (v *VHost) removeExclusive(q *Queue) {
	prev, next := q.exclPrev, q.exclNext
	if prev != nil {
		prev.exclNext = next
	}
	switch {
	case next != nil:
		next.exclPrev = prev
	case prev != nil:
		v.exclusive[q.Owner] = prev
	case v.exclusive[q.Owner] == q:
		delete(v.exclusive, q.Owner)
	}
	q.exclPrev, q.exclNext = nil, nil
}

// BindQueue binds queue to exchange with key and args. Binding twice is
// harmless.
func (v *VHost) BindQueue(queue, exchange, key string, args Table, owner Owner, done func(error)) error {
	return v.bind(queue, "", exchange, key, args, owner, done)
}

// UnbindQueue removes a queue binding; removing a missing binding is not
// an error.
func (v *VHost) UnbindQueue(queue, exchange, key string, args Table, owner Owner, done func(error)) error {
	return v.unbind(queue, "", exchange, key, args, owner, done)
}

// BindExchange binds destination to source (exchange-to-exchange).
func (v *VHost) BindExchange(destination, source, key string, args Table, done func(error)) error {
	return v.bind("", destination, source, key, args, 0, done)
}

// UnbindExchange removes an exchange-to-exchange binding.
func (v *VHost) UnbindExchange(destination, source, key string, args Table, done func(error)) error {
	return v.unbind("", destination, source, key, args, 0, done)
}

func (v *VHost) binding(queue, dest, source, key string, args Table, owner Owner) (*Binding, error) {
	x := v.exchanges[source]
	if x == nil {
		return nil, errorf(NotFound, "no exchange '%s' in vhost '%s'", source, v.Name)
	}
	b := &Binding{Source: x, Key: key, Args: args}
	if dest != "" || queue == "" {
		if b.Dest = v.exchanges[dest]; b.Dest == nil {
			return nil, errorf(NotFound, "no exchange '%s' in vhost '%s'", dest, v.Name)
		}
		if dest == "" {
			return nil, errorf(AccessRefused, "operation not permitted on the default exchange")
		}
	} else {
		if b.Queue = v.queues[queue]; b.Queue == nil {
			return nil, errorf(NotFound, "no queue '%s' in vhost '%s'", queue, v.Name)
		}
		if err := b.Queue.checkOwner(owner); err != nil {
			return nil, err
		}
	}
	if source == "" {
		return nil, errorf(AccessRefused, "operation not permitted on the default exchange")
	}
	if x.Kind == Headers && !validXMatch(args) {
		v, _ := args.Get("x-match")
		return nil, errorf(PreconditionFailed, "invalid x-match field value %s; expected all, any, all-with-x, or any-with-x", formatValue(v))
	}
	return b, nil
}

func (v *VHost) bind(queue, dest, source, key string, args Table, owner Owner, done func(error)) error {
	v.mu.Lock()
	b, err := v.binding(queue, dest, source, key, args, owner)
	if err != nil {
		v.mu.Unlock()
		return err
	}
	if b.Source.addBinding(b) && b.durable() {
		v.r.commitMeta([]storage.Op{putBinding(b)}, done)
		done = nil
	}
	rt := b.Source.retainer
	v.mu.Unlock()
	if rt != nil && b.Queue != nil && wantsRetained(args) {
		v.deliverRetained(b, rt)
	}
	callDone(done, nil)
	return nil
}

func (v *VHost) unbind(queue, dest, source, key string, args Table, owner Owner, done func(error)) error {
	v.mu.Lock()
	b, err := v.binding(queue, dest, source, key, args, owner)
	if err != nil {
		v.mu.Unlock()
		return err
	}
	var ops []storage.Op
	if o := b.Source.existing(b); o != nil {
		v.unbindLocked(o, &ops)
	}
	v.r.commitMeta(ops, done)
	v.mu.Unlock()
	return nil
}

// Publish routes m through exchange. routed reports whether any queue
// took the message (for mandatory). err is a refusal of the publish itself
// (unknown or internal exchange, invalid expiration). done, if not nil,
// runs exactly once when err is nil: with nil when every stored copy is
// committed (at once when there is none), with ErrRejected when a full
// queue refused the message, or with the storage error. The router owns m
// from here on.
func (v *VHost) Publish(exchange string, m *Message, done func(error)) (routed bool, err error) {
	return v.publish(exchange, m, done, false)
}

func (v *VHost) publish(exchange string, m *Message, done func(error), internal bool) (bool, error) {
	msgTTL := int64(-1)
	if m.Properties.Flags&HasExpiration != 0 {
		d, err := parseExpiration(m.Properties.Expiration)
		if err != nil {
			return false, err
		}
		msgTTL = int64(d)
	}
	m.Exchange = exchange
	var qbuf [8]*Queue
	v.mu.RLock()
	x := v.exchanges[exchange]
	if x == nil {
		v.mu.RUnlock()
		return false, errorf(NotFound, "no exchange '%s' in vhost '%s'", exchange, v.Name)
	}
	if x.Internal && !internal {
		v.mu.RUnlock()
		return false, errorf(AccessRefused, "cannot publish to internal exchange '%s' in vhost '%s'", exchange, v.Name)
	}
	qs := v.route(x, m, qbuf[:0])
	rt := x.retainer
	v.mu.RUnlock()

	if internal {
		qs = skipDeathCycles(qs, m)
	}
	var (
		c        *confirm
		rejected bool
		dls      []deadLetter
		now      = v.r.now().UnixNano()
	)
	if rt != nil && wantsRetain(m) {
		c = &confirm{}
		c.add()
		if err := rt.Retain(m, c.complete); err != nil {
			c.complete(nil) // not retained; routed all the same
			// A client's doing, once per publish: not worth a warning.
			v.r.log.Debug("message not retained", "vhost", v.Name, "exchange", exchange, "routing_key", m.RoutingKey, "err", err)
		}
	}
	for _, q := range qs {
		var qdls []deadLetter
		if !q.publish(m, msgTTL, now, &c, &qdls) {
			rejected = true
		}
		if len(qdls) > 0 {
			v.deadLetter(q, qdls)
		}
	}
	_ = dls
	var err error
	if rejected {
		err = ErrRejected
	}
	if c != nil {
		c.seal(err, done)
	} else {
		callDone(done, err)
	}
	return len(qs) > 0, nil
}

// route resolves the queues m goes to from x, following
// exchange-to-exchange bindings and alternate exchanges, each queue once.
// REQUIRES: v.mu read-locked.
func (v *VHost) route(x *Exchange, m *Message, dst []*Queue) []*Queue {
	if x.Name == "" {
		if q := v.queues[m.RoutingKey]; q != nil {
			dst = append(dst, q)
		}
		return dst
	}
	var xbuf [4]*Exchange
	dst, _ = v.routeFrom(x, m, dst, xbuf[:0])
	if len(dst) > 1 {
		slices.SortFunc(dst, func(a, b *Queue) int { return cmpUint(a.idx, b.idx) })
		dst = slices.Compact(dst)
	}
	return dst
}

func cmpUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// routeFrom appends the queues reachable from x; seen lists the exchanges
// already visited, so cycles of exchange-to-exchange bindings end.
func (v *VHost) routeFrom(x *Exchange, m *Message, dst []*Queue, seen []*Exchange) ([]*Queue, []*Exchange) {
	if slices.Contains(seen, x) {
		return dst, seen
	}
	seen = append(seen, x)
	before := len(dst)
	var bbuf [8]*Binding
	for _, b := range x.match(m, bbuf[:0]) {
		if b.Queue != nil {
			dst = append(dst, b.Queue)
		} else {
			dst, seen = v.routeFrom(b.Dest, m, dst, seen)
		}
	}
	if len(dst) == before && x.alternate != "" {
		if ae := v.exchanges[x.alternate]; ae != nil {
			dst, seen = v.routeFrom(ae, m, dst, seen)
		}
	}
	return dst, seen
}

// deadLetter republishes messages that left q for reason through q's
// dead-letter exchange, recording the hop in the x-death header as
// RabbitMQ does. Dead-lettering is at-most-once, as in RabbitMQ: the copy
// is published after the original left its queue.
func (v *VHost) deadLetter(q *Queue, dls []deadLetter) {
	for _, d := range dls {
		m := deadLettered(q, d.m, d.reason, v.r.now())
		if _, err := v.publish(q.args.dlx, m, nil, true); err != nil {
			v.r.log.Debug("dead-letter exchange missing; message dropped",
				"vhost", v.Name, "queue", q.Name, "exchange", q.args.dlx)
		}
	}
}

func deadLettered(q *Queue, src *Message, reason string, now time.Time) *Message {
	m := &Message{Exchange: src.Exchange, RoutingKey: src.RoutingKey, Properties: src.Properties, Body: src.Body}
	p := &m.Properties
	h := p.Headers.Clone()
	var deaths []any
	if v, ok := h.Get("x-death"); ok {
		deaths, _ = v.([]any)
	}
	count := int64(1)
	for i, d := range deaths {
		t, _ := d.(Table)
		qn, _ := t.String("queue")
		rn, _ := t.String("reason")
		if qn == q.Name && rn == reason {
			if c, ok := t.Get("count"); ok {
				n, _ := Int(c)
				count = n + 1
			}
			deaths = slices.Delete(slices.Clone(deaths), i, i+1)
			break
		}
	}
	entry := Table{
		{"count", count},
		{"reason", reason},
		{"queue", q.Name},
		{"time", now.Truncate(time.Second).UTC()},
		{"exchange", src.Exchange},
		{"routing-keys", []any{src.RoutingKey}},
	}
	if p.Flags&HasExpiration != 0 {
		entry = append(entry, Field{"original-expiration", p.Expiration})
		p.Flags &^= HasExpiration
		p.Expiration = ""
	}
	deaths = append([]any{entry}, deaths...)
	h = setHeader(h, "x-death", deaths)
	if _, ok := h.Get("x-first-death-reason"); !ok {
		h = setHeader(h, "x-first-death-reason", reason)
		h = setHeader(h, "x-first-death-queue", q.Name)
		h = setHeader(h, "x-first-death-exchange", src.Exchange)
	}
	h = setHeader(h, "x-last-death-reason", reason)
	h = setHeader(h, "x-last-death-queue", q.Name)
	h = setHeader(h, "x-last-death-exchange", src.Exchange)
	p.Headers = h
	p.Flags |= HasHeaders
	if q.args.hasDLRK {
		m.RoutingKey = q.args.dlrk
	}
	return m
}

func setHeader(h Table, key string, v any) Table {
	for i := range h {
		if h[i].Key == key {
			h[i].Value = v
			return h
		}
	}
	return append(h, Field{key, v})
}

// skipDeathCycles drops target queues a dead-lettered message already died
// in, unless a consumer rejected it on the way: RabbitMQ's rule against
// dead-letter loops that nobody breaks.
func skipDeathCycles(qs []*Queue, m *Message) []*Queue {
	v, _ := m.Properties.Headers.Get("x-death")
	deaths, _ := v.([]any)
	if len(deaths) == 0 {
		return qs
	}
	for _, d := range deaths {
		t, _ := d.(Table)
		if r, _ := t.String("reason"); r == ReasonRejected {
			return qs
		}
	}
	out := qs[:0]
	for _, q := range qs {
		cycle := false
		for _, d := range deaths {
			t, _ := d.(Table)
			if n, _ := t.String("queue"); n == q.Name {
				cycle = true
			}
		}
		if !cycle {
			out = append(out, q)
		}
	}
	return out
}
