package mqtt

import "strings"

// topicMode is how MQTT topics and filters become AMQP routing and binding
// keys (mqtt.topic_mode).
//
// swap is RabbitMQ's mapping: '/' and '.' trade places and '+' becomes '*'
// (see topicToKey). AMQP and STOMP clients see the keys they see on
// RabbitMQ, but a topic level with a dot in it (an IP address, "spBv1.0")
// shows up in the key with slashes ("site/10.0.0.1/temp" is
// "site.10/0/0/1.temp").
//
// lossless keeps the dots: '/' becomes '.', and the characters the key
// needs for itself are escaped inside a level, '.' as "%2E", '*' as "%2A"
// and '%' as "%25" ("site/10.0.0.1/temp" is "site.10%2E0%2E0%2E1.temp").
// Every MQTT topic and filter maps to a distinct key and back unchanged;
// a key from AMQP or STOMP maps to the topic with '.' as '/' and those
// three escapes undone (a '/' in such a key becomes a level separator, and
// "%2e" in lower case is left as it is).
type topicMode uint8

const (
	swapTopics topicMode = iota
	losslessTopics
)

// key converts a topic name or filter to a routing or binding key.
func (m topicMode) key(t string) string {
	if m == swapTopics {
		return topicToKey(t)
	}
	n := len(t)
	for i := 0; i < len(t); i++ {
		switch t[i] {
		case '.', '*', '%':
			n += 2
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(t); i++ {
		switch c := t[i]; c {
		case '/':
			b.WriteByte('.')
		case '+':
			b.WriteByte('*')
		case '.':
			b.WriteString("%2E")
		case '*':
			b.WriteString("%2A")
		case '%':
			b.WriteString("%25")
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// topic converts a routing key to the topic name MQTT subscribers see.
func (m topicMode) topic(k string) string {
	if m == swapTopics {
		return keyToTopic(k)
	}
	return string(m.appendTopicBytes(make([]byte, 0, len(k)), k))
}

// filter converts a binding key to a topic filter.
func (m topicMode) filter(k string) string {
	if m == swapTopics {
		return keyToFilter(k)
	}
	b := make([]byte, 0, len(k))
	for i := 0; i < len(k); i++ {
		switch c := k[i]; {
		case c == '.':
			b = append(b, '/')
		case c == '*':
			b = append(b, '+')
		case c == '%' && i+2 < len(k):
			if d, ok := unescape(k[i+1], k[i+2]); ok {
				b = append(b, d)
				i += 2
				continue
			}
			b = append(b, c)
		default:
			b = append(b, c)
		}
	}
	return string(b)
}

// unescape decodes the three escapes of the lossless mode.
func unescape(h, l byte) (byte, bool) {
	if h != '2' {
		return 0, false
	}
	switch l {
	case 'E':
		return '.', true
	case 'A':
		return '*', true
	case '5':
		return '%', true
	}
	return 0, false
}

// appendTopicBytes appends the topic of routing key k.
func (m topicMode) appendTopicBytes(b []byte, k string) []byte {
	if m == swapTopics {
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
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '.':
			c = '/'
		case c == '%' && i+2 < len(k):
			if d, ok := unescape(k[i+1], k[i+2]); ok {
				c = d
				i += 2
			}
		}
		b = append(b, c)
	}
	return b
}

// topicLen is the length of the topic of routing key k.
func (m topicMode) topicLen(k string) int {
	if m == swapTopics {
		return len(k)
	}
	n := len(k)
	for i := 0; i+2 < len(k); i++ {
		if k[i] == '%' {
			if _, ok := unescape(k[i+1], k[i+2]); ok {
				n -= 2
				i += 2
			}
		}
	}
	return n
}

// appendKeyTopic appends the topic of routing key k as an MQTT string
// (two length bytes, then the topic) without an intermediate allocation.
func (m topicMode) appendKeyTopic(b []byte, k string) []byte {
	n := m.topicLen(k)
	b = append(b, byte(n>>8), byte(n))
	return m.appendTopicBytes(b, k)
}

// matchKey reports whether the topic of routing key key matches filter
// (matchFilter), without converting the key. A '*' in filter is a
// character, not the AMQP wildcard it becomes in the binding key. It
// allocates nothing.
func (m topicMode) matchKey(filter, key string) bool {
	if m == swapTopics {
		return matchTopicKey(filter, key)
	}
	return matchKeyLevels(filter, key, sameEscapedLevel)
}

// sameEscapedLevel reports whether topic level t is lossless key level k.
func sameEscapedLevel(t, k string) bool {
	j := 0
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '%' && i+2 < len(k) {
			if d, ok := unescape(k[i+1], k[i+2]); ok {
				c = d
				i += 2
			}
		}
		if j >= len(t) || t[j] != c {
			return false
		}
		j++
	}
	return j == len(t)
}
