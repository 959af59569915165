package main

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/junction-broker/junction/conf"
	"github.com/junction-broker/junction/router"
)

// stompConn is a raw STOMP connection for the limit tests.
type stompConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

// dialSTOMP connects to addr; rcvbuf > 0 fixes the socket's receive
// buffer, so that the kernel absorbs little of what a reader that stops
// is sent.
func dialSTOMP(t *testing.T, addr string, rcvbuf int) *stompConn {
	t.Helper()
	d := net.Dialer{Timeout: 5 * time.Second}
	if rcvbuf > 0 {
		d.Control = func(_, _ string, rc syscall.RawConn) error {
			var serr error
			err := rc.Control(func(fd uintptr) {
				serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf)
			})
			return errors.Join(err, serr)
		}
	}
	nc, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nc.Close() })
	_ = nc.SetDeadline(time.Now().Add(10 * time.Second))
	return &stompConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *stompConn) send(frame string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, frame+"\x00"); err != nil {
		c.t.Fatal(err)
	}
}

// frame reads the next frame, skipping heart-beats; "" at EOF.
func (c *stompConn) frame() string {
	c.t.Helper()
	for {
		f, err := c.r.ReadString(0)
		if err != nil {
			if errors.Is(err, io.EOF) {
				return ""
			}
			c.t.Fatalf("reading a frame: %v", err)
		}
		if f = strings.TrimLeft(f, "\r\n"); f != "" {
			return f
		}
	}
}

// TestLimitsWired: transport.max_connections, router.max_queues and
// transport.slow_consumer_timeout reach the broker as configured.
func TestLimitsWired(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Transport.MaxConnections = 2
	cfg.Transport.MaxOutbound = 4 * conf.KiB
	cfg.Transport.SlowConsumerTimeout = 200 * time.Millisecond
	cfg.Transport.TickInterval = 10 * time.Millisecond
	cfg.Router.MaxQueues = 1
	ctx := context.Background()
	b, stop, err := startBroker(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop(ctx) })
	addr := b.net.Addrs()["stomp"]

	// router.max_queues
	v := b.router.VHost("/")
	if _, err := v.DeclareQueue("one", router.QueueOptions{}, false, 0, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := v.DeclareQueue("two", router.QueueOptions{}, false, 0, nil); !errors.Is(err, router.ErrQueueLimit) {
		t.Fatalf("second queue: %v, want ErrQueueLimit", err)
	}

	// transport.max_connections
	const connect = "CONNECT\naccept-version:1.2\nhost:/\n\n"
	slow := dialSTOMP(t, addr, 4<<10)
	slow.send(connect)
	if f := slow.frame(); !strings.HasPrefix(f, "CONNECTED\n") {
		t.Fatalf("got %q", f)
	}
	other := dialSTOMP(t, addr, 0)
	other.send(connect)
	if f := other.frame(); !strings.HasPrefix(f, "CONNECTED\n") {
		t.Fatalf("got %q", f)
	}
	over := dialSTOMP(t, addr, 0)
	over.send(connect)
	if f := over.frame(); !strings.HasPrefix(f, "ERROR\n") || !strings.Contains(f, "message:connection limit (2) is reached\n") {
		t.Fatalf("third connection got %q, want the connection limit's ERROR", f)
	}
	if f := over.frame(); f != "" {
		t.Fatalf("got %q after the ERROR, want the connection closed", f)
	}

	// transport.slow_consumer_timeout: the subscriber stops reading.
	slow.send("SUBSCRIBE\nid:1\ndestination:/amq/queue/one\nack:client\nreceipt:r\n\n")
	if f := slow.frame(); !strings.HasPrefix(f, "RECEIPT\n") {
		t.Fatalf("got %q", f)
	}
	const n = 5000
	body := strings.Repeat("m", 1000)
	for range n {
		m := router.NewMessage([]byte(body))
		m.RoutingKey = "one"
		if _, err := v.Publish("", m, nil); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for b.net.Stats().SlowConsumers == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("no slow consumer closed; stats %+v", b.net.Stats())
		}
		time.Sleep(time.Millisecond)
	}
	var last string
	for f := slow.frame(); f != ""; f = slow.frame() {
		last = f
	}
	if !strings.HasPrefix(last, "ERROR\n") || !strings.Contains(last, "message:slow consumer\n") {
		t.Fatalf("last frame %.80q, want the slow consumer's ERROR", last)
	}
	q := v.Queue("one")
	for {
		if ready, _ := q.Counts(); ready == n {
			break
		}
		if time.Now().After(deadline) {
			ready, _ := q.Counts()
			t.Fatalf("%d of %d messages back in the queue", ready, n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestConnectionLimitDefault: max_connections 0 is 90% of the open-files
// limit the process runs under.
func TestConnectionLimitDefault(t *testing.T) {
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	if got, want := connectionLimit(conf.Transport{}, log), int(max(1, min(rl.Cur*9/10, 1<<26))); got != want && rl.Cur < 1<<50 {
		t.Fatalf("limit %d with nofile %d, want %d", got, rl.Cur, want)
	}
	if got := connectionLimit(conf.Transport{MaxConnections: 7}, log); got != 7 {
		t.Fatalf("limit %d, want the configured 7", got)
	}
}

// TestMaxMessageSizeWired: router.max_message_size bounds MQTT and STOMP
// message bodies too, not only AMQP's.
func TestMaxMessageSizeWired(t *testing.T) {
	cfg := testConfig(t, t.TempDir())
	cfg.Router.MaxMessageSize = conf.KiB
	ctx := context.Background()
	b, stop, err := startBroker(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = stop(ctx) })

	sc := dialSTOMP(t, b.net.Addrs()["stomp"], 0)
	sc.send("CONNECT\naccept-version:1.2\nhost:/\n\n")
	if f := sc.frame(); !strings.HasPrefix(f, "CONNECTED\n") {
		t.Fatalf("got %q", f)
	}
	sc.send("SEND\ndestination:/queue/small\nreceipt:1\n\n" + strings.Repeat("s", 1024))
	if f := sc.frame(); !strings.HasPrefix(f, "RECEIPT\n") {
		t.Fatalf("SEND at the limit: got %q", f)
	}
	sc.send("SEND\ndestination:/queue/small\nreceipt:2\n\n" + strings.Repeat("s", 1025))
	if f := sc.frame(); !strings.HasPrefix(f, "ERROR\n") || !strings.Contains(f, "message:Message too large\n") {
		t.Fatalf("SEND over the limit: got %q", f)
	}

	// MQTT 3.1.1: PUBACK at the limit, a close without one above it.
	mc, err := net.DialTimeout("tcp", b.net.Addrs()["mqtt"], 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	_ = mc.SetDeadline(time.Now().Add(10 * time.Second))
	publish := func(id byte, size int) []byte {
		// QoS 1 PUBLISH, topic "t", packet id id; remaining length as a
		// two-byte varint (size < 16 KiB).
		rem := 2 + 1 + 2 + size
		p := []byte{0x32, byte(rem&0x7f | 0x80), byte(rem >> 7), 0, 1, 't', 0, id}
		return append(p, strings.Repeat("m", size)...)
	}
	connect := []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'c'}
	if _, err := mc.Write(append(connect, publish(1, 1024)...)); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 8)
	if _, err := io.ReadFull(mc, got); err != nil || string(got) != "\x20\x02\x00\x00\x40\x02\x00\x01" {
		t.Fatalf("CONNACK and PUBACK: % x, %v", got, err)
	}
	if _, err := mc.Write(publish(2, 1025)); err != nil {
		t.Fatal(err)
	}
	if rest, err := io.ReadAll(mc); err != nil || len(rest) != 0 {
		t.Fatalf("after a PUBLISH over the limit: % x, %v; want a close without PUBACK", rest, err)
	}
}
