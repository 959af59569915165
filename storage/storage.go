// Package storage defines what Junction asks of a durable store: the record
// types, the operations a batch may hold, the Store interface and its errors.
// It imports nothing but the standard library. The only implementation that
// touches disk lives in storage/pebblestore; storage/memstore is an in-memory
// store for tests; storage/storetest is the conformance suite every store
// must pass.
//
// A store holds two kinds of data:
//
//   - metadata: small records (vhosts, users, exchanges, queues, bindings,
//     MQTT sessions, retained messages) under a Kind and a key. The router
//     encodes the values; the store treats them as opaque bytes.
//   - queue messages: records under (QueueID, SeqNum), appended in increasing
//     SeqNum order per queue, removed by point deletes or by range deletes of
//     an acknowledged prefix. Paged messages are the same, in a separate space
//     the store empties when it opens: they are transient messages moved out
//     of memory, not durable ones.
package storage

import "errors"

// QueueID identifies a queue inside a store. The router assigns them and
// persists the assignment in the queue's metadata; 0 is never used.
type QueueID uint64

// SeqNum orders the messages of one queue. Appends to a queue use strictly
// increasing SeqNums.
type SeqNum uint64

// MaxSeq is the exclusive upper bound of every queue's key range.
const MaxSeq SeqNum = 1<<64 - 1

// Kind names a family of metadata records.
type Kind uint8

// Metadata families. The values are part of the on-disk format: never
// renumber, only append.
const (
	KindVHost    Kind = 1
	KindUser     Kind = 2
	KindExchange Kind = 3
	KindQueue    Kind = 4
	KindBinding  Kind = 5
	KindSession  Kind = 6 // MQTT persistent sessions
	KindRetained Kind = 7 // MQTT retained messages
	KindCounter  Kind = 8 // small counters, such as the next QueueID
)

// Record is a value the store can write without an intermediate copy:
// MarshalTo writes exactly Size() bytes into dst.
type Record interface {
	Size() int
	MarshalTo(dst []byte)
}

// Droppable is a Record of an OpAppend that may stop being needed before
// the store writes it: the message was consumed and acknowledged while its
// commit waited for the batch before it. A store may then skip writing it;
// the Commit still completes as usual (after the batch's sync, for a synced
// one). Skipping is an optimisation, never required: RabbitMQ confirms a
// persistent message once it is on disk or consumed and acknowledged, and
// so may a store.
type Droppable interface {
	Record
	// Dropped reports whether the record need not be written. It may be
	// called from any goroutine, once it returns true it stays true.
	Dropped() bool
}

// Bytes is a Record holding ready-made bytes.
type Bytes []byte

// Size implements Record.
func (b Bytes) Size() int { return len(b) }

// MarshalTo implements Record.
func (b Bytes) MarshalTo(dst []byte) { copy(dst, b) }

// OpKind says what an Op does.
type OpKind uint8

// Operations a batch may hold.
const (
	// OpAppend writes Rec at (Queue, Seq).
	OpAppend OpKind = iota + 1
	// OpDelete removes (Queue, Seq).
	OpDelete
	// OpDeleteRange removes every message of Queue with Seq <= s < End and
	// moves the queue's cursor to End if End is past it, so that later
	// scans start there and never read the range's tombstones. It is meant
	// for acknowledged prefixes: every message below End must be gone.
	OpDeleteRange
	// OpPutMeta writes Rec under (Meta, Key).
	OpPutMeta
	// OpDeleteMeta removes (Meta, Key).
	OpDeleteMeta
	// OpDropQueue removes every message of Queue and its cursor.
	OpDropQueue
)

// Op is one operation of a batch. Paged selects the paged space for the
// message operations (OpAppend, OpDelete, OpDeleteRange, OpDropQueue).
type Op struct {
	Kind  OpKind
	Paged bool
	Queue QueueID
	Seq   SeqNum
	End   SeqNum
	Meta  Kind
	Key   []byte
	Rec   Record
}

// Append returns the op that stores rec as message seq of q.
func Append(q QueueID, seq SeqNum, rec Record) Op {
	return Op{Kind: OpAppend, Queue: q, Seq: seq, Rec: rec}
}

// Delete returns the op that removes message seq of q.
func Delete(q QueueID, seq SeqNum) Op { return Op{Kind: OpDelete, Queue: q, Seq: seq} }

// DeleteRange returns the op that removes messages [from, end) of q.
func DeleteRange(q QueueID, from, end SeqNum) Op {
	return Op{Kind: OpDeleteRange, Queue: q, Seq: from, End: end}
}

// PutMeta returns the op that stores rec under (k, key).
func PutMeta(k Kind, key []byte, rec Record) Op {
	return Op{Kind: OpPutMeta, Meta: k, Key: key, Rec: rec}
}

// DeleteMeta returns the op that removes (k, key).
func DeleteMeta(k Kind, key []byte) Op { return Op{Kind: OpDeleteMeta, Meta: k, Key: key} }

// DropQueue returns the op that removes every message of q.
func DropQueue(q QueueID) Op { return Op{Kind: OpDropQueue, Queue: q} }

// Store is a durable store. Every method is safe from any goroutine.
type Store interface {
	// Commit hands ops to the store's committer and returns at once; it
	// never blocks on disk. The store takes ownership of ops and of the
	// records they point to until done runs.
	//
	// The committer applies the ops of one Commit atomically, and the
	// Commits in the order they were made (ops of a later Commit never take
	// effect before those of an earlier one). It drains everything pending
	// into one batch (group commit). If sync is true, done(nil) runs only
	// after the batch holding ops is fsynced; with sync false, done(nil)
	// runs once the ops are applied, and they become durable with the next
	// synced commit. done may be nil. done runs on a store goroutine, never
	// inside Commit itself (callers may hold locks that done takes); it
	// must not block and must not call Commit synchronously and wait.
	// A Commit with no ops is a barrier: its done runs after every earlier
	// Commit is applied.
	//
	// If the store cannot make the ops durable, done gets a non-nil error
	// (wrapping ErrFailed) and the ops must be treated as not written; a
	// store that hit a write or sync error stays failed and fails every
	// later Commit with ErrFailed, so nothing is acknowledged over a disk
	// whose state is unknown.
	Commit(ops []Op, sync bool, done func(error))

	// ScanMeta calls fn for every record of kind k in key order. key and
	// value are valid only during fn.
	ScanMeta(k Kind, fn func(key, value []byte) error) error

	// ScanQueue calls fn for every message of q with seq >= from, in seq
	// order, starting no earlier than the queue's cursor. value is valid
	// only during fn. Paged selects the paged space.
	ScanQueue(q QueueID, from SeqNum, paged bool, fn func(seq SeqNum, value []byte) error) error

	// Cursor returns q's cursor: every message of q below it is deleted
	// (range deletes move it), so after a restart a queue must number new
	// messages from at least there, or ScanQueue would skip them.
	Cursor(q QueueID) SeqNum

	// Get returns a copy of message seq of q, or ErrNotFound.
	Get(q QueueID, seq SeqNum, paged bool) ([]byte, error)

	// Pending reports the bytes handed to Commit and not yet committed, so
	// callers can apply flow control before memory grows.
	Pending() int64

	// Close commits what is pending with sync, stops the committer and
	// releases the store. Commit after Close fails with ErrClosed.
	Close() error
}

// Errors a store returns. Match with errors.Is.
var (
	ErrNotFound = errors.New("storage: not found")
	ErrClosed   = errors.New("storage: closed")
	ErrFailed   = errors.New("storage: store failed")
)
