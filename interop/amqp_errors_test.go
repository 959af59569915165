package interop

import (
	"context"
	"errors"
	"io"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// Error handling with RabbitMQ's reply codes (AMQP 0-9-1 §1.5.1 and
// rabbit_channel/rabbit_reader): soft errors close only the channel, hard
// errors the connection, and no bad input disturbs other connections.

// TestAMQPSoftErrors: each error closes its channel with the right code
// and leaves the connection usable.
func TestAMQPSoftErrors(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	setup := newChannel(t, conn)
	must(t, setup.ExchangeDeclare("soft.x", "direct", false, false, false, false, nil))
	must(t, setup.ExchangeDeclare("soft.internal", "fanout", false, false, true, false, nil))
	_, err := setup.QueueDeclare("soft.durable", true, false, false, false, nil)
	must(t, err)
	_, err = setup.QueueDeclare("soft.ttl", false, false, false, false, amqp.Table{"x-message-ttl": int32(1000)})
	must(t, err)

	// A queue another connection holds exclusively.
	other := newChannel(t, dialConfig(t, b.guest(), amqp.Config{}))
	_, err = other.QueueDeclare("soft.exclusive", false, false, true, false, nil)
	must(t, err)

	for _, tc := range []struct {
		name string
		code int
		do   func(t *testing.T, ch *amqp.Channel) error // nil error: the close comes asynchronously
	}{
		{"passive declare of a missing queue", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive("soft.missing", false, false, false, false, nil)
			return err
		}},
		{"passive declare of a missing exchange", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDeclarePassive("soft.missing", "direct", false, false, false, false, nil)
		}},
		{"bind to a missing exchange", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			return ch.QueueBind("soft.durable", "k", "soft.missing", false, nil)
		}},
		{"bind a missing queue", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			return ch.QueueBind("soft.missing", "k", "soft.x", false, nil)
		}},
		{"exchange bind from a missing exchange", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeBind("soft.x", "k", "soft.missing", false, nil)
		}},
		{"consume from a missing queue", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.Consume("soft.missing", "", false, false, false, false, nil)
			return err
		}},
		{"get from a missing queue", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			_, _, err := ch.Get("soft.missing", false)
			return err
		}},
		{"publish to a missing exchange", amqp.NotFound, func(t *testing.T, ch *amqp.Channel) error {
			return ch.PublishWithContext(context.Background(), "soft.missing", "k", false, false, amqp.Publishing{Body: []byte("x")})
		}},

		{"declare an amq. queue", amqp.AccessRefused, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("amq.mine", false, false, false, false, nil)
			return err
		}},
		{"declare an amq. exchange", amqp.AccessRefused, func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDeclare("amq.mine", "direct", false, false, false, false, nil)
		}},
		{"delete amq.direct", amqp.AccessRefused, func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDelete("amq.direct", false, false)
		}},
		{"bind to the default exchange", amqp.AccessRefused, func(t *testing.T, ch *amqp.Channel) error {
			return ch.QueueBind("soft.durable", "k", "", false, nil)
		}},
		{"publish to an internal exchange", amqp.AccessRefused, func(t *testing.T, ch *amqp.Channel) error {
			return ch.PublishWithContext(context.Background(), "soft.internal", "", false, false, amqp.Publishing{Body: []byte("x")})
		}},

		{"declare another connection's exclusive queue", amqp.ResourceLocked, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("soft.exclusive", false, false, true, false, nil)
			return err
		}},
		{"passive declare of another connection's exclusive queue", amqp.ResourceLocked, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDeclarePassive("soft.exclusive", false, false, true, false, nil)
			return err
		}},
		{"consume from another connection's exclusive queue", amqp.ResourceLocked, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.Consume("soft.exclusive", "", false, false, false, false, nil)
			return err
		}},
		{"get from another connection's exclusive queue", amqp.ResourceLocked, func(t *testing.T, ch *amqp.Channel) error {
			_, _, err := ch.Get("soft.exclusive", false)
			return err
		}},
		{"purge another connection's exclusive queue", amqp.ResourceLocked, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueuePurge("soft.exclusive", false)
			return err
		}},
		{"delete another connection's exclusive queue", amqp.ResourceLocked, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDelete("soft.exclusive", false, false, false)
			return err
		}},
		{"bind another connection's exclusive queue", amqp.ResourceLocked, func(t *testing.T, ch *amqp.Channel) error {
			return ch.QueueBind("soft.exclusive", "k", "soft.x", false, nil)
		}},

		{"redeclare a queue with another durable", amqp.PreconditionFailed, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("soft.durable", false, false, false, false, nil)
			return err
		}},
		{"redeclare a queue with other arguments", amqp.PreconditionFailed, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("soft.ttl", false, false, false, false, amqp.Table{"x-message-ttl": int32(2000)})
			return err
		}},
		{"redeclare an exchange with another type", amqp.PreconditionFailed, func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDeclare("soft.x", "topic", false, false, false, false, nil)
		}},
		{"redeclare an exchange with another durable", amqp.PreconditionFailed, func(t *testing.T, ch *amqp.Channel) error {
			return ch.ExchangeDeclare("soft.x", "direct", true, false, false, false, nil)
		}},
		{"declare a queue with a bad argument", amqp.PreconditionFailed, func(t *testing.T, ch *amqp.Channel) error {
			_, err := ch.QueueDeclare("soft.bad-arg", false, false, false, false, amqp.Table{"x-max-priority": "high"})
			return err
		}},
		{"ack an unknown delivery tag", amqp.PreconditionFailed, func(t *testing.T, ch *amqp.Channel) error {
			return ch.Ack(42, false)
		}},
		{"ack a delivery twice", amqp.PreconditionFailed, func(t *testing.T, ch *amqp.Channel) error {
			q := declareQueue(t, ch, "", nil)
			publish(t, ch, "", q, "once")
			d, ok, err := ch.Get(q, false)
			if err != nil || !ok {
				t.Fatalf("get: %v %v", ok, err)
			}
			must(t, d.Ack(false))
			return d.Ack(false)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := newChannel(t, conn)
			closed := ch.NotifyClose(make(chan *amqp.Error, 1))
			if err := tc.do(t, ch); err != nil {
				wantCode(t, err, tc.code)
			}
			if e := wantClose(t, closed, tc.code); !e.Server {
				t.Fatalf("channel close %v not from the server", e)
			}
			if conn.IsClosed() {
				t.Fatalf("soft error %d closed the connection", tc.code)
			}
			stillUsable(t, conn)
		})
	}
}

// connErrorCase is one way to make the server close the connection.
type connErrorCase struct {
	name string
	code uint16
	alt  uint16 // another acceptable code, where RabbitMQ and the spec differ
	// Either client misbehaves through amqp091-go,
	client func(t *testing.T, ch *amqp.Channel) error
	// or raw does over a raw connection after a handshake with opts
	// (none with noHandshake).
	opts        rawOpts
	noHandshake bool
	raw         func(r *rawConn)
	// expect replaces the check for connection.close with code.
	expect func(t *testing.T, r *rawConn)
}

// TestAMQPHardErrors: each error closes the connection with
// connection.close and the right code, then the socket; a connection
// opened before it (the bystander) goes on publishing and consuming.
// The first six cases are the malformed-input classes.
func TestAMQPHardErrors(t *testing.T) {
	b := startBroker(t)
	for _, tc := range []connErrorCase{
		{name: "malformed: garbage protocol header", noHandshake: true,
			raw: func(r *rawConn) { r.send([]byte("\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")) }, // a TLS hello
			expect: func(t *testing.T, r *rawConn) {
				got := make([]byte, len(protocolHeader))
				_ = r.c.SetReadDeadline(time.Now().Add(waitFor))
				if _, err := io.ReadFull(r.c, got); err != nil || string(got) != protocolHeader {
					t.Fatalf("answer %q (%v), want %q", got, err, protocolHeader)
				}
				if n, err := r.c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
					t.Fatalf("socket still open after the header (read %d, %v)", n, err)
				}
			}},
		{name: "malformed: oversize frame", code: amqp.FrameError,
			raw: func(r *rawConn) {
				h := []byte{frameMethod, 0, 1, 0x01, 0, 0, 0} // 16 MiB declared, frame_max is 128 KiB
				_ = r.trySend(h, make([]byte, 1024))
			}},
		{name: "malformed: frame on a closed channel", code: amqp.ChannelError,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpMethodFrame(1, amqpMethod(classChannel, 40).u16(200).str("").u16(0).u16(0)))
				r.expect(1, classChannel, 41)
				r.send(amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).str("q").u8(0).table()))
			}},
		{name: "malformed: content body without header", code: amqp.UnexpectedFrame,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpFrame(frameBody, 1, []byte("orphan body")))
			}},
		{name: "malformed: channel method on channel 0", code: amqp.ChannelError, // rabbit_reader: "unexpected method in connection state running"
			raw: func(r *rawConn) {
				r.send(amqpMethodFrame(0, amqpMethod(classQueue, 10).u16(0).str("q").u8(0).table()))
			}},
		{name: "malformed: unknown class", code: amqp.NotImplemented,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpMethodFrame(1, amqpMethod(999, 10).u32(0)))
			}},
		{name: "malformed: unknown method", code: amqp.NotImplemented,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpMethodFrame(1, amqpMethod(classQueue, 99).u32(0)))
			}},

		{name: "501 frame end is not 0xCE", code: amqp.FrameError,
			raw: func(r *rawConn) {
				f := amqpMethodFrame(0, amqpMethod(classConnection, 50).u16(200).str("").u16(0).u16(0))
				f[len(f)-1] = 0xCD
				r.send(f)
			}},
		{name: "501 unknown frame type", code: amqp.FrameError,
			raw: func(r *rawConn) { r.send(amqpFrame(9, 0, []byte{1, 2, 3})) }},
		{name: "501 frame larger than the negotiated frame_max", code: amqp.FrameError, opts: rawOpts{frameMax: 4096},
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.declareQueue(1, "hard.big")
				r.send(publishFrames(1, "hard.big", make([]byte, 6000), 6000))
			}},
		{name: "501 truncated method arguments", code: amqp.FrameError,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).u8(200).u8('q')))
			}},
		{name: "502 PLAIN response without separators", code: amqp.SyntaxError, noHandshake: true,
			raw: func(r *rawConn) { r.startOk(rawOpts{mechanism: "PLAIN", response: "guestguest"}) }},
		{name: "503 unknown exchange type", code: amqp.CommandInvalid,
			client: func(t *testing.T, ch *amqp.Channel) error {
				return ch.ExchangeDeclare("hard.x", "no-such-type", false, false, false, false, nil)
			}},
		{name: "503 server method from the client", code: amqp.CommandInvalid,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpMethodFrame(1, amqpMethod(classBasic, 11))) // basic.qos-ok
			}},
		{name: "504 method on a channel never opened", code: amqp.ChannelError,
			raw: func(r *rawConn) {
				r.send(amqpMethodFrame(7, amqpMethod(classQueue, 10).u16(0).str("q").u8(0).table()))
			}},
		{name: "504 second channel.open", code: amqp.ChannelError,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpMethodFrame(1, amqpMethod(classChannel, 10).str("")))
			}},
		{name: "505 method instead of a content header", code: amqp.UnexpectedFrame,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpMethodFrame(1, amqpMethod(classBasic, 40).u16(0).str("").str("q").u8(0)))
				r.send(amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).str("q").u8(0).table()))
			}},
		{name: "505 content header on channel 0", code: amqp.UnexpectedFrame,
			raw: func(r *rawConn) { r.send(contentHeader(0, 1)) }},
		// AMQP 0-9-1 §4.2.7 says 501 for a heartbeat on a channel;
		// RabbitMQ's rabbit_reader answers 505 (unexpected_frame).
		{name: "501 or 505 heartbeat on a channel", code: amqp.FrameError, alt: amqp.UnexpectedFrame,
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.send(amqpFrame(frameHeartbeat, 1, nil))
			}},
		{name: "530 channel above channel_max", code: amqp.NotAllowed, opts: rawOpts{channelMax: 2},
			raw: func(r *rawConn) {
				r.openChannel(1)
				r.openChannel(2)
				r.send(amqpMethodFrame(3, amqpMethod(classChannel, 10).str("")))
			}},
		{name: "530 frame_max below the minimum", code: amqp.NotAllowed, noHandshake: true,
			raw: func(r *rawConn) {
				r.startOk(rawOpts{})
				r.tuneOk(rawOpts{frameMax: 1024})
			}},
		{name: "530 frame_max above the server's", code: amqp.NotAllowed, noHandshake: true,
			raw: func(r *rawConn) {
				r.startOk(rawOpts{})
				r.tuneOk(rawOpts{frameMax: 1 << 30})
			}},
		{name: "530 unknown vhost", code: amqp.NotAllowed, noHandshake: true,
			raw: func(r *rawConn) {
				r.startOk(rawOpts{})
				r.tuneOk(rawOpts{})
				r.open("no-such-vhost")
			}},
		{name: "540 basic.publish immediate=true", code: amqp.NotImplemented,
			client: func(t *testing.T, ch *amqp.Channel) error {
				q := declareQueue(t, ch, "", nil)
				return ch.PublishWithContext(context.Background(), "", q, false, true, amqp.Publishing{Body: []byte("now")})
			}},
		{name: "540 basic.qos prefetch_size", code: amqp.NotImplemented,
			client: func(t *testing.T, ch *amqp.Channel) error { return ch.Qos(0, 4096, false) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			by := newBystander(t, b.guest())
			if tc.client != nil {
				conn := dialConfig(t, b.guest(), amqp.Config{})
				closed := conn.NotifyClose(make(chan *amqp.Error, 1))
				if err := tc.client(t, newChannel(t, conn)); err != nil {
					wantCode(t, err, int(tc.code))
				}
				wantClose(t, closed, int(tc.code))
			} else {
				r := dialRaw(t, b.addr)
				if !tc.noHandshake {
					r.handshake(tc.opts)
				}
				tc.raw(r)
				if tc.expect != nil {
					tc.expect(t, r)
				} else if c := r.expectConnClose(); c.code != tc.code && (tc.alt == 0 || c.code != tc.alt) {
					t.Fatalf("connection.close %d %q, want reply code %d", c.code, c.text, tc.code)
				}
			}
			by.check(t)
		})
	}
}
