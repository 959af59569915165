package interop

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	jstomp "github.com/junction-broker/junction/protocols/stomp"
	"github.com/junction-broker/junction/router"
)

// The STOMP part of the hostile-input catalogue (see hostile_test.go for
// what the harness checks around every case). Every attack uses a raw
// socket; the answer STOMP gives is an ERROR frame whose message header
// says what was wrong, then the close. Where the attacker closes first
// (a truncated frame) there is nobody to tell: the case asserts that the
// server closes its side and acted on nothing.

// hostileStompHandshake is the STOMP adapter's CONNECT deadline in the
// catalogue's broker: short, so that the slowloris cases end quickly.
const hostileStompHandshake = 2 * time.Second

// hostileStompTxBytes bounds what one STOMP connection's open
// transactions may hold in the catalogue's broker.
const hostileStompTxBytes = 8 << 20

func TestHostileSTOMP(t *testing.T) {
	limit := strconv.Itoa(hostileMaxMessage)
	cases := []hostileCase{
		// Before CONNECT: the handshake deadline and the login.
		{"stomp-slowloris-connect-one-byte-per-second", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			start := time.Now()
			stop := stompDribble(r.c, stompFrameBytes("CONNECT", "", "accept-version", "1.2", "host", "/"), time.Second)
			defer stop()
			stompWantError(t, r, "Connection timed out", "no CONNECT frame within "+hostileStompHandshake.String())
			if d := time.Since(start); d < hostileStompHandshake {
				t.Errorf("closed after %v, before the handshake deadline %v", d, hostileStompHandshake)
			}
		}},
		{"stomp-partial-connect-never-completes", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			r.send("CONNECT\naccept-version:1.2\nhost:/\nlogin:gu")
			stompWantError(t, r, "Connection timed out", "no CONNECT frame")
		}},
		{"stomp-flood-300-silent-connections", func(t *testing.T, e *hostileEnv) {
			stompSilentFlood(t, e, 300)
		}},
		{"stomp-flood-200-subscribe-then-vanish", func(t *testing.T, e *hostileEnv) {
			stompVanishFlood(t, e, 200)
		}},
		{"stomp-connect-heart-beat-not-x-y", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			r.frame("CONNECT", "", "accept-version", "1.2", "host", "/", "heart-beat", "1000")
			stompWantError(t, r, "Invalid heart-beat header", "'1000'")
		}},
		{"stomp-connect-heart-beat-2^63-ms", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			r.frame("CONNECT", "", "accept-version", "1.2", "host", "/", "heart-beat", "9223372036854775807,9223372036854775807")
			stompWantError(t, r, "Invalid heart-beat header", "is not 'x,y'")
		}},
		{"stomp-connect-wrong-passcode", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			r.frame("CONNECT", "", "accept-version", "1.2", "host", "/", "login", "guest", "passcode", "guess")
			stompWantError(t, r, "Access refused for user 'guest'", "Access refused")
		}},
		{"stomp-connect-unknown-vhost", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			r.frame("CONNECT", "", "accept-version", "1.2", "host", "hostile-nowhere", "login", "guest", "passcode", "guest")
			stompWantError(t, r, "Virtual host 'hostile-nowhere' access denied", "hostile-nowhere")
		}},
		{"stomp-connect-accept-version-30000-unknown", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			r.frame("CONNECT", "", "accept-version", strings.TrimSuffix(strings.Repeat("9,", 30_000), ","), "host", "/")
			f := stompWantError(t, r, "Supported protocol versions are 1.0,1.1,1.2", "1.0,1.1,1.2")
			if v := f.get("version"); v != "1.0,1.1,1.2" {
				t.Errorf("ERROR version header %q, want the supported versions", v)
			}
		}},
		{"stomp-command-line-over-64k-before-connect", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			_ = r.trySend(strings.Repeat("C", 70<<10))
			stompWantError(t, r, "header line too long", "exceeds")
		}},

		// Declared sizes: refused from the head, before any body is
		// buffered (only three bytes of it are ever sent).
		{"stomp-content-length-2^31", stompContentLength("2147483648", "frame too large", "limited to "+limit)},
		{"stomp-content-length-2^32-1", stompContentLength("4294967295", "frame too large", "limited to "+limit)},
		{"stomp-content-length-2^62", stompContentLength("4611686018427387904", "frame too large", "limited to "+limit)},
		{"stomp-content-length-2^63", stompContentLength("9223372036854775808", "frame too large", "limited to "+limit)},
		{"stomp-content-length-2^64", stompContentLength("18446744073709551616", "frame too large", "limited to "+limit)},
		{"stomp-content-length-negative", stompContentLength("-1", "invalid content-length", "not a number")},
		{"stomp-content-length-duplicated-first-wins", func(t *testing.T, e *hostileEnv) {
			// Smuggling through a second content-length: only the first
			// counts (STOMP 1.2 §Repeated Header Entries), either way round.
			q := "hostile-cl-dup"
			r := stompConnected(t, e, "1.2")
			r.send("SEND\ndestination:/queue/" + q + "\ncontent-length:3\ncontent-length:99999999999\nreceipt:r1\n\nabc\x00")
			if f := r.expect("RECEIPT"); f.get("receipt-id") != "r1" {
				t.Fatalf("want RECEIPT r1, got %s", f)
			}
			if n := stompQueueLen(e, q); n != 1 {
				t.Errorf("queue %s holds %d messages, want 1", q, n)
			}
			r.send("SEND\ndestination:/queue/" + q + "\ncontent-length:99999999999\ncontent-length:3\n\nabc\x00")
			stompWantError(t, r, "frame too large", "limited to "+limit)
		}},
		{"stomp-content-length-lies-long-then-silent", func(t *testing.T, e *hostileEnv) {
			// The frame never completes; the bytes that do come are not a
			// sign of life (heart-beats are whole frames or EOLs).
			r := stompConnected(t, e, "1.2", "heart-beat", "1000,0")
			r.send("SEND\ndestination:/queue/hostile-cl-long\ncontent-length:100\n\nabc")
			start := time.Now()
			stompWantError(t, r, "Heart-beat timeout", "no heart-beat or frame")
			if d := time.Since(start); d < time.Second {
				t.Errorf("closed after %v, before two heart-beat intervals", d)
			}
			stompNoQueue(t, e, "hostile-cl-long")
		}},
		{"stomp-slowloris-frame-after-connect", func(t *testing.T, e *hostileEnv) {
			// heart-beat 1,1 asks for a heart-beat every millisecond both
			// ways: the broker holds both to its one-second floor, and a
			// frame trickling in one byte a second is no sign of life.
			r := stompAttacker(t, e)
			f := r.connect("1.2", "heart-beat", "1,1")
			if hb := f.get("heart-beat"); hb != "1000,1000" {
				t.Errorf("CONNECTED heart-beat %q, want 1000,1000", hb)
			}
			stop := stompDribble(r.c, stompFrameBytes("SEND", "slow", "destination", "/queue/hostile-slow"), time.Second)
			defer stop()
			stompWantError(t, r, "Heart-beat timeout", "no heart-beat or frame")
			stompNoQueue(t, e, "hostile-slow")
		}},
		{"stomp-truncated-head-then-half-close", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.send("SEND\ndestination:/queue/hostile-trunc-head\ncontent-le")
			stompHalfClose(t, r)
			r.expectEOF()
			stompNoQueue(t, e, "hostile-trunc-head")
		}},
		{"stomp-truncated-body-then-half-close", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.send("SEND\ndestination:/queue/hostile-trunc-body\ncontent-length:100\n\n0123456789")
			stompHalfClose(t, r)
			r.expectEOF()
			stompNoQueue(t, e, "hostile-trunc-body")
		}},

		// Oversized frames, and floods inside one frame.
		{"stomp-body-streamed-over-limit-in-4k-writes", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.send("SEND\ndestination:/queue/hostile-stream\n\n")
			chunk := bytes.Repeat([]byte("A"), 4<<10)
			for sent := 0; sent < 2*hostileMaxMessage; sent += len(chunk) {
				_ = r.c.SetWriteDeadline(time.Now().Add(stompWait))
				if _, err := r.c.Write(chunk); err != nil {
					break // the broker has closed
				}
			}
			stompWantError(t, r, "frame too large", "limited to "+limit)
			stompNoQueue(t, e, "hostile-stream")
		}},
		{"stomp-headers-sum-over-frame-limit", func(t *testing.T, e *hostileEnv) {
			// Each line and the count are within their limits; together
			// they are not.
			var b strings.Builder
			b.WriteString("SEND\ndestination:/queue/hostile-wide\n")
			v := strings.Repeat("v", 1100)
			for i := range 990 {
				b.WriteString("x-h" + strconv.Itoa(i) + ":" + v + "\n")
			}
			b.WriteString("\nx\x00")
			r := stompConnected(t, e, "1.2")
			_ = r.trySend(b.String())
			stompWantError(t, r, "frame too large", "limited to "+limit)
		}},
		{"stomp-header-count-200000", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			_ = r.trySend("SEND\ndestination:/queue/hostile-many\n" + strings.Repeat("a:b\n", 200_000) + "\nx\x00")
			stompWantError(t, r, "too many headers", "at most 1000 headers")
		}},
		{"stomp-eol-flood-1MiB-then-unknown-command", func(t *testing.T, e *hostileEnv) {
			// Heart-beat EOLs between frames are legal; a megabyte of them
			// is taken one by one without buffering, and the frame after
			// them is still read.
			r := stompConnected(t, e, "1.2")
			r.send(strings.Repeat("\r\n", 512<<10) + "FROB\n\n\x00")
			stompWantError(t, r, "unknown command", "FROB")
		}},

		// Encoding: STOMP 1.1 and 1.2 headers are UTF-8; no header may
		// carry a NUL.
		{"stomp-header-invalid-utf8-1.2", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.frame("SEND", "x", "destination", "/queue/hostile-utf8", "x-h", "\xc3\x28")
			stompWantError(t, r, "invalid header", "not valid UTF-8")
			stompNoQueue(t, e, "hostile-utf8")
		}},
		{"stomp-destination-overlong-utf8-1.1", func(t *testing.T, e *hostileEnv) {
			// "\xc0\xae" is an overlong '.': a path trick for decoders
			// that accept it.
			r := stompConnected(t, e, "1.1")
			r.frame("SEND", "x", "destination", "/queue/hostile-\xc0\xae\xc0\xae")
			stompWantError(t, r, "invalid header", "not valid UTF-8")
		}},
		{"stomp-header-nul-octet-1.0", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.0")
			r.frame("SEND", "x", "destination", "/queue/hostile-nul\x00evil", "content-length", "1")
			stompWantError(t, r, "invalid header", "NUL")
			stompNoQueue(t, e, "hostile-nul\x00evil")
		}},

		// Commands and state.
		{"stomp-server-command-from-client", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.frame("MESSAGE", "spoofed", "destination", "/queue/hostile-spoof", "message-id", "1", "subscription", "s1")
			stompWantError(t, r, "unknown command", "MESSAGE")
		}},
		{"stomp-stray-nul-between-frames", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.send(stompFrameBytes("SEND", "x", "destination", "/queue/hostile-stray", "receipt", "r1") + "\x00" +
				stompFrameBytes("SEND", "y", "destination", "/queue/hostile-stray"))
			if f := r.expect("RECEIPT"); f.get("receipt-id") != "r1" {
				t.Fatalf("want RECEIPT r1, got %s", f)
			}
			stompWantError(t, r, "unknown command", "SEND")
			if n := stompQueueLen(e, "hostile-stray"); n != 1 {
				t.Errorf("hostile-stray holds %d messages, want 1 (the frame before the NUL)", n)
			}
		}},
		{"stomp-pipelined-garbage-after-valid-frames", func(t *testing.T, e *hostileEnv) {
			r := stompAttacker(t, e)
			r.send(stompFrameBytes("CONNECT", "", "accept-version", "1.2", "host", "/", "login", "guest", "passcode", "guest") +
				stompFrameBytes("SEND", "x", "destination", "/queue/hostile-pipe", "receipt", "r1") +
				"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\n\n\x00")
			r.expect("CONNECTED")
			r.version = "1.2"
			if f := r.expect("RECEIPT"); f.get("receipt-id") != "r1" {
				t.Fatalf("want RECEIPT r1, got %s", f)
			}
			stompWantError(t, r, "unknown command", "is not a STOMP command")
		}},
		{"stomp-frames-after-disconnect-ignored", func(t *testing.T, e *hostileEnv) {
			// After DISCONNECT nothing more is read: the answer is the
			// RECEIPT and the close, not an ERROR for the garbage.
			r := stompConnected(t, e, "1.2")
			r.send(stompFrameBytes("DISCONNECT", "", "receipt", "bye") +
				stompFrameBytes("SEND", "late", "destination", "/queue/hostile-late", "receipt", "r2") + "FROB\n\n\x00")
			if f := r.expect("RECEIPT"); f.get("receipt-id") != "bye" {
				t.Fatalf("want RECEIPT bye, got %s", f)
			}
			r.expectEOF()
			stompNoQueue(t, e, "hostile-late")
		}},
		{"stomp-ack-another-connections-message", func(t *testing.T, e *hostileEnv) {
			victim, m := stompVictim(t, e, "hostile-victim")
			r := stompConnected(t, e, "1.2")
			r.frame("ACK", "", "id", m.get("ack"))
			stompWantError(t, r, "Invalid id", "unknown message")
			// The victim's delivery is untouched: it still acknowledges it.
			victim.receipt("ACK", "", "a1", "id", m.get("ack"))
			if q := e.rt.VHost("/").Queue("hostile-victim"); q == nil || q.Unacked() != 0 {
				t.Errorf("victim's queue: %v, want no unacknowledged message", q)
			}
		}},
		{"stomp-ack-after-unsubscribe", func(t *testing.T, e *hostileEnv) {
			r, m := stompVictim(t, e, "hostile-unsub")
			r.receipt("UNSUBSCRIBE", "", "u1", "id", "s1")
			r.frame("ACK", "", "id", m.get("ack"))
			stompWantError(t, r, "Invalid id", "unknown message")
			if n := stompQueueLen(e, "hostile-unsub"); n != 1 {
				t.Errorf("hostile-unsub holds %d ready messages, want the requeued one", n)
			}
		}},
		{"stomp-begin-65-transactions", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			var b strings.Builder
			for i := range 65 {
				b.WriteString(stompFrameBytes("BEGIN", "", "transaction", "tx"+strconv.Itoa(i)))
			}
			r.send(b.String())
			stompWantError(t, r, "Too many transactions", "at most 64")
		}},
		{"stomp-tx-held-bytes-over-64-transactions", func(t *testing.T, e *hostileEnv) {
			// SENDs held for COMMIT: bodies empty, the weight in headers,
			// spread over the 64 transactions a connection may open. What
			// all of them hold together is bounded.
			r := stompConnected(t, e, "1.2")
			var begin strings.Builder
			for i := range 64 {
				begin.WriteString(stompFrameBytes("BEGIN", "", "transaction", "tx"+strconv.Itoa(i)))
			}
			r.send(begin.String())
			hs := []string{"destination", "/queue/hostile-tx", "transaction", ""}
			v := strings.Repeat("h", 1000)
			for i := range 60 {
				hs = append(hs, "x-h"+strconv.Itoa(i), v)
			}
			for i := 0; i < 2*hostileStompTxBytes/(60<<10); i++ {
				hs[3] = "tx" + strconv.Itoa(i%64)
				if err := r.trySend(stompFrameBytes("SEND", "", hs...)); err != nil {
					break
				}
			}
			stompWantError(t, r, "Transaction too large", "commit more often")
			stompNoQueue(t, e, "hostile-tx")
		}},

		// Header values.
		{"stomp-send-user-id-of-another-user", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.frame("SEND", "x", "destination", "/queue/hostile-spoof-user", "user-id", "admin")
			stompWantError(t, r, "Invalid header", "user-id 'admin' is not the connected user")
			stompNoQueue(t, e, "hostile-spoof-user")
		}},
		{"stomp-send-priority-256", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.frame("SEND", "x", "destination", "/queue/hostile-priority", "priority", "256")
			stompWantError(t, r, "Invalid header", "priority '256'")
			stompNoQueue(t, e, "hostile-priority")
		}},
		{"stomp-subscribe-ack-mode-bogus", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.frame("SUBSCRIBE", "", "destination", "/queue/hostile-ack", "id", "s1", "ack", "whenever")
			stompWantError(t, r, "Invalid ack mode", "'whenever'")
		}},
		{"stomp-subscribe-prefetch-2^40", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.frame("SUBSCRIBE", "", "destination", "/queue/hostile-prefetch", "id", "s1", "prefetch-count", "1099511627776")
			stompWantError(t, r, "Invalid prefetch-count", "1099511627776")
		}},

		// Destinations: names and keys are AMQP short strings.
		{"stomp-topic-hash-pattern-255-bytes-then-256", func(t *testing.T, e *hostileEnv) {
			// 127 '#' and a word no key ends in, against a key of 128 words:
			// a matcher that backtracks tries C(255, 127) splits.
			pattern := strings.Repeat("#.", 127) + "z"
			key := strings.TrimSuffix(strings.Repeat("a.", 128), ".")
			r := stompConnected(t, e, "1.2")
			r.receipt("SUBSCRIBE", "", "s", "destination", "/topic/"+pattern, "id", "s1")
			start := time.Now()
			r.receipt("SEND", "x", "p", "destination", "/topic/"+key)
			if d := time.Since(start); d > hostileLatencyBound {
				t.Errorf("SEND took %v to route", d)
			}
			r.frame("SUBSCRIBE", "", "destination", "/topic/"+pattern+"z", "id", "s2")
			stompWantError(t, r, "Invalid destination", "longer than 255 bytes")
		}},
		{"stomp-subscribe-topic-30000-levels", func(t *testing.T, e *hostileEnv) {
			r := stompConnected(t, e, "1.2")
			r.frame("SUBSCRIBE", "", "destination", "/topic/"+strings.Repeat("*.", 30_000)+"a", "id", "s1")
			stompWantError(t, r, "Invalid destination", "longer than 255 bytes")
		}},
		{"stomp-send-queue-name-256-bytes", func(t *testing.T, e *hostileEnv) {
			name := strings.Repeat("q", 256)
			r := stompConnected(t, e, "1.2")
			r.frame("SEND", "x", "destination", "/queue/"+name)
			stompWantError(t, r, "Invalid destination", "longer than 255 bytes")
			stompNoQueue(t, e, name)
		}},
		{"stomp-subscribe-10001-topics", func(t *testing.T, e *hostileEnv) {
			// Each a queue and a binding of its own.
			stompSubscriptionFlood(t, e, func(i int) string {
				return stompFrameBytes("SUBSCRIBE", "", "destination", "/topic/hostile.subs."+strconv.Itoa(i), "id", strconv.Itoa(i))
			})
		}},
		{"stomp-reply-to-10001-temp-queues", func(t *testing.T, e *hostileEnv) {
			// Each a queue and a subscription of the connection's own; the
			// messages themselves route nowhere.
			stompSubscriptionFlood(t, e, func(i int) string {
				return stompFrameBytes("SEND", "x", "destination", "/exchange/amq.direct/hostile-nowhere",
					"reply-to", "/temp-queue/t"+strconv.Itoa(i))
			})
		}},
		{"stomp-receipts-never-read", func(t *testing.T, e *hostileEnv) {
			stompUnreadReceipts(t, e)
		}},
	}
	runHostile(t, "stomp", cases)
}

// stompAttacker dials the catalogue's STOMP port.
func stompAttacker(t *testing.T, e *hostileEnv) *stompRaw {
	t.Helper()
	return dialStompRaw(t, e.addr("stomp"))
}

// stompConnected dials and connects as guest with version v and extra
// CONNECT headers.
func stompConnected(t *testing.T, e *hostileEnv, v string, extra ...string) *stompRaw {
	t.Helper()
	r := stompAttacker(t, e)
	r.connect(v, extra...)
	return r
}

// stompWantError reads an ERROR whose message header is msg and whose
// body contains detail, then the close of the connection.
func stompWantError(t *testing.T, r *stompRaw, msg, detail string) *stompRawFrame {
	t.Helper()
	f := r.expectError()
	if got := f.get("message"); got != msg {
		t.Errorf("ERROR message %q, want %q (%s)", got, msg, f)
	}
	if !bytes.Contains(f.body, []byte(detail)) {
		t.Errorf("ERROR body %q does not say %q", f.body, detail)
	}
	return f
}

// stompContentLength is a SEND whose content-length header is n, of
// which only three body bytes ever come.
func stompContentLength(n, msg, detail string) func(t *testing.T, e *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		r := stompConnected(t, e, "1.2")
		r.send("SEND\ndestination:/queue/hostile-cl\ncontent-length:" + n + "\n\nabc")
		stompWantError(t, r, msg, detail)
		stompNoQueue(t, e, "hostile-cl")
	}
}

// stompQueue returns queue name of vhost "/", or nil.
func stompQueue(e *hostileEnv, name string) *router.Queue { return e.rt.VHost("/").Queue(name) }

// stompNoQueue fails if queue name exists: the attack declared or
// published something.
func stompNoQueue(t *testing.T, e *hostileEnv, name string) {
	t.Helper()
	if stompQueue(e, name) != nil {
		t.Errorf("queue %q exists: the broker acted on the attack", name)
	}
}

// stompQueueLen is the number of ready messages of queue name (-1 when it
// does not exist).
func stompQueueLen(e *hostileEnv, name string) int {
	q := stompQueue(e, name)
	if q == nil {
		return -1
	}
	n, _ := q.Counts()
	return n
}

// stompHalfClose shuts the attacker's sending side: the broker sees the
// end of the stream in the middle of a frame.
func stompHalfClose(t *testing.T, r *stompRaw) {
	t.Helper()
	tc, ok := r.c.(*net.TCPConn)
	if !ok {
		t.Fatalf("not a TCP connection: %T", r.c)
	}
	if err := tc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
}

// stompVictim connects a client that subscribes to queue with
// client-individual acks and receives one message it does not
// acknowledge; it returns the client and the MESSAGE.
func stompVictim(t *testing.T, e *hostileEnv, queue string) (*stompRaw, *stompRawFrame) {
	t.Helper()
	r := stompConnected(t, e, "1.2")
	r.receipt("SUBSCRIBE", "", "s", "destination", "/queue/"+queue, "id", "s1", "ack", "client-individual")
	r.receipt("SEND", "precious", "p", "destination", "/queue/"+queue)
	m := r.expect("MESSAGE")
	if m.get("ack") == "" {
		t.Fatalf("MESSAGE without an ack header: %s", m)
	}
	return r, m
}

// stompDribble writes data one byte every interval on its own goroutine
// until it is written, a write fails or stop is called.
func stompDribble(c net.Conn, data string, every time.Duration) (stop func()) {
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(every)
		defer tk.Stop()
		for i := 0; i < len(data); i++ {
			_ = c.SetWriteDeadline(time.Now().Add(stompWait))
			if _, err := c.Write([]byte{data[i]}); err != nil {
				return
			}
			select {
			case <-quit:
				return
			case <-tk.C:
			}
		}
	}()
	return func() {
		close(quit)
		<-done
	}
}

// stompSilentFlood opens n connections at once that never send a byte:
// every one gets the handshake deadline's ERROR and is closed.
func stompSilentFlood(t *testing.T, e *hostileEnv, n int) {
	conns := make([]net.Conn, 0, n)
	for range n {
		c, err := net.DialTimeout("tcp", e.addr("stomp"), stompWait)
		if err != nil {
			t.Fatalf("dial %d: %v", len(conns), err)
		}
		t.Cleanup(func() { _ = c.Close() })
		conns = append(conns, c)
	}
	errs := make(chan error, n)
	var wg sync.WaitGroup
	for i, c := range conns {
		wg.Go(func() {
			_ = c.SetReadDeadline(time.Now().Add(hostileStompHandshake + stompWait))
			b, err := io.ReadAll(c) // to EOF: the ERROR, then the close
			switch {
			case err != nil && !stompConnReset(err):
				errs <- fmt.Errorf("connection %d: %v after %q", i, err, b)
			case !bytes.HasPrefix(b, []byte("ERROR\n")) || !bytes.Contains(b, []byte("\nmessage:Connection timed out\n")):
				errs <- fmt.Errorf("connection %d: got %q, want the handshake deadline's ERROR", i, b)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// stompVanishFlood opens n connections that each connect, subscribe to a
// topic (an exclusive queue of their own), start a frame and then vanish
// with a reset: the broker drops every queue and connection.
func stompVanishFlood(t *testing.T, e *hostileEnv, n int) {
	vh := e.rt.VHost("/")
	before := len(vh.Queues())
	rs := make([]*stompRaw, 0, n)
	for i := range n {
		c, err := net.DialTimeout("tcp", e.addr("stomp"), stompWait)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		r := &stompRaw{t: t, c: c, r: bufio.NewReaderSize(c, 4<<10), version: "1.2"}
		r.send(stompFrameBytes("CONNECT", "", "accept-version", "1.2", "host", "/", "login", "guest", "passcode", "guest") +
			stompFrameBytes("SUBSCRIBE", "", "destination", "/topic/hostile.vanish.#", "id", "s1", "receipt", "s"))
		rs = append(rs, r)
	}
	for _, r := range rs {
		r.expect("CONNECTED")
		if f := r.expect("RECEIPT"); f.get("receipt-id") != "s" {
			t.Fatalf("want RECEIPT s, got %s", f)
		}
	}
	if got := len(vh.Queues()); got != before+n {
		t.Fatalf("%d queues, want %d (one per subscription)", got, before+n)
	}
	for _, r := range rs {
		r.send("SEND\ndestination:/topic/hostile.vanish.x\ncontent-length:100\n\nabc")
		tc := r.c.(*net.TCPConn)
		_ = tc.SetLinger(0) // close with a reset
		_ = tc.Close()
	}
	deadline := time.Now().Add(stompWait)
	for len(vh.Queues()) != before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the router, bounded by the deadline
	}
	if got := len(vh.Queues()); got != before {
		t.Errorf("%d queues after the flood vanished, want %d", got, before)
	}
}

// stompUnreadReceipts pipelines BEGIN and ABORT frames asking for 8 KiB
// receipts and never reads them: every byte in makes a byte out. The
// broker stops reading what would add to the replies nobody takes, so the
// client's input piles up to the inbound limit instead, and the close
// says why.
func stompUnreadReceipts(t *testing.T, e *hostileEnv) {
	r := stompConnected(t, e, "1.2")
	// A small receive buffer keeps what the kernels absorb of the
	// replies, and so what must be sent before the broker stops reading,
	// to a few MiB.
	if err := r.c.(*net.TCPConn).SetReadBuffer(64 << 10); err != nil {
		t.Fatal(err)
	}
	id := strings.Repeat("r", 8<<10)
	pair := []byte(stompFrameBytes("BEGIN", "", "transaction", "t", "receipt", id) +
		stompFrameBytes("ABORT", "", "transaction", "t", "receipt", id))
	var chunk []byte
	for len(chunk) < 256<<10 {
		chunk = append(chunk, pair...)
	}
	// Enough to fill the replies' way and then the inbound limit; once
	// the broker is closing it discards what comes, so this ends quickly.
	start := time.Now()
	for sent := 0; sent < 8*hostileMaxInbound; sent += len(chunk) {
		_ = r.c.SetWriteDeadline(time.Now().Add(stompWait))
		if _, err := r.c.Write(chunk); err != nil {
			break // closed
		}
	}
	wrote := time.Since(start)
	// The broker closes once its replies are in its kernel's hands. Were
	// any of ours still unread on its socket then, its kernel would answer
	// with a reset and drop those replies, the ERROR last among them; so
	// wait until it has taken everything before reading.
	stompSocketsDrained(t, r.c)
	receipts := 0
	for {
		f, err := r.read()
		if err != nil || f == nil {
			t.Fatalf("after %d receipts (%v after the writes): %v", receipts, time.Since(start)-wrote, err)
		}
		if f.cmd != "RECEIPT" {
			r.backlog = append(r.backlog, f)
			break
		}
		receipts++
	}
	stompWantError(t, r, "slow consumer", "without reading")
	t.Logf("wrote for %v; %d receipts then the ERROR after %v", wrote, receipts, time.Since(start))
}

// stompSocketsDrained polls /proc/net/tcp until every byte written on c
// has been read by the broker: none left in c's send queue, none in the
// receive queue of the broker's end.
func stompSocketsDrained(t *testing.T, c net.Conn) {
	t.Helper()
	// /proc/net/tcp gives 127.0.0.1 as 0100007F and ports in hex.
	local := fmt.Sprintf("0100007F:%04X", c.LocalAddr().(*net.TCPAddr).Port)
	remote := fmt.Sprintf("0100007F:%04X", c.RemoteAddr().(*net.TCPAddr).Port)
	deadline := time.Now().Add(stompWait)
	for {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			t.Skipf("cannot see the socket queues: %v", err)
		}
		sendQ, recvQ := -1, -1
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) < 5 {
				continue
			}
			tx, rx, _ := strings.Cut(f[4], ":")
			switch {
			case f[1] == local && f[2] == remote:
				n, _ := strconv.ParseInt(tx, 16, 64)
				sendQ = int(n)
			case f[1] == remote && f[2] == local:
				n, _ := strconv.ParseInt(rx, 16, 64)
				recvQ = int(n)
			}
		}
		if sendQ == 0 && recvQ == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %d bytes in our send queue, %d unread by the broker", stompWait, sendQ, recvQ)
		}
		time.Sleep(5 * time.Millisecond) // polling the kernel's counters, bounded by the deadline
	}
}

// stompSubscriptionFlood pipelines one frame more than the subscriptions
// a connection may have (jstomp.DefaultMaxSubscriptions), frame(i) making
// the i-th; the queues they made go with the connection.
func stompSubscriptionFlood(t *testing.T, e *hostileEnv, frame func(i int) string) {
	vh := e.rt.VHost("/")
	before := len(vh.Queues())
	var b strings.Builder
	for i := range jstomp.DefaultMaxSubscriptions + 1 {
		b.WriteString(frame(i))
	}
	r := stompConnected(t, e, "1.2")
	_ = r.trySend(b.String())
	stompWantError(t, r, "Too many subscriptions", "at most "+strconv.Itoa(jstomp.DefaultMaxSubscriptions))
	deadline := time.Now().Add(stompWait)
	for len(vh.Queues()) != before && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the router, bounded by the deadline
	}
	if got := len(vh.Queues()); got != before {
		t.Errorf("%d queues after the close, want %d", got, before)
	}
}
