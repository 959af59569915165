package interop

import (
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"

	jstomp "github.com/junction-broker/junction/protocols/stomp"
)

// Malformed input over a raw socket: each bad frame gets an ERROR with a
// message and the connection is closed, while a well-behaved connection
// opened before keeps working and no session panics. Declared sizes and
// header floods are in the hostile catalogue (hostile_stomp_test.go),
// which also bounds memory and a bystander's latency.

// stompMaxFrame is the frame limit the malformed-input broker runs with.
const stompMaxFrame = 64 << 10

func TestSTOMPMalformedInput(t *testing.T) {
	b := startStompBroker(t, func(c *jstomp.Config) { c.MaxFrameSize = stompMaxFrame })

	for _, tc := range []struct {
		name    string
		version string // CONNECT first with this version; "" sends the bad bytes first
		bad     string
	}{
		{"send-without-destination", "1.2", "SEND\nreceipt:r1\n\nno destination\x00"},
		{"send-empty-destination", "1.1", "SEND\ndestination:\n\nx\x00"},
		{"subscribe-without-destination", "1.2", "SUBSCRIBE\nid:s1\n\n\x00"},
		{"unknown-command", "1.2", "FROB\nx:y\n\n\x00"},
		{"lowercase-command", "1.0", "send\ndestination:/queue/x\n\n\x00"},
		{"bad-escape-tab-1.2", "1.2", "SEND\ndestination:/queue/x\nx-h:a\\tb\n\nx\x00"},
		{"bad-escape-cr-1.1", "1.1", "SEND\ndestination:/queue/x\nx-h:a\\rb\n\nx\x00"},
		{"trailing-backslash-1.2", "1.2", "SEND\ndestination:/queue/x\nx-h:ab\\\n\nx\x00"},
		{"header-without-colon", "1.2", "SEND\ndestination:/queue/x\njunk\n\nx\x00"},
		{"content-length-not-a-number", "1.2", "SEND\ndestination:/queue/x\ncontent-length:ten\n\nx\x00"},
		{"body-without-nul-then-garbage", "1.2", "SEND\ndestination:/queue/x\ncontent-length:3\n\nabcGARBAGE\x01\x02\nSEND\n\n\x00"},
		{"unterminated-body-over-limit", "1.2", "SEND\ndestination:/queue/x\n\n" + strings.Repeat("A", 2*stompMaxFrame)},
		{"header-line-over-limit", "1.2", "SEND\ndestination:/queue/x\nx-h:" + strings.Repeat("v", 2*stompMaxFrame) + "\n\nx\x00"},
		{"send-before-connect", "", "SEND\ndestination:/queue/x\n\nearly\x00"},
		{"subscribe-before-connect", "", "SUBSCRIBE\ndestination:/queue/x\nid:1\n\n\x00"},
		{"http-before-connect", "", "GET / HTTP/1.1\r\nHost: localhost\r\n\r\n"},
		{"binary-before-connect", "", "\x16\x03\x01\x02\x00\x01\xfc\n\n\x00"},
		{"connect-twice", "1.2", stompFrameBytes("CONNECT", "", "accept-version", "1.2", "host", "/", "login", "guest", "passcode", "guest")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// A well-behaved connection, opened before the bad one.
			good := stompDial(t, b.addr, stomp.V12)
			goodQ := "/queue/bystander-" + tc.name
			gs := stompSub(t, good, goodQ, stomp.AckClientIndividual)

			r := dialStompRaw(t, b.addr)
			if tc.version != "" {
				r.connect(tc.version)
			}
			_ = r.trySend(tc.bad) // the broker may close before it has read it all
			f := r.expectError()
			t.Logf("%s", f)

			stompSend(t, good, goodQ, "still working")
			m := stompWantBodies(t, gs, "still working")[0]
			if err := good.Ack(m); err != nil {
				t.Fatal(err)
			}
			if n := b.srv.Panics(); n != 0 {
				t.Fatalf("%d panics in sessions", n)
			}
		})
	}
}
