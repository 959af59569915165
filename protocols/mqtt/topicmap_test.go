package mqtt

import (
	"strings"
	"testing"
)

func TestLosslessTopicKeys(t *testing.T) {
	for _, tc := range []struct{ topic, key string }{
		{"site/10.0.0.1/temp", "site.10%2E0%2E0%2E1.temp"},
		{"spBv1.0/group/NDATA/node", "spBv1%2E0.group.NDATA.node"},
		{"a/b/c", "a.b.c"},
		{"100%/x*y", "100%25.x%2Ay"},
		{"/lead/", ".lead."},
		{"", ""},
	} {
		if got := losslessTopics.key(tc.topic); got != tc.key {
			t.Errorf("key(%q) = %q, want %q", tc.topic, got, tc.key)
		}
		if got := losslessTopics.topic(tc.key); got != tc.topic {
			t.Errorf("topic(%q) = %q, want %q", tc.key, got, tc.topic)
		}
		if b := losslessTopics.appendKeyTopic(nil, tc.key); string(b[2:]) != tc.topic || int(b[0])<<8|int(b[1]) != len(tc.topic) {
			t.Errorf("appendKeyTopic(%q) = %q", tc.key, b)
		}
	}
	for _, tc := range []struct{ filter, key string }{
		{"site/+/temp", "site.*.temp"},
		{"site/10.0.0.1/#", "site.10%2E0%2E0%2E1.#"},
		{"a/*/b", "a.%2A.b"}, // a literal '*' is not the AMQP wildcard
	} {
		if got := losslessTopics.key(tc.filter); got != tc.key {
			t.Errorf("key(%q) = %q, want %q", tc.filter, got, tc.key)
		}
		if got := losslessTopics.filter(tc.key); got != tc.filter {
			t.Errorf("filter(%q) = %q, want %q", tc.key, got, tc.filter)
		}
	}
	// Keys from AMQP: '.' separates levels, unknown escapes stay.
	if got := losslessTopics.topic("a.b%2e.c%41"); got != "a/b%2e/c%41" {
		t.Errorf("topic of an AMQP key = %q", got)
	}
}

// TestSwapModeIsRabbitMQs: the default mode is the functions it always was.
func TestSwapModeIsRabbitMQs(t *testing.T) {
	for _, s := range []string{"a/b.c", "x.y/z", "+/#", "a/*"} {
		if swapTopics.key(s) != topicToKey(s) || swapTopics.topic(s) != keyToTopic(s) || swapTopics.filter(s) != keyToFilter(s) {
			t.Errorf("swap mode differs from topicToKey/keyToTopic/keyToFilter for %q", s)
		}
		if string(swapTopics.appendKeyTopic(nil, s)) != string(appendKeyTopic(nil, s)) {
			t.Errorf("swap appendKeyTopic differs for %q", s)
		}
	}
}

// FuzzLosslessTopics: every topic and filter survives the trip to a key
// and back, and matching a key against a filter is matching the topic.
func FuzzLosslessTopics(f *testing.F) {
	for _, s := range []string{"site/10.0.0.1/temp", "a/+/#", "%2E/x", "a*b/%", "$SYS/x", "+", "#", "a//b", "é/ü.ß"} {
		f.Add(s, "site/+/temp")
	}
	f.Fuzz(func(t *testing.T, topic, filter string) {
		m := losslessTopics
		if !strings.ContainsAny(topic, "+#") {
			k := m.key(topic)
			if got := m.topic(k); got != topic {
				t.Fatalf("topic %q -> key %q -> %q", topic, k, got)
			}
			if b := m.appendKeyTopic(nil, k); string(b[2:]) != topic {
				t.Fatalf("appendKeyTopic(%q) = %q, want %q", k, b[2:], topic)
			}
			if validFilter(filter) && m.matchKey(filter, k) != matchFilter(filter, topic) {
				t.Fatalf("filter %q, topic %q: matchKey %v, matchFilter %v", filter, topic, m.matchKey(filter, k), matchFilter(filter, topic))
			}
		}
		if validFilter(filter) {
			if got := m.filter(m.key(filter)); got != filter {
				t.Fatalf("filter %q -> key %q -> %q", filter, m.key(filter), got)
			}
		}
	})
}
