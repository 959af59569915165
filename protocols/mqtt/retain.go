package mqtt

import (
	"bytes"
	"encoding/binary"
	"errors"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
)

// Retained messages (MQTT 3.1.1 §3.3.1.3, 5.0 §3.3.1.3) live per vhost: in
// memory in a trie of topic levels, so a wildcard subscription finds its
// matches without scanning them all, and in the store under
// storage.KindRetained, so they survive restarts:
//
//	key:   u16 len(vhost) | vhost | topic
//	value: u8 version (1) | u8 qos | u64 expiresAt (unix ns, 0: never) |
//	       u8 flags (1 pfi, 2 content type, 4 response topic, 8 correlation) |
//	       [u8 pfi] | [str content type] | [str response topic] |
//	       [bin correlation data] | u16 user property count | (str, str)... |
//	       payload (the rest)
//
// where str and bin are a u16 length and the bytes. Both are bounded by
// Config.RetainedMaxMessages and Config.RetainedMaxBytes: a retained
// publish that would add a topic past either limit (or grow one past the
// byte limit) is refused for retention, see session.publish.

// errRetainQuota refuses a retained message over the store's limits.
var errRetainQuota = errors.New("mqtt: retained message store full")

// retainedOverhead is what one retained message counts beyond its bytes.
const retainedOverhead = 64

const retainedVersion = 1

// retainedMsg is one retained message; immutable once stored.
type retainedMsg struct {
	topic     string
	qos       byte
	expiresAt int64    // unix ns; 0: never
	app       appProps // without expiry: expiresAt has it
	payload   []byte
	size      int64
}

func (rm *retainedMsg) computeSize() {
	n := len(rm.topic) + len(rm.payload) + len(rm.app.contentType) + len(rm.app.responseTopic) + len(rm.app.correlation)
	for _, f := range rm.app.user {
		s, _ := f.Value.(string)
		n += len(f.Key) + len(s)
	}
	rm.size = int64(n) + retainedOverhead
}

// message returns the router message that delivers rm to a subscription
// of queue with filter at QoS qos: published to the default exchange with
// the queue's name as routing key.
func (rm *retainedMsg) message(tm topicMode, queue, filter string, qos byte, now int64) *router.Message {
	h := buildHeaders(rm.qos, true, "", &rm.app, nil)
	h = append(h, router.Field{Key: hdrTopic, Value: rm.topic}, router.Field{Key: hdrRetainedFor, Value: filter})
	m := newMessage(tm, rm.topic, min(rm.qos, qos), &rm.app, rm.payload, h)
	m.RoutingKey = queue // to the queue through the default exchange: no topic mapping
	if rm.expiresAt > 0 {
		ms := max((rm.expiresAt-now)/1e6, 1)
		m.Properties.Flags |= router.HasExpiration
		m.Properties.Expiration = strconv.FormatInt(ms, 10)
	}
	return m
}

type rnode struct {
	children map[string]*rnode
	msg      *retainedMsg
}

// retainStore is one vhost's retained messages. Safe from any goroutine;
// its mutex is below every router lock (nothing calls out while holding
// it, except storage.Store.Commit, which never blocks).
type retainStore struct {
	vhost    string
	store    storage.Store // nil: memory only
	maxCount int
	maxBytes int64
	log      *slog.Logger

	mu    sync.Mutex
	root  rnode
	count int
	bytes int64
}

func newRetainStore(vhost string, st storage.Store, maxCount int, maxBytes int64, log *slog.Logger) *retainStore {
	return &retainStore{vhost: vhost, store: st, maxCount: maxCount, maxBytes: maxBytes, log: log}
}

func (rs *retainStore) key(topic string) []byte {
	k := make([]byte, 0, 2+len(rs.vhost)+len(topic))
	k = binary.BigEndian.AppendUint16(k, uint16(len(rs.vhost)))
	k = append(k, rs.vhost...)
	return append(k, topic...)
}

// Len returns the number of retained messages and their accounted bytes.
func (rs *retainStore) Len() (int, int64) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.count, rs.bytes
}

// set stores rm as the retained message of its topic, or removes the
// topic's retained message when rm's payload is empty. The change is in
// memory at once and handed to the store (with sync when sync is set);
// done (may be nil) runs after it is committed, from a store goroutine or
// at once without a store. It fails with errRetainQuota, calling nothing,
// when rm does not fit.
func (rs *retainStore) set(rm *retainedMsg, sync bool, done func(error)) error {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	var op storage.Op
	if len(rm.payload) == 0 {
		if !rs.remove(rm.topic) {
			callDone(done, nil)
			return nil
		}
		op = storage.DeleteMeta(storage.KindRetained, rs.key(rm.topic))
	} else {
		rm.computeSize()
		n := rs.node(rm.topic, true)
		count, size := rs.count+1, rs.bytes+rm.size
		if n.msg != nil {
			count, size = rs.count, size-n.msg.size
		}
		if count > rs.count && count > rs.maxCount || size > rs.bytes && size > rs.maxBytes {
			if n.msg == nil {
				rs.remove(rm.topic) // prune the nodes just made
			}
			return errRetainQuota
		}
		n.msg = rm
		rs.count, rs.bytes = count, size
		op = storage.PutMeta(storage.KindRetained, rs.key(rm.topic), storage.Bytes(encodeRetained(rm)))
	}
	if rs.store == nil {
		callDone(done, nil)
		return nil
	}
	rs.store.Commit([]storage.Op{op}, sync, done)
	return nil
}

func callDone(done func(error), err error) {
	if done != nil {
		done(err)
	}
}

// node returns the trie node of topic, making it if create is set.
// REQUIRES: rs.mu.
func (rs *retainStore) node(topic string, create bool) *rnode {
	n := &rs.root
	for rest, more := topic, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		c := n.children[level]
		if c == nil {
			if !create {
				return nil
			}
			if n.children == nil {
				n.children = make(map[string]*rnode)
			}
			c = &rnode{}
			n.children[level] = c
		}
		n = c
	}
	return n
}

// remove deletes topic's message and prunes empty nodes; it reports
// whether there was a message.
// REQUIRES: rs.mu.
func (rs *retainStore) remove(topic string) bool {
	var path [16]*rnode
	nodes := append(path[:0], &rs.root)
	n := &rs.root
	for rest, more := topic, true; more; {
		var level string
		level, rest, more = strings.Cut(rest, "/")
		if n = n.children[level]; n == nil {
			return false
		}
		nodes = append(nodes, n)
	}
	had := n.msg != nil
	if had {
		rs.count--
		rs.bytes -= n.msg.size
		n.msg = nil
	}
	// Prune from the leaf up: levels are the topic's, in order.
	levels := strings.Split(topic, "/")
	for i := len(nodes) - 1; i > 0; i-- {
		c := nodes[i]
		if c.msg != nil || len(c.children) > 0 {
			break
		}
		delete(nodes[i-1].children, levels[i-1])
	}
	return had
}

// match appends the unexpired retained messages whose topics match filter
// (MQTT 3.1.1 §4.7: a leading wildcard does not match topics starting with
// '$'). Expired ones are removed.
func (rs *retainStore) match(filter string, now int64, dst []*retainedMsg) []*retainedMsg {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	start := len(dst)
	dst = rs.walk(&rs.root, filter, true, dst)
	out := dst[:start]
	var expired []string
	for _, rm := range dst[start:] {
		if rm.expiresAt != 0 && rm.expiresAt <= now {
			expired = append(expired, rm.topic)
			continue
		}
		out = append(out, rm)
	}
	for _, t := range expired {
		rs.remove(t)
		if rs.store != nil {
			rs.store.Commit([]storage.Op{storage.DeleteMeta(storage.KindRetained, rs.key(t))}, false, nil)
		}
	}
	return out
}

// walk collects the messages under n matching filter's remaining levels.
// REQUIRES: rs.mu.
func (rs *retainStore) walk(n *rnode, filter string, top bool, dst []*retainedMsg) []*retainedMsg {
	level, rest, more := strings.Cut(filter, "/")
	switch level {
	case "#":
		if n.msg != nil && !top {
			dst = append(dst, n.msg) // "a/#" matches "a"
		}
		for name, c := range n.children {
			if top && strings.HasPrefix(name, "$") {
				continue
			}
			dst = rs.all(c, dst)
		}
	case "+":
		for name, c := range n.children {
			if top && strings.HasPrefix(name, "$") {
				continue
			}
			dst = rs.next(c, rest, more, dst)
		}
	default:
		if c := n.children[level]; c != nil {
			dst = rs.next(c, rest, more, dst)
		}
	}
	return dst
}

func (rs *retainStore) next(c *rnode, rest string, more bool, dst []*retainedMsg) []*retainedMsg {
	if !more {
		if c.msg != nil {
			dst = append(dst, c.msg)
		}
		return dst
	}
	return rs.walk(c, rest, false, dst)
}

func (rs *retainStore) all(n *rnode, dst []*retainedMsg) []*retainedMsg {
	if n.msg != nil {
		dst = append(dst, n.msg)
	}
	for _, c := range n.children {
		dst = rs.all(c, dst)
	}
	return dst
}

// load reads this vhost's retained messages from the store (at start);
// expired ones are deleted. Limits are not applied to what is already
// stored.
func (rs *retainStore) load(now int64) error {
	if rs.store == nil {
		return nil
	}
	prefix := rs.key("")
	var gone []storage.Op
	err := rs.store.ScanMeta(storage.KindRetained, func(key, val []byte) error {
		if !bytes.HasPrefix(key, prefix) {
			return nil
		}
		rm, ok := decodeRetained(string(key[len(prefix):]), val)
		if !ok {
			rs.log.Warn("dropping an unreadable retained message", "topic", string(key[len(prefix):]))
			gone = append(gone, storage.DeleteMeta(storage.KindRetained, bytes.Clone(key)))
			return nil
		}
		if rm.expiresAt != 0 && rm.expiresAt <= now {
			gone = append(gone, storage.DeleteMeta(storage.KindRetained, bytes.Clone(key)))
			return nil
		}
		rm.computeSize()
		rs.mu.Lock()
		n := rs.node(rm.topic, true)
		if n.msg == nil {
			rs.count++
		} else {
			rs.bytes -= n.msg.size
		}
		n.msg = rm
		rs.bytes += rm.size
		rs.mu.Unlock()
		return nil
	})
	if len(gone) > 0 {
		rs.store.Commit(gone, false, nil)
	}
	return err
}

func encodeRetained(rm *retainedMsg) []byte {
	a := &rm.app
	b := make([]byte, 0, 16+int(rm.size))
	b = append(b, retainedVersion, rm.qos)
	b = binary.BigEndian.AppendUint64(b, uint64(rm.expiresAt))
	var flags byte
	if a.hasPFI {
		flags |= 1
	}
	if a.hasContentType {
		flags |= 2
	}
	if a.hasResponseTopic {
		flags |= 4
	}
	if a.hasCorrelation {
		flags |= 8
	}
	b = append(b, flags)
	if a.hasPFI {
		b = append(b, a.pfi)
	}
	if a.hasContentType {
		b = appendString(b, a.contentType)
	}
	if a.hasResponseTopic {
		b = appendString(b, a.responseTopic)
	}
	if a.hasCorrelation {
		b = append(b, byte(len(a.correlation)>>8), byte(len(a.correlation)))
		b = append(b, a.correlation...)
	}
	b = binary.BigEndian.AppendUint16(b, uint16(len(a.user)))
	for _, f := range a.user {
		v, _ := f.Value.(string)
		b = appendString(b, f.Key)
		b = appendString(b, v)
	}
	return append(b, rm.payload...)
}

// decodeRetained decodes a stored retained message; it copies what it
// keeps from val.
func decodeRetained(topic string, val []byte) (*retainedMsg, bool) {
	r := reader{b: val}
	if r.byte() != retainedVersion {
		return nil, false
	}
	rm := &retainedMsg{topic: topic, qos: r.byte()}
	rm.expiresAt = int64(r.u64())
	flags := r.byte()
	a := &rm.app
	if flags&1 != 0 {
		a.pfi, a.hasPFI = r.byte(), true
	}
	if flags&2 != 0 {
		a.contentType, a.hasContentType = r.str(), true
	}
	if flags&4 != 0 {
		a.responseTopic, a.hasResponseTopic = r.str(), true
	}
	if flags&8 != 0 {
		a.correlation, a.hasCorrelation = bytes.Clone(r.bin()), true
	}
	n := int(r.u16())
	for i := 0; i < n && !r.bad; i++ {
		k, v := r.str(), r.str()
		a.user = append(a.user, router.Field{Key: k, Value: v})
	}
	rm.payload = bytes.Clone(r.rest())
	return rm, !r.bad && rm.qos <= 2 && len(rm.payload) > 0
}
