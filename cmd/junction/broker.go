package main

import (
	"context"
	"log/slog"

	"github.com/junction-broker/junction/conf"
)

// startBroker opens storage, builds the router and starts the protocol
// listeners described by cfg. It returns once the broker serves, with a stop
// function that shuts it down in reverse order (stop accepting, send close
// frames, flush and close storage) within its context's deadline. The data
// directory already exists and is writable.
//
// TODO(lead): wire the concrete components here once they land:
//   - storage: pebblestore.Open(filepath.Join(cfg.DataDir, ...), cfg.Storage)
//   - router:  router.New(router.Config{Store: st, Log: log, DefaultVHost:
//     cfg.Router.DefaultVHost, DefaultUser: ..., LoopbackUsers: ...})
//   - transport: listeners for cfg.AMQP.Listen, cfg.MQTT.Listen and
//     cfg.STOMP.Listen ("" means disabled) with cfg.Transport limits.
//
// Until then it binds nothing: the process starts, reports what it would
// serve, and waits for a signal.
func startBroker(ctx context.Context, cfg conf.Config, log *slog.Logger) (stop func(context.Context) error, err error) {
	for _, l := range []struct{ proto, addr string }{
		{"amqp", cfg.AMQP.Listen},
		{"mqtt", cfg.MQTT.Listen},
		{"stomp", cfg.STOMP.Listen},
	} {
		if l.addr == "" {
			log.Info("protocol disabled", "proto", l.proto)
			continue
		}
		log.Warn("listener not wired yet; nothing is served", "proto", l.proto, "listen", l.addr)
	}
	return func(context.Context) error { return nil }, nil
}
