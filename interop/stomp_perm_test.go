package interop

import (
	"strings"
	"testing"

	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

// stompTopicRefusal is the body of RabbitMQ's ERROR for a topic access
// guest was refused (its message header is "access_refused").
func stompTopicRefusal(perm, key, exchange string) string {
	return perm + " access to topic '" + key + "' in exchange '" + exchange + "' in vhost '/' refused for user 'guest'"
}

// wantStompRefusal fails unless f is RabbitMQ's ERROR for a refused topic
// access: message:access_refused and the text as body.
func wantStompRefusal(t *testing.T, f *stompFrameT, text string) {
	t.Helper()
	if got := f.Header.Get("message"); got != "access_refused" || string(f.Body) != text {
		t.Fatalf("ERROR message %q body %q, want access_refused %q", got, f.Body, text)
	}
}

// TestSTOMPTopicPermissions: go-stomp against router.topic_permissions
// (permsTOML). A permitted SUBSCRIBE and SEND work; a refused SEND (to
// /topic/ or to /exchange/ of a topic exchange) and a refused SUBSCRIBE
// (which would bind) get an ERROR access_refused with RabbitMQ's text,
// the connection closes, and nothing is routed; other connections go on.
// /exchange/ destinations of other exchange types are not checked.
func TestSTOMPTopicPermissions(t *testing.T) {
	b := startPermBroker(t, permsTOML)
	// free has no topic permissions: its AMQP queue bound "#" sees all
	// that amq.topic and events route.
	free := dialConfig(t, b.url("free:free"), amqp.Config{})
	fch := newChannel(t, free)
	must(t, fch.ExchangeDeclare("events", "topic", false, false, false, false, nil))
	all := declareQueue(t, fch, "stomp-all", nil)
	must(t, fch.QueueBind(all, "#", "amq.topic", false, nil))
	must(t, fch.QueueBind(all, "#", "events", false, nil))
	allMsgs := consume(t, fch, all)

	forVersions(t, func(t *testing.T, v stomp.Version) {
		sfx := strings.ReplaceAll(string(v), ".", "") // one word of a routing key
		c := stompDial(t, b.stompAddr, v)
		s := stompSub(t, c, "/topic/public.*", stomp.AckAuto)
		stompSend(t, c, "/topic/public.a"+sfx, "hello "+sfx)
		stompWantBodies(t, s, "hello "+sfx)
		stompSend(t, c, "/exchange/events/ok", "ok "+sfx)
		// amq.direct is no topic exchange: its (empty) permissions are
		// not looked at.
		ds := stompSub(t, c, "/exchange/amq.direct/k"+sfx, stomp.AckAuto)
		stompSend(t, c, "/exchange/amq.direct/k"+sfx, "direct "+sfx)
		stompWantBodies(t, ds, "direct "+sfx)
		wantBodies(t, recvN(t, allMsgs, 2), "hello "+sfx, "ok "+sfx)

		for _, tc := range []struct{ name, dest, key, exchange string }{
			{"send topic", "/topic/private.a", "private.a", "amq.topic"},
			{"send denied", "/topic/public.secret", "public.secret", "amq.topic"},
			{"send exchange", "/exchange/amq.topic/own.free.a", "own.free.a", "amq.topic"},
			{"send other exchange", "/exchange/events/not-ok", "not-ok", "events"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bad := stompDial(t, b.stompAddr, v)
				err := bad.Send(tc.dest, "", []byte("forged"), stomp.SendOpt.Receipt)
				wantStompRefusal(t, stompErrorFrame(t, err), stompTopicRefusal("write", tc.key, tc.exchange))
				stompGone(bad)
			})
		}
		noDelivery(t, allMsgs)

		for _, tc := range []struct {
			name, dest, key, exchange string
			headers                   []string
		}{
			{"subscribe wildcard", "/topic/#", "#", "amq.topic", nil},
			{"subscribe denied", "/topic/public.private", "public.private", "amq.topic", nil},
			{"subscribe exchange", "/exchange/amq.topic/private.*", "private.*", "amq.topic", nil},
			{"subscribe other exchange", "/exchange/events/ok", "ok", "events", nil},
			{"subscribe durable", "/topic/private.d", "private.d", "amq.topic",
				[]string{"durable", "true", "auto-delete", "false", "x-queue-name", "refused-" + sfx}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				bad := stompDial(t, b.stompAddr, v)
				var opts []func(*stompFrameT) error
				for i := 0; i+1 < len(tc.headers); i += 2 {
					opts = append(opts, stomp.SubscribeOpt.Header(tc.headers[i], tc.headers[i+1]))
				}
				bs, err := bad.Subscribe(tc.dest, stomp.AckAuto, opts...)
				must(t, err)
				wantStompRefusal(t, stompSubError(t, bs), stompTopicRefusal("read", tc.key, tc.exchange))
				stompGone(bad)
			})
		}
		// The refused durable subscription left no queue behind.
		pch := newChannel(t, free)
		_, err := pch.QueueDeclarePassive("refused-"+sfx, false, false, false, false, nil)
		wantCode(t, err, amqp.NotFound)

		// The connection closes after the ERROR, as RabbitMQ's STOMP does.
		r := dialStompRaw(t, b.stompAddr)
		r.connect(string(v))
		r.frame("SEND", "forged", "destination", "/topic/private.raw")
		if f := r.expectError(); f.get("message") != "access_refused" {
			t.Fatalf("ERROR %s", f)
		}

		// The first connection, and AMQP, never noticed.
		stompSend(t, c, "/topic/public.b"+sfx, "after "+sfx)
		stompWantBodies(t, s, "after "+sfx)
		wantBodies(t, recvN(t, allMsgs, 1), "after "+sfx)
		noDelivery(t, allMsgs)
	})
}
