package mqtt

import (
	"io"
	"log/slog"
	"runtime"
	"strconv"
	"testing"
	"time"

	"github.com/mochi-mqtt/server/v2/packets"

	"github.com/junction-broker/junction/protocols/protocolstest"
)

// TestIdleSessionMemory pins the heap an idle MQTT connection costs beyond
// the transport: its session, its state and its share of the adapter's
// and router's maps, once connected (3.1.1, clean session) and once also
// subscribed at QoS 1 to a topic of its own, as an IoT device is. The
// goal is 2 KiB of resident memory per idle connection, the transport's
// and gnet's some 0.6 KiB and the garbage collector's slack included
// (Mosquitto: 0.8 KiB); before it was pinned, the two cases cost 1,800
// and 3,400 bytes here. The bounds leave some room for other Go versions.
func TestIdleSessionMemory(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sub    bool
		budget uint64 // bytes per connection
	}{
		{"connected", false, 640},
		{"subscribed", true, 2304},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The least of a few runs: other tests' goroutines may still
			// allocate meanwhile.
			got := uint64(1 << 62)
			for range 3 {
				got = min(got, idleSessionBytes(t, tc.sub, 1000))
			}
			t.Logf("%d bytes per idle connection", got)
			if got > tc.budget {
				t.Errorf("an idle connection costs %d bytes, want at most %d", got, tc.budget)
			}
		})
	}
}

// idleSessionBytes opens n sessions, connects them (and subscribes them
// if sub), lets them idle for a few ticks and returns the heap they hold,
// per session.
func idleSessionBytes(t *testing.T, sub bool, n int) uint64 {
	rt, st := newRouter(t, nil)
	// A logger like the broker's: one that formats.
	log := slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	a := New(Config{Router: rt, Store: st, Log: log})
	enc := &harness{t: t, v: 4}
	conns := make([]*protocolstest.Conn, n)
	in := make([][]byte, n)
	for i := range n {
		id := "idle-" + strconv.Itoa(i)
		conns[i] = protocolstest.NewConn(uint64(i+1), "127.0.0.1:"+strconv.Itoa(10000+i), "127.0.0.1:1883")
		in[i] = enc.encode(connectPacket(4, id, true, 600, "guest", "guest"))
		if sub {
			in[i] = append(in[i], enc.encode(&packets.Packet{
				FixedHeader: packets.FixedHeader{Type: tSubscribe, Qos: 1}, PacketID: 1,
				Filters: []packets.Subscription{{Filter: "dev/" + id + "/cmd", Qos: 1}},
			})...)
		}
	}
	ss := make([]*session, n)
	var vec [][]byte
	before := heapInUse()
	for i := range ss {
		ss[i] = a.Open(conns[i]).(*session)
		if k, err := ss[i].Feed(in[i]); k != len(in[i]) || err != nil {
			t.Fatalf("Feed: %d of %d bytes, %v", k, len(in[i]), err)
		}
		if vec = ss[i].Output(vec[:0]); len(vec) == 0 {
			t.Fatal("no CONNACK")
		}
		vec = ss[i].Output(vec[:0]) // the transport's pass for Wake
	}
	now := time.Now()
	for range trimAfter + 1 {
		for _, s := range ss {
			if err := s.Tick(now); err != nil {
				t.Fatal(err)
			}
			vec = s.Output(vec[:0])
		}
		now = now.Add(time.Second)
	}
	clear(vec)
	after := heapInUse()
	for _, s := range ss {
		if s.state != stConnected || (sub && s.st.subs.len() != 1) {
			t.Fatalf("session %s not connected and subscribed", s.clientID())
		}
		s.Closed(nil)
	}
	runtime.KeepAlive(conns)
	runtime.KeepAlive(in)
	if after < before {
		return 0
	}
	return (after - before) / uint64(n)
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC() // the first one's frees are swept
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
