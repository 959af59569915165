package mqtt

import (
	"bytes"
	"encoding/binary"
	"strings"
	"time"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
)

// What a session keeps beyond its connection. Every session has a
// sessState; a persistent one (MQTT 3.1.1 clean session 0, MQTT 5 Session
// Expiry Interval > 0) is also in Adapter.states between connections and
// in the store under storage.KindSession:
//
//	key:   u16 len(vhost) | vhost | client id | 0x00 | 's'
//	value: u8 version (1) | u32 session expiry (s) | u16 n |
//	       (str filter, u8 options, u32 subscription id)...
//	key:   u16 len(vhost) | vhost | client id | 0x00 | 'p' | u16 packet id
//	value: u8 version (1) | u8 released | str queue | u64 seq
//	key:   u16 len(vhost) | vhost | client id | 0x00 | 'i' | u16 packet id
//	value: u8 version (1)
//
// The first is the session's subscriptions (the bindings are the router's;
// options, identifiers and shared groups are ours), written with sync
// before the SUBACK or UNSUBACK. The second is one outbound QoS 2 message
// in flight: which message (queue and seq) went out under the packet id,
// and whether its PUBREC came (released: PUBREL sent, PUBCOMP awaited).
// These are written without sync, like the router's acknowledgements: a
// reconnecting client gets the same packet id with DUP, or the PUBREL,
// exactly once across reconnects and clean restarts; after a crash the
// last unsynced changes may be lost, which can only repeat a delivery.
// The third is an inbound QoS 2 packet id between PUBLISH and PUBREL
// (MQTT 3.1.1 §4.3.3, 5.0 §4.3.3 method B): a PUBLISH resent with it is
// acknowledged again, not routed again, and its PUBREL gets PUBCOMP 0x00.
// It is committed without sync before the message is routed; the store
// applies Commits in order and a synced one makes the earlier ones durable,
// so once the message's synced commit is done (the PUBREC waits for it)
// the id is on disk too. It is deleted without sync at the PUBREL. A
// crash can lose that delete and bring the id back, while the client has
// reused it: so an id read from the store catches only a PUBLISH with DUP
// (a resend, [MQTT-3.3.1-1]); one without is a new message, routed.
//
// The session's queue (mqtt-subscription-<client id>qos1) decides whether
// the session exists: a state whose queue is gone (x-expires deleted it)
// is discarded when next seen.

const (
	stateVersion = 1
	// expiryNever is MQTT 5's Session Expiry Interval for "never".
	expiryNever = 1<<32 - 1
	// maxSessionExpiry is the longest finite session expiry, in seconds:
	// the router's longest x-expires (2^32-1 ms). Longer requests are cut
	// to it and the CONNACK says so.
	maxSessionExpiry = (1<<32 - 1) / 1000
	sharedPrefix     = "mqtt-shared-"
)

// subscription is one entry of a session's subscriptions. It lasts as
// long as the session, so what can be read off the filter is not kept
// apart (64 bytes, not 96).
type subscription struct {
	filter  string // as subscribed, "$share/<group>/" included
	key     string // the topic filter proper as a binding key
	queue   string // shared: the group's queue; "": a normal subscription
	off     uint32 // the topic filter proper is filter[off:]
	id      int32  // subscription identifier; 0: none
	qos     byte
	noLocal bool
	rap     bool // Retain As Published
}

// topic returns the topic filter proper: the filter without
// "$share/<group>/".
func (sb *subscription) topic() string { return sb.filter[sb.off:] }

// shared reports whether sb is a shared subscription.
func (sb *subscription) shared() bool { return sb.queue != "" }

func (sb *subscription) opts() byte {
	o := sb.qos
	if sb.noLocal {
		o |= 4
	}
	if sb.rap {
		o |= 8
	}
	return o
}

// out2Rec is a persistent session's outbound QoS 2 message in flight.
type out2Rec struct {
	queue    string
	seq      storage.SeqNum
	released bool
}

// sessState is a session's subscriptions, its inbound QoS 2 packet ids
// awaiting their PUBREL and, for persistent sessions, its outbound QoS 2
// messages in flight. Only the session holding it (see Adapter.register)
// touches it.
type sessState struct {
	expiry uint32 // persistent sessions: the expiry they were created with
	subs   subList
	out2   map[uint16]out2Rec // nil until the first
	in2    map[uint16]bool    // inbound QoS 2 ids from PUBLISH to PUBREL, true if read from the store; nil until the first
}

func newState() *sessState { return &sessState{} }

// hasIn2 reports whether inbound QoS 2 packet id pid awaits its PUBREL.
func (st *sessState) hasIn2(pid uint16) bool {
	_, ok := st.in2[pid]
	return ok
}

// putIn2 records inbound QoS 2 packet id pid; loaded: read from the store.
func (st *sessState) putIn2(pid uint16, loaded bool) {
	if st.in2 == nil {
		st.in2 = make(map[uint16]bool)
	}
	st.in2[pid] = loaded
}

func (st *sessState) putOut2(pid uint16, rec out2Rec) {
	if st.out2 == nil {
		st.out2 = make(map[uint16]out2Rec)
	}
	st.out2[pid] = rec
}

// subList is a session's subscriptions by filter. Most sessions have one
// or a few, so it is a slice, searched, where a map of one would cost
// some 250 bytes; from subIndexMin on, an index keeps lookups constant.
// Its order is not meaningful.
type subList struct {
	list  []*subscription
	index map[string]int // filter → position in list; nil below subIndexMin
}

const subIndexMin = 16

func (l *subList) len() int { return len(l.list) }

func (l *subList) find(filter string) int {
	if l.index != nil {
		if i, ok := l.index[filter]; ok {
			return i
		}
		return -1
	}
	for i, sb := range l.list {
		if sb.filter == filter {
			return i
		}
	}
	return -1
}

// get returns the subscription with filter, or nil.
func (l *subList) get(filter string) *subscription {
	if i := l.find(filter); i >= 0 {
		return l.list[i]
	}
	return nil
}

// put adds sb, replacing the subscription with its filter if there is one.
func (l *subList) put(sb *subscription) {
	if i := l.find(sb.filter); i >= 0 {
		l.list[i] = sb
		return
	}
	l.list = append(l.list, sb)
	switch {
	case l.index != nil:
		l.index[sb.filter] = len(l.list) - 1
	case len(l.list) >= subIndexMin:
		l.index = make(map[string]int, len(l.list))
		for i, sb := range l.list {
			l.index[sb.filter] = i
		}
	}
}

// del removes the subscription with filter and returns it, or nil.
func (l *subList) del(filter string) *subscription {
	i := l.find(filter)
	if i < 0 {
		return nil
	}
	sb, last := l.list[i], len(l.list)-1
	l.list[i] = l.list[last]
	l.list[last] = nil
	l.list = l.list[:last]
	if l.index != nil {
		delete(l.index, filter)
		if i < last {
			l.index[l.list[i].filter] = i
		}
	}
	return sb
}

// expiryDuration is a Session Expiry Interval as the session queue's
// x-expires: 0 for never.
func expiryDuration(e uint32) time.Duration {
	if e == expiryNever {
		return 0
	}
	return time.Duration(e) * time.Second
}

// The session queue of client id cid is queuePrefix + cid + queueSuffix.
const (
	queuePrefix = "mqtt-subscription-"
	queueSuffix = "qos1"
)

func sessionQueue(cid string) string { return queuePrefix + cid + queueSuffix }

// sharedQueue names the queue of share group group and filter: '/' cannot
// occur in a share name, so names do not collide.
func sharedQueue(group, filter string) string { return sharedPrefix + group + "/" + filter }

// parseShared splits "$share/<group>/<filter>"; ok is false if filter is
// not a shared subscription, valid false if it is a malformed one.
func parseShared(filter string) (group, topic string, ok, valid bool) {
	rest, ok := strings.CutPrefix(filter, "$share/")
	if !ok {
		return "", filter, false, true
	}
	group, topic, found := strings.Cut(rest, "/")
	valid = found && group != "" && !strings.ContainsAny(group, "+#") && validFilter(topic)
	return group, topic, true, valid
}

// maxFilterLevels bounds a subscription's topic levels, as Mosquitto's
// TOPIC_HIERARCHY_LIMIT does: every level of a filter is a node of the
// router's topic trie, some hundred bytes, so a filter of 65,535 bytes
// could take a few megabytes as "/////…" (and nearly as many as
// "+/+/…") where real ones have a handful of levels.
const maxFilterLevels = 200

// newSubscription makes the subscription to filter; ok is false if the
// filter is invalid or deeper than maxFilterLevels.
func newSubscription(tm topicMode, filter string, opts byte, id int) (*subscription, bool) {
	group, topic, shared, valid := parseShared(filter)
	if !valid || strings.Count(topic, "/") >= maxFilterLevels || !validFilter(topic) {
		return nil, false
	}
	sb := &subscription{filter: filter, key: tm.key(topic), off: uint32(len(filter) - len(topic)),
		qos: min(opts&3, 2), noLocal: opts&4 != 0, rap: opts&8 != 0, id: int32(id)}
	if shared {
		sb.queue = sharedQueue(group, topic)
	}
	return sb, true
}

// Store keys and records.

func (a *Adapter) stateKey(cid string, kind byte, pid uint16) []byte {
	k := make([]byte, 0, 2+len(a.cfg.VHost)+len(cid)+4)
	k = binary.BigEndian.AppendUint16(k, uint16(len(a.cfg.VHost)))
	k = append(k, a.cfg.VHost...)
	k = append(k, cid...)
	k = append(k, 0, kind)
	if kind == 'p' || kind == 'i' {
		k = binary.BigEndian.AppendUint16(k, pid)
	}
	return k
}

func encodeState(st *sessState) []byte {
	b := []byte{stateVersion}
	b = binary.BigEndian.AppendUint32(b, st.expiry)
	b = binary.BigEndian.AppendUint16(b, uint16(st.subs.len()))
	for _, sb := range st.subs.list {
		b = appendString(b, sb.filter)
		b = append(b, sb.opts())
		b = binary.BigEndian.AppendUint32(b, uint32(sb.id))
	}
	return b
}

func decodeState(tm topicMode, st *sessState, val []byte) bool {
	r := reader{b: val}
	if r.byte() != stateVersion {
		return false
	}
	st.expiry = r.u32()
	n := int(r.u16())
	for i := 0; i < n && !r.bad; i++ {
		f, o, id := r.str(), r.byte(), int(r.u32())
		if sb, ok := newSubscription(tm, f, o, id); ok && !r.bad {
			st.subs.put(sb)
		}
	}
	return !r.bad && r.done()
}

func encodeOut2(rec out2Rec) []byte {
	b := []byte{stateVersion, 0}
	if rec.released {
		b[1] = 1
	}
	b = appendString(b, rec.queue)
	return binary.BigEndian.AppendUint64(b, uint64(rec.seq))
}

func decodeOut2(val []byte) (out2Rec, bool) {
	r := reader{b: val}
	if r.byte() != stateVersion {
		return out2Rec{}, false
	}
	rec := out2Rec{released: r.byte() == 1, queue: r.str()}
	rec.seq = storage.SeqNum(r.u64())
	return rec, !r.bad && r.done()
}

// commit hands ops to the store, if there is one; done (may be nil) runs
// once they are committed, or at once without a store.
func (a *Adapter) commit(ops []storage.Op, sync bool, done func(error)) {
	if a.cfg.Store == nil || len(ops) == 0 {
		callDone(done, nil)
		return
	}
	a.cfg.Store.Commit(ops, sync, done)
}

// dropStateOps returns the ops that delete cid's records.
func (a *Adapter) dropStateOps(cid string, st *sessState) []storage.Op {
	ops := []storage.Op{storage.DeleteMeta(storage.KindSession, a.stateKey(cid, 's', 0))}
	for pid := range st.out2 {
		ops = append(ops, storage.DeleteMeta(storage.KindSession, a.stateKey(cid, 'p', pid)))
	}
	for pid := range st.in2 {
		ops = append(ops, storage.DeleteMeta(storage.KindSession, a.stateKey(cid, 'i', pid)))
	}
	return ops
}

// Session hand-over. A client id has at most one session holding its
// state; a new connection with the same id waits (no CONNACK, no input
// read) until the holder has closed and released everything, then takes
// the state over.

// register makes s the newest session of client id. It returns the
// session s takes over (connected or itself waiting), if any, and whether
// s must wait for the holder to release the state.
func (a *Adapter) register(id string, s *session) (prev *session, wait bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.claims[id]
	prev, c.newest = c.newest, s
	wait = c.holder != nil
	if !wait {
		c.holder = s
	}
	a.claims[id] = c
	return prev, wait
}

// release ends s's claim on client id. If s held the state, it passes to
// the newest waiting session, which is returned to be resumed.
func (a *Adapter) release(id string, s *session) (next *session) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c := a.claims[id]
	if c.newest == s {
		c.newest = nil
	}
	if c.holder == s {
		c.holder, next = c.newest, c.newest
	}
	if c == (claim{}) {
		delete(a.claims, id)
	} else {
		a.claims[id] = c
	}
	return next
}

// takeState returns cid's persistent state, if any.
func (a *Adapter) takeState(cid string) *sessState {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.states[cid]
}

func (a *Adapter) keepState(cid string, st *sessState) {
	a.mu.Lock()
	a.states[cid] = st
	a.mu.Unlock()
}

// discardState ends cid's session state: its shared group memberships
// and, if it is stored (a persistent session), the state and its records.
// The session queue is the caller's.
func (a *Adapter) discardState(vh *router.VHost, cid string, st *sessState, stored bool) {
	if stored {
		a.mu.Lock()
		if a.states[cid] == st {
			delete(a.states, cid)
		}
		a.mu.Unlock()
		a.commit(a.dropStateOps(cid, st), false, nil)
	}
	for _, sb := range st.subs.list {
		if sb.shared() {
			a.leaveShared(vh, cid, sb.queue)
		}
	}
}

// joinShared records cid as a member of shared queue q.
func (a *Adapter) joinShared(cid, q string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	m := a.shared[q]
	if m == nil {
		m = make(map[string]struct{})
		a.shared[q] = m
	}
	m[cid] = struct{}{}
}

// leaveShared removes cid from shared queue q's members and deletes the
// queue when none is left, deciding and deleting under a.mu so that a
// member joining meanwhile (joinShared comes first) keeps it. Offline
// persistent members whose session queue expired are dropped on the way.
func (a *Adapter) leaveShared(vh *router.VHost, cid, q string) {
	a.mu.Lock()
	m := a.shared[q]
	delete(m, cid)
	var expired []string
	for c := range m {
		if a.claims[c].newest == nil && vh != nil && vh.Queue(sessionQueue(c)) == nil {
			expired = append(expired, c)
		}
	}
	var ops []storage.Op
	for _, c := range expired {
		delete(m, c)
		if st := a.states[c]; st != nil {
			delete(a.states, c)
			ops = append(ops, a.dropStateOps(c, st)...)
		}
	}
	if len(m) == 0 {
		delete(a.shared, q)
		if vh != nil && vh.Queue(q) != nil {
			if _, err := vh.DeleteQueue(q, false, false, 0, nil); err != nil {
				a.cfg.Log.Warn("cannot delete shared subscription queue", "queue", q, "err", err)
			}
		}
	}
	a.mu.Unlock()
	a.commit(ops, false, nil)
}

// recover loads the vhost's retained messages and persistent sessions
// from the store, drops sessions whose queue is gone and shared queues
// nobody belongs to. It runs in New, before any session.
func (a *Adapter) recover() {
	now := a.cfg.Now().UnixNano()
	if err := a.retained.load(now); err != nil {
		a.cfg.Log.Error("loading retained messages failed", "err", err)
	}
	vh := a.cfg.Router.VHost(a.cfg.VHost)
	if a.cfg.Store != nil {
		prefix := a.stateKey("", 0, 0)
		prefix = prefix[:len(prefix)-2]
		var stale []storage.Op
		err := a.cfg.Store.ScanMeta(storage.KindSession, func(key, val []byte) error {
			if !bytes.HasPrefix(key, prefix) {
				return nil
			}
			rest := key[len(prefix):]
			i := bytes.IndexByte(rest, 0)
			if i < 0 || i+1 >= len(rest) {
				return nil
			}
			cid := string(rest[:i])
			st := a.states[cid]
			if st == nil {
				st = newState()
				a.states[cid] = st
			}
			ok := false
			switch tail := rest[i+1:]; {
			case tail[0] == 's' && len(tail) == 1:
				ok = decodeState(a.topics, st, val)
			case tail[0] == 'p' && len(tail) == 3:
				var rec out2Rec
				if rec, ok = decodeOut2(val); ok {
					st.putOut2(binary.BigEndian.Uint16(tail[1:]), rec)
				}
			case tail[0] == 'i' && len(tail) == 3:
				if ok = len(val) == 1 && val[0] == stateVersion; ok {
					st.putIn2(binary.BigEndian.Uint16(tail[1:]), true)
				}
			}
			if !ok {
				a.cfg.Log.Warn("dropping an unreadable MQTT session record", "client", cid)
				stale = append(stale, storage.DeleteMeta(storage.KindSession, bytes.Clone(key)))
			}
			return nil
		})
		if err != nil {
			a.cfg.Log.Error("loading MQTT sessions failed", "err", err)
		}
		for cid, st := range a.states {
			var q *router.Queue
			if vh != nil {
				q = vh.Queue(sessionQueue(cid))
			}
			if q == nil {
				stale = append(stale, a.dropStateOps(cid, st)...)
				delete(a.states, cid)
				continue
			}
			// A changed Session Expiry Interval is the state's, not the
			// queue's (SetExpires is not stored); 0: no 's' record.
			if st.expiry != 0 && q.Expires() != expiryDuration(st.expiry) {
				q.SetExpires(expiryDuration(st.expiry))
			}
			for _, sb := range st.subs.list {
				if sb.shared() {
					m := a.shared[sb.queue]
					if m == nil {
						m = make(map[string]struct{})
						a.shared[sb.queue] = m
					}
					m[cid] = struct{}{}
				}
			}
		}
		a.commit(stale, false, nil)
	}
	if vh == nil {
		return
	}
	for _, q := range vh.Queues() {
		if strings.HasPrefix(q.Name, sharedPrefix) && a.shared[q.Name] == nil {
			_, _ = vh.DeleteQueue(q.Name, false, false, 0, nil)
		}
	}
}
