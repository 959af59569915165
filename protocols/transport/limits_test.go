package transport

import (
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/junction-broker/junction/protocols"
)

// records is a slog.Handler that keeps every record, for tests of what is
// logged and how often.
type records struct {
	mu   sync.Mutex
	recs []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) WithAttrs([]slog.Attr) slog.Handler       { return h }
func (h *records) WithGroup(string) slog.Handler            { return h }

func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	h.recs = append(h.recs, r.Clone())
	h.mu.Unlock()
	return nil
}

// count returns how many records at level have message msg.
func (h *records) count(level slog.Level, msg string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.recs {
		if r.Level == level && r.Message == msg {
			n++
		}
	}
	return n
}

// startLogged is start with a recording logger.
func startLogged(t *testing.T, cfg Config) (*Server, *records) {
	t.Helper()
	h := &records{}
	s := New(cfg, slog.New(h))
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
		if n := s.Panics(); n != 0 {
			t.Errorf("%d panics recovered", n)
		}
	})
	return s, h
}

// TestConnLimit: beyond MaxConns a connection is served only its refusal,
// does not count as open, and does not hold a place: once an admitted one
// closes, the next is admitted.
func TestConnLimit(t *testing.T) {
	a := newAdapter("line")
	cfg := one(a)
	cfg.MaxConns = 2
	s := start(t, cfg)
	addr := s.Addrs()["line"]
	var admitted []*client
	for range 2 {
		c := dial(t, addr)
		c.send("in\n")
		c.expectLine("in")
		if err := a.next(t).conn.Refusal(); err != nil {
			t.Fatalf("admitted connection has Refusal %v", err)
		}
		admitted = append(admitted, c)
	}

	over := dial(t, addr)
	rs := a.next(t)
	if err := rs.conn.Refusal(); !errors.Is(err, protocols.ErrConnLimit) {
		t.Fatalf("third connection has Refusal %v, want ErrConnLimit", err)
	}
	over.send("hello\n")
	over.expectLine("ERROR protocols: connection limit (2) is reached")
	over.expectEOF()
	rs.closedWith(t, protocols.ErrConnLimit)
	if st := s.Stats(); st.Conns != 2 || st.Accepted != 2 || st.Refused != 1 {
		t.Fatalf("stats %+v, want 2 open, 2 accepted, 1 refused", st)
	}

	admitted[0].send("quit\n")
	admitted[0].expectLine("ERROR quit")
	admitted[0].expectEOF()
	waitFor(t, "the gauge to drop", func() bool { return s.Stats().Conns == 1 })
	again := dial(t, addr)
	again.send("back\n")
	again.expectLine("back")
	if err := a.next(t).conn.Refusal(); err != nil {
		t.Fatalf("connection after a close has Refusal %v", err)
	}
	admitted[1].send("still\n")
	admitted[1].expectLine("still")
}

// TestConnLimitCutsOffSilentRefusals: a refused client that never sends
// its handshake is closed after CloseTimeout.
func TestConnLimitCutsOffSilentRefusals(t *testing.T) {
	a := newAdapter("line")
	cfg := one(a)
	cfg.MaxConns = 1
	cfg.TickInterval = 10 * time.Millisecond
	cfg.CloseTimeout = 100 * time.Millisecond
	s := start(t, cfg)
	in := dial(t, s.Addrs()["line"])
	in.send("in\n")
	in.expectLine("in")
	a.next(t)

	silent := dial(t, s.Addrs()["line"])
	start := time.Now()
	silent.expectEOF()
	if d := time.Since(start); d < cfg.CloseTimeout {
		t.Fatalf("cut off after %v, before CloseTimeout %v", d, cfg.CloseTimeout)
	}
	a.next(t).closedWith(t, protocols.ErrConnLimit)
	waitFor(t, "the refusal to be counted", func() bool { return s.Stats().Refused == 1 })
	in.send("alive\n")
	in.expectLine("alive")
}

// TestConnLimitFlood: a burst of connections beyond the limit is logged
// once, and only a few of them get a session; the rest are closed at once.
func TestConnLimitFlood(t *testing.T) {
	const flood = 20
	a := newAdapter("line")
	cfg := one(a)
	cfg.MaxConns = 1
	cfg.CloseTimeout = waitLimit // refusals stay until their clients go
	s, logs := startLogged(t, cfg)
	addr := s.Addrs()["line"]
	in := dial(t, addr)
	in.send("in\n")
	in.expectLine("in")
	a.next(t)

	var silent []*client
	for range flood {
		silent = append(silent, dial(t, addr))
	}
	waitFor(t, "every refusal", func() bool { return s.Stats().Refused == flood })
	limit := int(s.maxRefusing)
	for range limit {
		if err := a.next(t).conn.Refusal(); !errors.Is(err, protocols.ErrConnLimit) {
			t.Fatalf("refused connection has Refusal %v", err)
		}
	}
	select {
	case sess := <-a.sessions:
		t.Fatalf("a session beyond the %d refusals under way (Refusal %v)", limit, sess.conn.Refusal())
	default:
	}
	// The ones without a session were closed at once.
	closed := 0
	for _, c := range silent {
		_ = c.nc.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := c.r.ReadByte(); errors.Is(err, io.EOF) {
			closed++
		}
	}
	if closed != flood-limit {
		t.Fatalf("%d of %d refused connections closed at once, want %d", closed, flood, flood-limit)
	}
	if n := logs.count(slog.LevelWarn, "connection limit reached: refusing new connections"); n != 1 {
		t.Fatalf("%d warnings for one burst of refusals, want 1", n)
	}
	if n := logs.count(slog.LevelInfo, "connection opened"); n != 1 {
		t.Fatalf("%d connections logged as opened, want only the admitted one", n)
	}
	if st := s.Stats(); st.Conns != 1 || st.Accepted != 1 {
		t.Fatalf("stats %+v, want 1 open and 1 accepted", st)
	}
}

// smallRcvBuf dials addr with a small, fixed receive buffer, so the
// kernel does not absorb much of what the server sends a peer that does
// not read.
func smallRcvBuf(t *testing.T, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 32<<10)
		})
		return errors.Join(err, serr)
	}}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(waitLimit))
	return nc
}

// TestSlowConsumer: a peer that stops reading is closed once its backlog
// has stayed at the mark for SlowConsumerTimeout, with Fail's bytes after
// the backlog; its pending output is abandoned and the backlog never grew
// past the mark plus one Output batch (and the final frame).
func TestSlowConsumer(t *testing.T) {
	const (
		hwm   = 64 << 10
		total = 64 << 20
	)
	a := newAdapter("line")
	cfg := one(a)
	cfg.TickInterval = 10 * time.Millisecond
	cfg.CloseTimeout = waitLimit
	cfg.Limits = protocols.Limits{OutboundHighWater: hwm, SlowConsumerTimeout: 200 * time.Millisecond}
	s, logs := startLogged(t, cfg)
	nc := smallRcvBuf(t, s.Addrs()["line"])
	sess := a.next(t)
	start := time.Now()
	if _, err := io.WriteString(nc, "flood "+strconv.Itoa(total)+"\n"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the slow consumer to be closed", func() bool { return s.Stats().SlowConsumers == 1 })
	if d := time.Since(start); d < cfg.Limits.SlowConsumerTimeout {
		t.Fatalf("closed after %v, before the timeout", d)
	}
	got, err := io.ReadAll(nc)
	if err != nil {
		t.Fatalf("reading the backlog: %v", err)
	}
	want := "ERROR " + protocols.ErrSlowConsumer.Error() + "\n"
	if !bytes.HasSuffix(got, []byte(want)) {
		t.Fatalf("stream ends with %q, want %q", got[max(0, len(got)-40):], want)
	}
	if xs := got[:len(got)-len(want)]; bytes.IndexFunc(xs, func(r rune) bool { return r != 'x' }) >= 0 {
		t.Fatal("corrupt data before the ERROR line")
	}
	sess.closedWith(t, protocols.ErrSlowConsumer)
	if p := sess.produced.Load(); p >= total {
		t.Fatalf("the session produced all %d bytes for a peer that read nothing", p)
	}
	if peak := s.Stats().OutboundPeak; peak > hwm+floodChunk+int64(len(want)) {
		t.Fatalf("outbound backlog peaked at %d, want <= %d", peak, hwm+floodChunk+len(want))
	}
	if n := logs.count(slog.LevelWarn, "closing slow consumer"); n != 1 {
		t.Fatalf("%d slow-consumer warnings, want 1", n)
	}
}

// TestSlowConsumerThatDrains: a consumer that falls behind for a while,
// again and again, but each time drains below the mark within the timeout
// is never closed, however long it takes in all.
func TestSlowConsumerThatDrains(t *testing.T) {
	const (
		hwm     = 64 << 10
		rounds  = 5
		chunk   = 16 << 20
		timeout = time.Second
		// behind is how long the peer reads nothing each round: the slow
		// reader's behaviour, not synchronisation. Five of them exceed the
		// timeout; one stays far below it.
		behind = timeout / 4
	)
	a := newAdapter("line")
	cfg := one(a)
	cfg.TickInterval = 10 * time.Millisecond
	cfg.Limits = protocols.Limits{OutboundHighWater: hwm, SlowConsumerTimeout: timeout}
	s := start(t, cfg)
	nc := smallRcvBuf(t, s.Addrs()["line"])
	a.next(t)
	buf := make([]byte, 64<<10)
	began := time.Now()
	for range rounds {
		stalls := s.Stats().Stalls
		if _, err := io.WriteString(nc, "flood "+strconv.Itoa(chunk)+"\n"); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "a stall", func() bool { return s.Stats().Stalls > stalls })
		time.Sleep(behind)
		for got := 0; got < chunk; {
			n, err := nc.Read(buf)
			got += n
			if err != nil {
				t.Fatalf("after %d bytes: %v", got, err)
			}
		}
	}
	if d := time.Since(began); d <= timeout {
		t.Fatalf("the rounds took %v, not more than the timeout %v", d, timeout)
	}
	if n := s.Stats().SlowConsumers; n != 0 {
		t.Fatalf("%d slow consumers closed, want 0", n)
	}
	if _, err := io.WriteString(nc, "alive\n"); err != nil {
		t.Fatal(err)
	}
	line := make([]byte, len("alive\n"))
	if _, err := io.ReadFull(nc, line); err != nil || string(line) != "alive\n" {
		t.Fatalf("got %q, %v", line, err)
	}
}
