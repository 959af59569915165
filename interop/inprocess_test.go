package interop

import (
	"context"
	"log/slog"
	"testing"
	"time"

	jamqp "github.com/junction-broker/junction/protocols/amqp"
	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	jstomp "github.com/junction-broker/junction/protocols/stomp"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage"
	"github.com/junction-broker/junction/storage/memstore"
)

// startInProcess runs a router over memstore and the transport with the
// AMQP, MQTT and STOMP adapters on 127.0.0.1:0, in process. It returns the
// server, whose Addrs are keyed "amqp", "mqtt" and "stomp". Cleanup shuts
// it down and fails the test if a session panicked.
func startInProcess(t *testing.T, mqttOpts ...func(*jmqtt.Config)) *transport.Server {
	t.Helper()
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log, Provenance: true})
	if err != nil {
		t.Fatal(err)
	}
	return serve(t, st, transport.Config{
		Listeners: []transport.Listener{
			{Name: "amqp", Addr: "127.0.0.1:0", Adapter: jamqp.New(jamqp.Config{Router: rt, Log: log})},
			{Name: "mqtt", Addr: "127.0.0.1:0", Adapter: jmqtt.New(mqttConfig(rt, log, mqttOpts))},
			{Name: "stomp", Addr: "127.0.0.1:0", Adapter: jstomp.New(jstomp.Config{Router: rt, Log: log})},
		},
	})
}

// serve starts the transport of an in-process broker over st, logging
// nowhere. Cleanup shuts it down, fails the test if a session panicked,
// and closes st.
func serve(t testing.TB, st storage.Store, cfg transport.Config) *transport.Server {
	t.Helper()
	srv := transport.New(cfg, slog.New(slog.DiscardHandler))
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
	return srv
}

func mqttConfig(rt *router.Router, log *slog.Logger, opts []func(*jmqtt.Config)) jmqtt.Config {
	c := jmqtt.Config{Router: rt, Log: log}
	for _, o := range opts {
		o(&c)
	}
	return c
}

// startAMQP returns the amqp:// URL maker ("amqp://<userinfo>@host:port/")
// of an in-process broker.
func startAMQP(t *testing.T) (url func(userinfo string) string, srv *transport.Server) {
	t.Helper()
	srv = startInProcess(t)
	addr := srv.Addrs()["amqp"]
	return func(userinfo string) string { return "amqp://" + userinfo + "@" + addr + "/" }, srv
}

// startMQTT returns the MQTT address and the guest AMQP URL of an
// in-process broker.
func startMQTT(t *testing.T) (mqttAddr, amqpURL string) {
	t.Helper()
	srv := startInProcess(t)
	return srv.Addrs()["mqtt"], "amqp://guest:guest@" + srv.Addrs()["amqp"] + "/"
}

// startSTOMP returns the STOMP address and the guest AMQP URL of an
// in-process broker.
func startSTOMP(t *testing.T) (stompAddr, amqpURL string) {
	t.Helper()
	srv := startInProcess(t)
	return srv.Addrs()["stomp"], "amqp://guest:guest@" + srv.Addrs()["amqp"] + "/"
}
