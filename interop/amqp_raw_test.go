package interop

import (
	"bufio"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"
)

// A hand-written AMQP 0-9-1 peer for what amqp091-go will not send:
// malformed frames, methods on the wrong channel, a client that goes
// silent. Frames are written byte by byte (AMQP 0-9-1 §4.2.3: type,
// channel, size, payload, 0xCE) and the server's answers read the same
// way, so the tests do not share the broker's codec.

// Frame types and the frame end octet (AMQP 0-9-1 §4.2.3).
const (
	frameMethod    = 1
	frameHeader    = 2
	frameBody      = 3
	frameHeartbeat = 8
	frameEnd       = 0xCE
)

// protocolHeader is AMQP 0-9-1's (§4.2.2).
const protocolHeader = "AMQP\x00\x00\x09\x01"

// Class and method ids used by the raw tests (AMQP 0-9-1 §1).
const (
	classConnection = 10
	classChannel    = 20
	classExchange   = 40
	classQueue      = 50
	classBasic      = 60
)

// wire builds a frame payload field by field (AMQP 0-9-1 §4.2.5).
type wire struct{ b []byte }

// amqpMethod starts a method payload: class id, method id.
func amqpMethod(class, id uint16) *wire { return (&wire{}).u16(class).u16(id) }

func (w *wire) u8(v uint8) *wire   { w.b = append(w.b, v); return w }
func (w *wire) u16(v uint16) *wire { w.b = binary.BigEndian.AppendUint16(w.b, v); return w }
func (w *wire) u32(v uint32) *wire { w.b = binary.BigEndian.AppendUint32(w.b, v); return w }
func (w *wire) u64(v uint64) *wire { w.b = binary.BigEndian.AppendUint64(w.b, v); return w }

// str appends a short string.
func (w *wire) str(s string) *wire { w.b = append(w.u8(uint8(len(s))).b, s...); return w }

// long appends a long string.
func (w *wire) long(s string) *wire { w.b = append(w.u32(uint32(len(s))).b, s...); return w }

// table appends an empty field table.
func (w *wire) table() *wire { return w.u32(0) }

// amqpFrame encodes one frame.
func amqpFrame(typ uint8, ch uint16, payload []byte) []byte {
	b := []byte{typ}
	b = binary.BigEndian.AppendUint16(b, ch)
	b = binary.BigEndian.AppendUint32(b, uint32(len(payload)))
	b = append(b, payload...)
	return append(b, frameEnd)
}

// amqpMethodFrame encodes a method frame on ch.
func amqpMethodFrame(ch uint16, w *wire) []byte { return amqpFrame(frameMethod, ch, w.b) }

// contentHeader encodes a basic content header frame with no properties.
func contentHeader(ch uint16, size uint64) []byte {
	return amqpFrame(frameHeader, ch, (&wire{}).u16(classBasic).u16(0).u64(size).u16(0).b)
}

// publishFrames encodes basic.publish of body to the default exchange
// with routing key key, the body split into frames of at most maxBody
// bytes.
func publishFrames(ch uint16, key string, body []byte, maxBody int) []byte {
	b := amqpMethodFrame(ch, amqpMethod(classBasic, 40).u16(0).str("").str(key).u8(0))
	b = append(b, contentHeader(ch, uint64(len(body)))...)
	for len(body) > 0 {
		n := min(len(body), maxBody)
		b = append(b, amqpFrame(frameBody, ch, body[:n])...)
		body = body[n:]
	}
	return b
}

// rawFrame is a frame read from the server.
type rawFrame struct {
	typ     uint8
	ch      uint16
	payload []byte
}

// is reports whether f is the method class.id.
func (f rawFrame) is(class, id uint16) bool {
	return f.typ == frameMethod && len(f.payload) >= 4 &&
		binary.BigEndian.Uint16(f.payload) == class && binary.BigEndian.Uint16(f.payload[2:]) == id
}

// closeReason is a decoded connection.close or channel.close.
type closeReason struct {
	code            uint16
	text            string
	class, methodID uint16
}

func (f rawFrame) closeReason() closeReason {
	p := f.payload[4:]
	var r closeReason
	if len(p) < 3 || len(p) < 3+int(p[2])+4 {
		return closeReason{text: "malformed close"}
	}
	r.code = binary.BigEndian.Uint16(p)
	n := int(p[2])
	r.text = string(p[3 : 3+n])
	r.class = binary.BigEndian.Uint16(p[3+n:])
	r.methodID = binary.BigEndian.Uint16(p[5+n:])
	return r
}

// rawConn is one raw AMQP connection.
type rawConn struct {
	t testing.TB
	c net.Conn
	r *bufio.Reader
}

// dialRaw connects to addr; cleanup closes the socket.
func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, waitFor)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &rawConn{t: t, c: c, r: bufio.NewReader(c)}
}

// send writes b, failing the test if the write fails.
func (r *rawConn) send(b ...[]byte) {
	r.t.Helper()
	if err := r.trySend(b...); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

// trySend writes b and returns the error: after a close from the server a
// write may fail, which some tests allow.
func (r *rawConn) trySend(b ...[]byte) error {
	_ = r.c.SetWriteDeadline(time.Now().Add(waitFor))
	for _, p := range b {
		if _, err := r.c.Write(p); err != nil {
			return err
		}
	}
	return nil
}

// read returns the next frame, or the read error (io.EOF when the server
// closed the connection). It fails the test on a timeout or on a frame
// that does not end with 0xCE.
func (r *rawConn) read() (rawFrame, error) {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(waitFor))
	var h [7]byte
	if _, err := io.ReadFull(r.r, h[:]); err != nil {
		r.failOnTimeout(err)
		return rawFrame{}, err
	}
	f := rawFrame{typ: h[0], ch: binary.BigEndian.Uint16(h[1:])}
	f.payload = make([]byte, binary.BigEndian.Uint32(h[3:])+1)
	if _, err := io.ReadFull(r.r, f.payload); err != nil {
		r.failOnTimeout(err)
		return rawFrame{}, err
	}
	if end := f.payload[len(f.payload)-1]; end != frameEnd {
		r.t.Fatalf("frame type %d on channel %d ends with %#x, not 0xCE", f.typ, f.ch, end)
	}
	f.payload = f.payload[:len(f.payload)-1]
	return f, nil
}

func (r *rawConn) failOnTimeout(err error) {
	r.t.Helper()
	if errors.Is(err, os.ErrDeadlineExceeded) {
		r.t.Fatalf("no answer from the server within %v", waitFor)
	}
}

// expect reads frames, skipping heartbeats, until the method class.id on
// channel ch, and fails on anything else.
func (r *rawConn) expect(ch, class, id uint16) rawFrame {
	r.t.Helper()
	for end := time.Now().Add(waitFor); ; r.before(end) {
		f, err := r.read()
		if err != nil {
			r.t.Fatalf("waiting for method %d.%d on channel %d: %v", class, id, ch, err)
		}
		if f.typ == frameHeartbeat {
			continue
		}
		if f.ch != ch || !f.is(class, id) {
			r.t.Fatalf("got frame type %d on channel %d (% x), want method %d.%d on channel %d",
				f.typ, f.ch, first32(f.payload), class, id, ch)
		}
		return f
	}
}

func first32(b []byte) []byte { return b[:min(len(b), 32)] }

// rawOpts are the client's side of the handshake.
type rawOpts struct {
	mechanism, response string // start-ok; PLAIN guest/guest if empty
	channelMax          uint16 // tune-ok
	frameMax            uint32 // tune-ok; the server's offer if 0
	heartbeat           uint16 // tune-ok, seconds; 0 disables
	vhost               string // connection.open; "/" if empty
}

// handshake runs header, start/start-ok, tune/tune-ok and open/open-ok.
func (r *rawConn) handshake(o rawOpts) {
	r.t.Helper()
	r.startOk(o)
	r.tuneOk(o)
	r.open(o.vhost)
	r.expect(0, classConnection, 41) // open-ok
}

// startOk sends the protocol header, reads connection.start and answers
// it with start-ok.
func (r *rawConn) startOk(o rawOpts) {
	r.t.Helper()
	if o.mechanism == "" {
		o.mechanism, o.response = "PLAIN", "\x00guest\x00guest"
	}
	r.send([]byte(protocolHeader))
	r.expect(0, classConnection, 10) // start
	r.send(amqpMethodFrame(0, amqpMethod(classConnection, 11).table().str(o.mechanism).long(o.response).str("en_US")))
}

// tuneOk reads connection.tune and answers it with o's limits.
func (r *rawConn) tuneOk(o rawOpts) (channelMax uint16, frameMax uint32, heartbeat uint16) {
	r.t.Helper()
	p := r.expect(0, classConnection, 30).payload[4:]
	channelMax, frameMax, heartbeat = binary.BigEndian.Uint16(p), binary.BigEndian.Uint32(p[2:]), binary.BigEndian.Uint16(p[6:])
	fm := o.frameMax
	if fm == 0 {
		fm = frameMax
	}
	r.send(amqpMethodFrame(0, amqpMethod(classConnection, 31).u16(o.channelMax).u32(fm).u16(o.heartbeat)))
	return channelMax, frameMax, heartbeat
}

// open sends connection.open for vhost ("/" if empty).
func (r *rawConn) open(vhost string) {
	r.t.Helper()
	if vhost == "" {
		vhost = "/"
	}
	r.send(amqpMethodFrame(0, amqpMethod(classConnection, 40).str(vhost).str("").u8(0)))
}

// openChannel opens channel ch and waits for open-ok.
func (r *rawConn) openChannel(ch uint16) {
	r.t.Helper()
	r.send(amqpMethodFrame(ch, amqpMethod(classChannel, 10).str("")))
	r.expect(ch, classChannel, 11)
}

// declareQueue declares a non-durable queue on ch and waits for
// declare-ok.
func (r *rawConn) declareQueue(ch uint16, name string) {
	r.t.Helper()
	r.send(amqpMethodFrame(ch, amqpMethod(classQueue, 10).u16(0).str(name).u8(0).table()))
	r.expect(ch, classQueue, 11)
}

// expectConnClose reads until connection.close, answers close-ok, and
// checks that the server then closes the socket. It returns the reason.
func (r *rawConn) expectConnClose() closeReason {
	r.t.Helper()
	for end := time.Now().Add(waitFor); ; r.before(end) {
		f, err := r.read()
		if err != nil {
			r.t.Fatalf("connection ended (%v) without connection.close", err)
		}
		if f.ch == 0 && f.is(classConnection, 50) {
			reason := f.closeReason()
			_ = r.trySend(amqpMethodFrame(0, amqpMethod(classConnection, 51))) // close-ok; the server may be gone already
			r.expectEOF()
			return reason
		}
	}
}

// wantConnClose expects connection.close with code.
func (r *rawConn) wantConnClose(code uint16) closeReason {
	r.t.Helper()
	reason := r.expectConnClose()
	if reason.code != code {
		r.t.Fatalf("connection.close %d %q, want reply code %d", reason.code, reason.text, code)
	}
	return reason
}

// expectEOF reads until the server closes the connection, skipping
// whatever frames come first, and fails if it does not close in time.
func (r *rawConn) expectEOF() {
	r.t.Helper()
	for end := time.Now().Add(waitFor); ; r.before(end) {
		if _, err := r.read(); err != nil {
			return // EOF, or a reset after a write the server did not read
		}
	}
}

// before fails the test once end has passed: loops that skip frames
// (heartbeats) must not run forever.
func (r *rawConn) before(end time.Time) {
	r.t.Helper()
	if time.Now().After(end) {
		r.t.Fatalf("still waiting after %v", waitFor)
	}
}
