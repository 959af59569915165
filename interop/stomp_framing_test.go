package interop

import (
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"
)

// Framing: CONNECT and STOMP, version negotiation, header escaping by
// version, content-length bodies with NUL octets, repeated headers.

// TestSTOMPConnectCommands: go-stomp connects with CONNECT over every
// version and with STOMP over 1.1 and 1.2, and the connection works.
func TestSTOMPConnectCommands(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		cmds := []string{"CONNECT"}
		if v != stomp.V10 {
			cmds = append(cmds, "STOMP") // STOMP 1.1 §STOMP Frame
		}
		for _, cmd := range cmds {
			t.Run(cmd, func(t *testing.T) {
				var extra []func(*stomp.Conn) error
				if cmd == "STOMP" {
					extra = append(extra, stomp.ConnOpt.UseStomp)
				}
				c := stompDial(t, b.addr, v, extra...)
				q := "/queue/connect-" + cmd + "-" + string(v)
				s := stompSub(t, c, q, stomp.AckAuto)
				stompSend(t, c, q, "hello")
				stompWantBodies(t, s, "hello")
			})
		}
	})
}

// TestSTOMPVersionNegotiation: the highest common version wins, no
// accept-version means 1.0, and no common version is an ERROR that lists
// the supported ones (STOMP 1.2 §Protocol Negotiation).
func TestSTOMPVersionNegotiation(t *testing.T) {
	b := startStompBroker(t)
	for _, tc := range []struct {
		accept string // "-": no accept-version header
		want   string
	}{
		{"1.0,1.1,1.2", "1.2"},
		{"1.2,1.1,1.0", "1.2"},
		{"1.0,1.1", "1.1"},
		{"1.1", "1.1"},
		{"1.0", "1.0"},
		{"1.2,2.0", "1.2"},
		{"-", "1.0"},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			r := dialStompRaw(t, b.addr)
			hs := []string{"host", "/", "login", "guest", "passcode", "guest"}
			if tc.accept != "-" {
				hs = append(hs, "accept-version", tc.accept)
			}
			r.frame("CONNECT", "", hs...)
			f := r.expect("CONNECTED")
			got := f.get("version")
			if got == "" {
				got = "1.0" // STOMP 1.0 servers send no version header
			}
			if got != tc.want {
				t.Fatalf("accept-version %q: CONNECTED version %q, want %s (%s)", tc.accept, got, tc.want, f)
			}
			if _, ok := f.lookup("heart-beat"); ok != (tc.want != "1.0") {
				t.Errorf("version %s: heart-beat header present=%v (%s)", tc.want, ok, f)
			}
		})
	}
	for _, accept := range []string{"2.0", "0.9,3.1", "1.3"} {
		t.Run("none-of-"+accept, func(t *testing.T) {
			r := dialStompRaw(t, b.addr)
			r.frame("CONNECT", "", "accept-version", accept, "host", "/", "login", "guest", "passcode", "guest")
			f := r.expectError()
			if v := f.get("version"); !strings.Contains(v, "1.2") {
				t.Errorf("ERROR version header %q, want the supported versions (%s)", v, f)
			}
		})
	}
	t.Run("go-stomp", func(t *testing.T) {
		c, err := stomp.Dial("tcp", b.addr, append(stompDialOpts(stomp.V10), stomp.ConnOpt.AcceptVersion(stomp.V11))...)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Disconnect()
		if c.Version() != stomp.V11 {
			t.Fatalf("accept-version 1.0,1.1: negotiated %s", c.Version())
		}
	})
}

// TestSTOMPHeaderEscaping: in 1.1 and 1.2 a header value with ':', '\n'
// and '\\' (and '\r' in 1.2) is escaped on the wire and round-trips; in 1.0
// nothing is escaped and a value may contain ':'.
func TestSTOMPHeaderEscaping(t *testing.T) {
	b := startStompBroker(t)
	for _, tc := range []struct {
		version, wire, want string
	}{
		{"1.0", `a:b:c`, "a:b:c"},
		{"1.1", `a\cb\nc\\d`, "a:b\nc\\d"},
		{"1.2", `a\cb\nc\\d\re`, "a:b\nc\\d\re"},
	} {
		t.Run(tc.version, func(t *testing.T) {
			q := "/queue/escape-" + tc.version
			sub := dialStompRaw(t, b.addr)
			sub.connect(tc.version)
			sub.receipt("SUBSCRIBE", "", "s", "destination", q, "id", "s1")
			pub := dialStompRaw(t, b.addr)
			pub.connect(tc.version)
			pub.receipt("SEND", "x", "p", "destination", q, "x-h", tc.wire)
			m := sub.expect("MESSAGE")
			if got := m.get("x-h"); got != tc.want {
				t.Fatalf("x-h %q, want %q (%s)", got, tc.want, m)
			}
		})
	}
	// A real client over 1.1 and 1.2: go-stomp escapes and unescapes.
	for _, v := range []stomp.Version{stomp.V11, stomp.V12} {
		t.Run("go-stomp-"+string(v), func(t *testing.T) {
			c := stompDial(t, b.addr, v)
			q := "/queue/escape-go-" + string(v)
			s := stompSub(t, c, q, stomp.AckAuto)
			want := "key:value\nsecond line\\with backslash"
			stompSend(t, c, q, "x", "x-h", want)
			if got := stompNext(t, s).Header.Get("x-h"); got != want {
				t.Fatalf("x-h %q, want %q", got, want)
			}
		})
	}
}

// TestSTOMPContentLengthNUL: a body with NUL octets, framed by
// content-length, arrives whole; a NUL-terminated body without
// content-length too.
func TestSTOMPContentLengthNUL(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		q := "/queue/nul-" + string(v)
		r := dialStompRaw(t, b.addr)
		r.connect(string(v))
		r.receipt("SUBSCRIBE", "", "s", "destination", q, "id", "s1")
		body := "\x00a\x00\x00b\nc\x00"
		r.receipt("SEND", body, "p1", "destination", q, "content-length", "8")
		m := r.expect("MESSAGE")
		if string(m.body) != body || m.get("content-length") != "8" {
			t.Fatalf("MESSAGE %s, want body %q with content-length 8", m, body)
		}
		r.receipt("SEND", "plain text", "p2", "destination", q)
		if m := r.expect("MESSAGE"); string(m.body) != "plain text" {
			t.Fatalf("MESSAGE %s, want body %q", m, "plain text")
		}

		// go-stomp always sends content-length.
		c := stompDial(t, b.addr, v)
		gq := "/queue/nul-go-" + string(v)
		s := stompSub(t, c, gq, stomp.AckAuto)
		stompSend(t, c, gq, "x\x00y\x00")
		if got := stompNext(t, s).Body; string(got) != "x\x00y\x00" {
			t.Fatalf("body %q", got)
		}
	})
}

// TestSTOMPRepeatedHeaders: when a header is repeated only the first
// occurrence counts (STOMP 1.2 §Repeated Header Entries), for the
// destination as for any other header.
func TestSTOMPRepeatedHeaders(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		first, second := "/queue/rep-first-"+string(v), "/queue/rep-second-"+string(v)
		r := dialStompRaw(t, b.addr)
		r.connect(string(v))
		r.receipt("SUBSCRIBE", "", "s", "destination", first, "id", "s1")
		r.receipt("SEND", "x", "p",
			"destination", first, "destination", second,
			"x-rep", "one", "x-rep", "two",
			"content-type", "text/one", "content-type", "text/two")
		m := r.expect("MESSAGE")
		if m.get("x-rep") != "one" || m.get("content-type") != "text/one" || m.get("destination") != first {
			t.Fatalf("MESSAGE %s, want the first x-rep, content-type and destination", m)
		}
	})
}
