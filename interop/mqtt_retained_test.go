package interop

import (
	"context"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
)

// Retained messages; their survival of a kill -9 is in
// mqtt_restart_test.go.

// markers numbers the markers of retained5 and retained3.
var markers atomic.Int64

// isMarker reports whether body is a marker (of this or another client's
// subscription, routed to every subscriber of its topic).
func isMarker(body []byte) bool { return strings.HasPrefix(string(body), "marker-") }

// retained5 subscribes c and returns the payloads of the retained messages
// the subscription brought, by topic: those that arrive before a marker
// published afterwards (retained messages go out with the SUBACK, ahead of
// anything routed later). Other markers are skipped.
func retained5(ctx context.Context, t *testing.T, c, marker *client5, sub paho.SubscribeOptions, markerTopic string) map[string]string {
	t.Helper()
	sub5(ctx, t, c, sub)
	mine := "marker-" + strconv.FormatInt(markers.Add(1), 10)
	pub5(ctx, t, marker, &paho.Publish{Topic: markerTopic, QoS: 1, Payload: []byte(mine)})
	got := map[string]string{}
	for m := next5(t, c); string(m.Payload) != mine; m = next5(t, c) {
		switch {
		case isMarker(m.Payload):
		case !m.Retain:
			t.Fatalf("%q on %q without the retain flag", m.Payload, m.Topic)
		default:
			got[m.Topic] = string(m.Payload)
		}
	}
	return got
}

// retained3 is retained5 for a paho.mqtt.golang client whose messages go
// to in.
func retained3(ctx context.Context, t *testing.T, c mqtt3.Client, in <-chan mqtt3.Message, marker *client5, filter string, qos byte, markerTopic string) map[string]string {
	t.Helper()
	wait3(t, "subscribe "+filter, c.Subscribe(filter, qos, nil))
	mine := "marker-" + strconv.FormatInt(markers.Add(1), 10)
	pub5(ctx, t, marker, &paho.Publish{Topic: markerTopic, QoS: 1, Payload: []byte(mine)})
	got := map[string]string{}
	for m := next3(t, in); string(m.Payload()) != mine; m = next3(t, in) {
		switch {
		case isMarker(m.Payload()):
		case !m.Retained():
			t.Fatalf("%q on %q without the retain flag", m.Payload(), m.Topic())
		default:
			got[m.Topic()] = string(m.Payload())
		}
	}
	return got
}

func sameMap(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestMQTTRetained: retained messages go to new subscriptions with exact
// and wildcard filters (at the lower QoS), not to existing ones as
// retained, and an empty retained publish clears the topic.
func TestMQTTRetained(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "rt-pub", CleanStart: true}, opts5{})
	for _, m := range []struct{ topic, body string }{{"rt/a/b", "ab"}, {"rt/a/c", "ac"}, {"rt/x", "x"}} {
		pub5(ctx, t, pub, &paho.Publish{Topic: m.topic, QoS: 2, Retain: true, Payload: []byte(m.body)})
	}
	pub3, _ := open3(t, opts3(addr, "rt-pub3", 4, true, nil))
	wait3(t, "publish", pub3.Publish("rt/3", 1, true, "from 3.1.1"))

	c5 := open5(ctx, t, addr, &paho.Connect{ClientID: "rt-5", CleanStart: true}, opts5{})
	in := make(chan mqtt3.Message, 20)
	c3, _ := open3(t, opts3(addr, "rt-3", 4, true, in))
	for _, tc := range []struct {
		filter, marker string
		want           map[string]string
	}{
		{"rt/a/b", "rt/a/b", map[string]string{"rt/a/b": "ab"}},
		{"rt/+/c", "rt/m/c", map[string]string{"rt/a/c": "ac"}},
		{"rt/#", "rt/m", map[string]string{"rt/a/b": "ab", "rt/a/c": "ac", "rt/x": "x", "rt/3": "from 3.1.1"}},
	} {
		if got := retained5(ctx, t, c5, pub, paho.SubscribeOptions{Topic: tc.filter, QoS: 1}, tc.marker); !sameMap(got, tc.want) {
			t.Errorf("5.0 %q: retained %v, want %v", tc.filter, got, tc.want)
		}
		if got := retained3(ctx, t, c3, in, pub, tc.filter, 1, tc.marker); !sameMap(got, tc.want) {
			t.Errorf("3.1.1 %q: retained %v, want %v", tc.filter, got, tc.want)
		}
	}

	// An existing subscription gets a retained publish as a normal one
	// [MQTT-3.3.1-9]; the QoS of a retained message is capped by the
	// subscription's.
	pub5(ctx, t, pub, &paho.Publish{Topic: "rt/x", QoS: 2, Retain: true, Payload: []byte("x2")})
	m := next5(t, c5)
	for isMarker(m.Payload) {
		m = next5(t, c5)
	}
	if string(m.Payload) != "x2" || m.Retain || m.QoS != 1 {
		t.Fatalf("5.0 live retained publish: %q retain %v QoS %d", m.Payload, m.Retain, m.QoS)
	}
	m3 := next3(t, in)
	for isMarker(m3.Payload()) {
		m3 = next3(t, in)
	}
	if string(m3.Payload()) != "x2" || m3.Retained() || m3.Qos() != 1 {
		t.Fatalf("3.1.1 live retained publish: %q retain %v QoS %d", m3.Payload(), m3.Retained(), m3.Qos())
	}
	q0 := open5(ctx, t, addr, &paho.Connect{ClientID: "rt-q0", CleanStart: true}, opts5{})
	sub5(ctx, t, q0, paho.SubscribeOptions{Topic: "rt/x", QoS: 0})
	if m := next5(t, q0); string(m.Payload) != "x2" || !m.Retain || m.QoS != 0 {
		t.Fatalf("retained at QoS 0: %q retain %v QoS %d", m.Payload, m.Retain, m.QoS)
	}

	// Empty retained publishes clear rt/a/b (5.0) and rt/3 (3.1.1).
	pub5(ctx, t, pub, &paho.Publish{Topic: "rt/a/b", QoS: 1, Retain: true})
	wait3(t, "publish", pub3.Publish("rt/3", 1, true, ""))
	fresh := open5(ctx, t, addr, &paho.Connect{ClientID: "rt-fresh", CleanStart: true}, opts5{})
	if got, want := retained5(ctx, t, fresh, pub, paho.SubscribeOptions{Topic: "rt/#", QoS: 1}, "rt/m"),
		map[string]string{"rt/a/c": "ac", "rt/x": "x2"}; !sameMap(got, want) {
		t.Errorf("after clearing: retained %v, want %v", got, want)
	}
}

// TestMQTTRetainedLimits: past mqtt.retained_max_messages or
// retained_max_bytes a retained publish is not retained; an MQTT 5 QoS 1
// or 2 publisher gets 0x97 (quota exceeded) and the message is not
// routed, others are routed as usual. Replacing and clearing stay possible.
func TestMQTTRetainedLimits(t *testing.T) {
	addr := startMQTTServer(t, nil, jmqtt.Config{RetainedMaxMessages: 2, RetainedMaxBytes: 1024})
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "lim-pub", CleanStart: true}, opts5{})
	watch := open5(ctx, t, addr, &paho.Connect{ClientID: "lim-watch", CleanStart: true}, opts5{})
	sub5(ctx, t, watch, paho.SubscribeOptions{Topic: "lim/#", QoS: 1})
	retain := func(topic, body string, qos byte) byte {
		r, err := pub.Publish(ctx, &paho.Publish{Topic: topic, QoS: qos, Retain: true, Payload: []byte(body)})
		if r == nil {
			t.Fatalf("publish %q: %v", topic, err)
		}
		return r.ReasonCode
	}
	routed := func(body string) bool {
		pub5(ctx, t, pub, &paho.Publish{Topic: "lim/marker", QoS: 1, Payload: []byte("marker")})
		seen := false
		for m := next5(t, watch); string(m.Payload) != "marker"; m = next5(t, watch) {
			seen = seen || string(m.Payload) == body
		}
		return seen
	}

	for _, tc := range []struct {
		topic, body string
		qos, rc     byte
		routed      bool
	}{
		{"lim/1", "one", 1, 0, true},
		{"lim/2", "two", 2, 0, true},
		{"lim/3", "three", 1, 0x97, false}, // a third topic
		{"lim/1", "one again", 1, 0, true}, // replacing
		{"lim/2", "", 1, 0, true},          // clearing
		{"lim/3", "three", 2, 0, true},     // room again
		{"lim/1", strings.Repeat("b", 1500), 1, 0x97, false},
	} {
		if rc := retain(tc.topic, tc.body, tc.qos); rc != tc.rc {
			t.Errorf("%s %.10q: reason %#x, want %#x", tc.topic, tc.body, rc, tc.rc)
		}
		if tc.body != "" && routed(tc.body) != tc.routed {
			t.Errorf("%s %.10q: routed %v, want %v", tc.topic, tc.body, !tc.routed, tc.routed)
		}
	}
	// MQTT 3.1.1 has no negative PUBACK: routed, not retained.
	c3, _ := open3(t, opts3(addr, "lim-3", 4, true, nil))
	wait3(t, "publish", c3.Publish("lim/4", 1, true, "four"))
	if !routed("four") {
		t.Error("3.1.1 over the limit: not routed")
	}
	fresh := open5(ctx, t, addr, &paho.Connect{ClientID: "lim-fresh", CleanStart: true}, opts5{})
	if got, want := retained5(ctx, t, fresh, pub, paho.SubscribeOptions{Topic: "lim/#", QoS: 1}, "lim/marker"),
		map[string]string{"lim/1": "one again", "lim/3": "three"}; !sameMap(got, want) {
		t.Errorf("retained %v, want %v", got, want)
	}
}

// TestMQTTRetainOptions: MQTT 5 subscription options Retain As Published,
// Retain Handling (0 always, 1 only for a new subscription, 2 never) and
// No Local.
func TestMQTTRetainOptions(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	pub := open5(ctx, t, addr, &paho.Connect{ClientID: "ro-pub", CleanStart: true}, opts5{})
	pub5(ctx, t, pub, &paho.Publish{Topic: "ro/kept", QoS: 1, Retain: true, Payload: []byte("kept")})

	t.Run("retain as published", func(t *testing.T) {
		rap := open5(ctx, t, addr, &paho.Connect{ClientID: "ro-rap", CleanStart: true}, opts5{})
		sub5(ctx, t, rap, paho.SubscribeOptions{Topic: "ro/live", QoS: 1, RetainAsPublished: true})
		plain := open5(ctx, t, addr, &paho.Connect{ClientID: "ro-plain", CleanStart: true}, opts5{})
		sub5(ctx, t, plain, paho.SubscribeOptions{Topic: "ro/live", QoS: 1})
		pub5(ctx, t, pub, &paho.Publish{Topic: "ro/live", QoS: 1, Retain: true, Payload: []byte("live")})
		pub5(ctx, t, pub, &paho.Publish{Topic: "ro/live", QoS: 1, Payload: []byte("not retained")})
		if m := next5(t, rap); !m.Retain || string(m.Payload) != "live" {
			t.Errorf("Retain As Published: %q retain %v", m.Payload, m.Retain)
		}
		if m := next5(t, rap); m.Retain {
			t.Errorf("Retain As Published: a plain publish with retain")
		}
		if m := next5(t, plain); m.Retain {
			t.Errorf("without Retain As Published: %q with retain", m.Payload)
		}
	})

	t.Run("retain handling", func(t *testing.T) {
		for _, tc := range []struct {
			rh          byte
			first, next bool // retained sent on the first subscribe, on a repeated one
		}{{0, true, true}, {1, true, false}, {2, false, false}} {
			c := open5(ctx, t, addr, &paho.Connect{ClientID: "ro-rh", CleanStart: true}, opts5{})
			for i, want := range []bool{tc.first, tc.next} {
				got := retained5(ctx, t, c, pub, paho.SubscribeOptions{Topic: "ro/kept", QoS: 1, RetainHandling: tc.rh}, "ro/kept")
				if (got["ro/kept"] == "kept") != want || len(got) > 1 {
					t.Errorf("retain handling %d, subscribe %d: retained %v, want it sent: %v", tc.rh, i+1, got, want)
				}
			}
			// The marker, published without retain, did not replace "kept".
			_ = c.Disconnect(&paho.Disconnect{})
		}
	})

	t.Run("no local", func(t *testing.T) {
		c := open5(ctx, t, addr, &paho.Connect{ClientID: "ro-nl", CleanStart: true}, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "nl/#", QoS: 1, NoLocal: true})
		other := open5(ctx, t, addr, &paho.Connect{ClientID: "ro-nl-other", CleanStart: true}, opts5{})
		sub5(ctx, t, other, paho.SubscribeOptions{Topic: "nl/#", QoS: 1})
		pub5(ctx, t, c, &paho.Publish{Topic: "nl/own", QoS: 1, Payload: []byte("own")})
		pub5(ctx, t, pub, &paho.Publish{Topic: "nl/theirs", QoS: 1, Payload: []byte("theirs")})
		if m := next5(t, c); string(m.Payload) != "theirs" {
			t.Fatalf("No Local: got %q first, want theirs", m.Payload)
		}
		for _, want := range []string{"own", "theirs"} {
			if m := next5(t, other); string(m.Payload) != want {
				t.Fatalf("other subscriber got %q, want %q", m.Payload, want)
			}
		}
	})
}
