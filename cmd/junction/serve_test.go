package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// startRun runs the broker in the background with args and returns its
// output, the addresses it listens on by protocol, and a stop function
// that cancels it and returns its exit code.
func startRun(t *testing.T, args []string) (*syncBuffer, map[string]string, func() int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{}
	done := make(chan int, 1)
	go func() { done <- run(ctx, append(args, "--log-format", "json"), noEnv, out) }()
	stop := func() int {
		cancel()
		select {
		case code := <-done:
			return code
		case <-time.After(15 * time.Second):
			t.Fatal("run did not return after cancel")
			return -1
		}
	}
	t.Cleanup(func() { cancel() })
	deadline := time.Now().Add(15 * time.Second)
	for !strings.Contains(out.String(), `"msg":"started"`) {
		select {
		case code := <-done:
			t.Fatalf("run exited with %d before starting:\n%s", code, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("broker did not start; output:\n%s", out.String())
		}
		time.Sleep(time.Millisecond)
	}
	// The transport logs each listener as its engine boots, which may
	// come just after "started": wait for every enabled one.
	want := 0
	for i, a := range args {
		if strings.HasSuffix(a, "-listen") && i+1 < len(args) && args[i+1] != "" {
			want++
		}
	}
	addrs := map[string]string{}
	for len(addrs) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d listeners logged:\n%s", len(addrs), want, out.String())
		}
		sc := bufio.NewScanner(strings.NewReader(out.String()))
		for sc.Scan() {
			var rec struct{ Msg, Proto, Addr string }
			if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "listening" {
				addrs[rec.Proto] = rec.Addr
			}
		}
		time.Sleep(time.Millisecond)
	}
	return out, addrs, stop
}

// exchange sends req on a new connection to addr and returns everything
// the server sends until it closes the connection.
func exchange(t *testing.T, addr string, req []byte) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("reading from %s: %v (got %q)", addr, err, b)
	}
	return b
}

// TestRunServesAllThreePorts starts the broker as make run does, but on
// ephemeral ports, and checks each listener answers in its protocol.
func TestRunServesAllThreePorts(t *testing.T) {
	out, addrs, stop := startRun(t, []string{"--data-dir", t.TempDir(),
		"--amqp-listen", "127.0.0.1:0", "--mqtt-listen", "127.0.0.1:0", "--stomp-listen", "127.0.0.1:0"})
	for _, p := range []string{"amqp", "mqtt", "stomp"} {
		if addrs[p] == "" {
			t.Fatalf("no %s listener logged:\n%s", p, out.String())
		}
	}
	// A protocol version we do not speak gets ours back (AMQP 0-9-1 §4.2.2);
	// ours gets connection.start (class 10, method 10) on channel 0.
	if got := exchange(t, addrs["amqp"], []byte("AMQP\x00\x00\x09\x02")); !bytes.Equal(got, []byte("AMQP\x00\x00\x09\x01")) {
		t.Errorf("amqp answered a wrong header with %q", got)
	}
	if got := firstBytes(t, addrs["amqp"], []byte("AMQP\x00\x00\x09\x01"), 11); !bytes.Equal(got[:3], []byte{1, 0, 0}) ||
		!bytes.Equal(got[7:11], []byte{0, 10, 0, 10}) {
		t.Errorf("amqp did not answer with connection.start: % x", got)
	}
	connect := []byte{0x10, 0x0d, 0x00, 0x04, 'M', 'Q', 'T', 'T', 0x04, 0x02, 0x00, 0x3c, 0x00, 0x01, 'c'}
	if got := firstBytes(t, addrs["mqtt"], connect, 4); !bytes.Equal(got, []byte{0x20, 0x02, 0x00, 0x00}) {
		t.Errorf("mqtt answered CONNECT with % x, want CONNACK accepted", got)
	}
	if got := firstBytes(t, addrs["stomp"], []byte("CONNECT\naccept-version:1.2\nhost:/\n\n\x00"), 10); string(got) != "CONNECTED\n" {
		t.Errorf("stomp answered %q", got)
	}
	if code := stop(); code != 0 {
		t.Fatalf("exit %d:\n%s", code, out.String())
	}
}

// TestRunPortTaken checks a port in use fails the start with exit 1 and a
// message naming the address.
func TestRunPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var out syncBuffer
	code := run(context.Background(), []string{"--data-dir", t.TempDir(), "--amqp-listen", l.Addr().String(),
		"--mqtt-listen=", "--stomp-listen="}, noEnv, &out)
	if code != 1 || !strings.Contains(out.String(), l.Addr().String()) {
		t.Fatalf("exit %d; output:\n%s", code, out.String())
	}
}

// TestRunDataDirLocked checks a second broker on the same data directory
// refuses to start instead of sharing the store.
func TestRunDataDirLocked(t *testing.T) {
	dir := t.TempDir()
	_, _, stop := startRun(t, []string{"--data-dir", dir, "--amqp-listen", "127.0.0.1:0", "--mqtt-listen=", "--stomp-listen="})
	defer stop()
	var out syncBuffer
	code := run(context.Background(), []string{"--data-dir", dir, "--amqp-listen", "127.0.0.1:0",
		"--mqtt-listen=", "--stomp-listen="}, noEnv, &out)
	if code != 1 || !strings.Contains(out.String(), "storage") {
		t.Fatalf("second broker on the same data dir: exit %d; output:\n%s", code, out.String())
	}
}

// firstBytes sends req to addr and returns the first n bytes of the reply.
func firstBytes(t *testing.T, addr string, req []byte, n int) []byte {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.Write(req); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(c, b); err != nil {
		t.Fatalf("reading from %s: %v (got % x)", addr, err, b)
	}
	return b
}
