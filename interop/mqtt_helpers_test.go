package interop

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	plog "github.com/eclipse/paho.golang/paho/log"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	pk3 "github.com/eclipse/paho.mqtt.golang/packets"

	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// startMQTTServer runs an in-process MQTT-only broker over memstore with
// topic permissions perms and adapter configuration cfg (its Router, Store
// and Log are filled in), on 127.0.0.1:0, and returns the address.
// Cleanup shuts it down and fails the test if a session panicked.
func startMQTTServer(t *testing.T, perms []router.TopicPermission, cfg jmqtt.Config) string {
	t.Helper()
	addr, _ := startMQTTRouter(t, perms, cfg)
	return addr
}

// startMQTTRouter is startMQTTServer that also returns the router, for
// tests that look at queues without touching them (an AMQP passive
// declare counts as a use for x-expires).
func startMQTTRouter(t *testing.T, perms []router.TopicPermission, cfg jmqtt.Config) (string, *router.Router) {
	t.Helper()
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log, TopicPermissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Router, cfg.Store, cfg.Log = rt, st, log
	srv := serve(t, st, transport.Config{Listeners: []transport.Listener{
		{Name: "mqtt", Addr: "127.0.0.1:0", Adapter: jmqtt.New(cfg)}}})
	return srv.Addrs()["mqtt"], rt
}

// dial5 connects a paho.golang (MQTT 5) client whose received publishes go
// to the returned channel.
func dial5(ctx context.Context, t *testing.T, addr string, cp *paho.Connect) (*paho.Client, *paho.Connack, <-chan *paho.Publish) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *paho.Publish, 10)
	c := paho.NewClient(paho.ClientConfig{Conn: conn, OnPublishReceived: []func(paho.PublishReceived) (bool, error){
		func(r paho.PublishReceived) (bool, error) { got <- r.Packet; return true, nil },
	}})
	ack, err := c.Connect(ctx, cp)
	if err != nil || ack.ReasonCode != 0 {
		t.Fatalf("connect %s: %v %+v", cp.ClientID, err, ack)
	}
	t.Cleanup(func() { _ = c.Disconnect(&paho.Disconnect{}) })
	return c, ack, got
}

func recv5(ctx context.Context, t *testing.T, got <-chan *paho.Publish) *paho.Publish {
	t.Helper()
	select {
	case m := <-got:
		return m
	case <-ctx.Done():
		t.Fatal("no MQTT 5 message")
	}
	return nil
}

// client5 is a paho.golang (MQTT 5) client whose received publishes and
// server DISCONNECTs arrive on channels; conn is its socket, for tests that
// end the connection without a DISCONNECT.
type client5 struct {
	*paho.Client
	conn net.Conn
	ack  *paho.Connack
	msgs chan *paho.Publish
	disc chan *paho.Disconnect
}

// opts5 changes how try5 builds a client.
type opts5 struct {
	manualAck bool        // the test acknowledges with Ack (paho sends acks in order)
	pinger    paho.Pinger // nil: paho's default pinger
}

// try5 dials addr and sends cp. It returns the client if the CONNACK
// accepted it (cleanup disconnects it), and the CONNACK and error as paho
// reports them.
func try5(ctx context.Context, t testing.TB, addr string, cp *paho.Connect, o opts5) (*client5, *paho.Connack, error) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c := &client5{conn: conn, msgs: make(chan *paho.Publish, 1000), disc: make(chan *paho.Disconnect, 1)}
	c.Client = paho.NewClient(paho.ClientConfig{
		Conn: conn, PingHandler: o.pinger, EnableManualAcknowledgment: o.manualAck, SendAcksInterval: 5 * time.Millisecond,
		OnPublishReceived: []func(paho.PublishReceived) (bool, error){
			func(r paho.PublishReceived) (bool, error) { c.msgs <- r.Packet; return true, nil },
		},
		OnServerDisconnect: func(d *paho.Disconnect) {
			select {
			case c.disc <- d:
			default:
			}
		},
	})
	ack, err := c.Connect(ctx, cp)
	if err != nil || ack == nil || ack.ReasonCode != 0 {
		_ = conn.Close()
		return nil, ack, err
	}
	c.ack = ack
	t.Cleanup(func() {
		_ = c.Disconnect(&paho.Disconnect{})
		_ = conn.Close()
	})
	return c, ack, nil
}

// open5 is try5 for a connection that must be accepted.
func open5(ctx context.Context, t testing.TB, addr string, cp *paho.Connect, o opts5) *client5 {
	t.Helper()
	c, ack, err := try5(ctx, t, addr, cp, o)
	if c == nil {
		t.Fatalf("connect %q: %v %+v", cp.ClientID, err, ack)
	}
	return c
}

// sub5 subscribes and fails unless every filter is granted its QoS.
func sub5(ctx context.Context, t testing.TB, c *client5, subs ...paho.SubscribeOptions) {
	t.Helper()
	sa, err := c.Subscribe(ctx, &paho.Subscribe{Subscriptions: subs})
	if err != nil || len(sa.Reasons) != len(subs) {
		t.Fatalf("subscribe %+v: %v %+v", subs, err, sa)
	}
	for i, s := range subs {
		if sa.Reasons[i] != s.QoS {
			t.Fatalf("subscribe %q: reason %#x, want QoS %d", s.Topic, sa.Reasons[i], s.QoS)
		}
	}
}

// pub5 publishes and fails unless the PUBACK or PUBCOMP (if any) is a
// success (0x00, or 0x10 no matching subscribers).
func pub5(ctx context.Context, t testing.TB, c *client5, p *paho.Publish) {
	t.Helper()
	r, err := c.Publish(ctx, p)
	if err != nil || r == nil || r.ReasonCode != 0 && r.ReasonCode != 0x10 {
		t.Fatalf("publish %q QoS %d: %v %+v", p.Topic, p.QoS, err, r)
	}
}

// next5 is the next publish c received, failing after waitFor.
func next5(t testing.TB, c *client5) *paho.Publish {
	t.Helper()
	select {
	case m := <-c.msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal("no MQTT 5 message")
	}
	return nil
}

// none5 fails if c receives a publish within the quiet window.
func none5(t testing.TB, c *client5) {
	t.Helper()
	select {
	case m := <-c.msgs:
		t.Fatalf("unexpected message %q on %q", m.Payload, m.Topic)
	case <-time.After(quiet):
	}
}

// serverDisconnect waits for the server's DISCONNECT to c.
func serverDisconnect(t testing.TB, c *client5) *paho.Disconnect {
	t.Helper()
	select {
	case d := <-c.disc:
		return d
	case <-time.After(waitFor):
		t.Fatal("no DISCONNECT from the server")
	}
	return nil
}

// silentPinger is a paho.Pinger that never pings: the broker's keepalive
// timer then ends the connection.
type silentPinger struct{}

func (silentPinger) Run(ctx context.Context, _ net.Conn, _ uint16) error { <-ctx.Done(); return nil }
func (silentPinger) PacketSent()                                         {}
func (silentPinger) PingResp()                                           {}
func (silentPinger) SetDebug(plog.Logger)                                {}

// opts3 are paho.mqtt.golang options for protocol version v (3: MQTT 3.1,
// 4: 3.1.1) without reconnects, keepalive 30s; messages not matched by a
// subscription's handler go to msgs (nil: dropped).
func opts3(addr, id string, v uint, clean bool, msgs chan<- mqtt3.Message) *mqtt3.ClientOptions {
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID(id).SetProtocolVersion(v).
		SetCleanSession(clean).SetAutoReconnect(false).SetConnectRetry(false).SetKeepAlive(30 * time.Second).
		SetConnectTimeout(waitFor).SetWriteTimeout(waitFor)
	if msgs != nil {
		o.SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) { msgs <- m })
	}
	return o
}

// connect3 connects a paho.mqtt.golang client with o and returns it with
// its CONNECT token (ReturnCode, SessionPresent); cleanup disconnects it.
// It fails the test only if no CONNACK came.
func connect3(t testing.TB, o *mqtt3.ClientOptions) (mqtt3.Client, *mqtt3.ConnectToken) {
	t.Helper()
	c := mqtt3.NewClient(o)
	tok := c.Connect().(*mqtt3.ConnectToken)
	if !tok.WaitTimeout(waitFor) {
		t.Fatalf("connect %q: no CONNACK", o.ClientID)
	}
	t.Cleanup(func() {
		if c.IsConnectionOpen() {
			c.Disconnect(100)
		}
	})
	return c, tok
}

// open3 is connect3 for a connection that must be accepted.
func open3(t testing.TB, o *mqtt3.ClientOptions) (mqtt3.Client, *mqtt3.ConnectToken) {
	t.Helper()
	c, tok := connect3(t, o)
	if tok.Error() != nil || tok.ReturnCode() != 0 {
		t.Fatalf("connect %q: %v (code %d)", o.ClientID, tok.Error(), tok.ReturnCode())
	}
	return c, tok
}

// next3 is the next message on msgs, failing after waitFor.
func next3(t testing.TB, msgs <-chan mqtt3.Message) mqtt3.Message {
	t.Helper()
	select {
	case m := <-msgs:
		return m
	case <-time.After(waitFor):
		t.Fatal("no MQTT 3.1.1 message")
	}
	return nil
}

// wait3 waits for tok, failing on a timeout or an error.
func wait3(t testing.TB, what string, tok mqtt3.Token) {
	t.Helper()
	if !tok.WaitTimeout(waitFor) || tok.Error() != nil {
		t.Fatalf("%s: %v", what, tok.Error())
	}
}

// raw3 is a raw MQTT 3.1/3.1.1 connection that speaks through
// paho.mqtt.golang's packet codec: the tests that need a packet sequence
// no client library would send (stop before an acknowledgement, resend a
// QoS 2 PUBLISH) use it.
type raw3 struct {
	t testing.TB
	c net.Conn
}

func dialRaw3(t testing.TB, addr string) *raw3 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &raw3{t, c}
}

func (r *raw3) send(p pk3.ControlPacket) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(waitFor))
	if err := p.Write(r.c); err != nil {
		r.t.Fatalf("write %v: %v", p, err)
	}
}

func (r *raw3) read() pk3.ControlPacket {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(waitFor))
	p, err := pk3.ReadPacket(r.c)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p
}

// connect sends a CONNECT (3.1.1, keepalive 60s unless ka) and returns
// the CONNACK.
func (r *raw3) connect(id string, clean bool, ka uint16) *pk3.ConnackPacket {
	r.t.Helper()
	cp := pk3.NewControlPacket(pk3.Connect).(*pk3.ConnectPacket)
	cp.ProtocolName, cp.ProtocolVersion, cp.ClientIdentifier, cp.CleanSession, cp.Keepalive = "MQTT", 4, id, clean, ka
	r.send(cp)
	ack, ok := r.read().(*pk3.ConnackPacket)
	if !ok {
		r.t.Fatal("no CONNACK")
	}
	return ack
}

// raw5 is the MQTT 5 counterpart of raw3, over paho.golang's packet codec.
type raw5 struct {
	t testing.TB
	c net.Conn
}

func dialRaw5(t testing.TB, addr string) *raw5 {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &raw5{t, c}
}

func (r *raw5) send(p io.WriterTo) {
	r.t.Helper()
	_ = r.c.SetWriteDeadline(time.Now().Add(waitFor))
	if _, err := p.WriteTo(r.c); err != nil {
		r.t.Fatalf("write %v: %v", p, err)
	}
}

func (r *raw5) read() *pk5.ControlPacket {
	r.t.Helper()
	_ = r.c.SetReadDeadline(time.Now().Add(waitFor))
	p, err := pk5.ReadPacket(r.c)
	if err != nil {
		r.t.Fatalf("read: %v", err)
	}
	return p
}

// connect sends an MQTT 5 CONNECT with Session Expiry Interval expiry and
// returns the CONNACK.
func (r *raw5) connect(id string, clean bool, expiry uint32) *pk5.Connack {
	r.t.Helper()
	r.send(&pk5.Connect{ProtocolName: "MQTT", ProtocolVersion: 5, ClientID: id, CleanStart: clean, KeepAlive: 60,
		Properties: &pk5.Properties{SessionExpiryInterval: &expiry}})
	ack, ok := r.read().Content.(*pk5.Connack)
	if !ok {
		r.t.Fatal("no CONNACK")
	}
	return ack
}
