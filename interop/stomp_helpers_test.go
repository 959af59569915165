package interop

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"
	sframe "github.com/go-stomp/stomp/v3/frame"
	amqp "github.com/rabbitmq/amqp091-go"

	jamqp "github.com/junction-broker/junction/protocols/amqp"
	jstomp "github.com/junction-broker/junction/protocols/stomp"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// Bounds of every wait in the STOMP tests: how long something that must
// happen may take, and how long we watch for something that must not.
const (
	stompWait  = 10 * time.Second
	stompQuiet = 150 * time.Millisecond
)

// stompFrameT is go-stomp's frame (named so: this package has a func frame).
type stompFrameT = sframe.Frame

// stompHeaderT is go-stomp's header list.
type stompHeaderT = sframe.Header

// stompVersions are the versions every versioned test runs over.
var stompVersions = []stomp.Version{stomp.V10, stomp.V11, stomp.V12}

// stompBroker is an in-process Junction (a router over memstore) serving
// STOMP and AMQP on 127.0.0.1:0, so that tests can reach into the router
// (vhosts, users) and set the STOMP adapter's limits.
type stompBroker struct {
	rt      *router.Router
	srv     *transport.Server
	addr    string // STOMP
	amqpURL string // guest, vhost "/"
}

// startStompBroker starts the broker; opts adjust the STOMP adapter's
// configuration. Cleanup shuts it down and fails the test if a session
// panicked.
func startStompBroker(t testing.TB, opts ...func(*jstomp.Config)) *stompBroker {
	t.Helper()
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log})
	if err != nil {
		t.Fatal(err)
	}
	scfg := jstomp.Config{Router: rt, Log: log}
	for _, o := range opts {
		o(&scfg)
	}
	srv := serve(t, st, transport.Config{
		Listeners: []transport.Listener{
			{Name: "amqp", Addr: "127.0.0.1:0", Adapter: jamqp.New(jamqp.Config{Router: rt, Log: log})},
			{Name: "stomp", Addr: "127.0.0.1:0", Adapter: jstomp.New(scfg)},
		},
	})
	return &stompBroker{rt: rt, srv: srv, addr: srv.Addrs()["stomp"], amqpURL: "amqp://guest:guest@" + srv.Addrs()["amqp"] + "/"}
}

// forVersions runs f as one subtest per STOMP version.
func forVersions(t *testing.T, f func(t *testing.T, v stomp.Version)) {
	t.Helper()
	for _, v := range stompVersions {
		t.Run(string(v), func(t *testing.T) { f(t, v) })
	}
}

// stompNoLog keeps go-stomp quiet: ERROR frames are expected here.
type stompNoLog struct{}

func (stompNoLog) Debugf(string, ...any)   {}
func (stompNoLog) Infof(string, ...any)    {}
func (stompNoLog) Warningf(string, ...any) {}
func (stompNoLog) Errorf(string, ...any)   {}
func (stompNoLog) Debug(string)            {}
func (stompNoLog) Info(string)             {}
func (stompNoLog) Warning(string)          {}
func (stompNoLog) Error(string)            {}

// stompDialOpts are the go-stomp options of a guest connection to vhost
// "/" that accepts only version v, followed by extra.
func stompDialOpts(v stomp.Version, extra ...func(*stomp.Conn) error) []func(*stomp.Conn) error {
	return append([]func(*stomp.Conn) error{
		stomp.ConnOpt.Host("/"), stomp.ConnOpt.Login("guest", "guest"),
		stomp.ConnOpt.AcceptVersion(v), stomp.ConnOpt.Logger(stompNoLog{}),
		stomp.ConnOpt.RcvReceiptTimeout(stompWait), stomp.ConnOpt.DisconnectReceiptTimeout(stompWait),
		stomp.ConnOpt.UnsubscribeReceiptTimeout(stompWait),
	}, extra...)
}

// stompDial opens a go-stomp connection with version v; cleanup
// disconnects it.
func stompDial(t testing.TB, addr string, v stomp.Version, extra ...func(*stomp.Conn) error) *stomp.Conn {
	t.Helper()
	c, err := stomp.Dial("tcp", addr, stompDialOpts(v, extra...)...)
	if err != nil {
		t.Fatalf("stomp dial (%s): %v", v, err)
	}
	if c.Version() != v {
		t.Fatalf("negotiated %s, asked for %s only", c.Version(), v)
	}
	t.Cleanup(func() { _ = c.Disconnect() })
	return c
}

// stompGone releases a go-stomp connection the broker has closed with an
// ERROR. Without it the cleanup's Disconnect may race go-stomp's own close
// and wait for a RECEIPT that cannot come.
func stompGone(c *stomp.Conn) { _ = c.MustDisconnect() }

// stompSub subscribes c to dest with ack mode and extra headers
// (key, value pairs), and waits until the broker has processed it. Not for
// queues holding more than a dozen messages: go-stomp hands MESSAGEs over
// one by one, and the RECEIPT waited for queues behind them.
func stompSub(t testing.TB, c *stomp.Conn, dest string, ack stomp.AckMode, headers ...string) *stomp.Subscription {
	t.Helper()
	var opts []func(*stompFrameT) error
	for i := 0; i+1 < len(headers); i += 2 {
		opts = append(opts, stomp.SubscribeOpt.Header(headers[i], headers[i+1]))
	}
	s, err := c.Subscribe(dest, ack, opts...)
	if err != nil {
		t.Fatalf("subscribe %s: %v", dest, err)
	}
	stompSync(t, c)
	return s
}

// stompSync waits until the broker has processed everything c sent
// before: a SEND with a receipt is answered after the frames before it.
// It sends to amq.direct with a routing key no queue is bound with.
func stompSync(t testing.TB, c *stomp.Conn) {
	t.Helper()
	if err := c.Send("/exchange/amq.direct/stomp-sync", "", nil, stomp.SendOpt.Receipt); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

// stompSend sends body to dest with a receipt and extra headers (key,
// value pairs).
func stompSend(t testing.TB, c *stomp.Conn, dest, body string, headers ...string) {
	t.Helper()
	opts := []func(*stompFrameT) error{stomp.SendOpt.Receipt}
	for i := 0; i+1 < len(headers); i += 2 {
		opts = append(opts, stomp.SendOpt.Header(headers[i], headers[i+1]))
	}
	if err := c.Send(dest, "", []byte(body), opts...); err != nil {
		t.Fatalf("send to %s: %v", dest, err)
	}
}

// stompNext takes the next MESSAGE of s, failing after stompWait or on an
// error.
func stompNext(t testing.TB, s *stomp.Subscription) *stomp.Message {
	t.Helper()
	select {
	case m, ok := <-s.C:
		if !ok {
			t.Fatalf("subscription %s closed", s.Destination())
		}
		if m.Err != nil {
			t.Fatalf("subscription %s: %v", s.Destination(), m.Err)
		}
		return m
	case <-time.After(stompWait):
		t.Fatalf("timed out waiting for a MESSAGE on %s", s.Destination())
	}
	return nil
}

// stompTake takes n messages from s and returns them with their bodies.
func stompTake(t testing.TB, s *stomp.Subscription, n int) ([]*stomp.Message, []string) {
	t.Helper()
	ms := make([]*stomp.Message, 0, n)
	bs := make([]string, 0, n)
	for range n {
		m := stompNext(t, s)
		ms = append(ms, m)
		bs = append(bs, string(m.Body))
	}
	return ms, bs
}

// stompWantBodies takes len(want) messages from s and fails unless their
// bodies are want, in order.
func stompWantBodies(t testing.TB, s *stomp.Subscription, want ...string) []*stomp.Message {
	t.Helper()
	ms, got := stompTake(t, s, len(want))
	if !slices.Equal(got, want) {
		t.Fatalf("bodies %q, want %q", got, want)
	}
	return ms
}

// stompNothing fails if s yields a message within stompQuiet.
func stompNothing(t testing.TB, s *stomp.Subscription) {
	t.Helper()
	select {
	case m, ok := <-s.C:
		if ok {
			t.Fatalf("unexpected MESSAGE %q (err %v)", m.Body, m.Err)
		}
	case <-time.After(stompQuiet):
	}
}

// stompSubError waits for the ERROR that ends s, fails unless it has a
// message header and a body, and returns it.
func stompSubError(t testing.TB, s *stomp.Subscription) *stompFrameT {
	t.Helper()
	select {
	case m, ok := <-s.C:
		if !ok {
			t.Fatal("subscription closed without an ERROR")
		}
		if m.Err == nil {
			t.Fatalf("want an ERROR, got MESSAGE %q", m.Body)
		}
		return stompErrorFrame(t, m.Err)
	case <-time.After(stompWait):
		t.Fatal("timed out waiting for an ERROR")
	}
	return nil
}

// stompErrorFrame fails unless err is an ERROR frame from the server with
// a message header and a body, and returns the frame.
func stompErrorFrame(t testing.TB, err error) *stompFrameT {
	t.Helper()
	var e stomp.Error
	var pe *stomp.Error
	switch {
	case errors.As(err, &pe):
		e = *pe
	case errors.As(err, &e):
	default:
		t.Fatalf("want an ERROR frame, got %v", err)
	}
	if e.Frame == nil || e.Frame.Command != "ERROR" {
		t.Fatalf("want an ERROR frame, got %v (frame %v)", err, e.Frame)
	}
	if e.Frame.Header.Get("message") == "" || len(e.Frame.Body) == 0 {
		t.Fatalf("ERROR without message or body: %v %q", e.Frame.Header, e.Frame.Body)
	}
	return e.Frame
}

// stompAMQP opens an AMQP connection and channel; cleanup closes them.
func stompAMQP(t testing.TB, url string) *amqp.Channel {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("amqp dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("amqp channel: %v", err)
	}
	return ch
}

// stompAMQPRecv takes the next AMQP delivery, failing after stompWait.
func stompAMQPRecv(t testing.TB, c <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-c:
		if !ok {
			t.Fatal("AMQP delivery channel closed")
		}
		return d
	case <-time.After(stompWait):
		t.Fatal("timed out waiting for an AMQP delivery")
	}
	return amqp.Delivery{}
}

// stompQueueCount is the number of ready messages in queue, from an AMQP
// passive declare on a connection of its own.
func stompQueueCount(t testing.TB, amqpURL, queue string) int {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("amqp dial: %v", err)
	}
	defer conn.Close()
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("amqp channel: %v", err)
	}
	q, err := ch.QueueDeclarePassive(queue, false, false, false, false, nil)
	if err != nil {
		t.Fatalf("passive queue.declare %q: %v", queue, err)
	}
	return q.Messages
}

// stompAwaitQueueGone polls until queue no longer exists, failing after
// stompWait.
func stompAwaitQueueGone(t testing.TB, amqpURL, queue string) {
	t.Helper()
	conn, err := amqp.Dial(amqpURL)
	if err != nil {
		t.Fatalf("amqp dial: %v", err)
	}
	defer conn.Close()
	deadline := time.Now().Add(stompWait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		ch, err := conn.Channel()
		if err != nil {
			t.Fatalf("amqp channel: %v", err)
		}
		_, err = ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		var ae *amqp.Error
		if errors.As(err, &ae) && ae.Code == amqp.NotFound {
			return // the failed declare closed the channel
		}
		_ = ch.Close()
		if time.Now().After(deadline) {
			t.Fatalf("queue %q still there after %v (err %v)", queue, stompWait, err)
		}
		<-tick.C
	}
}

// A hand-written STOMP peer for what the client libraries will not send or
// show: raw headers, repeated headers, malformed frames, a client that goes
// silent. Server frames are parsed here, not with the broker's codec.

// stompRawFrame is a frame read from the server.
type stompRawFrame struct {
	cmd  string
	hdr  [][2]string // in order, unescaped
	body []byte
}

// get returns the first value of header k (STOMP 1.2 §Repeated Header
// Entries).
func (f *stompRawFrame) get(k string) string {
	v, _ := f.lookup(k)
	return v
}

func (f *stompRawFrame) lookup(k string) (string, bool) {
	for _, h := range f.hdr {
		if h[0] == k {
			return h[1], true
		}
	}
	return "", false
}

func (f *stompRawFrame) String() string {
	var b strings.Builder
	b.WriteString(f.cmd)
	for _, h := range f.hdr {
		b.WriteString(" " + h[0] + ":" + strconv.Quote(h[1]))
	}
	b.WriteString(" body " + strconv.Quote(string(f.body)))
	return b.String()
}

// stompRaw is a raw STOMP connection.
type stompRaw struct {
	t       testing.TB
	c       net.Conn
	r       *bufio.Reader
	version string           // negotiated; selects header unescaping
	backlog []*stompRawFrame // MESSAGEs read while waiting for a RECEIPT
}

func dialStompRaw(t testing.TB, addr string) *stompRaw {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, stompWait)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &stompRaw{t: t, c: c, r: bufio.NewReaderSize(c, 64<<10), version: "1.0"}
}

// stompFrameBytes encodes a frame as given: headers are key, value pairs
// written verbatim (no escaping), body is followed by a NUL.
func stompFrameBytes(cmd, body string, headers ...string) string {
	var b strings.Builder
	b.WriteString(cmd + "\n")
	for i := 0; i+1 < len(headers); i += 2 {
		b.WriteString(headers[i] + ":" + headers[i+1] + "\n")
	}
	b.WriteString("\n" + body + "\x00")
	return b.String()
}

// send writes raw bytes.
func (r *stompRaw) send(raw string) {
	r.t.Helper()
	if err := r.trySend(raw); err != nil {
		r.t.Fatalf("write: %v", err)
	}
}

func (r *stompRaw) trySend(raw string) error {
	_ = r.c.SetWriteDeadline(time.Now().Add(stompWait))
	_, err := io.WriteString(r.c, raw)
	return err
}

// frame writes one frame (see stompFrameBytes).
func (r *stompRaw) frame(cmd, body string, headers ...string) {
	r.t.Helper()
	r.send(stompFrameBytes(cmd, body, headers...))
}

// connect sends CONNECT as guest to vhost "/" accepting version v, plus
// extra headers, and returns the CONNECTED frame.
func (r *stompRaw) connect(v string, extra ...string) *stompRawFrame {
	r.t.Helper()
	hs := append([]string{"accept-version", v, "host", "/", "login", "guest", "passcode", "guest"}, extra...)
	r.frame("CONNECT", "", hs...)
	f := r.expect("CONNECTED")
	if got := f.get("version"); got != v && !(v == "1.0" && got == "") {
		r.t.Fatalf("CONNECTED version %q, want %q", got, v)
	}
	r.version = v
	return f
}

// read reads the next frame, skipping heart-beat EOLs; nil at EOF.
func (r *stompRaw) read() (*stompRawFrame, error) {
	_ = r.c.SetReadDeadline(time.Now().Add(stompWait))
	var line string
	for {
		l, err := r.r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && l == "" {
				return nil, nil
			}
			return nil, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
		if line != "" {
			break
		}
	}
	f := &stompRawFrame{cmd: line}
	escaped := r.version != "1.0" && f.cmd != "CONNECTED"
	length := -1
	for {
		l, err := r.r.ReadString('\n')
		if err != nil {
			return nil, err
		}
		l = strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r")
		if l == "" {
			break
		}
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			return nil, errors.New("server header without ':': " + strconv.Quote(l))
		}
		if escaped {
			var err error
			if k, err = stompUnescape(k); err == nil {
				v, err = stompUnescape(v)
			}
			if err != nil {
				return nil, err
			}
		}
		if k == "content-length" && length < 0 {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, errors.New("bad content-length " + strconv.Quote(v))
			}
			length = n
		}
		f.hdr = append(f.hdr, [2]string{k, v})
	}
	if length >= 0 {
		f.body = make([]byte, length+1)
		if _, err := io.ReadFull(r.r, f.body); err != nil {
			return nil, err
		}
		if f.body[length] != 0 {
			return nil, errors.New("server frame body not followed by NUL")
		}
		f.body = f.body[:length]
	} else {
		b, err := r.r.ReadBytes(0)
		if err != nil {
			return nil, err
		}
		f.body = b[:len(b)-1]
	}
	return f, nil
}

// stompUnescape decodes a 1.1/1.2 header octet sequence, strictly.
func stompUnescape(s string) (string, error) {
	if !strings.Contains(s, `\`) {
		return s, nil
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		i++
		if i == len(s) {
			return "", errors.New("server header ends in a backslash")
		}
		switch s[i] {
		case 'n':
			b.WriteByte('\n')
		case 'c':
			b.WriteByte(':')
		case 'r':
			b.WriteByte('\r')
		case '\\':
			b.WriteByte('\\')
		default:
			return "", errors.New("server header has undefined escape " + strconv.Quote(s[i-1:i+1]))
		}
	}
	return b.String(), nil
}

// next returns the next frame, failing at EOF or on a read error.
func (r *stompRaw) next() *stompRawFrame {
	r.t.Helper()
	if len(r.backlog) > 0 {
		f := r.backlog[0]
		r.backlog = r.backlog[1:]
		return f
	}
	f, err := r.read()
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	if f == nil {
		r.t.Fatal("connection closed, want a frame")
	}
	return f
}

// expect reads the next frame and fails unless it is cmd.
func (r *stompRaw) expect(cmd string) *stompRawFrame {
	r.t.Helper()
	f := r.next()
	if f.cmd != cmd {
		r.t.Fatalf("got %s, want %s", f, cmd)
	}
	return f
}

// expectError reads an ERROR with a message header and a body, then
// expects the connection to be closed.
func (r *stompRaw) expectError() *stompRawFrame {
	r.t.Helper()
	f := r.expect("ERROR")
	if f.get("message") == "" || len(f.body) == 0 {
		r.t.Fatalf("ERROR without a message header or a body: %s", f)
	}
	r.expectEOF()
	return f
}

// expectEOF reads until the server closes the connection; a frame before
// the close fails the test.
func (r *stompRaw) expectEOF() {
	r.t.Helper()
	f, err := r.read()
	var ne net.Error
	switch {
	case f != nil:
		r.t.Fatalf("got %s, want the connection closed", f)
	case errors.As(err, &ne) && ne.Timeout():
		r.t.Fatalf("connection still open after %v", stompWait)
	case err != nil && !errors.Is(err, io.EOF) && !errors.Is(err, net.ErrClosed) && !stompConnReset(err):
		r.t.Fatalf("read: %v, want EOF", err)
	}
}

// stompConnReset reports a close by RST: the broker closed with bytes of
// ours still unread.
func stompConnReset(err error) bool {
	return errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// receipt sends cmd with a receipt header and waits for the RECEIPT;
// MESSAGEs that arrive first are kept for next.
func (r *stompRaw) receipt(cmd, body, id string, headers ...string) {
	r.t.Helper()
	r.frame(cmd, body, append(headers, "receipt", id)...)
	for {
		f, err := r.read()
		switch {
		case err != nil:
			r.t.Fatalf("%s: read: %v", cmd, err)
		case f == nil:
			r.t.Fatalf("%s: connection closed, want RECEIPT %s", cmd, id)
		case f.cmd == "MESSAGE":
			r.backlog = append(r.backlog, f)
			continue
		case f.cmd != "RECEIPT" || f.get("receipt-id") != id:
			r.t.Fatalf("%s: got %s, want RECEIPT %s", cmd, f, id)
		}
		return
	}
}

// stompBodyEq reports whether a message body equals want.
func stompBodyEq(f *stompRawFrame, want string) bool { return bytes.Equal(f.body, []byte(want)) }
