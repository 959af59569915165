package interop

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
)

// Connection: login, virtual hosts, heart-beats, DISCONNECT, ERROR frames.

// stompCommitted returns a router commit callback and a wait for it.
func stompCommitted(t testing.TB, what string) (done func(error), wait func()) {
	ch := make(chan error, 1)
	return func(err error) { ch <- err }, func() {
		t.Helper()
		select {
		case err := <-ch:
			if err != nil {
				t.Fatalf("%s: %v", what, err)
			}
		case <-time.After(stompWait):
			t.Fatalf("%s: not committed in %v", what, stompWait)
		}
	}
}

// TestSTOMPLogin: a wrong passcode or an unknown login gets an ERROR with
// a message and the connection is closed; a known user gets in.
func TestSTOMPLogin(t *testing.T) {
	b := startStompBroker(t)
	done, wait := stompCommitted(t, "add user")
	b.rt.AddUser("alice", "s3cret", nil, []string{"/"}, done)
	wait()
	forVersions(t, func(t *testing.T, v stomp.Version) {
		for _, tc := range []struct {
			name, login, pass string
			ok                bool
		}{
			{"wrong-passcode", "guest", "nope", false},
			{"unknown-login", "mallory", "guest", false},
			{"empty-passcode", "alice", "", false},
			{"other-user", "alice", "s3cret", true},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := dialStompRaw(t, b.addr)
				r.frame("CONNECT", "", "accept-version", string(v), "host", "/", "login", tc.login, "passcode", tc.pass)
				if tc.ok {
					r.version = string(v)
					r.expect("CONNECTED")
					r.receipt("SEND", "x", "r1", "destination", "/queue/login-"+string(v))
					return
				}
				r.expectError()
			})
		}
		t.Run("go-stomp", func(t *testing.T) {
			_, err := stomp.Dial("tcp", b.addr, append(stompDialOpts(v), stomp.ConnOpt.Login("guest", "wrong"))...)
			stompErrorFrame(t, err)
		})
	})
}

// TestSTOMPVirtualHosts: the host header selects the vhost; an unknown
// vhost, or one the user may not open, is an ERROR.
func TestSTOMPVirtualHosts(t *testing.T) {
	b := startStompBroker(t)
	done, wait := stompCommitted(t, "add vhost")
	b.rt.AddVHost("v2", done)
	wait()
	done, wait = stompCommitted(t, "add user")
	b.rt.AddUser("alice", "s3cret", nil, []string{"v2"}, done)
	wait()
	forVersions(t, func(t *testing.T, v stomp.Version) {
		q := "only-in-v2-" + string(v)
		alice := stompDial(t, b.addr, v, stomp.ConnOpt.Host("v2"), stomp.ConnOpt.Login("alice", "s3cret"))
		stompSend(t, alice, "/queue/"+q, "in v2")
		s := stompSub(t, alice, "/amq/queue/"+q, stomp.AckAuto)
		stompWantBodies(t, s, "in v2")

		// The queue exists in v2 only: /amq/queue/ in "/" does not find it.
		guest := stompDial(t, b.addr, v)
		gs, err := guest.Subscribe("/amq/queue/"+q, stomp.AckAuto)
		if err != nil {
			t.Fatal(err)
		}
		stompSubError(t, gs)
		stompGone(guest)

		for _, tc := range []struct{ name, host, login, pass string }{
			{"unknown-vhost", "nowhere", "guest", "guest"},
			{"no-access", "v2", "guest", "guest"},
			{"no-access-default", "/", "alice", "s3cret"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				r := dialStompRaw(t, b.addr)
				r.frame("CONNECT", "", "accept-version", string(v), "host", tc.host, "login", tc.login, "passcode", tc.pass)
				r.expectError()
			})
		}
	})
}

// TestSTOMPHeartBeatsKeepAlive: a client that asks for heart-beats and
// sends them stays connected while idle for longer than the broker's
// tolerance (two intervals), and receives the broker's heart-beats
// (go-stomp closes the connection when nothing arrives within its read
// timeout, here interval+0.5s).
func TestSTOMPHeartBeatsKeepAlive(t *testing.T) {
	t.Parallel()
	b := startStompBroker(t)
	for _, v := range []stomp.Version{stomp.V11, stomp.V12} {
		t.Run(string(v), func(t *testing.T) {
			t.Parallel()
			var hb string
			c := stompDial(t, b.addr, v,
				stomp.ConnOpt.HeartBeat(time.Second, time.Second),
				stomp.ConnOpt.HeartBeatError(500*time.Millisecond),
				stomp.ConnOpt.ResponseHeaders(func(h *stompHeaderT) { hb = h.Get("heart-beat") }))
			if hb != "1000,1000" {
				t.Fatalf("CONNECTED heart-beat %q, want 1000,1000", hb)
			}
			q := "/queue/heartbeat-" + string(v)
			s := stompSub(t, c, q, stomp.AckAuto)
			// Idle past the broker's 2s tolerance and go-stomp's 1.5s read
			// timeout: heart-beats alone must keep both sides happy.
			select {
			case m := <-s.C:
				t.Fatalf("while idle: %+v", m)
			case <-time.After(2500 * time.Millisecond):
			}
			stompSend(t, c, q, "still here")
			stompWantBodies(t, s, "still here")
		})
	}
}

// TestSTOMPHeartBeatsSilentClient: a raw client that negotiates
// heart-beats receives them, then goes silent and is closed with an ERROR.
func TestSTOMPHeartBeatsSilentClient(t *testing.T) {
	t.Parallel()
	b := startStompBroker(t)
	for _, v := range []string{"1.1", "1.2"} {
		t.Run(v, func(t *testing.T) {
			t.Parallel()
			r := dialStompRaw(t, b.addr)
			f := r.connect(v, "heart-beat", "1000,1000")
			if hb := f.get("heart-beat"); hb != "1000,1000" {
				t.Fatalf("CONNECTED heart-beat %q, want 1000,1000", hb)
			}
			// The broker sends a heart-beat (an EOL) within its interval.
			_ = r.c.SetReadDeadline(time.Now().Add(3 * time.Second))
			if c, err := r.r.ReadByte(); err != nil || c != '\n' {
				t.Fatalf("want a heart-beat EOL, got %q, %v", c, err)
			}
			start := time.Now()
			f = r.expectError()
			if d := time.Since(start); d > 5*time.Second {
				t.Errorf("silent client closed after %v, want about two intervals", d)
			}
			t.Logf("silent client: %s", f)
		})
	}
}

// TestSTOMPDisconnectReceipt: DISCONNECT with a receipt gets the RECEIPT,
// then the broker closes the connection.
func TestSTOMPDisconnectReceipt(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		r := dialStompRaw(t, b.addr)
		r.connect(string(v))
		r.receipt("DISCONNECT", "", "bye-"+string(v))
		r.expectEOF()
	})
}

// TestSTOMPErrorFrames: an ERROR carries a message header, a body, and the
// failing frame's receipt as receipt-id when it had one.
func TestSTOMPErrorFrames(t *testing.T) {
	b := startStompBroker(t)
	forVersions(t, func(t *testing.T, v stomp.Version) {
		for _, tc := range []struct {
			name    string
			cmd     string
			headers []string
		}{
			{"bad-destination", "SEND", []string{"destination", "/nowhere/x"}},
			{"missing-amq-queue", "SUBSCRIBE", []string{"destination", "/amq/queue/missing", "id", "s1"}},
			{"unknown-subscription", "UNSUBSCRIBE", []string{"id", "nope"}},
			{"unknown-transaction", "COMMIT", []string{"transaction", "nope"}},
			{"ack-unknown-message", "ACK", []string{"id", "99", "message-id", "99", "subscription", "s1"}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				for _, receipt := range []string{"r-" + tc.name, ""} {
					r := dialStompRaw(t, b.addr)
					r.connect(string(v))
					hs := tc.headers
					if receipt != "" {
						hs = append(hs[:len(hs):len(hs)], "receipt", receipt)
					}
					r.frame(tc.cmd, "", hs...)
					f := r.expectError()
					if got, ok := f.lookup("receipt-id"); got != receipt || ok != (receipt != "") {
						t.Errorf("ERROR receipt-id %q (present %v), want %q: %s", got, ok, receipt, f)
					}
				}
			})
		}
	})
}
