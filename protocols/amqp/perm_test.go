package amqp

import (
	"bytes"
	"testing"

	"github.com/junction-broker/junction/protocols/amqp/frame"
	"github.com/junction-broker/junction/router"
	"github.com/junction-broker/junction/storage/memstore"
)

// newPermHarness is newHarness with topic permissions for guest: on
// amq.topic it may publish under public. and own.<username>. (but not to a
// last level "secret") and bind under public. and own. (but not
// public.private);
// on the topic exchange "t" it may do nothing but bind "{client_id}"; on
// amq.direct, not a topic exchange, nothing, which is not checked.
func newPermHarness(t *testing.T, cfg Config) *harness {
	t.Helper()
	st := memstore.New()
	rt, err := router.New(router.Config{Store: st, TopicPermissions: []router.TopicPermission{
		{User: "guest", Write: `^(?:public|own\.{username})\.`, DenyWrite: `\.secret$`, Read: `^(?:public|own)\.`, DenyRead: `^public\.private$`},
		{User: "guest", Exchange: "t", Write: "", Read: `^{client_id}$`},
		{User: "guest", Exchange: "amq.direct", Write: "", Read: ""},
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	cfg.Router = rt
	h := openHarness(t, New(cfg), st)
	h.handshake(0)
	return h
}

// refusedText is RabbitMQ's reply-text for a refused topic access as guest.
func refusedText(perm, key, exchange string) string {
	return "ACCESS_REFUSED - " + perm + " access to topic '" + key + "' in exchange '" + exchange + "' in vhost '/' refused for user 'guest'"
}

func (h *harness) wantChanClose(ch, code uint16, text string, class, method uint16) {
	h.t.Helper()
	cl := expect[*frame.ChannelClose](h, ch)
	if cl.ReplyCode != code || cl.ReplyText != text || cl.ClassID != class || cl.MethodID != method {
		h.t.Fatalf("channel.close %d %q (%d, %d), want %d %q (%d, %d)",
			cl.ReplyCode, cl.ReplyText, cl.ClassID, cl.MethodID, code, text, class, method)
	}
	h.method(ch, &frame.ChannelCloseOk{})
	if h.c.IsClosed() {
		h.t.Fatal("a topic refusal closed the connection")
	}
}

func TestTopicPublishPermissions(t *testing.T) {
	h := newPermHarness(t, Config{})
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "public.#"})
	expect[*frame.QueueBindOk](h, 1)
	h.method(1, &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "own.#"})
	expect[*frame.QueueBindOk](h, 1)
	// Bound without a topic check: amq.direct's permissions are not looked at.
	h.method(1, &frame.QueueBind{Queue: "q", Exchange: "amq.direct", RoutingKey: "d"})
	expect[*frame.QueueBindOk](h, 1)

	for _, tc := range []struct {
		name, exchange, key string
		body                []byte
		refused             bool
	}{
		{"allowed", "amq.topic", "public.news", []byte("news"), false},
		{"own subtree", "amq.topic", "own.guest.x", []byte("own"), false},
		{"outside write", "amq.topic", "private.x", []byte("x"), true},
		{"denied", "amq.topic", "public.secret", []byte("x"), true},
		{"another user's", "amq.topic", "own.other.x", []byte("x"), true},
		{"empty body", "amq.topic", "private.y", nil, true},
		{"body over frames", "amq.topic", "private.z", bytes.Repeat([]byte("z"), 20000), true},
		{"not a topic exchange", "amq.direct", "d", []byte("direct"), false},
		{"default exchange", "", "q", []byte("default"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			h.publish(1, &frame.BasicPublish{Exchange: tc.exchange, RoutingKey: tc.key}, nil, tc.body)
			if tc.refused {
				h.wantChanClose(1, frame.AccessRefused, refusedText("write", tc.key, tc.exchange), frame.ClassBasic, frame.MethodBasicPublish)
				h.openChannel(1)
				if b, _, ok := h.getBody(1, "q", true); ok {
					t.Fatalf("refused publish arrived: %q", b)
				}
				return
			}
			if b, _, ok := h.getBody(1, "q", true); !ok || b != string(tc.body) {
				t.Fatalf("got %q %v, want %q", b, ok, tc.body)
			}
		})
	}
	h.t = t

	// A missing exchange is the router's 404, not a topic refusal.
	h.publish(1, &frame.BasicPublish{Exchange: "nope", RoutingKey: "private.x"}, nil, []byte("x"))
	h.wantChanClose(1, frame.NotFound, "NOT_FOUND - no exchange 'nope' in vhost '/'", frame.ClassBasic, frame.MethodBasicPublish)
}

// RabbitMQ checks the size first, then topic permissions, then user_id.
func TestTopicPublishRefusalOrder(t *testing.T) {
	h := newPermHarness(t, Config{MaxMessageSize: 10})
	h.openChannel(1)
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "private.x"}, nil, bytes.Repeat([]byte("x"), 11))
	if cl := expect[*frame.ChannelClose](h, 1); cl.ReplyCode != frame.PreconditionFailed {
		t.Fatalf("channel.close %+v, want the size's 406", cl)
	}
	h.method(1, &frame.ChannelCloseOk{})
	h.openChannel(1)
	forged := &frame.Properties{Flags: frame.FlagUserID, UserID: "admin"}
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "private.x"}, forged, []byte("x"))
	h.wantChanClose(1, frame.AccessRefused, refusedText("write", "private.x", "amq.topic"), frame.ClassBasic, frame.MethodBasicPublish)
	h.openChannel(1)
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "public.x"}, forged, []byte("x"))
	if cl := expect[*frame.ChannelClose](h, 1); cl.ReplyCode != frame.PreconditionFailed {
		t.Fatalf("channel.close %+v, want user_id's 406", cl)
	}
}

// A refused publish in a transaction or in confirm mode closes the channel
// at once, as in RabbitMQ: nothing is held for tx.commit, nothing
// confirmed.
func TestTopicPublishRefusedInTxAndConfirm(t *testing.T) {
	h := newPermHarness(t, Config{})
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "#"})
	h.wantChanClose(1, frame.AccessRefused, refusedText("read", "#", "amq.topic"), frame.ClassQueue, frame.MethodQueueBind)
	h.openChannel(1)
	h.method(1, &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "public.*"})
	expect[*frame.QueueBindOk](h, 1)

	h.method(1, &frame.TxSelect{})
	expect[*frame.TxSelectOk](h, 1)
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "public.a"}, nil, []byte("a"))
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "nope.b"}, nil, []byte("b"))
	h.wantChanClose(1, frame.AccessRefused, refusedText("write", "nope.b", "amq.topic"), frame.ClassBasic, frame.MethodBasicPublish)
	h.openChannel(1)
	if b, _, ok := h.getBody(1, "q", true); ok {
		t.Fatalf("publish of an uncommitted transaction arrived: %q", b)
	}

	h.method(1, &frame.ConfirmSelect{})
	expect[*frame.ConfirmSelectOk](h, 1)
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "public.c"}, nil, []byte("c"))
	expect[*frame.BasicAck](h, 1)
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "nope.d"}, nil, []byte("d"))
	h.wantChanClose(1, frame.AccessRefused, refusedText("write", "nope.d", "amq.topic"), frame.ClassBasic, frame.MethodBasicPublish)
	h.openChannel(1)
	if b, _, ok := h.getBody(1, "q", true); !ok || b != "c" {
		t.Fatalf("got %q %v, want c", b, ok)
	}
	h.quiet()
}

func TestTopicBindPermissions(t *testing.T) {
	h := newPermHarness(t, Config{})
	h.openChannel(1)
	h.openChannel(2)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.ExchangeDeclare{Exchange: "t", Type: "topic"})
	expect[*frame.ExchangeDeclareOk](h, 1)
	h.method(1, &frame.ExchangeDeclare{Exchange: "fan", Type: "fanout"})
	expect[*frame.ExchangeDeclareOk](h, 1)

	type op struct {
		name string
		m    frame.Method
		ok   frame.Method // nil: refused
		key  string       // the refused key
		x    string       // the refused exchange
	}
	for _, tc := range []op{
		{"queue.bind", &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "public.*"}, &frame.QueueBindOk{}, "", ""},
		{"queue.bind wildcard", &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "#"}, nil, "#", "amq.topic"},
		{"queue.bind denied", &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "public.private"}, nil, "public.private", "amq.topic"},
		{"queue.bind empty name", &frame.QueueBind{Exchange: "amq.topic", RoutingKey: "x"}, nil, "x", "amq.topic"},
		{"queue.bind nowait", &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "y", NoWait: true}, nil, "y", "amq.topic"},
		{"queue.unbind", &frame.QueueUnbind{Queue: "q", Exchange: "amq.topic", RoutingKey: "public.*"}, &frame.QueueUnbindOk{}, "", ""},
		{"queue.unbind refused", &frame.QueueUnbind{Queue: "q", Exchange: "amq.topic", RoutingKey: "#"}, nil, "#", "amq.topic"},
		{"not a topic exchange", &frame.QueueBind{Queue: "q", Exchange: "amq.direct", RoutingKey: "#"}, &frame.QueueBindOk{}, "", ""},
		{"{client_id} as written", &frame.QueueBind{Queue: "q", Exchange: "t", RoutingKey: "{client_id}"}, &frame.QueueBindOk{}, "", ""},
		{"{client_id} is no variable", &frame.QueueBind{Queue: "q", Exchange: "t", RoutingKey: ""}, nil, "", "t"},
		{"exchange.bind", &frame.ExchangeBind{Destination: "fan", Source: "amq.topic", RoutingKey: "public.x"}, &frame.ExchangeBindOk{}, "", ""},
		{"exchange.bind refused", &frame.ExchangeBind{Destination: "fan", Source: "amq.topic", RoutingKey: "private.x"}, nil, "private.x", "amq.topic"},
		{"exchange.bind from a fanout", &frame.ExchangeBind{Destination: "t", Source: "fan", RoutingKey: "private.x"}, &frame.ExchangeBindOk{}, "", ""},
		{"exchange.unbind refused", &frame.ExchangeUnbind{Destination: "fan", Source: "amq.topic", RoutingKey: "private.x"}, nil, "private.x", "amq.topic"},
		{"exchange.unbind", &frame.ExchangeUnbind{Destination: "fan", Source: "amq.topic", RoutingKey: "public.x"}, &frame.ExchangeUnbindOk{}, "", ""},
		{"missing exchange: 404", &frame.QueueBind{Queue: "q", Exchange: "nope", RoutingKey: "#"}, nil, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			if tc.name == "queue.bind empty name" {
				// The empty queue name is the channel's last declared queue.
				h.method(1, &frame.QueueDeclare{Queue: "q"})
				expect[*frame.QueueDeclareOk](h, 1)
			}
			h.method(1, tc.m)
			if tc.ok != nil {
				r := h.next()
				if r.ch != 1 || r.m.Name() != tc.ok.Name() {
					t.Fatalf("got %s on %d, want %s", name(r), r.ch, tc.ok.Name())
				}
				return
			}
			cls, mid := tc.m.ID()
			if tc.x == "" {
				h.wantChanClose(1, frame.NotFound, "NOT_FOUND - no exchange 'nope' in vhost '/'", cls, mid)
			} else {
				h.wantChanClose(1, frame.AccessRefused, refusedText("read", tc.key, tc.x), cls, mid)
			}
			h.openChannel(1)
		})
	}
	h.t = t
	// The other channel never noticed.
	h.method(2, &frame.QueueDeclare{Queue: "q2"})
	expect[*frame.QueueDeclareOk](h, 2)
}

// Without permissions for the user, everything is allowed.
func TestTopicPermissionsOtherUser(t *testing.T) {
	st := memstore.New()
	rt, err := router.New(router.Config{Store: st, TopicPermissions: []router.TopicPermission{{User: "someone", Write: "", Read: ""}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	h := openHarness(t, New(Config{Router: rt}), st)
	h.handshake(0)
	h.openChannel(1)
	h.method(1, &frame.QueueDeclare{Queue: "q"})
	expect[*frame.QueueDeclareOk](h, 1)
	h.method(1, &frame.QueueBind{Queue: "q", Exchange: "amq.topic", RoutingKey: "#"})
	expect[*frame.QueueBindOk](h, 1)
	h.publish(1, &frame.BasicPublish{Exchange: "amq.topic", RoutingKey: "any.thing"}, nil, []byte("x"))
	if b, _, ok := h.getBody(1, "q", true); !ok || b != "x" {
		t.Fatalf("got %q %v", b, ok)
	}
}

// An allowed check allocates nothing, with or without permissions.
func TestTopicCheckAllocs(t *testing.T) {
	if raceEnabled {
		t.Skip("sync.Pool, and so regexp, allocates at random under the race detector")
	}
	h := newPermHarness(t, Config{})
	tc := &h.s.topics
	for _, c := range []struct {
		exchange, key string
		read          bool
	}{
		{"amq.topic", "public.a.b", false},
		{"amq.topic", "public.a", true},
		{"amq.direct", "k", false},
		{"amq.fanout", "k", false},
		{"", "q", false},
	} {
		if err := tc.Check(c.exchange, c.key, c.read); err != nil {
			t.Fatal(err)
		}
		if n := testing.AllocsPerRun(1000, func() { _ = tc.Check(c.exchange, c.key, c.read) }); n != 0 {
			t.Fatalf("check(%q, %q) allocates %.0f times", c.exchange, c.key, n)
		}
	}
}

func BenchmarkTopicCheck(b *testing.B) {
	for _, bc := range []struct{ name, exchange string }{
		{"permitted", "amq.topic"},
		{"no permissions", "amq.fanout"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			st := memstore.New()
			defer func() { _ = st.Close() }()
			rt, err := router.New(router.Config{Store: st, TopicPermissions: []router.TopicPermission{
				{User: "guest", Write: `^devices\.{username}\.`, Read: ".*"}}})
			if err != nil {
				b.Fatal(err)
			}
			tc := router.NewTopicChecker(rt.VHost("/"), "guest")
			b.ReportAllocs()
			for b.Loop() {
				if err := tc.Check(bc.exchange, "devices.guest.temp", false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
