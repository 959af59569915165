package pebblestore

import (
	"encoding/binary"

	"github.com/junction-broker/junction/storage"
)

// Key family prefixes; see the package doc. Part of the on-disk format.
const (
	prefixMessage = 'q'
	prefixPaged   = 'p'
	prefixCursor  = 'c'
	prefixMeta    = 'm'
	prefixVersion = 'v'
)

// formatVersion is stored under the 'v' key; Open refuses anything else.
const formatVersion = "1"

const (
	msgKeyLen    = 1 + 8 + 8
	cursorKeyLen = 1 + 8
	metaKeyBase  = 1 + 1
)

func msgPrefix(paged bool) byte {
	if paged {
		return prefixPaged
	}
	return prefixMessage
}

// putMsgKey writes the key of message seq of q into dst[:msgKeyLen].
func putMsgKey(dst []byte, paged bool, q storage.QueueID, seq storage.SeqNum) {
	dst[0] = msgPrefix(paged)
	binary.BigEndian.PutUint64(dst[1:9], uint64(q))
	binary.BigEndian.PutUint64(dst[9:17], uint64(seq))
}

// msgSeq decodes the seq of a message key.
func msgSeq(key []byte) storage.SeqNum {
	return storage.SeqNum(binary.BigEndian.Uint64(key[9:17]))
}

func putCursorKey(dst []byte, q storage.QueueID) {
	dst[0] = prefixCursor
	binary.BigEndian.PutUint64(dst[1:9], uint64(q))
}

func putMetaKey(dst []byte, k storage.Kind, key []byte) {
	dst[0] = prefixMeta
	dst[1] = byte(k)
	copy(dst[2:], key)
}

// metaBounds returns the key range of every record of kind k.
func metaBounds(k storage.Kind) (lower, upper []byte) {
	lower = []byte{prefixMeta, byte(k)}
	if k == 0xff {
		return lower, []byte{prefixMeta + 1}
	}
	return lower, []byte{prefixMeta, byte(k) + 1}
}
