package mqtt

import (
	"bytes"
	"strings"
	"testing"
)

// Bounds on what a hostile client can make a session hold or do; the
// interop catalogue (interop/hostile_mqtt_test.go) attacks them over TCP.

// TestFeedStopsWhileOutputWaits: a client asking for answers it does not
// read (here PINGRESPs) gets no more packets taken once maxUnsent bytes of
// them wait for Output; Output wakes the connection to go on.
func TestFeedStopsWhileOutputWaits(t *testing.T) {
	h := newHarness(t, Config{})
	h.connectOK(4, "pinger")
	in := bytes.Repeat([]byte{tPingreq << 4, 0}, maxUnsent) // answers twice maxUnsent
	n, err := h.s.Feed(in)
	if err != nil || n != maxUnsent {
		t.Fatalf("Feed took %d bytes (%v), want %d", n, err, maxUnsent)
	}
	if m, err := h.s.Feed(in[n:]); m != 0 || err != nil {
		t.Fatalf("Feed took %d more bytes (%v) before Output", m, err)
	}
	select {
	case <-h.c.Woken():
	default:
	}
	if out := h.s.Output(nil); len(out) != 1 || len(out[0]) != maxUnsent {
		t.Fatalf("Output gave %d buffers, want one of %d bytes", len(out), maxUnsent)
	}
	select {
	case <-h.c.Woken():
	default:
		t.Fatal("Output did not wake the connection to offer the held input")
	}
	if m, err := h.s.Feed(in[n:]); m != len(in)-n || err != nil {
		t.Fatalf("Feed took %d of the remaining %d bytes (%v)", m, len(in)-n, err)
	}
}

// TestFilterLevels: a subscription has at most maxFilterLevels levels, a
// shared one's "$share/<group>/" not counted.
func TestFilterLevels(t *testing.T) {
	for _, tc := range []struct {
		filter string
		ok     bool
	}{
		{strings.Repeat("a/", maxFilterLevels-1) + "a", true},
		{strings.Repeat("+/", maxFilterLevels-1) + "#", true},
		{strings.Repeat("a/", maxFilterLevels) + "a", false},
		{strings.Repeat("/", maxFilterLevels), false},
		{"$share/g/" + strings.Repeat("a/", maxFilterLevels-1) + "a", true},
		{"$share/g/" + strings.Repeat("a/", maxFilterLevels) + "a", false},
	} {
		if _, ok := newSubscription(swapTopics, tc.filter, 0, 0); ok != tc.ok {
			t.Errorf("%d levels: ok %v, want %v", strings.Count(tc.filter, "/")+1, ok, tc.ok)
		}
	}
}

// TestProtocolErrorsInProperties: properties the spec calls a Protocol
// Error (given twice, a value ruled out) get 0x82; cut short or unknown
// ones 0x81, MQTT 5 §2.2.2.2.
func TestProtocolErrorsInProperties(t *testing.T) {
	connect := func(props ...byte) []byte {
		body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, 0x02, 0, 60, byte(len(props))}
		body = append(append(body, props...), 0, 1, 'c')
		return append([]byte{tConnect << 4, byte(len(body))}, body...)
	}
	for _, tc := range []struct {
		name  string
		props []byte
		rc    byte
	}{
		{"receive maximum 0", []byte{0x21, 0, 0}, rcProtocolError},
		{"maximum packet size 0", []byte{0x27, 0, 0, 0, 0}, rcProtocolError},
		{"session expiry twice", []byte{0x11, 0, 0, 0, 1, 0x11, 0, 0, 0, 1}, rcProtocolError},
		{"request problem information 2", []byte{0x17, 2}, rcProtocolError},
		{"unknown property", []byte{0x7F, 0}, rcMalformed},
		{"receive maximum cut short", []byte{0x21, 0}, rcMalformed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, Config{})
			h.v = 5
			h.send(connect(tc.props...))
			if ack := h.expect(tConnack); ack.ReasonCode != tc.rc {
				t.Fatalf("CONNACK %#x, want %#x", ack.ReasonCode, tc.rc)
			}
		})
	}
	// After the CONNACK: a DISCONNECT 0x82 for a Subscription Identifier
	// of 0 (§3.8.2.1.2).
	h := newHarness(t, Config{})
	h.connectOK(5, "sub-id-0")
	h.send([]byte{tSubscribe<<4 | 2, 9, 0, 1, 2, 0x0B, 0, 0, 1, 'a', 0})
	if d := h.expect(tDisconnect); d.ReasonCode != rcProtocolError {
		t.Fatalf("DISCONNECT %#x, want 0x82", d.ReasonCode)
	}
}
