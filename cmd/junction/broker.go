package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/junction-broker/junction/conf"
	"github.com/junction-broker/junction/protocols"
	"github.com/junction-broker/junction/protocols/amqp"
	"github.com/junction-broker/junction/protocols/mqtt"
	"github.com/junction-broker/junction/protocols/stomp"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/pebblestore"
)

// startBudget bounds how long the listeners may take to come up.
const startBudget = 30 * time.Second

// broker is what startBroker built, for run and for tests.
type broker struct {
	router *router.Router
	net    *transport.Server
	// failed is closed when storage can no longer make anything durable.
	failed <-chan struct{}
}

// startBroker opens storage, recovers the router from it and starts the
// protocol listeners described by cfg ("" disables one). It returns once
// the broker serves, with a stop function that shuts down in reverse order:
// stop accepting and send every connection its protocol's close, then
// flush and close storage, within stop's context deadline. The data
// directory already exists and is writable.
func startBroker(ctx context.Context, cfg conf.Config, log *slog.Logger) (b *broker, stop func(context.Context) error, err error) {
	st, err := pebblestore.Open(filepath.Join(cfg.DataDir, "store"), pebblestore.Options{
		Logger:       log.With("component", "storage"),
		MemTableSize: int64(cfg.Storage.MemtableSize),
		CacheSize:    int64(cfg.Storage.CacheSize),
	})
	if err != nil {
		return nil, nil, fmt.Errorf("opening storage in %s: %w", cfg.DataDir, err)
	}
	rt, err := router.New(router.Config{
		Store:            st,
		Log:              log.With("component", "router"),
		DefaultVHost:     cfg.Router.DefaultVHost,
		DefaultUser:      cfg.Router.DefaultUser,
		DefaultPass:      cfg.Router.DefaultPass,
		LoopbackUsers:    cfg.Router.LoopbackUsers,
		MemoryBudget:     int64(cfg.Router.MemoryBudget),
		TopicPermissions: topicPermissions(cfg.Router.TopicPermissions),
		Provenance:       cfg.Router.Provenance,
		MaxQueues:        cfg.Router.MaxQueues,
	})
	if err != nil {
		return nil, nil, errors.Join(err, st.Close())
	}
	limits := protocols.Limits{MaxInbound: int(cfg.Transport.MaxInbound), OutboundHighWater: int(cfg.Transport.MaxOutbound),
		SlowConsumerTimeout: cfg.Transport.SlowConsumerTimeout}
	var listeners []transport.Listener
	for _, l := range []struct {
		addr    string
		adapter protocols.Adapter
	}{
		{cfg.AMQP.Listen, amqp.New(amqp.Config{
			Router:         rt,
			Log:            log.With("component", "amqp"),
			FrameMax:       uint32(cfg.AMQP.FrameMax),
			ChannelMax:     uint16(cfg.AMQP.ChannelMax),
			Heartbeat:      amqpHeartbeat(cfg.AMQP.Heartbeat),
			MaxMessageSize: int64(cfg.Router.MaxMessageSize),
		})},
		{cfg.MQTT.Listen, mqtt.New(mqtt.Config{
			Router:              rt,
			Store:               st,
			Log:                 log.With("component", "mqtt"),
			VHost:               cfg.MQTT.VHost,
			Exchange:            cfg.MQTT.Exchange,
			RetainedMaxMessages: cfg.MQTT.RetainedMaxMessages,
			RetainedMaxBytes:    int64(cfg.MQTT.RetainedMaxBytes),
			TopicAliasMax:       mqttTopicAliasMax(cfg.MQTT.TopicAliasMaximum),
			MaxKeepAlive:        cfg.MQTT.MaxKeepAlive,
			HideRefusals:        !cfg.MQTT.RevealRefusals,
			LosslessTopics:      cfg.MQTT.TopicMode == conf.TopicModeLossless,
			MaxQueuedMessages:   cfg.MQTT.MaxQueuedMessages,
			MaxMessageSize:      int64(cfg.Router.MaxMessageSize),
		})},
		{cfg.STOMP.Listen, stomp.New(stomp.Config{
			Router:         rt,
			Log:            log.With("component", "stomp"),
			MaxMessageSize: int64(cfg.Router.MaxMessageSize),
		})},
	} {
		if l.addr == "" {
			log.Info("protocol disabled", "proto", l.adapter.Name())
			continue
		}
		listeners = append(listeners, transport.Listener{Name: l.adapter.Name(), Addr: l.addr, Adapter: l.adapter})
	}
	srv := transport.New(transport.Config{
		Listeners:    listeners,
		EventLoops:   cfg.Transport.EventLoops,
		TickInterval: cfg.Transport.TickInterval,
		Limits:       limits,
		MaxConns:     connectionLimit(cfg.Transport, log.With("component", "transport")),
	}, log.With("component", "transport"))
	sctx, cancel := context.WithTimeout(ctx, startBudget)
	defer cancel()
	if err := srv.Start(sctx); err != nil {
		return nil, nil, errors.Join(fmt.Errorf("starting listeners: %w", err), st.Close())
	}
	mon := &monitor{rt: rt, dir: cfg.DataDir, limit: uint64(cfg.Router.DiskFreeLimit),
		log: log.With("component", "monitor"), freeSpace: statfsFree, rss: residentMemory,
		memLimit: memoryWatermark(cfg.Router.MemoryHighWatermark, int64(cfg.Router.MemoryHighWatermarkAbsolute))}
	if mon.memLimit > 0 {
		mon.log.Info("memory high watermark", "bytes", mon.memLimit, "fraction", cfg.Router.MemoryHighWatermark,
			"available_bytes", availableMemory())
		// What the broker may hold by design: the store's cache and two
		// memtables (one flushing) and the message bodies' budget.
		if held := int64(cfg.Storage.CacheSize) + 2*int64(cfg.Storage.MemtableSize) + int64(cfg.Router.MemoryBudget); held > mon.memLimit/10*9 {
			mon.log.Warn("storage.cache_size, twice storage.memtable_size and router.memory_budget come near or above the memory high watermark: the memory alarm may block publishers for long; lower them or raise router.memory_high_watermark",
				"held_bytes", held, "watermark_bytes", mon.memLimit)
		}
	}
	monStop, monDone := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(monDone)
		mon.run(monitorInterval, monStop)
	}()
	stop = func(ctx context.Context) error {
		close(monStop)
		<-monDone
		err := srv.Shutdown(ctx)
		return errors.Join(err, st.Close())
	}
	return &broker{router: rt, net: srv, failed: st.Failed()}, stop, nil
}

// topicPermissions converts the configured topic permissions.
func topicPermissions(ps []conf.TopicPermission) []router.TopicPermission {
	out := make([]router.TopicPermission, len(ps))
	for i := range ps {
		p := &ps[i]
		out[i] = router.TopicPermission{User: p.User, VHost: p.VHost, Exchange: p.Exchange,
			Write: p.WritePattern(), Read: p.ReadPattern(), DenyWrite: p.DenyWrite, DenyRead: p.DenyRead}
	}
	return out
}

// mqttTopicAliasMax maps the configured Topic Alias Maximum (0: offer
// none) onto the adapter's convention (0: its default; negative: none).
func mqttTopicAliasMax(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// amqpHeartbeat maps the configured heartbeat (0: offer none) onto the
// adapter's convention (0: its default; negative: none).
func amqpHeartbeat(d time.Duration) time.Duration {
	if d == 0 {
		return -1
	}
	return d
}
