package load

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eclipse/paho.mqtt.golang/packets"
)

// routingMQTT is a small MQTT 3.1.1 broker for the driver's tests, written
// with paho's packet codec: it routes PUBLISHes to subscriptions (exact,
// or ending in /+), grants at most maxQoS, keeps at most window QoS ≥ 1
// deliveries unacknowledged per subscriber (queueing the rest, so a
// subscriber that does not acknowledge stalls), and acknowledges
// publishers in batches, newest first, whenever it has read all they sent.
// It checks what a broker may rely on: packet ids not reused while in
// flight, and at most inflight unacknowledged per publisher.
type routingMQTT struct {
	t        testing.TB
	ln       net.Listener
	maxQoS   byte
	window   int
	inflight int

	mu       sync.Mutex
	conns    []net.Conn
	subs     []*routingConn
	connects []string // "id clean" per CONNECT
	maxSeen  int      // most unacknowledged from one publisher
}

type routingConn struct {
	b      *routingMQTT
	nc     net.Conn
	mu     sync.Mutex // writes; and for a subscriber, the fields below
	filter string
	qos    byte
	nextID uint16
	out    map[uint16]byte // deliveries awaiting PUBACK (1) or PUBCOMP (2)
	queue  []*packets.PublishPacket
}

func newRoutingMQTT(t testing.TB, maxQoS byte, window, inflight int) *routingMQTT {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &routingMQTT{t: t, ln: ln, maxQoS: maxQoS, window: window, inflight: inflight}
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			c := &routingConn{b: b, nc: nc, out: map[uint16]byte{}}
			b.mu.Lock()
			b.conns = append(b.conns, nc)
			b.mu.Unlock()
			wg.Go(func() {
				defer nc.Close()
				if err := c.serve(); err != nil {
					t.Errorf("routingMQTT: %v", err)
				}
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		for _, nc := range b.conns {
			nc.Close()
		}
		b.mu.Unlock()
		wg.Wait()
	})
	return b
}

func (c *routingConn) write(ps ...packets.ControlPacket) {
	var buf bytes.Buffer
	for _, p := range ps {
		_ = p.Write(&buf)
	}
	_, _ = c.nc.Write(buf.Bytes())
}

func routingAck(kind byte, id uint16) packets.ControlPacket {
	p := packets.NewControlPacket(kind)
	switch p := p.(type) {
	case *packets.PubackPacket:
		p.MessageID = id
	case *packets.PubrecPacket:
		p.MessageID = id
	case *packets.PubrelPacket:
		p.MessageID = id
	case *packets.PubcompPacket:
		p.MessageID = id
	}
	return p
}

// serve reads the connection until it closes; an error is a client's
// protocol violation.
func (c *routingConn) serve() error {
	b := c.b
	br := bufio.NewReader(c.nc)
	var (
		pending  []packets.ControlPacket // acknowledgements for the publisher, sent in reverse
		done     []uint16                // the PUBACKs' and PUBCOMPs' among them
		inflight = map[uint16]bool{}     // the publisher's packet ids not yet acknowledged (PUBACK, PUBCOMP)
	)
	for {
		if br.Buffered() == 0 && len(pending) > 0 {
			slices.Reverse(pending)
			c.mu.Lock()
			c.write(pending...)
			c.mu.Unlock()
			for _, id := range done {
				delete(inflight, id)
			}
			pending, done = pending[:0], done[:0]
		}
		p, err := packets.ReadPacket(br)
		if err != nil {
			return nil
		}
		switch p := p.(type) {
		case *packets.ConnectPacket:
			b.mu.Lock()
			b.connects = append(b.connects, fmt.Sprintf("%s %v", p.ClientIdentifier, p.CleanSession))
			b.mu.Unlock()
			if p.Keepalive == 0 {
				return fmt.Errorf("CONNECT without a keepalive")
			}
			c.mu.Lock()
			c.write(packets.NewControlPacket(packets.Connack))
			c.mu.Unlock()
		case *packets.SubscribePacket:
			c.mu.Lock()
			c.filter, c.qos = p.Topics[0], min(p.Qoss[0], b.maxQoS)
			sa := packets.NewControlPacket(packets.Suback).(*packets.SubackPacket)
			sa.MessageID, sa.ReturnCodes = p.MessageID, []byte{c.qos}
			c.write(sa)
			c.mu.Unlock()
			b.mu.Lock()
			b.subs = append(b.subs, c)
			b.mu.Unlock()
		case *packets.PublishPacket:
			if p.Qos > 0 {
				if inflight[p.MessageID] || p.MessageID == 0 {
					return fmt.Errorf("PUBLISH with packet id %d, in flight", p.MessageID)
				}
				inflight[p.MessageID] = true
				b.mu.Lock()
				b.maxSeen = max(b.maxSeen, len(inflight))
				b.mu.Unlock()
				if len(inflight) > b.inflight {
					return fmt.Errorf("%d unacknowledged PUBLISHes, more than %d", len(inflight), b.inflight)
				}
			}
			switch p.Qos {
			case 1:
				pending = append(pending, routingAck(packets.Puback, p.MessageID))
				done = append(done, p.MessageID)
			case 2:
				pending = append(pending, routingAck(packets.Pubrec, p.MessageID))
			}
			b.route(p)
		case *packets.PubrelPacket:
			if !inflight[p.MessageID] {
				return fmt.Errorf("PUBREL for packet id %d, not in flight", p.MessageID)
			}
			pending = append(pending, routingAck(packets.Pubcomp, p.MessageID))
			done = append(done, p.MessageID)
		case *packets.PubackPacket:
			c.settle(p.MessageID, 1)
		case *packets.PubrecPacket:
			c.mu.Lock()
			c.write(routingAck(packets.Pubrel, p.MessageID))
			c.mu.Unlock()
		case *packets.PubcompPacket:
			c.settle(p.MessageID, 2)
		case *packets.PingreqPacket:
			c.mu.Lock()
			c.write(packets.NewControlPacket(packets.Pingresp))
			c.mu.Unlock()
		case *packets.DisconnectPacket:
			return nil
		default:
			return fmt.Errorf("unexpected %s", p)
		}
	}
}

func (b *routingMQTT) route(p *packets.PublishPacket) {
	b.mu.Lock()
	subs := slices.Clone(b.subs)
	b.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		f := s.filter
		if f == p.TopicName || strings.HasSuffix(f, "/+") && strings.HasPrefix(p.TopicName, f[:len(f)-1]) &&
			!strings.Contains(p.TopicName[len(f)-1:], "/") {
			d := packets.NewControlPacket(packets.Publish).(*packets.PublishPacket)
			d.Qos, d.TopicName, d.Payload = min(p.Qos, s.qos), p.TopicName, p.Payload
			s.queue = append(s.queue, d)
			s.send()
		}
		s.mu.Unlock()
	}
}

// send writes what the subscriber's window allows. REQUIRES: s.mu held.
func (s *routingConn) send() {
	var batch []packets.ControlPacket
	for len(s.queue) > 0 && (s.queue[0].Qos == 0 || len(s.out) < s.b.window) {
		d := s.queue[0]
		s.queue = s.queue[1:]
		if d.Qos > 0 {
			for s.nextID++; s.nextID == 0 || s.out[s.nextID] != 0; s.nextID++ {
			}
			d.MessageID = s.nextID
			s.out[d.MessageID] = d.Qos
		}
		batch = append(batch, d)
	}
	s.write(batch...)
}

func (s *routingConn) settle(id uint16, qos byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.out[id] != qos {
		s.b.t.Errorf("routingMQTT: acknowledgement of QoS %d for packet id %d, in flight at %d", qos, id, s.out[id])
	}
	delete(s.out, id)
	s.send()
}

func TestMQTTDriver(t *testing.T) {
	for _, tc := range []struct {
		name   string
		sc     Scenario
		maxQoS byte
	}{
		{"fan-in QoS 0", Scenario{Producers: 3, Consumers: 1, Sinks: 1, Size: 64, Inflight: 100, Window: 1000}, 2},
		{"fan-in QoS 1 persistent", Scenario{Producers: 3, Consumers: 1, Sinks: 1, Size: 64, QoS: 1, PersistentSession: true, Inflight: 5, Window: 1000}, 2},
		{"fan-in QoS 2 persistent", Scenario{Producers: 3, Consumers: 1, Sinks: 1, Size: 64, QoS: 2, PersistentSession: true, Inflight: 5, Window: 1000}, 2},
		{"fan-out QoS 1", Scenario{Producers: 1, Consumers: 4, Sinks: 4, FanOut: true, Size: 256, QoS: 1, Inflight: 20, Window: 1000}, 2},
		{"topic route QoS 2 granted 1", Scenario{Route: RouteTopic, Producers: 2, Consumers: 2, Sinks: 2, Size: 64, QoS: 2, Inflight: 20, Window: 500}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sc := tc.sc
			sc.Name, sc.Proto = "t", MQTT
			b := newRoutingMQTT(t, tc.maxQoS, 7, max(sc.Inflight, 1))
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			res, err := Run(ctx, sc, Target{Broker: "fake", MQTT: b.ln.Addr().String()}, Options{Duration: 300 * time.Millisecond, Drain: 10 * time.Second, Quiet: time.Second})
			if err != nil {
				t.Fatalf("Run: %v (%+v)", err, res)
			}
			if res.Sent == 0 || res.Received != res.Sent*int64(sc.Sinks) || res.Lost != 0 || res.Duplicates != 0 || res.Malformed != 0 {
				t.Errorf("sent %d, received %d, lost %d, duplicates %d, malformed %d", res.Sent, res.Received, res.Lost, res.Duplicates, res.Malformed)
			}
			if sc.QoS > 0 && res.Confirmed != res.Sent {
				t.Errorf("confirmed %d of %d", res.Confirmed, res.Sent)
			}
			var downgraded int64
			if sc.QoS > tc.maxQoS {
				downgraded = res.Received
			}
			if res.Downgraded != downgraded {
				t.Errorf("downgraded %d, want %d", res.Downgraded, downgraded)
			}
			b.mu.Lock()
			defer b.mu.Unlock()
			if sc.QoS > 0 && b.maxSeen != sc.Inflight {
				t.Errorf("at most %d unacknowledged per publisher, want Inflight, %d", b.maxSeen, sc.Inflight)
			}
			for i := range sc.Consumers {
				var want []string
				id := "s" + fmt.Sprint(i)
				for _, c := range b.connects {
					if strings.HasSuffix(strings.Fields(c)[0], "-"+id) {
						want = append(want, strings.Fields(c)[1])
					}
				}
				wantSeq := []string{"true"}
				if sc.PersistentSession {
					wantSeq = []string{"false", "true"} // the session, then its end
				}
				if !slices.Equal(want, wantSeq) {
					t.Errorf("subscriber %d connected with clean session %v, want %v", i, want, wantSeq)
				}
			}
		})
	}
}
