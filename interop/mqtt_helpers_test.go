package interop

import (
	"context"
	"log/slog"
	"net"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"

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
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log, TopicPermissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	cfg.Router, cfg.Store, cfg.Log = rt, st, log
	srv := transport.New(transport.Config{Listeners: []transport.Listener{
		{Name: "mqtt", Addr: "127.0.0.1:0", Adapter: jmqtt.New(cfg)}}}, log)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if n := srv.Panics(); n != 0 {
			t.Errorf("%d panics in sessions", n)
		}
		_ = st.Close()
	})
	return srv.Addrs()["mqtt"]
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
