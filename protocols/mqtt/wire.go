package mqtt

import (
	"errors"
	"strings"
)

// Packet types (MQTT 3.1.1 §2.2.1, 5.0 §2.1.2).
const (
	tConnect     = 1
	tConnack     = 2
	tPublish     = 3
	tPuback      = 4
	tPubrec      = 5
	tPubrel      = 6
	tPubcomp     = 7
	tSubscribe   = 8
	tSuback      = 9
	tUnsubscribe = 10
	tUnsuback    = 11
	tPingreq     = 12
	tPingresp    = 13
	tDisconnect  = 14
	tAuth        = 15
)

// MQTT 5 reason codes used here.
const (
	rcSuccess            = 0x00
	rcNoMatchingSubs     = 0x10
	rcNoSubExisted       = 0x11
	rcUnspecified        = 0x80
	rcMalformed          = 0x81
	rcProtocolError      = 0x82
	rcImplementation     = 0x83
	rcUnsupportedVersion = 0x84
	rcBadClientID        = 0x85
	rcBadCredentials     = 0x86
	rcNotAuthorized      = 0x87
	rcServerShutdown     = 0x8B
	rcBadAuthMethod      = 0x8C
	rcKeepAliveTimeout   = 0x8D
	rcSessionTakenOver   = 0x8E
	rcTopicFilterInvalid = 0x8F
	rcTopicNameInvalid   = 0x90
	rcPacketIDNotFound   = 0x92
	rcReceiveMaxExceeded = 0x93
	rcTopicAliasInvalid  = 0x94
	rcPacketTooLarge     = 0x95
	rcQuotaExceeded      = 0x97
)

// errFrame reports a malformed fixed header.
var errFrame = errors.New("mqtt: malformed fixed header")

// parseHeader reads a fixed header from in: the first byte, the remaining
// length and the header's size. ok is false when more bytes are needed.
func parseHeader(in []byte) (first byte, remaining, hdr int, ok bool, err error) {
	if len(in) < 2 {
		return 0, 0, 0, false, nil
	}
	mul := 1
	for i := 1; i <= 4; i++ {
		if i >= len(in) {
			return 0, 0, 0, false, nil
		}
		b := in[i]
		remaining += int(b&0x7f) * mul
		if b&0x80 == 0 {
			return in[0], remaining, i + 1, true, nil
		}
		mul *= 128
	}
	return 0, 0, 0, false, errFrame // a fifth length byte
}

func appendVarint(b []byte, n int) []byte {
	for {
		c := byte(n % 128)
		n /= 128
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

func varintLen(n int) int {
	k := 1
	for n >= 128 {
		n /= 128
		k++
	}
	return k
}

func appendString(b []byte, s string) []byte {
	b = append(b, byte(len(s)>>8), byte(len(s)))
	return append(b, s...)
}

// appendAck appends PUBACK, PUBREC, PUBREL or PUBCOMP (first is the whole
// first byte). MQTT 5 omits a success reason code.
func appendAck(b []byte, first byte, id uint16, v5 bool, rc byte) []byte {
	if v5 && rc != rcSuccess {
		return append(b, first, 3, byte(id>>8), byte(id), rc)
	}
	return append(b, first, 2, byte(id>>8), byte(id))
}

// appendAckReason is appendAck with a Reason String (MQTT 5 §3.4.2.2.2)
// when reason is not "" and the packet stays within max (0: no limit).
func appendAckReason(b []byte, first byte, id uint16, rc byte, reason string, max uint32) []byte {
	plen := 3 + len(reason) // Reason String: id, length, text
	n := 3 + varintLen(plen) + plen
	if reason == "" || len(reason) > 65535 || max > 0 && uint64(1+varintLen(n)+n) > uint64(max) {
		return appendAck(b, first, id, true, rc)
	}
	b = append(b, first)
	b = appendVarint(b, n)
	b = append(b, byte(id>>8), byte(id), rc)
	b = appendVarint(b, plen)
	return appendString(append(b, 0x1F), reason)
}

// appendDisconnect appends an MQTT 5 DISCONNECT with reason rc and empty
// properties (spelled out: some decoders, mochi's among them, read the
// reason code only when properties follow), or with a Reason String when
// reason is not "" and the packet stays within max (0: no limit).
func appendDisconnect(b []byte, rc byte, reason string, max uint32) []byte {
	plen := 3 + len(reason)
	n := 1 + varintLen(plen) + plen
	if reason == "" || len(reason) > 65535 || max > 0 && uint64(1+varintLen(n)+n) > uint64(max) {
		return append(b, tDisconnect<<4, 2, rc, 0)
	}
	b = append(b, tDisconnect<<4)
	b = appendVarint(b, n)
	b = append(b, rc)
	b = appendVarint(b, plen)
	return appendString(append(b, 0x1F), reason)
}

// topicToKey converts an MQTT topic name or filter to an AMQP routing key
// or binding key the way RabbitMQ does by default: levels are separated by
// '.', a '.' inside a level becomes '/', '+' becomes '*' and '#' stays.
func topicToKey(t string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '/':
			return '.'
		case '.':
			return '/'
		case '+':
			return '*'
		}
		return r
	}, t)
}

// keyToTopic is topicToKey's inverse for routing keys.
func keyToTopic(k string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, k)
}

// keyToFilter is topicToKey's inverse for binding keys.
func keyToFilter(k string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		case '*':
			return '+'
		}
		return r
	}, k)
}

// validFilter reports whether f is a valid topic filter (MQTT 3.1.1
// §4.7.1): '#' only as the whole last level, '+' only as a whole level.
func validFilter(f string) bool {
	if f == "" {
		return false
	}
	levels := strings.Split(f, "/")
	for i, l := range levels {
		if strings.Contains(l, "#") && (l != "#" || i != len(levels)-1) {
			return false
		}
		if strings.Contains(l, "+") && l != "+" {
			return false
		}
	}
	return true
}

// matchFilter reports whether topic matches filter (MQTT 3.1.1 §4.7).
func matchFilter(filter, topic string) bool {
	if strings.HasPrefix(topic, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		tl, trest, tmore := strings.Cut(topic, "/")
		if fl != "+" && fl != tl {
			return false
		}
		if !fmore || !tmore {
			// "a/#" matches "a" as well.
			return fmore == tmore || (fmore && frest == "#")
		}
		filter, topic = frest, trest
	}
}

// matchTopicKey is matchFilter for a topic given as its routing key (see
// topicToKey), without converting it: levels are compared character by
// character with '.' and '/' swapped. A '*' in filter is a character, not
// the AMQP wildcard it becomes in the binding key. It allocates nothing.
func matchTopicKey(filter, key string) bool { return matchKeyLevels(filter, key, sameLevel) }

// matchKeyLevels is matchFilter over a routing key, comparing filter levels
// with key levels through same (which knows the topic mode's mapping).
func matchKeyLevels(filter, key string, same func(t, k string) bool) bool {
	if strings.HasPrefix(key, "$") && (strings.HasPrefix(filter, "+") || strings.HasPrefix(filter, "#")) {
		return false
	}
	for {
		fl, frest, fmore := strings.Cut(filter, "/")
		if fl == "#" {
			return true
		}
		kl, krest, kmore := strings.Cut(key, ".")
		if fl != "+" && !same(fl, kl) {
			return false
		}
		if !fmore || !kmore {
			return fmore == kmore || (fmore && frest == "#")
		}
		filter, key = frest, krest
	}
}

// sameLevel reports whether topic level t is key level k.
func sameLevel(t, k string) bool {
	if len(t) != len(k) {
		return false
	}
	for i := 0; i < len(t); i++ {
		c := k[i]
		if c == '/' {
			c = '.'
		}
		if t[i] != c {
			return false
		}
	}
	return true
}

// appendKeyTopic appends the topic of routing key k (keyToTopic without
// the allocation); the topic has k's length.
func appendKeyTopic(b []byte, k string) []byte {
	b = append(b, byte(len(k)>>8), byte(len(k)))
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch c {
		case '.':
			c = '/'
		case '/':
			c = '.'
		}
		b = append(b, c)
	}
	return b
}
