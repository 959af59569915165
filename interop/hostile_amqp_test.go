package interop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// The AMQP 0-9-1 part of the hostile-input catalogue (hostile_test.go says
// what the harness checks around every case). Attacks go over raw sockets
// with the hand-written peer of amqp_raw_test.go and the encoders below.
// The answers are the spec's:
//
//   - a greeting that is not AMQP 0-9-1's gets "AMQP\x00\x00\x09\x01" back,
//     then the socket closes (§4.2.2);
//   - a hard error gets connection.close with its reply code (501 to 541);
//     the server closes the socket after close-ok, or at once during the
//     handshake, as RabbitMQ does;
//   - a soft error (403 to 406) gets channel.close and only the channel
//     ends: the case then shows that the connection goes on working;
//   - a handshake that does not finish in time, and a client that misses
//     two heartbeats, are cut off without a word (§4.2.7, RabbitMQ's
//     handshake_timeout).
//
// Every reply code was compared with RabbitMQ 3.10 fed the same bytes;
// where Junction answers differently the case says so and why. Cases that
// attack with legal but heavy input (floods of connections, channels and
// bindings, pathological topic keys) assert the protocol's ordinary
// answers, bounded memory and that the server lets go of everything once
// the attacker vanishes.

// hostileAMQPHandshake is the catalogue broker's AMQP HandshakeTimeout:
// short, so slowloris and silent connections are cut within a case.
const hostileAMQPHandshake = time.Second

// hostileAMQPTxBytes is the catalogue broker's AMQP MaxTxBytes: what the
// transactions of one connection may hold until commit.
const hostileAMQPTxBytes = 8 << 20

// haCloseWithin bounds every wait for the server's own close: above the
// handshake timeout, two heartbeats of a second and the 3 s close-ok and
// linger deadlines, with room for -race.
const haCloseWithin = 6 * time.Second

// haFrameMax is the frame-max the catalogue broker offers (the default).
const haFrameMax = 131072

func TestHostileAMQP(t *testing.T) {
	runHostile(t, "amqp", []hostileCase{
		// The greeting.
		{"amqp-header-partial-never-completes", haPartialHeader},
		{"amqp-header-slowloris-one-byte-per-second", haSlowlorisHeader},
		{"amqp-header-wrong-revision-split", haHeaderBack([]byte("AMQP\x00\x00\x09"), []byte("\x02"))},
		{"amqp-header-nul-bytes", haHeaderBack(make([]byte, 8))},

		// The handshake.
		{"amqp-start-ok-slowloris-one-byte-per-second", haSlowlorisStartOk},
		// RabbitMQ reads 'A' as a frame type and its size as 1.3 GB: 501
		// as well.
		{"amqp-header-sent-twice", haAfterStart(501, []byte(protocolHeader))},
		{"amqp-frame-4GiB-before-tune", haAfterStart(501, []byte{frameMethod, 0, 0, 0xff, 0xff, 0xff, 0xff}, make([]byte, 1024))},
		{"amqp-login-wrong-password", haAfterStart(403, haStartOk("PLAIN", "\x00guest\x00wrong", nil))},
		{"amqp-login-invalid-utf8-user", haAfterStart(403, haStartOk("PLAIN", "\x00gu\xffest\x00guest", nil))},
		{"amqp-login-unknown-mechanism", haAfterStart(503, haStartOk("CRAM-MD5", "guest 0123456789abcdef", nil))},
		// RabbitMQ's reader crashes on this table (function_clause in
		// parse_table) and drops the socket; Junction says 502.
		{"amqp-login-amqplain-lying-table", haAfterStart(502, haStartOk("AMQPLAIN", "\x05LOGINS\xff\xff\xff\xffguest", nil))},
		// RabbitMQ decodes tables of any depth; Junction stops at
		// frame.MaxTableDepth (64), so no input can recurse deeper.
		{"amqp-start-ok-client-properties-nested-500", haAfterStart(501, haStartOk("PLAIN", "\x00guest\x00guest", haNestedTable(500)))},
		// RabbitMQ's framing exits on an unknown method id and drops the
		// socket without a word; Junction says 540 NOT_IMPLEMENTED.
		{"amqp-unknown-method-instead-of-start-ok", haAfterStart(540, amqpMethodFrame(0, amqpMethod(classConnection, 99).u32(0)))},
		// RabbitMQ answers 504 CHANNEL_ERROR "unexpected method in
		// connection state tuning"; Junction uses the spec's code for a
		// method out of sequence, 503 COMMAND_INVALID.
		{"amqp-open-before-tune-ok", haAfterStartOk(503, amqpMethodFrame(0, amqpMethod(classConnection, 40).str("/").str("").u8(0)))},
		{"amqp-channel-open-before-connection-open", haAfterStartOk(505, amqpMethodFrame(1, amqpMethod(classChannel, 10).str("")))},
		{"amqp-vhost-name-with-nul", haVhostNUL},

		// Lying lengths and malformed frames.
		{"amqp-frame-size-lies-short", haConnClose(501, haFrameSizeLiesShort())},
		{"amqp-frame-size-lies-long-client-hangs-up", haFrameSizeLiesLong},
		{"amqp-method-payload-3-bytes", haConnClose(501, amqpFrame(frameMethod, 1, []byte{0, classQueue, 0}))},
		{"amqp-heartbeat-with-payload", haConnClose(501, amqpFrame(frameHeartbeat, 0, []byte("ping")))},
		{"amqp-unknown-frame-type-pipelined-after-valid-frame", haPipelinedGarbage},
		// RabbitMQ's parser crashes on a content header shorter than its
		// fixed part (541 INTERNAL_ERROR); it is a malformed frame: 501.
		{"amqp-content-header-13-bytes", haConnClose(501, haPublish(1, "x"), amqpFrame(frameHeader, 1, (&wire{}).u16(classBasic).u16(0).u64(0).u8(0).b))},
		{"amqp-content-header-weight-not-zero", haConnClose(505, haPublish(1, "x"), amqpFrame(frameHeader, 1, (&wire{}).u16(classBasic).u16(7).u64(0).u16(0).b))},
		{"amqp-content-header-class-50", haConnClose(505, haPublish(1, "x"), amqpFrame(frameHeader, 1, (&wire{}).u16(classQueue).u16(0).u64(1).u16(0).b))},
		// RabbitMQ fails on these two with 541 INTERNAL_ERROR (a crash in
		// its property parser); they are malformed frames: 501.
		{"amqp-content-properties-table-length-lies", haConnClose(501, haPublish(1, "x"), haHeader(1, 0, (&wire{}).u16(1<<13).u32(1000).u8(0).b))},
		{"amqp-content-properties-unknown-flag-word", haConnClose(501, haPublish(1, "x"), haHeader(1, 0, (&wire{}).u16(1).u16(0x8000).u8(1).u8('x').b))},
		// RabbitMQ waits for the body to reach its size and so never
		// answers; a body frame beyond the declared size is a framing error.
		{"amqp-content-body-longer-than-declared", haConnClose(501, haPublish(1, "x"), contentHeader(1, 3), amqpFrame(frameBody, 1, []byte("abcdef")))},
		{"amqp-arguments-table-length-2^32-1", haConnClose(501, amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).str("hostile.q").u8(0).u32(0xffffffff)))},
		// RabbitMQ's reader crashes on the next two and drops the socket.
		{"amqp-arguments-long-string-2^31", haConnClose(501, haDeclareWithArgs("hostile.q", (&wire{}).str("k").u8('S').u32(1<<31).b, []byte("short")))},
		{"amqp-arguments-unknown-field-type", haConnClose(501, haDeclareWithArgs("hostile.q", (&wire{}).str("k").u8('Z').u32(0).b))},

		// Huge declared sizes: refused before anything is buffered.
		// RabbitMQ 3.10 checks the size only once the whole body is in, so
		// it never answers the first two; Junction closes the channel at
		// the content header and discards the body frames that follow.
		{"amqp-body-size-2^63", haChanClose(406, haPublish(1, "x"), contentHeader(1, 1<<63), amqpFrame(frameBody, 1, []byte("abc")))},
		{"amqp-body-size-2^64-1-with-1MiB-of-body-frames", haChanClose(406, haOversizeBody(1<<64-1, 1<<20))},
		{"amqp-message-1MiB-plus-one-streamed", haChanClose(406, haOversizeBody(hostileMaxMessage+1, hostileMaxMessage+1))},
		{"amqp-flood-64-connections-declaring-1MiB-bodies", haDeclaredBodyFlood},
		{"amqp-body-truncated-client-hangs-up", haTruncatedBody},
		{"amqp-tx-uncommitted-8MiB-over-3-channels", haTxAcrossChannels},

		// Invalid UTF-8 and NUL.
		{"amqp-queue-name-invalid-utf8", haConnClose(501, amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).str("hostile.\xff\xfe").u8(0).table()))},
		{"amqp-binding-key-invalid-utf8", haBindInvalidUTF8},

		// Deep nesting and big tables. RabbitMQ accepts both nested cases
		// (its decoder has no depth limit); Junction refuses past
		// frame.MaxTableDepth.
		{"amqp-headers-table-nested-10000-deep", haConnClose(501, haPublish(1, "x"), haHeader(1, 0, append((&wire{}).u16(1<<13).b, haNestedTable(10000)...)))},
		{"amqp-arguments-array-nested-10000-deep", haConnClose(501, haDeclareWithArgs("hostile.q", (&wire{}).str("k").b, haNestedArray(10000)))},
		{"amqp-headers-binding-4000-args-and-bad-x-match", haHeadersBinding},
		{"amqp-headers-exchange-quadratic-match", haHeadersQuadratic},

		// Unknown methods and methods in the wrong state.
		// RabbitMQ answers 504 for connection methods after the
		// handshake; Junction 503, as for any method out of sequence.
		{"amqp-connection-tune-ok-after-open", haConnClose(503, amqpMethodFrame(0, amqpMethod(classConnection, 31).u16(0).u32(haFrameMax).u16(0)))},
		// RabbitMQ drops the socket without a word (unknown_method_id).
		{"amqp-unknown-method-on-channel-0", haConnClose(540, amqpMethodFrame(0, amqpMethod(classConnection, 0xffff)))},
		{"amqp-publish-on-closed-channel", haPublishOnClosedChannel},
		// RabbitMQ: 505 "expected method frame, got non method frame".
		{"amqp-content-header-on-unopened-channel", haConnClose(505, contentHeader(9, 3), amqpFrame(frameBody, 9, []byte("abc")))},
		{"amqp-frames-after-channel-close-before-close-ok", haFramesBeforeCloseOk},
		{"amqp-frames-after-connection-close-ok", haFramesAfterCloseOk},
		{"amqp-ignores-connection-close-keeps-sending", haIgnoresConnClose},

		// Floods.
		{"amqp-flood-300-silent-connections", haFloodSilent},
		{"amqp-flood-300-connections-greet-then-vanish", haFloodGreetVanish},
		{"amqp-flood-64-connections-with-queues-then-reset", haFloodQueuesReset},
		{"amqp-channel-flood-to-channel-max-and-one-more", haChannelFlood},
		{"amqp-binding-flood-5000-then-reset", haBindingFlood},
		{"amqp-topic-bindings-of-128-wildcard-levels", haTopicWildcards},

		// Heartbeats.
		{"amqp-heartbeat-flood-100000", haHeartbeatFlood},
		{"amqp-heartbeat-1s-then-silent", haHeartbeatSilent},
	})
}

// Encoders.

// haStartOk encodes connection.start-ok with client properties props (an
// encoded table with its length; empty if nil).
func haStartOk(mechanism, response string, props []byte) []byte {
	w := amqpMethod(classConnection, 11)
	if props == nil {
		w.table()
	} else {
		w.b = append(w.b, props...)
	}
	return amqpMethodFrame(0, w.str(mechanism).long(response).str("en_US"))
}

// haPublish encodes basic.publish to the default exchange.
func haPublish(ch uint16, key string) []byte {
	return amqpMethodFrame(ch, amqpMethod(classBasic, 40).u16(0).str("").str(key).u8(0))
}

// haHeader encodes a basic content header with raw property flags and
// property list props.
func haHeader(ch uint16, size uint64, props []byte) []byte {
	return amqpFrame(frameHeader, ch, append((&wire{}).u16(classBasic).u16(0).u64(size).b, props...))
}

// haTable wraps encoded fields into a table with its length prefix.
func haTable(fields ...[]byte) []byte {
	body := bytes.Join(fields, nil)
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// haNestedTable encodes a table that holds a table that holds a table ...,
// depth levels deep: {"k": {"k": ... {}}}.
func haNestedTable(depth int) []byte {
	t := haTable()
	for range depth {
		t = haTable((&wire{}).str("k").u8('F').b, t)
	}
	return t
}

// haNestedArray encodes a field value ('A') of arrays nested depth deep.
func haNestedArray(depth int) []byte {
	v := []byte{'A', 0, 0, 0, 0}
	for range depth {
		v = append(binary.BigEndian.AppendUint32([]byte{'A'}, uint32(len(v))), v...)
	}
	return v
}

// haDeclareWithArgs encodes queue.declare of name on channel 1 with an
// arguments table of the given raw fields.
func haDeclareWithArgs(name string, fields ...[]byte) []byte {
	w := amqpMethod(classQueue, 10).u16(0).str(name).u8(0)
	w.b = append(w.b, haTable(fields...)...)
	return amqpMethodFrame(1, w)
}

// haBind encodes queue.bind on ch.
func haBind(ch uint16, queue, exchange, key string, nowait bool, args []byte) []byte {
	var bits uint8
	if nowait {
		bits = 1
	}
	w := amqpMethod(classQueue, 20).u16(0).str(queue).str(exchange).str(key).u8(bits)
	if args == nil {
		args = haTable()
	}
	w.b = append(w.b, args...)
	return amqpMethodFrame(ch, w)
}

// haDeclare encodes queue.declare of an exclusive, auto-delete queue.
func haDeclare(ch uint16, name string, passive bool) []byte {
	bits := uint8(1<<2 | 1<<3) // exclusive, auto-delete
	if passive {
		bits = 1
	}
	return amqpMethodFrame(ch, amqpMethod(classQueue, 10).u16(0).str(name).u8(bits).table())
}

// haFrameSizeLiesShort encodes channel.open on channel 2 with a size field
// one less than its payload, so the frame-end octet is not where the size
// says.
func haFrameSizeLiesShort() []byte {
	f := amqpMethodFrame(2, amqpMethod(classChannel, 10).str(""))
	binary.BigEndian.PutUint32(f[3:], binary.BigEndian.Uint32(f[3:])-1)
	return f
}

// haOversizeBody encodes basic.publish declaring a body of size bytes and
// then body frames of send bytes in all (at most size).
func haOversizeBody(size, send uint64) []byte {
	b := append(haPublish(1, "hostile.nowhere"), contentHeader(1, size)...)
	chunk := make([]byte, haFrameMax-8)
	for send > 0 {
		n := min(send, uint64(len(chunk)))
		b = append(b, amqpFrame(frameBody, 1, chunk[:n])...)
		send -= n
	}
	return b
}

// Expectations.

// haOpen dials the catalogue broker and runs the whole handshake.
func haOpen(t *testing.T, e *hostileEnv, o rawOpts) *rawConn {
	t.Helper()
	r := dialRaw(t, e.addr("amqp"))
	r.handshake(o)
	return r
}

// haStarted dials, sends the protocol header and reads connection.start.
func haStarted(t *testing.T, e *hostileEnv) *rawConn {
	t.Helper()
	r := dialRaw(t, e.addr("amqp"))
	r.send([]byte(protocolHeader))
	r.expect(0, classConnection, 10)
	return r
}

// haNext reads the next frame that is not a heartbeat and fails if the
// server closes first.
func haNext(t *testing.T, r *rawConn) rawFrame {
	t.Helper()
	for end := time.Now().Add(waitFor); ; r.before(end) {
		f, err := r.read()
		if err != nil {
			t.Fatalf("connection ended (%v) where a frame was expected", err)
		}
		if f.typ != frameHeartbeat {
			return f
		}
	}
}

// haWantConnClose expects connection.close with code as the next frame
// (heartbeats aside), answers close-ok and requires the server to close
// the socket.
func haWantConnClose(t *testing.T, r *rawConn, code uint16) closeReason {
	t.Helper()
	f := haNext(t, r)
	if f.ch != 0 || !f.is(classConnection, 50) {
		t.Fatalf("got frame type %d on channel %d (% x), want connection.close %d", f.typ, f.ch, first32(f.payload), code)
	}
	c := f.closeReason()
	if c.code != code {
		t.Fatalf("connection.close %d %q, want reply code %d", c.code, c.text, code)
	}
	_ = r.trySend(amqpMethodFrame(0, amqpMethod(classConnection, 51))) // the server may be gone already
	haWantEOF(t, r, haCloseWithin)
	return c
}

// haWantChanClose expects channel.close with code on ch as the next frame
// and answers close-ok.
func haWantChanClose(t *testing.T, r *rawConn, ch, code uint16) closeReason {
	t.Helper()
	f := haNext(t, r)
	if f.ch != ch || !f.is(classChannel, 40) {
		t.Fatalf("got frame type %d on channel %d (% x), want channel.close %d on channel %d", f.typ, f.ch, first32(f.payload), code, ch)
	}
	c := f.closeReason()
	if c.code != code {
		t.Fatalf("channel.close %d %q, want reply code %d", c.code, c.text, code)
	}
	r.send(amqpMethodFrame(ch, amqpMethod(classChannel, 41)))
	return c
}

// haWantEOF requires the server to close the socket within d without
// sending anything more.
func haWantEOF(t *testing.T, r *rawConn, d time.Duration) {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(d))
	var b [64]byte
	n, err := r.r.Read(b[:])
	switch {
	case n > 0:
		t.Fatalf("server sent % x where it should close the connection", b[:n])
	case errors.Is(err, os.ErrDeadlineExceeded):
		t.Fatalf("connection still open after %v", d)
	case err == nil:
		t.Fatal("read returned nothing and no error")
	}
	// io.EOF, or a reset when the server closed with unread input.
}

// haUsable shows that the connection survived a channel error: channel ch
// opens (again), a queue is declared, a message goes through it, and the
// connection closes cleanly.
func haUsable(t *testing.T, r *rawConn, ch uint16) {
	t.Helper()
	r.openChannel(ch)
	r.send(haDeclare(ch, "", false))
	ok := r.expect(ch, classQueue, 11).payload[4:]
	q := string(ok[1 : 1+ok[0]])
	r.send(publishFrames(ch, q, []byte("still here"), 1024))
	if body, ok := haGet(t, r, ch, q); !ok || string(body) != "still here" {
		t.Fatalf("basic.get: %q %v, want the message published after the channel error", body, ok)
	}
	haBye(t, r)
}

// haGet runs basic.get on queue and returns the body, or ok false on
// get-empty.
func haGet(t *testing.T, r *rawConn, ch uint16, queue string) (body []byte, ok bool) {
	t.Helper()
	r.send(amqpMethodFrame(ch, amqpMethod(classBasic, 70).u16(0).str(queue).u8(1)))
	f := haNext(t, r)
	switch {
	case f.is(classBasic, 72):
		return nil, false
	case !f.is(classBasic, 71):
		t.Fatalf("got frame type %d (% x), want basic.get-ok or get-empty", f.typ, first32(f.payload))
	}
	h := haNext(t, r)
	if h.typ != frameHeader || len(h.payload) < 12 {
		t.Fatalf("got frame type %d after get-ok, want a content header", h.typ)
	}
	for size := binary.BigEndian.Uint64(h.payload[4:]); uint64(len(body)) < size; {
		b := haNext(t, r)
		if b.typ != frameBody {
			t.Fatalf("got frame type %d, want a body frame", b.typ)
		}
		body = append(body, b.payload...)
	}
	return body, true
}

// haBye closes the connection the client's way: connection.close,
// close-ok, then the client hangs up.
func haBye(t *testing.T, r *rawConn) {
	t.Helper()
	r.send(amqpMethodFrame(0, amqpMethod(classConnection, 50).u16(200).str("bye").u16(0).u16(0)))
	r.expect(0, classConnection, 51)
	_ = r.c.Close()
}

// haWantHeader requires AMQP 0-9-1's protocol header and then the close.
func haWantHeader(t *testing.T, r *rawConn) {
	t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(waitFor))
	got := make([]byte, len(protocolHeader))
	if _, err := io.ReadFull(r.r, got); err != nil || string(got) != protocolHeader {
		t.Fatalf("answer %q (%v), want %q", got, err, protocolHeader)
	}
	haWantEOF(t, r, haCloseWithin)
}

// Case builders.

// haHeaderBack sends parts in place of the protocol header: the server
// answers with its header and closes. Before each further part, it must
// have waited quietly for 100 ms: a proper prefix of the header is not
// yet wrong.
func haHeaderBack(parts ...[]byte) func(*testing.T, *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		r := dialRaw(t, e.addr("amqp"))
		for i, p := range parts {
			if i > 0 {
				_ = r.c.SetReadDeadline(time.Now().Add(100 * time.Millisecond))
				if n, err := r.r.Read(make([]byte, 8)); !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("after %q: read %d bytes, %v; want the server waiting for the rest", parts[:i], n, err)
				}
			}
			r.send(p)
		}
		haWantHeader(t, r)
	}
}

// haAfterStart sends attack after connection.start instead of start-ok:
// connection.close with code, and the socket closes (during the handshake
// at once, as RabbitMQ does).
func haAfterStart(code uint16, attack ...[]byte) func(*testing.T, *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		r := haStarted(t, e)
		_ = r.trySend(attack...)
		haWantConnClose(t, r, code)
	}
}

// haAfterStartOk logs in, reads connection.tune and sends attack instead
// of tune-ok.
func haAfterStartOk(code uint16, attack ...[]byte) func(*testing.T, *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		r := dialRaw(t, e.addr("amqp"))
		r.startOk(rawOpts{})
		r.expect(0, classConnection, 30)
		_ = r.trySend(attack...)
		haWantConnClose(t, r, code)
	}
}

// haConnClose sends attack on an open connection with channel 1 open: a
// hard error, connection.close with code.
func haConnClose(code uint16, attack ...[]byte) func(*testing.T, *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		r := haOpen(t, e, rawOpts{})
		r.openChannel(1)
		_ = r.trySend(attack...) // the server may close before it has read all
		haWantConnClose(t, r, code)
	}
}

// haChanClose sends attack on channel 1: a soft error, channel.close with
// code, after which the connection goes on.
func haChanClose(code uint16, attack ...[]byte) func(*testing.T, *hostileEnv) {
	return func(t *testing.T, e *hostileEnv) {
		r := haOpen(t, e, rawOpts{})
		r.openChannel(1)
		r.send(attack...)
		haWantChanClose(t, r, 1, code)
		haUsable(t, r, 1)
	}
}

// Cases.

// haPartialHeader: half a protocol header, then silence. The handshake
// timeout closes the socket without a word.
func haPartialHeader(t *testing.T, e *hostileEnv) {
	start := time.Now()
	r := dialRaw(t, e.addr("amqp"))
	r.send([]byte("AMQP\x00\x00"))
	haWantEOF(t, r, haCloseWithin)
	if d := time.Since(start); d < hostileAMQPHandshake {
		t.Fatalf("closed after %v, before the handshake timeout %v", d, hostileAMQPHandshake)
	}
}

// haSlowloris writes data one byte per second and returns how many bytes
// it wrote before the server closed the connection without a word.
func haSlowloris(t *testing.T, r *rawConn, data []byte) int {
	t.Helper()
	var b [64]byte
	for i := range data {
		if _, err := r.c.Write(data[i : i+1]); err != nil {
			return i
		}
		_ = r.c.SetReadDeadline(time.Now().Add(time.Second)) // the pace: one byte per second
		n, err := r.r.Read(b[:])
		switch {
		case n > 0:
			t.Fatalf("server sent % x to a slowloris", b[:n])
		case errors.Is(err, os.ErrDeadlineExceeded):
			continue
		case err != nil:
			return i + 1
		}
	}
	t.Fatalf("all %d bytes sent at one a second and the connection is still open", len(data))
	return 0
}

// haSlowlorisHeader: the protocol header one byte per second. The
// handshake timeout cuts it off long before it is complete.
func haSlowlorisHeader(t *testing.T, e *hostileEnv) {
	start := time.Now()
	r := dialRaw(t, e.addr("amqp"))
	n := haSlowloris(t, r, []byte(protocolHeader))
	if d := time.Since(start); d < hostileAMQPHandshake {
		t.Fatalf("closed after %v, before the handshake timeout %v", d, hostileAMQPHandshake)
	}
	t.Logf("closed after %d bytes, %v", n, time.Since(start).Round(time.Millisecond))
}

// haSlowlorisStartOk: a prompt header, then start-ok one byte per second.
func haSlowlorisStartOk(t *testing.T, e *hostileEnv) {
	start := time.Now()
	r := haStarted(t, e)
	haSlowloris(t, r, haStartOk("PLAIN", "\x00guest\x00guest", nil))
	if d := time.Since(start); d < hostileAMQPHandshake {
		t.Fatalf("closed after %v, before the handshake timeout %v", d, hostileAMQPHandshake)
	}
}

// haVhostNUL: connection.open of "/\x00": RabbitMQ's 530 "vhost / not
// found" (a NUL is valid UTF-8 but names no vhost).
func haVhostNUL(t *testing.T, e *hostileEnv) {
	r := dialRaw(t, e.addr("amqp"))
	r.startOk(rawOpts{})
	r.tuneOk(rawOpts{})
	r.open("/\x00")
	haWantConnClose(t, r, 530)
}

// haFrameSizeLiesLong: a frame declaring 64 KiB, 100 bytes of it, and the
// client half-closes. The server has nothing to say to a peer that is gone
// mid-frame; it must close its side and free the connection.
func haFrameSizeLiesLong(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.send([]byte{frameMethod, 0, 1, 0, 1, 0, 0}, make([]byte, 100))
	if err := r.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	haWantEOF(t, r, haCloseWithin)
}

// haPipelinedGarbage: a valid channel.open and 64 bytes of 0xFF in one
// write. The valid frame is answered, then 501 for the unknown frame type.
func haPipelinedGarbage(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.send(append(amqpMethodFrame(1, amqpMethod(classChannel, 10).str("")), bytes.Repeat([]byte{0xff}, 64)...))
	r.expect(1, classChannel, 11)
	haWantConnClose(t, r, 501)
}

// haTruncatedBody: 512 KiB of a 900 KiB body and half a frame more, then
// the client hangs up. The server frees the half-assembled message.
func haTruncatedBody(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.openChannel(1)
	r.send(haOversizeBody(900<<10, 512<<10))
	r.openChannel(2) // after the body frames: the server has taken them
	half := amqpFrame(frameBody, 1, make([]byte, 64<<10))
	r.send(half[:len(half)/2])
	if err := r.c.(*net.TCPConn).CloseWrite(); err != nil {
		t.Fatal(err)
	}
	haWantEOF(t, r, haCloseWithin)
}

// haDeclaredBodyFlood: 64 connections each declare a body of 1 MiB (the
// limit) and send one byte of it. What the server holds must follow the
// bytes received, not the sizes declared: 64 MiB would break the heap
// bound.
func haDeclaredBodyFlood(t *testing.T, e *hostileEnv) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	const conns = 64
	rs := make([]*rawConn, conns)
	for i := range rs {
		r := haOpen(t, e, rawOpts{})
		r.openChannel(1)
		r.send(haPublish(1, "hostile.nowhere"), contentHeader(1, hostileMaxMessage), amqpFrame(frameBody, 1, []byte{'x'}))
		// channel 2 opens after the body byte: the server has taken it.
		r.openChannel(2)
		rs[i] = r
	}
	runtime.ReadMemStats(&ms)
	if grew := int64(ms.HeapAlloc) - int64(base); grew > conns*hostileMaxMessage/4 {
		t.Errorf("heap grew by %d KiB for %d one-byte bodies declared at %d KiB", grew>>10, conns, hostileMaxMessage>>10)
	}
	for _, r := range rs {
		_ = r.c.(*net.TCPConn).SetLinger(0) // a reset, not a FIN
		_ = r.c.Close()
	}
}

// haTxAcrossChannels: three transactional channels hold 1 MiB messages
// without committing. The bound is the connection's: the message that
// takes the three past hostileAMQPTxBytes closes its channel with 406,
// and the others go on (a bound per channel would let one connection hold
// channel_max times as much).
func haTxAcrossChannels(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	body := make([]byte, hostileMaxMessage)
	for ch := uint16(1); ch <= 3; ch++ {
		r.openChannel(ch)
		r.send(amqpMethodFrame(ch, amqpMethod(classTx, 10)))
		r.expect(ch, classTx, 11)
	}
	held := 0
	for held+len(body) <= hostileAMQPTxBytes-64<<10 { // room for the overhead per message
		ch := uint16(held/len(body)%2 + 1)
		r.send(publishFrames(ch, "hostile.nowhere", body, haFrameMax-8))
		held += len(body)
	}
	r.send(publishFrames(3, "hostile.nowhere", body, haFrameMax-8))
	haWantChanClose(t, r, 3, 406)
	r.send(amqpMethodFrame(1, amqpMethod(classTx, 30)))
	r.expect(1, classTx, 31)
	r.send(publishFrames(1, "hostile.nowhere", body, haFrameMax-8), amqpMethodFrame(1, amqpMethod(classTx, 20)))
	r.expect(1, classTx, 21)
	haUsable(t, r, 3)
}

// classTx is AMQP 0-9-1's tx class.
const classTx = 90

// haBindInvalidUTF8: queue.bind with a binding key that is not UTF-8.
// RabbitMQ checks every short string of a method without content: 501.
func haBindInvalidUTF8(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.openChannel(1)
	r.send(haDeclare(1, "hostile.utf8", false))
	r.expect(1, classQueue, 11)
	r.send(haBind(1, "hostile.utf8", "amq.topic", "a.\xc3\x28.b", false, nil))
	haWantConnClose(t, r, 501)
}

// haHeadersBinding: a headers binding with 4000 arguments, and a message
// with the 4000 headers it asks for, routed while the bystander keeps its
// latency; then a binding with x-match "bogus", RabbitMQ's 406
// PRECONDITION_FAILED on the channel.
func haHeadersBinding(t *testing.T, e *hostileEnv) {
	const n = 4000
	var args, headers [][]byte
	args = append(args, (&wire{}).str("x-match").u8('S').long("all").b)
	for i := range n {
		f := (&wire{}).str("h" + strconv.Itoa(i)).u8('I').u32(uint32(i)).b
		args = append(args, f)
		headers = append(headers, f)
	}
	r := haOpen(t, e, rawOpts{})
	r.openChannel(1)
	r.send(haDeclare(1, "hostile.headers", false))
	r.expect(1, classQueue, 11)
	r.send(haBind(1, "hostile.headers", "amq.headers", "", false, haTable(args...)))
	r.expect(1, classQueue, 21)
	pub := amqpMethodFrame(1, amqpMethod(classBasic, 40).u16(0).str("amq.headers").str("").u8(0))
	r.send(pub, haHeader(1, 2, append((&wire{}).u16(1<<13).b, haTable(headers...)...)), amqpFrame(frameBody, 1, []byte("hi")))
	if body, ok := haGet(t, r, 1, "hostile.headers"); !ok || string(body) != "hi" {
		t.Fatalf("basic.get: %q %v, want the message matched by all 4000 headers", body, ok)
	}
	bad := haTable(append(args[1:], (&wire{}).str("x-match").u8('S').long("bogus").b)...)
	r.send(haBind(1, "hostile.headers", "amq.headers", "", false, bad))
	haWantChanClose(t, r, 1, 406)
	haUsable(t, r, 1)
}

// haPublishOnClosedChannel: basic.publish with its content on a channel
// the client closed: RabbitMQ's 504 "expected 'channel.open'".
func haPublishOnClosedChannel(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.openChannel(1)
	r.send(amqpMethodFrame(1, amqpMethod(classChannel, 40).u16(200).str("").u16(0).u16(0)))
	r.expect(1, classChannel, 41)
	_ = r.trySend(publishFrames(1, "hostile.nowhere", []byte("late"), 1024))
	haWantConnClose(t, r, 504)
}

// haFramesBeforeCloseOk: after the server closed channel 1 (404 on a
// passive declare), the client keeps using it before its close-ok. The
// server discards all of it until close-ok (AMQP 0-9-1 §1.5.2.5,
// channel.close), then the channel opens again.
func haFramesBeforeCloseOk(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.openChannel(1)
	r.send(haDeclare(1, "hostile.missing", true))
	r.send(publishFrames(1, "hostile.nowhere", []byte("ignored"), 3),
		haDeclare(1, "hostile.missing", true),
		amqpMethodFrame(1, amqpMethod(classBasic, 80).u64(99).u8(0)), // basic.ack of nothing
		amqpFrame(frameBody, 1, []byte("stray body")))
	haWantChanClose(t, r, 1, 404)
	haUsable(t, r, 1)
}

// haFramesAfterCloseOk: the client closes the connection, gets close-ok,
// and goes on sending. Nothing more is answered and the server hangs up
// once its linger deadline (3 s) passes.
func haFramesAfterCloseOk(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.send(amqpMethodFrame(0, amqpMethod(classConnection, 50).u16(200).str("bye").u16(0).u16(0)))
	r.expect(0, classConnection, 51)
	r.send(amqpMethodFrame(1, amqpMethod(classChannel, 10).str("")), haDeclare(1, "hostile.late", false))
	haWantEOF(t, r, haCloseWithin)
}

// haIgnoresConnClose: after the server's connection.close (504) the client
// sends no close-ok but more methods. They are discarded, and the server
// closes once its close-ok deadline (3 s) passes.
func haIgnoresConnClose(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.send(haDeclare(9, "hostile.q", false))
	f := haNext(t, r)
	if !f.is(classConnection, 50) || f.closeReason().code != 504 {
		t.Fatalf("got frame type %d on channel %d (% x), want connection.close 504", f.typ, f.ch, first32(f.payload))
	}
	r.send(amqpMethodFrame(1, amqpMethod(classChannel, 10).str("")), haDeclare(1, "hostile.q", false))
	haWantEOF(t, r, haCloseWithin)
}

// haFlood dials n connections at once.
func haFlood(t *testing.T, e *hostileEnv, n int) []net.Conn {
	t.Helper()
	cs := make([]net.Conn, n)
	for i := range cs {
		c, err := net.DialTimeout("tcp", e.addr("amqp"), waitFor)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { _ = c.Close() })
		cs[i] = c
	}
	return cs
}

// haEach runs f on every connection at once and waits for all.
func haEach(cs []net.Conn, f func(c net.Conn)) {
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Go(func() { f(c) })
	}
	wg.Wait()
}

// haFloodSilent: 300 connections that never speak. The handshake timeout
// closes every one of them without a word.
func haFloodSilent(t *testing.T, e *hostileEnv) {
	cs := haFlood(t, e, 300)
	haEach(cs, func(c net.Conn) {
		_ = c.SetReadDeadline(time.Now().Add(haCloseWithin))
		var b [8]byte
		n, err := c.Read(b[:])
		switch {
		case n > 0:
			t.Errorf("server sent %q to a silent connection", b[:n])
		case errors.Is(err, os.ErrDeadlineExceeded):
			t.Errorf("silent connection still open after %v", haCloseWithin)
		}
	})
}

// haFloodGreetVanish: 300 connections send the protocol header, read
// connection.start and reset. The server frees every one.
func haFloodGreetVanish(t *testing.T, e *hostileEnv) {
	cs := haFlood(t, e, 300)
	haEach(cs, func(c net.Conn) {
		_ = c.SetDeadline(time.Now().Add(waitFor))
		if _, err := c.Write([]byte(protocolHeader)); err != nil {
			t.Errorf("write: %v", err)
			return
		}
		var h [7]byte
		if _, err := io.ReadFull(c, h[:]); err != nil || h[0] != frameMethod {
			t.Errorf("connection.start: % x %v", h, err)
			return
		}
		if _, err := io.CopyN(io.Discard, c, int64(binary.BigEndian.Uint32(h[3:]))+1); err != nil {
			t.Errorf("connection.start: %v", err)
		}
		_ = c.(*net.TCPConn).SetLinger(0)
		_ = c.Close()
	})
}

// haQueues counts the queues of the default vhost.
func haQueues(e *hostileEnv) int { return len(e.rt.VHost("/").Queues()) }

// haWaitQueues waits until the default vhost has n queues.
func haWaitQueues(t *testing.T, e *hostileEnv, n int) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for haQueues(e) != n && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond) // polling the router, bounded by the deadline
	}
	if got := haQueues(e); got != n {
		t.Fatalf("%d queues in vhost /, want %d: the vanished connections' exclusive queues linger", got, n)
	}
}

// haFloodQueuesReset: 64 connections each declare an exclusive queue with
// 50 bindings, then all reset at once. Every queue and binding goes.
func haFloodQueuesReset(t *testing.T, e *hostileEnv) {
	before := haQueues(e)
	rs := make([]*rawConn, 64)
	for i := range rs {
		r := haOpen(t, e, rawOpts{})
		r.openChannel(1)
		q := "hostile.flood." + strconv.Itoa(i)
		b := haDeclare(1, q, false)
		for k := range 50 {
			b = append(b, haBind(1, q, "amq.topic", "flood."+strconv.Itoa(k)+".#", true, nil)...)
		}
		r.send(b, haDeclare(1, q, true))
		r.expect(1, classQueue, 11)
		r.expect(1, classQueue, 11)
		rs[i] = r
	}
	if got := haQueues(e); got != before+len(rs) {
		t.Fatalf("%d queues, want %d", got, before+len(rs))
	}
	for _, r := range rs {
		_ = r.c.(*net.TCPConn).SetLinger(0)
		_ = r.c.Close()
	}
	haWaitQueues(t, e, before)
}

// haChannelFlood: every channel up to channel_max (2047) opened in one
// burst, then one more: 530 NOT_ALLOWED, as in RabbitMQ.
func haChannelFlood(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	var b []byte
	for ch := uint16(1); ch <= 2047; ch++ {
		b = append(b, amqpMethodFrame(ch, amqpMethod(classChannel, 10).str(""))...)
	}
	r.send(b)
	for ch := uint16(1); ch <= 2047; ch++ {
		r.expect(ch, classChannel, 11)
	}
	r.send(amqpMethodFrame(2048, amqpMethod(classChannel, 10).str("")))
	haWantConnClose(t, r, 530)
}

// haBindingFlood: 5000 bindings with nowait on one exclusive queue, then
// a reset. The queue and its bindings go with the connection.
func haBindingFlood(t *testing.T, e *hostileEnv) {
	before := haQueues(e)
	r := haOpen(t, e, rawOpts{})
	r.openChannel(1)
	b := haDeclare(1, "hostile.bindings", false)
	for k := range 5000 {
		b = append(b, haBind(1, "hostile.bindings", "amq.topic", "bind."+strconv.Itoa(k)+".*.#", true, nil)...)
	}
	r.send(b, haDeclare(1, "hostile.bindings", true))
	r.expect(1, classQueue, 11)
	r.expect(1, classQueue, 11)
	_ = r.c.(*net.TCPConn).SetLinger(0)
	_ = r.c.Close()
	haWaitQueues(t, e, before)
}

// haTopicWildcards: a routing key is a short string, so AMQP's topic
// filters of 65,535 levels cannot be said; the longest possible are 128
// levels in 255 bytes. Bindings "#.#.….#" and "*.*.….*" and "a.#.a.#.…"
// (a backtracking matcher's worst case) take a 128-level key at once, and
// a near miss is not routed.
func haTopicWildcards(t *testing.T, e *hostileEnv) {
	const q = "hostile.topic"
	hashes := strings.Repeat("#.", 127) + "#"
	stars := strings.Repeat("*.", 127) + "*"
	mixed := strings.Repeat("a.#.", 63) + "a.b"
	key := strings.Repeat("a.", 127) + "a"
	r := haOpen(t, e, rawOpts{})
	r.openChannel(1)
	r.send(haDeclare(1, q, false))
	r.expect(1, classQueue, 11)
	for _, k := range []string{hashes, stars, mixed} {
		if len(k) > 255 {
			t.Fatalf("binding key of %d bytes", len(k))
		}
		r.send(haBind(1, q, "amq.topic", k, false, nil))
		r.expect(1, classQueue, 21)
	}
	pub := func(key, body string) {
		r.send(amqpMethodFrame(1, amqpMethod(classBasic, 40).u16(0).str("amq.topic").str(key).u8(0)),
			contentHeader(1, uint64(len(body))), amqpFrame(frameBody, 1, []byte(body)))
	}
	pub(key, "all levels")
	if body, ok := haGet(t, r, 1, q); !ok || string(body) != "all levels" {
		t.Fatalf("basic.get: %q %v, want the message with the 128-level key", body, ok)
	}
	// Without the two catch-alls: a key that only "a.#.a.#.….a.b" takes,
	// and one that it does not, the backtracking worst case.
	for _, k := range []string{hashes, stars} {
		r.send(amqpMethodFrame(1, amqpMethod(classQueue, 50).u16(0).str(q).str("amq.topic").str(k).table()))
		r.expect(1, classQueue, 51)
	}
	pub(strings.Repeat("a.", 126)+"b", "mixed")
	if body, ok := haGet(t, r, 1, q); !ok || string(body) != "mixed" {
		t.Fatalf("basic.get: %q %v, want the message matched by %q", body, ok, mixed)
	}
	pub(strings.Repeat("a.", 127)+"a", "no match")
	if body, ok := haGet(t, r, 1, q); ok {
		t.Fatalf("basic.get: %q, want get-empty: no binding matches", body)
	}
	haBye(t, r)
}

// haHeartbeatFlood: 100,000 heartbeat frames (800 KB) in one burst. They
// are taken without an answer, and the connection then works as before.
func haHeartbeatFlood(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{})
	r.send(bytes.Repeat(amqpFrame(frameHeartbeat, 0, nil), 100000))
	haUsable(t, r, 1)
}

// haHeartbeatSilent: the client asks for heartbeats every second and then
// sends nothing. The server sends its heartbeats and, after two intervals
// of silence, closes without a word (§4.2.7).
func haHeartbeatSilent(t *testing.T, e *hostileEnv) {
	r := haOpen(t, e, rawOpts{heartbeat: 1})
	opened := time.Now()
	for end := time.Now().Add(haCloseWithin); ; r.before(end) {
		f, err := r.read()
		if err != nil {
			break
		}
		if f.typ != frameHeartbeat {
			t.Fatalf("got frame type %d (% x), want only heartbeats", f.typ, first32(f.payload))
		}
	}
	// Two intervals from the server's last tick before the client read
	// open-ok: allow for a slow client.
	if d := time.Since(opened); d < 1500*time.Millisecond {
		t.Fatalf("closed after %v, before two heartbeat intervals", d)
	}
}

// haHeadersQuadratic: bindings of x-match "any" with 5000 arguments each,
// none of them among the 5000 headers of the message published. Matching
// must not cost arguments × headers: from two connections at once (so one
// shares the bystander's event loop), 25 million comparisons a binding
// would stall the loop for seconds.
func haHeadersQuadratic(t *testing.T, e *hostileEnv) {
	const n, bindings = 5000, 16
	args := [][]byte{(&wire{}).str("x-match").u8('S').long("any").b}
	var headers [][]byte
	for i := range n {
		args = append(args, (&wire{}).str("arg-"+strconv.Itoa(i)).u8('V').b)
		headers = append(headers, (&wire{}).str("hdr-"+strconv.Itoa(i)).u8('V').b)
	}
	rs := []*rawConn{haOpen(t, e, rawOpts{}), haOpen(t, e, rawOpts{})}
	for i, r := range rs {
		q := "hostile.headers." + strconv.Itoa(i)
		r.openChannel(1)
		r.send(haDeclare(1, q, false))
		r.expect(1, classQueue, 11)
		for k := range bindings {
			a := append([][]byte{(&wire{}).str("k").u8('I').u32(uint32(k)).b}, args...)
			r.send(haBind(1, q, "amq.headers", "", false, haTable(a...)))
			r.expect(1, classQueue, 21)
		}
	}
	pub := amqpMethodFrame(1, amqpMethod(classBasic, 40).u16(0).str("amq.headers").str("").u8(0))
	msg := haHeader(1, 2, append((&wire{}).u16(1<<13).b, haTable(headers...)...))
	for _, r := range rs {
		r.send(pub, msg, amqpFrame(frameBody, 1, []byte("hi")))
	}
	for i, r := range rs {
		if _, ok := haGet(t, r, 1, "hostile.headers."+strconv.Itoa(i)); ok {
			t.Fatal("a message was routed")
		}
	}
	for _, r := range rs {
		haBye(t, r)
	}
}
