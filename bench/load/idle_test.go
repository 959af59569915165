package load

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

func TestBytesPerConn(t *testing.T) {
	for _, tc := range []struct {
		before, after int64
		n             int
		want          float64
	}{
		{100 << 20, 120 << 20, 20000, 1048.576},          // 20 MiB over 20,000: 1.024 KiB
		{50 << 20, 50<<20 + 4300<<20, 20000, 225_443.84}, // RabbitMQ-like: 4,300 MiB over 20,000: 220 KiB
		{10 << 20, 9 << 20, 1000, -1048.576},             // shrank: shown as it is
		{10, 20, 0, 0},
	} {
		if got := BytesPerConn(tc.before, tc.after, tc.n); got < tc.want-1e-6 || got > tc.want+1e-6 {
			t.Errorf("BytesPerConn(%d, %d, %d) = %v, want %v", tc.before, tc.after, tc.n, got, tc.want)
		}
	}
}

func TestSteady(t *testing.T) {
	for _, tc := range []struct {
		samples []int64
		window  int
		tol     int64
		want    bool
	}{
		{[]int64{1, 2, 3}, 4, 10, false},                  // too few
		{[]int64{0, 100, 200, 205, 203, 201}, 4, 5, true}, // the last 4 within 5
		{[]int64{0, 100, 200, 205, 203, 201}, 5, 5, false},
		{[]int64{10, 10}, 1, 0, false}, // a window of one proves nothing
		{[]int64{7, 7, 7}, 3, 0, true},
	} {
		if got := steady(tc.samples, tc.window, tc.tol); got != tc.want {
			t.Errorf("steady(%v, %d, %d) = %v, want %v", tc.samples, tc.window, tc.tol, got, tc.want)
		}
	}
}

func TestIdleConns(t *testing.T) {
	for _, tc := range []struct {
		want   int
		limit  uint64
		n      int
		capped bool
	}{
		{20000, 1 << 20, 20000, false},
		{20000, 65536, 20000, false},
		{20000, 20000, 17500, true}, // RabbitMQ admits ~17,900 sockets under 20,000 descriptors
		{20000, 1024, 500, true},
		{100, 1024, 100, false},
		{20000, 150, 0, true},
	} {
		n, why := IdleConns(tc.want, tc.limit)
		if n != tc.n || (why != "") != tc.capped {
			t.Errorf("IdleConns(%d, %d) = %d, %q; want %d, capped %v", tc.want, tc.limit, n, why, tc.n, tc.capped)
		}
	}
	if _, why := IdleConns(20000, 20000); !strings.Contains(why, "17,500 connections instead of 20,000") || !strings.Contains(why, "20,000") {
		t.Errorf("why = %q", why)
	}
}

// TestIdlePackets decodes what the idle clients send with paho's own
// packet reader.
func TestIdlePackets(t *testing.T) {
	b := appendConnect(nil, "iabc-12345", "guest", "guest", 600*time.Second)
	p, err := packets.ReadPacket(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	c, ok := p.(*packets.ConnectPacket)
	if !ok {
		t.Fatalf("decoded %T", p)
	}
	if c.ProtocolName != "MQTT" || c.ProtocolVersion != 4 || !c.CleanSession || c.Keepalive != 600 ||
		c.ClientIdentifier != "iabc-12345" || c.Username != "guest" || string(c.Password) != "guest" || c.Validate() != packets.Accepted {
		t.Errorf("CONNECT decodes as %+v", c)
	}
	// A remaining length past 127 takes two bytes.
	long := strings.Repeat("t", 200)
	p, err = packets.ReadPacket(bytes.NewReader(appendSubscribe(nil, 7, long, 1)))
	if err != nil {
		t.Fatal(err)
	}
	s, ok := p.(*packets.SubscribePacket)
	if !ok || s.MessageID != 7 || len(s.Topics) != 1 || s.Topics[0] != long || s.Qoss[0] != 1 {
		t.Errorf("SUBSCRIBE decodes as %+v", p)
	}
}

// fakeMQTT answers each CONNECT with a CONNACK and each SUBSCRIBE with a
// SUBACK, then holds the connection; it closes connection number closeNth
// (1-based; 0: none) once subscribed.
type fakeMQTT struct {
	ln       net.Listener
	closeNth int
	mu       sync.Mutex
	accepted int
	conns    []net.Conn
}

func newFakeMQTT(t testing.TB, closeNth int) *fakeMQTT {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeMQTT{ln: ln, closeNth: closeNth}
	go f.serve()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, c := range f.conns {
			c.Close()
		}
	})
	return f
}

func (f *fakeMQTT) serve() {
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return
		}
		f.mu.Lock()
		f.accepted++
		nth := f.accepted
		f.conns = append(f.conns, c)
		f.mu.Unlock()
		go func() {
			for {
				p, err := packets.ReadPacket(c)
				if err != nil {
					return
				}
				switch p := p.(type) {
				case *packets.ConnectPacket:
					ack := packets.NewControlPacket(packets.Connack).(*packets.ConnackPacket)
					_ = ack.Write(c)
				case *packets.SubscribePacket:
					ack := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
					ack.MessageID, ack.ReturnCodes = p.MessageID, []byte{1}
					_ = ack.Write(c)
					if nth == f.closeNth {
						c.Close()
						return
					}
				case *packets.DisconnectPacket:
					c.Close()
					return
				}
			}
		}()
	}
}

func TestRunIdle(t *testing.T) {
	sc, _ := Lookup("mqtt-idle")
	f := newFakeMQTT(t, 0)
	tg := Target{Broker: "fake", MQTT: f.ln.Addr().String(), PIDs: []int{os.Getpid()}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := Run(ctx, sc, tg, Options{Conns: 64, Settle: 2 * time.Second})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	if res.Conns != 64 || res.RSSBefore <= 0 || res.RSSAfter <= 0 || res.ConnectSeconds <= 0 {
		t.Errorf("result %+v", res)
	}
	if want := BytesPerConn(res.RSSBefore, res.RSSAfter, 64); res.BytesPerConn != want {
		t.Errorf("BytesPerConn = %v, want %v", res.BytesPerConn, want)
	}
}

func TestRunIdleNoticesClosedConnection(t *testing.T) {
	sc, _ := Lookup("mqtt-idle")
	sc.Subscribe = true // the fake closes the 5th connection after its SUBACK
	f := newFakeMQTT(t, 5)
	tg := Target{Broker: "fake", MQTT: f.ln.Addr().String(), PIDs: []int{os.Getpid()}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_, err := Run(ctx, sc, tg, Options{Conns: 16, Settle: time.Second})
	if err == nil || !strings.Contains(err.Error(), "closed 1 of the 16") {
		t.Fatalf("Run = %v, want the closed connection reported", err)
	}
}

func TestRunIdleRefusal(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { // CONNACK "not authorized", as RabbitMQ without guest
				defer c.Close()
				if _, err := packets.ReadPacket(c); err == nil {
					_, _ = c.Write([]byte{0x20, 2, 0, 5})
				}
				_, _ = io.Copy(io.Discard, c)
			}()
		}
	}()
	sc, _ := Lookup("mqtt-idle")
	tg := Target{Broker: "fake", MQTT: ln.Addr().String(), PIDs: []int{os.Getpid()}}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := Run(ctx, sc, tg, Options{Conns: 4, Settle: time.Second}); err == nil || !strings.Contains(err.Error(), "return code 5") {
		t.Fatalf("Run = %v, want the refusal", err)
	}
}
