package transport

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/junction-broker/junction/protocols"
)

// The toy protocol: newline-terminated lines, each echoed back (upper-cased
// on an "upper" adapter). Commands:
//
//	panic        Feed panics
//	opanic       the next Output panics
//	quit         Feed returns errQuit
//	flood N      Output produces N bytes of 'x', floodChunk per call
//	burst N      the next Output returns N separate "b\n" buffers
//
// A session whose Conn.Refusal is set answers its first line with Fail's
// "ERROR <refusal>" line and closes: the toy protocol's handshake refusal.
var (
	errQuit = errors.New("quit")
	errIdle = errors.New("idle timeout")
	errBye  = errors.New("bye")
)

const (
	floodChunk = 32 << 10
	waitLimit  = 10 * time.Second
)

var (
	xs    = bytes.Repeat([]byte{'x'}, floodChunk)
	bLine = []byte("b\n")
)

type lineAdapter struct {
	name     string
	upper    bool
	idle     time.Duration // Tick fails after this long without input; 0: never
	sessions chan *lineSession
}

func newAdapter(name string) *lineAdapter {
	return &lineAdapter{name: name, sessions: make(chan *lineSession, 64)}
}

func (a *lineAdapter) Name() string { return a.name }

func (a *lineAdapter) Open(c protocols.Conn) protocols.Session {
	s := &lineSession{a: a, conn: c, last: time.Now(), closed: make(chan error, 1)}
	a.sessions <- s
	return s
}

// next returns the session of the next accepted connection.
func (a *lineAdapter) next(t testing.TB) *lineSession {
	t.Helper()
	select {
	case s := <-a.sessions:
		return s
	case <-time.After(waitLimit):
		t.Fatal("no session opened")
		return nil
	}
}

type lineSession struct {
	a    *lineAdapter
	conn protocols.Conn

	// loop only
	cur, prev []byte // pending output; the buffer handed out last
	last      time.Time
	flood     int
	burst     int
	outPanic  bool

	mu   sync.Mutex
	mail []byte // posted from other goroutines

	feeds    atomic.Int64
	produced atomic.Int64
	closed   chan error
}

// post queues b for output from any goroutine.
func (s *lineSession) post(b string) {
	s.mu.Lock()
	s.mail = append(s.mail, b...)
	s.mu.Unlock()
	s.conn.Wake()
}

func (s *lineSession) Feed(in []byte) (int, error) {
	s.feeds.Add(1)
	s.last = time.Now()
	if err := s.conn.Refusal(); err != nil {
		if bytes.IndexByte(in, '\n') < 0 {
			return 0, nil
		}
		return len(in), err
	}
	n := 0
	for {
		i := bytes.IndexByte(in[n:], '\n')
		if i < 0 {
			return n, nil
		}
		line := in[n : n+i]
		n += i + 1
		switch cmd, arg, _ := strings.Cut(string(line), " "); cmd {
		case "panic":
			panic("boom")
		case "opanic":
			s.outPanic = true
		case "quit":
			return n, errQuit
		case "flood":
			k, _ := strconv.Atoi(arg)
			s.flood += k
		case "burst":
			s.burst, _ = strconv.Atoi(arg)
		default:
			if s.a.upper {
				line = bytes.ToUpper(line)
			}
			s.cur = append(append(s.cur, line...), '\n')
		}
	}
}

func (s *lineSession) Output(dst [][]byte) [][]byte {
	if s.outPanic {
		panic("output boom")
	}
	s.mu.Lock()
	s.cur = append(s.cur, s.mail...)
	s.mail = s.mail[:0]
	s.mu.Unlock()
	if len(s.cur) > 0 {
		dst = append(dst, s.cur)
		s.cur, s.prev = s.prev[:0], s.cur
	}
	for ; s.burst > 0; s.burst-- {
		dst = append(dst, bLine)
	}
	if s.flood > 0 {
		k := min(s.flood, floodChunk)
		dst = append(dst, xs[:k])
		s.flood -= k
		s.produced.Add(int64(k))
	}
	return dst
}

func (s *lineSession) Tick(now time.Time) error {
	if s.a.idle > 0 && now.Sub(s.last) > s.a.idle {
		return errIdle
	}
	return nil
}

func (s *lineSession) Fail(err error) []byte { return []byte("ERROR " + err.Error() + "\n") }

func (s *lineSession) Closed(err error) { s.closed <- err }

// closedWith waits for Closed and checks its reason.
func (s *lineSession) closedWith(t testing.TB, want error) {
	t.Helper()
	select {
	case err := <-s.closed:
		if !errors.Is(err, want) {
			t.Fatalf("Closed(%v), want %v", err, want)
		}
	case <-time.After(waitLimit):
		t.Fatalf("Closed not called, want %v", want)
	}
}

// testLog sends log lines to t.Log until the test ends; gnet may log after.
type testLog struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testLog) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSuffix(string(p), "\n"))
	}
	return len(p), nil
}

func newLogger(t testing.TB) *slog.Logger {
	w := &testLog{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// start runs a server for cfg until the test ends.
func start(t testing.TB, cfg Config) *Server {
	t.Helper()
	s := New(cfg, newLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if n := s.Panics(); n != 0 && !t.Failed() && !strings.Contains(t.Name(), "Panic") {
			t.Errorf("%d panics recovered", n)
		}
	})
	return s
}

func one(a protocols.Adapter) Config {
	return Config{Listeners: []Listener{{Name: "line", Addr: "127.0.0.1:0", Adapter: a}}}
}

type client struct {
	t  testing.TB
	nc net.Conn
	r  *bufio.Reader
}

func dial(t testing.TB, addr string) *client {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, waitLimit)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(waitLimit))
	return &client{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *client) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read line (got %q): %v", s, err)
	}
	return strings.TrimSuffix(s, "\n")
}

func (c *client) expectLine(want string) {
	c.t.Helper()
	if got := c.line(); got != want {
		c.t.Fatalf("got %q, want %q", got, want)
	}
}

// expectEOF reads until the server closes the connection.
func (c *client) expectEOF() {
	c.t.Helper()
	rest, err := io.ReadAll(c.r)
	if err != nil {
		c.t.Fatalf("waiting for close: %v", err)
	}
	if len(rest) > 0 {
		c.t.Fatalf("unexpected bytes before close: %q", rest)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(waitLimit)
	tk := time.NewTicker(time.Millisecond)
	defer tk.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		<-tk.C
	}
}

func TestEcho(t *testing.T) {
	a := newAdapter("line")
	s := start(t, one(a))
	c := dial(t, s.Addrs()["line"])
	c.send("hello\n")
	c.expectLine("hello")
	c.send("a\nb\nc\n")
	c.expectLine("a")
	c.expectLine("b")
	c.expectLine("c")
	if st := s.Stats(); st.Conns != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v, want 1 open, 1 accepted", st)
	}
	c.send("quit\n")
	c.expectLine("ERROR quit")
	c.expectEOF()
	a.next(t).closedWith(t, errQuit)
	waitFor(t, "gauge to drop", func() bool { return s.Stats().Conns == 0 })
}

// TestLastWordsSurviveAPeerStillSending: a client that goes on sending
// after the session closed its connection still reads the final bytes
// (the protocol's error) and then EOF. Were the socket closed with the
// client's bytes unread, the kernel would reset the connection and the
// client's kernel drop the error before it is read; the transport
// half-closes instead and drops what comes until the client hangs up.
func TestLastWordsSurviveAPeerStillSending(t *testing.T) {
	a := newAdapter("line")
	s := start(t, one(a))
	c := dial(t, s.Addrs()["line"])
	c.send("quit\n")
	a.next(t).closedWith(t, errQuit)
	// The session is gone; the client, not reading yet, sends on. These
	// bytes reach the server after its close decision.
	junk := strings.Repeat("ignored\n", 8192)
	for range 4 {
		c.send(junk)
	}
	c.expectLine("ERROR quit")
	c.expectEOF()
	waitFor(t, "gauge to drop", func() bool { return s.Stats().Conns == 0 })
}

func TestSplitFrame(t *testing.T) {
	a := newAdapter("line")
	s := start(t, one(a))
	c := dial(t, s.Addrs()["line"])
	sess := a.next(t)
	c.send("hel")
	waitFor(t, "first fragment to reach Feed", func() bool { return sess.feeds.Load() >= 1 })
	c.send("lo\nwor")
	c.expectLine("hello")
	c.send("ld\n")
	c.expectLine("world")
}

func TestTwoListeners(t *testing.T) {
	plain, upper := newAdapter("plain"), newAdapter("upper")
	upper.upper = true
	s := start(t, Config{Listeners: []Listener{
		{Name: "plain", Addr: "127.0.0.1:0", Adapter: plain},
		{Name: "off", Addr: "", Adapter: plain}, // disabled
		{Name: "upper", Addr: "127.0.0.1:0", Adapter: upper},
	}})
	addrs := s.Addrs()
	if len(addrs) != 2 || addrs["plain"] == addrs["upper"] || strings.HasSuffix(addrs["plain"], ":0") {
		t.Fatalf("Addrs() = %v", addrs)
	}
	p, u := dial(t, addrs["plain"]), dial(t, addrs["upper"])
	p.send("mixed Case\n")
	u.send("mixed Case\n")
	p.expectLine("mixed Case")
	u.expectLine("MIXED CASE")
	if sp, su := plain.next(t), upper.next(t); sp.conn.LocalAddr() != addrs["plain"] || su.conn.LocalAddr() != addrs["upper"] {
		t.Fatalf("LocalAddr %s, %s; want %v", sp.conn.LocalAddr(), su.conn.LocalAddr(), addrs)
	}
}

func TestWakeFromOtherGoroutine(t *testing.T) {
	a := newAdapter("line")
	s := start(t, one(a))
	c := dial(t, s.Addrs()["line"])
	sess := a.next(t)

	var wg sync.WaitGroup
	for i := range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sess.post("m" + strconv.Itoa(i) + "\n")
		}()
	}
	wg.Wait()
	seen := map[string]bool{}
	for range 50 {
		seen[c.line()] = true
	}
	if len(seen) != 50 {
		t.Fatalf("got %d distinct lines, want 50", len(seen))
	}

	// Close from another goroutine: queued output first, then EOF.
	go func() {
		sess.post("goodbye\n")
		sess.conn.Close(errBye)
	}()
	c.expectLine("goodbye")
	c.expectEOF()
	sess.closedWith(t, errBye)
	sess.conn.Wake() // after close: harmless
	sess.conn.Close(nil)
}

func TestPanicClosesOnlyItsConnection(t *testing.T) {
	a := newAdapter("line")
	s := start(t, one(a))
	addr := s.Addrs()["line"]
	good := dial(t, addr)
	good.send("before\n")
	good.expectLine("before")
	gs := a.next(t)

	for i, cmd := range []string{"panic\n", "opanic\nx\n"} {
		bad := dial(t, addr)
		bs := a.next(t)
		bad.send(cmd)
		if got := bad.line(); !strings.HasPrefix(got, "ERROR "+protocols.ErrInternal.Error()) {
			t.Fatalf("%q: got %q, want the ErrInternal Fail line", cmd, got)
		}
		bad.expectEOF()
		bs.closedWith(t, protocols.ErrInternal)
		if n := s.Panics(); n != int64(i+1) {
			t.Fatalf("Panics() = %d, want %d", n, i+1)
		}
		good.send("still here\n")
		good.expectLine("still here")
	}
	select {
	case err := <-gs.closed:
		t.Fatalf("healthy session closed: %v", err)
	default:
	}
}

func TestInboundLimit(t *testing.T) {
	a := newAdapter("line")
	cfg := one(a)
	cfg.Listeners[0].Limits.MaxInbound = 1024
	s := start(t, cfg)
	ok := dial(t, s.Addrs()["line"])
	ok.send(strings.Repeat("y", 1000) + "\n")
	ok.expectLine(strings.Repeat("y", 1000))
	a.next(t)

	bad := dial(t, s.Addrs()["line"])
	bs := a.next(t)
	bad.send(strings.Repeat("z", 8<<10)) // no newline: never consumed
	bad.expectLine("ERROR " + protocols.ErrInboundLimit.Error())
	bad.expectEOF()
	bs.closedWith(t, protocols.ErrInboundLimit)

	ok.send("fine\n")
	ok.expectLine("fine")
}

func TestTickClosesIdleConnection(t *testing.T) {
	a := newAdapter("line")
	a.idle = 100 * time.Millisecond
	cfg := one(a)
	cfg.TickInterval = 10 * time.Millisecond
	s := start(t, cfg)
	c := dial(t, s.Addrs()["line"])
	start := time.Now()
	c.send("hi\n")
	c.expectLine("hi")
	c.expectLine("ERROR " + errIdle.Error())
	c.expectEOF()
	if d := time.Since(start); d < a.idle {
		t.Fatalf("closed after %v, before the idle timeout %v", d, a.idle)
	}
	a.next(t).closedWith(t, errIdle)
}

func TestShutdownSendsFail(t *testing.T) {
	a := newAdapter("line")
	s := New(one(a), newLogger(t))
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	addr := s.Addrs()["line"]
	var cs []*client
	var ss []*lineSession
	for range 4 {
		c := dial(t, addr)
		c.send("up\n")
		c.expectLine("up")
		cs = append(cs, c)
		ss = append(ss, a.next(t))
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	for i, c := range cs {
		c.expectLine("ERROR " + protocols.ErrShutdown.Error())
		c.expectEOF()
		ss[i].closedWith(t, protocols.ErrShutdown)
	}
	if st := s.Stats(); st.Conns != 0 {
		t.Fatalf("%d connections open after Shutdown", st.Conns)
	}
	if nc, err := net.DialTimeout("tcp", addr, waitLimit); err == nil {
		nc.Close()
		t.Fatal("listener still accepting after Shutdown")
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()

	a := newAdapter("line")
	s := New(Config{Listeners: []Listener{{Name: "line", Addr: busy.Addr().String(), Adapter: a}}}, newLogger(t))
	if err := s.Start(ctx); !errors.Is(err, syscall.EADDRINUSE) {
		t.Fatalf("Start on a busy port: %v, want EADDRINUSE", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown after failed Start: %v", err)
	}

	for name, cfg := range map[string]Config{
		"none enabled": {Listeners: []Listener{{Name: "off", Adapter: a}}},
		"no adapter":   {Listeners: []Listener{{Name: "x", Addr: "127.0.0.1:0"}}},
		"bad port":     {Listeners: []Listener{{Name: "x", Addr: "127.0.0.1:http2", Adapter: a}}},
		"dup name": {Listeners: []Listener{
			{Name: "x", Addr: "127.0.0.1:0", Adapter: a}, {Name: "x", Addr: "127.0.0.1:0", Adapter: a}}},
	} {
		if err := New(cfg, nil).Start(ctx); err == nil {
			t.Errorf("%s: Start succeeded", name)
		}
	}
}

func TestWritevOverIOVMax(t *testing.T) {
	a := newAdapter("line")
	s := start(t, one(a))
	c := dial(t, s.Addrs()["line"])
	c.send("burst 3000\nend\n")
	c.expectLine("end")
	for i := range 3000 {
		if got := c.line(); got != "b" {
			t.Fatalf("line %d: %q", i, got)
		}
	}
}

func TestHighWaterMark(t *testing.T) {
	const (
		hwm   = 128 << 10
		total = 16 << 20
	)
	a := newAdapter("line")
	cfg := one(a)
	cfg.Limits.OutboundHighWater = hwm
	s := start(t, cfg)

	// A small, fixed receive buffer keeps the kernel from absorbing the
	// flood on the client side.
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", s.Addrs()["line"])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	_ = nc.SetDeadline(time.Now().Add(waitLimit))
	sess := a.next(t)
	if _, err := io.WriteString(nc, "flood "+strconv.Itoa(total)+"\n"); err != nil {
		t.Fatal(err)
	}

	// Not reading: the server must stop pulling output at the mark.
	waitFor(t, "a stall", func() bool { return s.Stats().Stalls > 0 })
	if p := sess.produced.Load(); p >= total {
		t.Fatalf("server pulled all %d bytes from a peer that reads nothing", p)
	}
	if peak := s.Stats().OutboundPeak; peak > hwm+floodChunk {
		t.Fatalf("outbound backlog peaked at %d, want <= %d", peak, hwm+floodChunk)
	}

	// Reading resumes the flow until everything has arrived.
	buf := make([]byte, 64<<10)
	got := 0
	for got < total {
		n, err := nc.Read(buf)
		if bytes.IndexFunc(buf[:n], func(r rune) bool { return r != 'x' }) >= 0 {
			t.Fatal("corrupt flood data")
		}
		got += n
		if err != nil {
			t.Fatalf("after %d of %d bytes: %v", got, total, err)
		}
	}
	if got != total || sess.produced.Load() != total {
		t.Fatalf("read %d, produced %d, want %d", got, sess.produced.Load(), total)
	}
	if peak := s.Stats().OutboundPeak; peak > hwm+floodChunk {
		t.Fatalf("outbound backlog peaked at %d, want <= %d", peak, hwm+floodChunk)
	}
	t.Logf("stalls %d, peak backlog %d", s.Stats().Stalls, s.Stats().OutboundPeak)
}

func TestCloseTimeout(t *testing.T) {
	a := newAdapter("line")
	cfg := one(a)
	cfg.Limits.OutboundHighWater = 64 << 10
	cfg.TickInterval = 10 * time.Millisecond
	cfg.CloseTimeout = 100 * time.Millisecond
	s := start(t, cfg)
	c := dial(t, s.Addrs()["line"])
	sess := a.next(t)
	c.send("flood " + strconv.Itoa(64<<20) + "\n")
	waitFor(t, "a stall", func() bool { return s.Stats().Stalls > 0 })

	// The peer reads nothing, so the output never drains: the close path
	// gives up after CloseTimeout and cuts the connection off.
	sess.conn.Close(errBye)
	select {
	case err := <-sess.closed:
		if !errors.Is(err, protocols.ErrCloseTimeout) || !errors.Is(err, errBye) {
			t.Fatalf("Closed(%v), want ErrCloseTimeout wrapping errBye", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("stalled connection not cut off")
	}
	waitFor(t, "gauge to drop", func() bool { return s.Stats().Conns == 0 })
}

func BenchmarkEcho(b *testing.B) {
	a := newAdapter("line")
	s := New(one(a), nil)
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := s.Start(ctx); err != nil {
		b.Fatal(err)
	}
	defer func() { _ = s.Shutdown(ctx) }()
	nc, err := net.Dial("tcp", s.Addrs()["line"])
	if err != nil {
		b.Fatal(err)
	}
	defer nc.Close()
	msg := []byte("ping\n")
	buf := make([]byte, len(msg))
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := nc.Write(msg); err != nil {
			b.Fatal(err)
		}
		if _, err := io.ReadFull(nc, buf); err != nil {
			b.Fatal(err)
		}
	}
}
