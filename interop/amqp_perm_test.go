package interop

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junction-broker/junction/conf"
	jamqp "github.com/junction-broker/junction/protocols/amqp"
	jstomp "github.com/junction-broker/junction/protocols/stomp"
	"github.com/junction-broker/junction/protocols/transport"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// permBroker is an in-process Junction serving AMQP and STOMP on
// 127.0.0.1:0 with topic permissions, and a user "free" (password
// "free", vhost "/") who has none.
type permBroker struct {
	amqpAddr, stompAddr string
}

func (b *permBroker) url(userinfo string) string {
	return "amqp://" + userinfo + "@" + b.amqpAddr + "/"
}

// permsTOML is the configuration of the permission tests. guest may, on
// amq.topic, publish under public. and own.guest. (never to a last level
// "secret") and bind under public. (but not public.private); on the
// topic exchange "events", publish only "ok" and bind nothing; on
// amq.direct, not a topic exchange, nothing, which is not checked.
const permsTOML = `
[[router.topic_permissions]]
user = "guest"
write = '^(?:public|own\.{username})\.'
deny_write = '\.secret$'
read = '^public\.'
deny_read = '^public\.private$'

[[router.topic_permissions]]
user = "guest"
exchange = "events"
write = '^ok$'
read = ''

[[router.topic_permissions]]
user = "guest"
exchange = "amq.direct"
write = ''
read = ''
`

// startPermBroker loads toml as a configuration file the way
// cmd/junction does (conf.Load, then router.topic_permissions into the
// router), and starts the broker. Cleanup shuts it down and fails the
// test if a session panicked.
func startPermBroker(t *testing.T, toml string) *permBroker {
	t.Helper()
	name := filepath.Join(t.TempDir(), "junction.toml")
	if err := os.WriteFile(name, []byte(toml), 0o600); err != nil {
		t.Fatal(err)
	}
	c, _, err := conf.Load([]string{"--config", name, "--data-dir", t.TempDir()},
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var perms []router.TopicPermission
	for _, p := range c.Router.TopicPermissions {
		perms = append(perms, router.TopicPermission{User: p.User, VHost: p.VHost, Exchange: p.Exchange,
			Write: p.WritePattern(), Read: p.ReadPattern(), DenyWrite: p.DenyWrite, DenyRead: p.DenyRead})
	}
	st := memstore.New()
	log := slog.New(slog.DiscardHandler)
	rt, err := router.New(router.Config{Store: st, Log: log, TopicPermissions: perms})
	if err != nil {
		t.Fatal(err)
	}
	added := make(chan error, 1)
	rt.AddUser("free", "free", nil, []string{"/"}, func(err error) { added <- err })
	if err := <-added; err != nil {
		t.Fatal(err)
	}
	srv := serve(t, st, transport.Config{Listeners: []transport.Listener{
		{Name: "amqp", Addr: "127.0.0.1:0", Adapter: jamqp.New(jamqp.Config{Router: rt, Log: log})},
		{Name: "stomp", Addr: "127.0.0.1:0", Adapter: jstomp.New(jstomp.Config{Router: rt, Log: log})},
	}})
	return &permBroker{amqpAddr: srv.Addrs()["amqp"], stompAddr: srv.Addrs()["stomp"]}
}

// topicRefusal is RabbitMQ's reply text for a topic access guest was
// refused.
func topicRefusal(perm, key, exchange string) string {
	return "ACCESS_REFUSED - " + perm + " access to topic '" + key + "' in exchange '" + exchange + "' in vhost '/' refused for user 'guest'"
}

// wantRefusal waits for the channel.close of a topic refusal, 403 with
// RabbitMQ's text, and checks that the connection is still open.
func wantRefusal(t *testing.T, conn *amqp.Connection, closed <-chan *amqp.Error, text string) {
	t.Helper()
	e := wantClose(t, closed, amqp.AccessRefused)
	if e.Reason != text || !e.Server {
		t.Fatalf("closed with %q (server %v), want %q", e.Reason, e.Server, text)
	}
	if conn.IsClosed() {
		t.Fatal("a topic refusal closed the connection")
	}
}

// TestAMQPTopicPermissions: amqp091-go against router.topic_permissions.
// Permitted publishes and bindings work; a refused basic.publish, and a
// refused queue.bind, exchange.bind or queue.unbind, close the channel
// with 403 ACCESS_REFUSED and RabbitMQ's text, and route nothing; the
// connection, other connections and other users go on. Exchanges other
// than topic ones are not checked.
func TestAMQPTopicPermissions(t *testing.T) {
	b := startPermBroker(t, permsTOML)
	bystander := newBystander(t, b.url("guest:guest"))

	// free has no topic permissions: it binds "#" and so sees everything
	// that amq.topic routes.
	free := dialConfig(t, b.url("free:free"), amqp.Config{})
	fch := newChannel(t, free)
	all := declareQueue(t, fch, "all", nil)
	must(t, fch.QueueBind(all, "#", "amq.topic", false, nil))
	allMsgs := consume(t, fch, all)

	conn := dialConfig(t, b.url("guest:guest"), amqp.Config{})
	ch := newChannel(t, conn)
	mine := declareQueue(t, ch, "", nil)
	must(t, ch.QueueBind(mine, "public.#", "amq.topic", false, nil))
	// amq.direct is no topic exchange: its (empty) permissions are not
	// looked at.
	must(t, ch.QueueBind(mine, "direct-key", "amq.direct", false, nil))
	mineMsgs := consume(t, ch, mine)

	publish(t, ch, "amq.topic", "public.news", "news")
	publish(t, ch, "amq.topic", "own.guest.status", "status")
	publish(t, ch, "amq.direct", "direct-key", "direct")
	wantBodies(t, recvN(t, mineMsgs, 2), "news", "direct")
	wantBodies(t, recvN(t, allMsgs, 2), "news", "status")

	t.Run("publish refused", func(t *testing.T) {
		for _, key := range []string{"private.x", "public.secret", "own.free.status"} {
			pch := newChannel(t, conn)
			closed := pch.NotifyClose(make(chan *amqp.Error, 1))
			publish(t, pch, "amq.topic", key, "forged")
			wantRefusal(t, conn, closed, topicRefusal("write", key, "amq.topic"))
		}
		noDelivery(t, allMsgs)
	})

	t.Run("publish refused in confirm mode", func(t *testing.T) {
		pch := newChannel(t, conn)
		must(t, pch.Confirm(false))
		closed := pch.NotifyClose(make(chan *amqp.Error, 1))
		dc, err := pch.PublishWithDeferredConfirmWithContext(context.Background(), "amq.topic", "private.y", false, false,
			amqp.Publishing{Body: []byte("forged")})
		must(t, err)
		wantRefusal(t, conn, closed, topicRefusal("write", "private.y", "amq.topic"))
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		if ok, err := dc.WaitContext(ctx); ok || err != nil {
			t.Fatalf("deferred confirm: ack %v, err %v; want a nack from the closed channel", ok, err)
		}
		noDelivery(t, allMsgs)
	})

	t.Run("bind refused", func(t *testing.T) {
		for _, key := range []string{"#", "public.private", "private.*"} {
			bch := newChannel(t, conn)
			err := bch.QueueBind(mine, key, "amq.topic", false, nil)
			wantCode(t, err, amqp.AccessRefused)
			var e *amqp.Error
			if errors.As(err, &e); e.Reason != topicRefusal("read", key, "amq.topic") {
				t.Fatalf("reason %q", e.Reason)
			}
		}
		// Nothing was bound: a message only "#" would take misses mine.
		publish(t, ch, "amq.topic", "own.guest.other", "not for mine")
		wantBodies(t, recvN(t, allMsgs, 1), "not for mine")
		noDelivery(t, mineMsgs)
	})

	t.Run("unbind refused", func(t *testing.T) {
		bch := newChannel(t, conn)
		wantCode(t, bch.QueueUnbind(mine, "private.*", "amq.topic", nil), amqp.AccessRefused)
		bch = newChannel(t, conn)
		must(t, bch.QueueUnbind(mine, "direct-key", "amq.direct", nil))
		must(t, bch.Close())
	})

	t.Run("other topic exchange", func(t *testing.T) {
		xch := newChannel(t, conn)
		must(t, xch.ExchangeDeclare("events", "topic", false, false, false, false, nil))
		must(t, xch.ExchangeDeclare("events-copy", "fanout", false, false, false, false, nil))
		// Binding from events is refused (read ''); from the fanout, not
		// checked.
		wantCode(t, xch.ExchangeBind("events-copy", "k", "events", false, nil), amqp.AccessRefused)
		xch = newChannel(t, conn)
		must(t, xch.ExchangeBind("events", "anything", "events-copy", false, nil))
		// free binds a queue to events: it sees what guest may publish.
		q := declareQueue(t, fch, "events-all", nil)
		must(t, fch.QueueBind(q, "#", "events", false, nil))
		msgs := consume(t, fch, q)
		publish(t, xch, "events", "ok", "ok")
		wantBodies(t, recvN(t, msgs, 1), "ok")
		closed := xch.NotifyClose(make(chan *amqp.Error, 1))
		publish(t, xch, "events", "ok.not", "forged")
		wantRefusal(t, conn, closed, topicRefusal("write", "ok.not", "events"))
		noDelivery(t, msgs)
	})

	// The refusals closed channels only: the connection, free's and the
	// bystander's go on, and free may do anything.
	stillUsable(t, conn)
	publish(t, ch, "amq.topic", "public.after", "after")
	wantBodies(t, recvN(t, mineMsgs, 1), "after")
	wantBodies(t, recvN(t, allMsgs, 1), "after")
	publish(t, fch, "amq.topic", "private.free", "free")
	wantBodies(t, recvN(t, allMsgs, 1), "free")
	bystander.check(t)
	noDelivery(t, allMsgs)
}
