package router

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/junction-broker/junction/storage"
)

// Config configures a Router.
type Config struct {
	// Store holds durable state. Required.
	Store storage.Store
	// Log receives lifecycle messages; nil discards them.
	Log *slog.Logger
	// DefaultVHost is created when the store has no vhost ("/" if empty).
	DefaultVHost string
	// DefaultUser and DefaultPass are created when the store has no user
	// (guest/guest if empty); DefaultUser gets access to DefaultVHost.
	DefaultUser, DefaultPass string
	// LoopbackUsers may only log in from a loopback address (RabbitMQ's
	// loopback_users; ["guest"] if nil).
	LoopbackUsers []string
	// Now is the clock (time.Now if nil); tests replace it.
	Now func() time.Time
	// MemoryBudget bounds the bytes of message bodies queues keep in
	// memory; past it, queued messages are paged out to the store and read
	// back when delivered, as RabbitMQ pages classic queues. 0: no bound.
	MemoryBudget int64
	// TopicPermissions limit what users may publish and bind on topic
	// exchanges (topicperm.go); none: everything is allowed.
	TopicPermissions []TopicPermission
	// Provenance stamps every published message with who published it
	// (provenance.go); conf's router.provenance, on by default there.
	Provenance bool
	// MaxQueues bounds the queues of each vhost (RabbitMQ's max-queues
	// vhost limit); 0: no bound. Declaring one more fails with
	// PreconditionFailed matching ErrQueueLimit; redeclaring an existing
	// queue and queues recovered from the store are not refused.
	MaxQueues int
}

// Router is the routing graph of one broker.
type Router struct {
	store      storage.Store
	log        *slog.Logger
	now        func() time.Time
	loopback   []string
	queueIdx   atomic.Uint64
	budget     int64
	mem        atomic.Int64 // bytes of message bodies held by queues
	alarm      alarms
	topics     map[topicPermKey]*topicPerm // immutable after New
	provenance bool
	maxQueues  int // per vhost; 0: no bound

	mu      sync.RWMutex
	vhosts  map[string]*VHost
	users   map[string]*User
	queueID storage.QueueID // highest assigned

	retainMu  sync.Mutex
	retainers map[retainKey]Retainer // see SetRetainer
}

// New builds the router and recovers its durable state from cfg.Store:
// vhosts, users, exchanges, queues with their messages in order, and
// bindings.
func New(cfg Config) (*Router, error) {
	if cfg.Store == nil {
		return nil, errors.New("router: no store")
	}
	r := &Router{store: cfg.Store, log: cfg.Log, now: cfg.Now, loopback: cfg.LoopbackUsers,
		budget: cfg.MemoryBudget, provenance: cfg.Provenance, vhosts: make(map[string]*VHost), users: make(map[string]*User)}
	r.maxQueues = cfg.MaxQueues
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	if r.now == nil {
		r.now = time.Now
	}
	if r.loopback == nil {
		r.loopback = []string{"guest"}
	}
	topics, err := compileTopicPermissions(cfg.TopicPermissions)
	if err != nil {
		return nil, fmt.Errorf("router: %w", err)
	}
	r.topics = topics
	if err := r.recover(cfg); err != nil {
		return nil, fmt.Errorf("router: recovering: %w", err)
	}
	return r, nil
}

// VHost returns the named vhost, or nil.
func (r *Router) VHost(name string) *VHost {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.vhosts[name]
}

// AddVHost creates a vhost (no error if it exists).
func (r *Router) AddVHost(name string, done func(error)) *VHost {
	r.mu.Lock()
	v := r.vhosts[name]
	if v != nil {
		r.mu.Unlock()
		callDone(done, nil)
		return v
	}
	v = newVHost(r, name)
	r.vhosts[name] = v
	r.commitMeta([]storage.Op{putVHost(name)}, done)
	r.mu.Unlock()
	return v
}

// OwnerGone deletes the exclusive queues of owner in every vhost.
func (r *Router) OwnerGone(owner Owner) {
	r.mu.RLock()
	vs := make([]*VHost, 0, len(r.vhosts))
	for _, v := range r.vhosts {
		vs = append(vs, v)
	}
	r.mu.RUnlock()
	for _, v := range vs {
		v.OwnerGone(owner)
	}
}

func (r *Router) nextQueueID() storage.QueueID {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queueID++
	return r.queueID
}

// commitMeta writes metadata ops with sync and calls done after. With no
// ops, done runs at once.
func (r *Router) commitMeta(ops []storage.Op, done func(error)) {
	if len(ops) == 0 {
		callDone(done, nil)
		return
	}
	r.store.Commit(ops, true, func(err error) {
		if err != nil {
			r.log.Error("storing metadata failed", "err", err)
		}
		callDone(done, err)
	})
}

func (r *Router) vhostFor(name string) *VHost {
	v := r.vhosts[name]
	if v == nil {
		v = newVHost(r, name)
		r.vhosts[name] = v
	}
	return v
}

func (r *Router) recover(cfg Config) error {
	st := r.store
	if err := st.ScanMeta(storage.KindVHost, func(_, val []byte) error {
		name, err := decodeVHost(val)
		if err == nil {
			r.vhostFor(name)
		}
		return err
	}); err != nil {
		return fmt.Errorf("vhosts: %w", err)
	}
	if err := r.recoverUsers(); err != nil {
		return err
	}
	if err := st.ScanMeta(storage.KindExchange, func(_, val []byte) error {
		rec, err := decodeExchange(val)
		if err != nil {
			return err
		}
		v := r.vhostFor(rec.vhost)
		x := newExchange(v, rec.name, rec.kind, rec.o)
		x.everBound = rec.everBound
		v.exchanges[rec.name] = x
		return nil
	}); err != nil {
		return fmt.Errorf("exchanges: %w", err)
	}
	var queues []*Queue
	if err := st.ScanMeta(storage.KindQueue, func(_, val []byte) error {
		rec, err := decodeQueue(val)
		if err != nil {
			return err
		}
		v := r.vhostFor(rec.vhost)
		args, err := parseQueueArgs(rec.vhost, rec.name, rec.o)
		if err != nil {
			return err
		}
		q := v.newQueue(rec.name, rec.o, args)
		q.ID = rec.id
		r.queueID = max(r.queueID, rec.id)
		v.queues[rec.name] = q
		queues = append(queues, q)
		return nil
	}); err != nil {
		return fmt.Errorf("queues: %w", err)
	}
	for _, q := range queues {
		if err := st.ScanQueue(q.ID, 0, false, func(seq storage.SeqNum, val []byte) error {
			m, exp, err := decodeMessage(val)
			if err != nil {
				return fmt.Errorf("queue %q message %d: %w", q.Name, seq, err)
			}
			e := qentry{seq: seq, m: m, expiresAt: exp, size: int32(m.size()), prio: uint8(q.level(m)),
				redelivered: true, stored: true}
			if r.budget > 0 && r.mem.Load()+int64(e.size) > r.budget {
				e.m = nil // read back on delivery
			} else {
				r.mem.Add(int64(e.size))
			}
			q.levels[e.prio].push(e)
			q.ready++
			q.readyBytes += int64(e.size)
			q.durLive.push(seq)
			q.nextSeq = seq + 1
			return nil
		}); err != nil {
			return fmt.Errorf("messages: %w", err)
		}
		// Requeued messages went back to their position by seq, so each
		// level is already in order.
		//
		// New messages are numbered from the cursor at least: a queue
		// drained before the restart recovers no message, yet its range
		// deletes moved the cursor, and a message numbered below it would
		// be skipped by the next restart's scan (lost, though confirmed).
		if c := st.Cursor(q.ID); c > q.nextSeq {
			q.nextSeq = c
		}
		q.delLow = max(q.delLow, st.Cursor(q.ID))
	}
	if err := st.ScanMeta(storage.KindBinding, func(_, val []byte) error {
		rec, err := decodeBinding(val)
		if err != nil {
			return err
		}
		v := r.vhostFor(rec.vhost)
		x := v.exchanges[rec.source]
		if x == nil {
			return nil
		}
		b := &Binding{Source: x, Key: rec.key, Args: rec.args}
		if rec.destKind == 'q' {
			b.Queue = v.queues[rec.dest]
		} else {
			b.Dest = v.exchanges[rec.dest]
		}
		if b.Queue == nil && b.Dest == nil {
			return nil
		}
		x.addBinding(b)
		return nil
	}); err != nil {
		return fmt.Errorf("bindings: %w", err)
	}
	name := cfg.DefaultVHost
	if name == "" {
		name = "/"
	}
	if len(r.vhosts) == 0 || r.vhosts[name] == nil {
		r.vhostFor(name)
		if err := r.commitWait([]storage.Op{putVHost(name)}); err != nil {
			return err
		}
	}
	if len(r.users) == 0 {
		user, pass := cfg.DefaultUser, cfg.DefaultPass
		if user == "" {
			user, pass = "guest", "guest"
		}
		u := newUser(user, pass, []string{"administrator"}, []string{name})
		r.users[user] = u
		if err := r.commitWait([]storage.Op{putUser(u)}); err != nil {
			return err
		}
	}
	// Expire what expired while the broker was down, and start timers.
	for _, q := range queues {
		var dls []deadLetter
		q.mu.Lock()
		q.expire(r.now().UnixNano()+1, &dls)
		q.armTTL()
		q.touch()
		q.flush()
		q.mu.Unlock()
		q.vhost.deadLetter(q, dls)
	}
	return nil
}

// commitWait commits ops with sync and waits (start-up only).
func (r *Router) commitWait(ops []storage.Op) error {
	ch := make(chan error, 1)
	r.store.Commit(ops, true, func(err error) { ch <- err })
	return <-ch
}

// MemoryInUse returns the bytes of message bodies that queues hold in
// memory.
func (r *Router) MemoryInUse() int64 { return r.mem.Load() }

// VHosts returns the vhost names in order.
func (r *Router) VHosts() []string {
	r.mu.RLock()
	defer r.mu.RUnlock()
	names := make([]string, 0, len(r.vhosts))
	for n := range r.vhosts {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}
