package stomp

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/junction-broker/junction/protocols/protocolstest"
	"github.com/junction-broker/junction/protocols/stomp/frame"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// harness drives one session from the test goroutine, as the transport's
// loop would.
type harness struct {
	t       testing.TB
	store   *memstore.Store
	rt      *router.Router
	c       *protocolstest.Conn
	s       *session
	parser  frame.Parser // reads what the server sends
	pending []byte
	out     []byte
	got     []*frame.Frame // nil entries are heart-beats
	feedErr error
}

var connIDs = struct {
	sync.Mutex
	n uint64
}{}

func newRouter(t testing.TB) (*router.Router, *memstore.Store) {
	t.Helper()
	st := memstore.New()
	rt, err := router.New(router.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return rt, st
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	rt, st := newRouter(t)
	cfg.Router = rt
	return openHarness(t, New(cfg), st)
}

func openHarness(t testing.TB, a *Adapter, st *memstore.Store) *harness {
	connIDs.Lock()
	connIDs.n++
	id := connIDs.n
	connIDs.Unlock()
	c := protocolstest.NewConn(id, "127.0.0.1:40000", "127.0.0.1:61613")
	h := &harness{t: t, store: st, rt: a.cfg.Router, c: c}
	h.parser.Server = true
	h.s = a.Open(c).(*session)
	t.Cleanup(func() { h.s.Closed(nil) })
	return h
}

func (h *harness) send(b string) {
	h.t.Helper()
	h.pending = append(h.pending, b...)
	h.pump()
}

// frame sends a client frame encoded for the session's version.
func (h *harness) frame(cmd string, body string, headers ...string) {
	h.t.Helper()
	var b []byte
	if body != "" {
		b = []byte(body)
	}
	h.send(string(frame.Append(nil, h.s.version, cmd, headers, b)))
}

func (h *harness) pump() {
	h.t.Helper()
	if len(h.pending) > 0 && h.feedErr == nil {
		n, err := h.s.Feed(h.pending)
		if n < 0 || n > len(h.pending) {
			h.t.Fatalf("Feed consumed %d of %d", n, len(h.pending))
		}
		h.pending = h.pending[n:]
		if err != nil {
			h.feedErr = err
		}
	}
	for {
		vec := h.s.Output(nil)
		if len(vec) == 0 {
			break
		}
		for _, b := range vec {
			h.out = append(h.out, b...)
		}
	}
	if h.feedErr != nil {
		h.out = append(h.out, h.s.Fail(h.feedErr)...)
	}
	h.parse()
}

func (h *harness) parse() {
	h.t.Helper()
	h.parser.Version = h.s.version
	for {
		f, n, err := h.parser.Parse(h.out)
		if err != nil {
			h.t.Fatalf("server sent a bad frame: %v in %q", err, h.out)
		}
		if n == 0 {
			return
		}
		h.out = h.out[n:]
		h.got = append(h.got, f)
	}
}

// next returns the next frame the server sent (nil for a heart-beat),
// waiting for wakes from storage goroutines up to a deadline.
func (h *harness) next() *frame.Frame {
	h.t.Helper()
	deadline := time.After(5 * time.Second)
	for len(h.got) == 0 {
		h.pump()
		if len(h.got) > 0 {
			break
		}
		select {
		case <-h.c.Woken():
		case <-deadline:
			h.t.Fatal("timed out waiting for the server")
		}
	}
	f := h.got[0]
	h.got = h.got[1:]
	return f
}

// expect returns the next frame and checks its command.
func (h *harness) expect(cmd string) *frame.Frame {
	h.t.Helper()
	f := h.next()
	if f == nil || f.Command != cmd {
		if f != nil && f.Command == "ERROR" {
			h.t.Fatalf("got ERROR %q: %s, want %s", f.Header.Get("message"), f.Body, cmd)
		}
		h.t.Fatalf("got %v, want %s", f, cmd)
	}
	return f
}

// quiet checks that the server has nothing to say for a moment.
func (h *harness) quiet() {
	h.t.Helper()
	time.Sleep(20 * time.Millisecond)
	h.pump()
	if len(h.got) > 0 {
		h.t.Fatalf("unexpected %v", h.got[0])
	}
}

func (h *harness) connect(headers ...string) *frame.Frame {
	h.t.Helper()
	if len(headers) == 0 {
		headers = []string{"accept-version", "1.2", "host", "/", "login", "guest", "passcode", "guest"}
	}
	h.frame("CONNECT", "", headers...)
	return h.expect("CONNECTED")
}

func TestConnectNegotiation(t *testing.T) {
	for _, tc := range []struct {
		accept string
		want   string
	}{
		{"", "1.0"},
		{"1.0", "1.0"},
		{"1.0,1.1", "1.1"},
		{"1.1,1.2,2.0", "1.2"},
	} {
		h := newHarness(t, Config{})
		hs := []string{"login", "guest", "passcode", "guest"}
		if tc.accept != "" {
			hs = append(hs, "accept-version", tc.accept)
		}
		f := h.connect(hs...)
		if v := f.Header.Get("version"); v != tc.want {
			t.Errorf("accept-version %q: version %q, want %q", tc.accept, v, tc.want)
		}
		if !strings.HasPrefix(f.Header.Get("server"), "Junction/") || f.Header.Get("session") == "" {
			t.Errorf("CONNECTED headers %v", f.Header)
		}
	}
}

func TestConnectBadVersion(t *testing.T) {
	h := newHarness(t, Config{})
	h.frame("CONNECT", "", "accept-version", "2.0,3.0")
	f := h.expect("ERROR")
	if f.Header.Get("message") != "Supported protocol versions are 1.0,1.1,1.2" || f.Header.Get("version") != "1.0,1.1,1.2" {
		t.Fatalf("ERROR %v", f.Header)
	}
	if !h.c.IsClosed() {
		t.Fatal("connection left open")
	}
}

func TestConnectFirst(t *testing.T) {
	h := newHarness(t, Config{})
	h.frame("SEND", "x", "destination", "/queue/a")
	h.expect("ERROR")
	if !h.c.IsClosed() {
		t.Fatal("connection left open")
	}
}

func TestAuthFailure(t *testing.T) {
	h := newHarness(t, Config{})
	h.frame("CONNECT", "", "accept-version", "1.2", "login", "guest", "passcode", "wrong")
	f := h.expect("ERROR")
	if f.Header.Get("message") != "Access refused for user 'guest'" {
		t.Fatalf("ERROR %v", f.Header)
	}
	if !h.c.IsClosed() {
		t.Fatal("connection left open")
	}
	// No login at all is guest/guest, which works from loopback.
	h2 := newHarness(t, Config{})
	h2.connect("accept-version", "1.2")
	// Unknown vhost.
	h3 := newHarness(t, Config{})
	h3.frame("CONNECT", "", "accept-version", "1.2", "host", "nope")
	if f := h3.expect("ERROR"); !strings.Contains(f.Header.Get("message"), "'nope'") {
		t.Fatalf("ERROR %v", f.Header)
	}
}

func TestSendReceiptAfterCommit(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	// Declare the durable queue first, so only the message is held.
	h.frame("SEND", "first", "destination", "/queue/d", "receipt", "r0")
	if f := h.expect("RECEIPT"); f.Header.Get("receipt-id") != "r0" {
		t.Fatalf("receipt %v", f.Header)
	}
	h.store.Hold()
	h.frame("SEND", "body", "destination", "/queue/d", "persistent", "true", "receipt", "r1")
	h.quiet() // nothing before the commit
	h.store.Release()
	if f := h.expect("RECEIPT"); f.Header.Get("receipt-id") != "r1" {
		t.Fatalf("receipt %v", f.Header)
	}
	if q := h.s.vhost.Queue("d"); q == nil || !q.Durable {
		t.Fatal("/queue/d is not a durable queue")
	}
}

func TestQueueRoundTrip(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "s1", "destination", "/queue/rt", "receipt", "sub")
	h.expect("RECEIPT")
	h.frame("SEND", "a\x00b", "destination", "/queue/rt", "content-type", "text/x", "correlation-id", "c1",
		"reply-to", "/queue/back", "priority", "3", "persistent", "true", "message-id", "m1",
		"custom", "v1", "custom", "ignored", "x-two", "a:b\nc")
	f := h.expect("MESSAGE")
	want := map[string]string{
		"subscription": "s1", "destination": "/queue/rt", "content-type": "text/x", "correlation-id": "c1",
		"reply-to": "/queue/back", "priority": "3", "persistent": "true", "amqp-message-id": "m1",
		"custom": "v1", "x-two": "a:b\nc", "content-length": "3",
	}
	for k, v := range want {
		if got := f.Header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if len(f.Header.GetAll("custom")) != 1 {
		t.Errorf("custom twice: %v", f.Header)
	}
	if string(f.Body) != "a\x00b" || f.Header.Get("message-id") == "" || f.Header.Get("ack") != "" {
		t.Fatalf("MESSAGE %v %q", f.Header, f.Body)
	}
	h.frame("UNSUBSCRIBE", "", "id", "s1", "receipt", "unsub")
	h.expect("RECEIPT")
	h.frame("DISCONNECT", "", "receipt", "bye")
	h.expect("RECEIPT")
	if !h.c.IsClosed() {
		t.Fatal("DISCONNECT left the connection open")
	}
}

func TestTopicRoundTrip(t *testing.T) {
	rt, st := newRouter(t)
	a := New(Config{Router: rt})
	h1, h2 := openHarness(t, a, st), openHarness(t, a, st)
	for _, h := range []*harness{h1, h2} {
		h.connect()
		h.frame("SUBSCRIBE", "", "id", "t", "destination", "/topic/a.b", "receipt", "r")
		h.expect("RECEIPT")
	}
	h1.frame("SEND", "news", "destination", "/topic/a.b")
	for _, h := range []*harness{h1, h2} {
		f := h.expect("MESSAGE")
		if string(f.Body) != "news" || f.Header.Get("destination") != "/topic/a.b" {
			t.Fatalf("MESSAGE %v %q", f.Header, f.Body)
		}
	}
	// The subscription queue is exclusive and goes with the connection.
	h1.s.Closed(nil)
	n := 0
	for _, q := range h2.s.vhost.Queues() {
		if strings.HasPrefix(q.Name, "amq.gen-") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("%d subscription queues left, want 1", n)
	}
}

func TestExchangeAndAmqQueue(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "x", "destination", "/exchange/amq.direct/k", "receipt", "r")
	h.expect("RECEIPT")
	h.frame("SEND", "via x", "destination", "/exchange/amq.direct/k")
	if f := h.expect("MESSAGE"); f.Header.Get("destination") != "/exchange/amq.direct/k" {
		t.Fatalf("MESSAGE %v", f.Header)
	}
	h.frame("SUBSCRIBE", "", "id", "missing", "destination", "/amq/queue/nope")
	if f := h.expect("ERROR"); f.Header.Get("message") != "not_found" {
		t.Fatalf("ERROR %v", f.Header)
	}
	h2 := newHarness(t, Config{})
	h2.connect()
	h2.frame("SEND", "x", "destination", "/elsewhere/a")
	h2.expect("ERROR")
}

func TestClientAck(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/ca", "ack", "client", "receipt", "r")
	h.expect("RECEIPT")
	for _, b := range []string{"1", "2", "3"} {
		h.frame("SEND", b, "destination", "/queue/ca")
	}
	var ids []string
	for range 3 {
		f := h.expect("MESSAGE")
		if f.Header.Get("ack") == "" {
			t.Fatalf("no ack header in 1.2: %v", f.Header)
		}
		ids = append(ids, f.Header.Get("ack"))
	}
	// Cumulative: acking the second settles the first two.
	h.frame("ACK", "", "id", ids[1], "receipt", "a")
	h.expect("RECEIPT")
	if n := h.s.ch.Unacked(); n != 1 {
		t.Fatalf("%d unacked, want 1", n)
	}
	h.frame("ACK", "", "id", ids[2])
	h.quiet()
	if n := h.s.ch.Unacked(); n != 0 {
		t.Fatalf("%d unacked, want 0", n)
	}
}

func TestClientIndividualAck(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/ci", "ack", "client-individual", "receipt", "r")
	h.expect("RECEIPT")
	for _, b := range []string{"1", "2"} {
		h.frame("SEND", b, "destination", "/queue/ci")
	}
	f1, f2 := h.expect("MESSAGE"), h.expect("MESSAGE")
	h.frame("ACK", "", "id", f2.Header.Get("ack"), "receipt", "a")
	h.expect("RECEIPT")
	if n := h.s.ch.Unacked(); n != 1 {
		t.Fatalf("%d unacked, want 1 (the first)", n)
	}
	h.frame("ACK", "", "id", f1.Header.Get("ack"))
	h.quiet()
	if n := h.s.ch.Unacked(); n != 0 {
		t.Fatalf("%d unacked, want 0", n)
	}
}

func TestNackRequeue(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/nq", "ack", "client-individual", "prefetch-count", "1", "receipt", "r")
	h.expect("RECEIPT")
	h.frame("SEND", "again", "destination", "/queue/nq")
	f := h.expect("MESSAGE")
	if f.Header.Get("redelivered") != "false" {
		t.Fatalf("first delivery %v", f.Header)
	}
	h.frame("NACK", "", "id", f.Header.Get("ack"))
	f = h.expect("MESSAGE")
	if string(f.Body) != "again" || f.Header.Get("redelivered") != "true" {
		t.Fatalf("redelivery %v %q", f.Header, f.Body)
	}
	// requeue:false drops it (no dead-letter exchange here).
	h.frame("NACK", "", "id", f.Header.Get("ack"), "requeue", "false", "receipt", "n")
	h.expect("RECEIPT")
	h.quiet()
	if q := h.s.vhost.Queue("nq"); q == nil {
		t.Fatal("queue gone")
	}
}

func TestAck11(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect("accept-version", "1.1")
	h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/a11", "ack", "client", "receipt", "r")
	h.expect("RECEIPT")
	h.frame("SEND", "x", "destination", "/queue/a11")
	f := h.expect("MESSAGE")
	if f.Header.Get("ack") != "" {
		t.Fatalf("ack header in 1.1: %v", f.Header)
	}
	h.frame("ACK", "", "message-id", f.Header.Get("message-id"), "subscription", "s", "receipt", "a")
	h.expect("RECEIPT")
	if n := h.s.ch.Unacked(); n != 0 {
		t.Fatalf("%d unacked", n)
	}
}

func TestEscapingPerVersion(t *testing.T) {
	for _, tc := range []struct {
		accept, raw, want string
	}{
		{"1.0", `h:a\cb`, `a\cb`},
		{"1.1", `h:a\cb\nc\\`, "a:b\nc\\"},
		{"1.2", `h:a\rb`, "a\rb"},
	} {
		h := newHarness(t, Config{})
		h.connect("accept-version", tc.accept)
		h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/esc", "receipt", "r")
		h.expect("RECEIPT")
		h.send("SEND\ndestination:/queue/esc\n" + tc.raw + "\n\n\x00")
		f := h.expect("MESSAGE")
		if got := f.Header.Get("h"); got != tc.want {
			t.Errorf("%s: header %q, want %q", tc.accept, got, tc.want)
		}
	}
	// 1.1 has no \r; 1.2 has no \t.
	for _, accept := range []string{"1.1", "1.2"} {
		h := newHarness(t, Config{})
		h.connect("accept-version", accept)
		h.send("SEND\ndestination:/queue/esc\nh:\\t\n\n\x00")
		if f := h.expect("ERROR"); f.Header.Get("message") != "invalid header" {
			t.Fatalf("ERROR %v", f.Header)
		}
		if h.feedErr == nil || !h.c.IsClosed() && h.feedErr == nil {
			t.Fatal("connection not closed")
		}
	}
}

func TestLimits(t *testing.T) {
	for _, tc := range []struct {
		name, in, msg string
	}{
		{"frame size", "SEND\ndestination:/queue/l\ncontent-length:5000\n\n", "frame too large"},
		{"frame size no length", "SEND\ndestination:/queue/l\n\n" + strings.Repeat("x", 1100), "frame too large"},
		{"header count", "SEND\n" + strings.Repeat("a:b\n", 11), "too many headers"},
		{"header line", "SEND\na:" + strings.Repeat("x", 300), "header line too long"},
	} {
		h := newHarness(t, Config{MaxFrameSize: 1024, MaxHeaders: 10, MaxHeaderLine: 200})
		h.connect()
		h.send(tc.in)
		if f := h.expect("ERROR"); f.Header.Get("message") != tc.msg {
			t.Errorf("%s: ERROR %v", tc.name, f.Header)
		}
		if h.feedErr == nil {
			t.Errorf("%s: connection not closed", tc.name)
		}
	}
}

func TestHeartBeats(t *testing.T) {
	h := newHarness(t, Config{})
	f := h.connect("accept-version", "1.2", "heart-beat", "2000,3000")
	if hb := f.Header.Get("heart-beat"); hb != "3000,2000" {
		t.Fatalf("heart-beat %q", hb)
	}
	t0 := time.Unix(1000, 0)
	tick := func(d time.Duration) error {
		err := h.s.Tick(t0.Add(d))
		if err != nil {
			h.feedErr = err
		}
		h.pump()
		return err
	}
	if err := tick(0); err != nil {
		t.Fatal(err)
	}
	// The server sends a heart-beat within its interval of silence.
	if err := tick(1600 * time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if f := h.next(); f != nil {
		t.Fatalf("want a heart-beat, got %v", f)
	}
	// A client heart-beat keeps the connection alive.
	h.send("\n")
	if err := tick(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.got = nil
	if err := tick(6 * time.Second); err != nil {
		t.Fatal(err)
	}
	h.got = nil
	// More than twice the client's interval of silence ends it.
	if err := tick(7100 * time.Millisecond); err == nil {
		t.Fatal("missed heart-beats not noticed")
	}
	var e *frame.Frame
	for len(h.got) > 0 && e == nil {
		e = h.next()
	}
	if e == nil || e.Command != "ERROR" {
		t.Fatalf("no ERROR after missed heart-beats: %v", e)
	}
}

func TestClosedRequeues(t *testing.T) {
	rt, st := newRouter(t)
	a := New(Config{Router: rt})
	h := openHarness(t, a, st)
	h.connect()
	h.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/cr", "ack", "client", "receipt", "r")
	h.expect("RECEIPT")
	h.frame("SEND", "keep", "destination", "/queue/cr")
	h.expect("MESSAGE")
	h.s.Closed(nil)
	h2 := openHarness(t, a, st)
	h2.connect()
	h2.frame("SUBSCRIBE", "", "id", "s", "destination", "/queue/cr")
	f := h2.expect("MESSAGE")
	if string(f.Body) != "keep" || f.Header.Get("redelivered") != "true" {
		t.Fatalf("MESSAGE %v %q", f.Header, f.Body)
	}
}
