package interop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	jamqp "github.com/junction-broker/junction/protocols/amqp"
)

// Connection-level behaviour (AMQP 0-9-1 §4.2.2–§4.2.7, RabbitMQ's
// rabbit_reader): protocol header, authentication, capabilities, tune,
// heartbeats, vhosts, close, update-secret.

// TestAMQPProtocolHeader: the right header gets connection.start; any
// other gets AMQP 0-9-1's header back and the socket closed (§4.2.2; a
// RabbitMQ 4 with AMQP 1.0 enabled offers its 1.0 header instead).
func TestAMQPProtocolHeader(t *testing.T) {
	b := startBroker(t)
	t.Run("0-9-1", func(t *testing.T) {
		r := dialRaw(t, b.addr)
		r.send([]byte(protocolHeader))
		p := r.expect(0, classConnection, 10).payload[4:]
		if p[0] != 0 || p[1] != 9 {
			t.Fatalf("connection.start version %d-%d, want 0-9", p[0], p[1])
		}
		p = p[2+4+binary.BigEndian.Uint32(p[2:]):] // server-properties
		mechs := string(p[4 : 4+binary.BigEndian.Uint32(p)])
		if mechs != "PLAIN AMQPLAIN" && mechs != "AMQPLAIN PLAIN" {
			t.Fatalf("mechanisms %q, want PLAIN and AMQPLAIN", mechs)
		}
	})
	for _, tc := range []struct{ name, header string }{
		{"0-10", "AMQP\x01\x01\x00\x0a"},
		{"0-8", "AMQP\x01\x01\x08\x00"},
		{"1.0", "AMQP\x00\x01\x00\x00"},
		{"http", "GET / HTTP/1.1\r\nHost: x\r\n\r\n"},
		{"frame before header", string(amqpFrame(frameMethod, 0, amqpMethod(classConnection, 11).b))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := dialRaw(t, b.addr)
			r.send([]byte(tc.header))
			_ = r.c.SetReadDeadline(time.Now().Add(waitFor))
			got := make([]byte, len(protocolHeader))
			if _, err := io.ReadFull(r.c, got); err != nil {
				t.Fatalf("reading the server's header: %v", err)
			}
			if string(got) != protocolHeader {
				t.Fatalf("server answered %q, want %q", got, protocolHeader)
			}
			if n, err := r.c.Read(make([]byte, 1)); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("socket still open after the header (read %d, %v)", n, err)
			}
		})
	}
}

// amqplain is an AMQPLAIN response: a field table without its length
// prefix, with LOGIN and PASSWORD as long strings.
func amqplain(user, pass string) string {
	w := &wire{}
	w.str("LOGIN").u8('S').long(user)
	w.str("PASSWORD").u8('S').long(pass)
	return string(w.b)
}

// TestAMQPAuth: PLAIN and AMQPLAIN log in with the right password and get
// connection.close 403 ACCESS_REFUSED with a wrong one, then the socket
// closes (authentication_failure_close).
func TestAMQPAuth(t *testing.T) {
	b := startBroker(t)
	for _, tc := range []struct {
		name string
		auth func(user, pass string) amqp.Authentication
		resp func(user, pass string) string
		mech string
	}{
		{"PLAIN", func(u, p string) amqp.Authentication { return &amqp.PlainAuth{Username: u, Password: p} },
			func(u, p string) string { return "\x00" + u + "\x00" + p }, "PLAIN"},
		{"AMQPLAIN", func(u, p string) amqp.Authentication { return &amqp.AMQPlainAuth{Username: u, Password: p} },
			amqplain, "AMQPLAIN"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			conn := dialConfig(t, "amqp://"+b.addr+"/", amqp.Config{SASL: []amqp.Authentication{tc.auth("guest", "guest")}})
			if m := conn.Config.SASL[0].Mechanism(); m != tc.mech {
				t.Fatalf("client used %s", m)
			}
			stillUsable(t, conn)

			if c, err := amqp.DialConfig("amqp://"+b.addr+"/", amqp.Config{SASL: []amqp.Authentication{tc.auth("guest", "wrong")}}); err == nil {
				_ = c.Close()
				t.Fatal("amqp091-go logged in with a wrong password")
			} else if codeOf(err) != amqp.AccessRefused {
				t.Fatalf("wrong password: %v", err)
			}

			for _, bad := range [][2]string{{"guest", "wrong"}, {"nobody", "guest"}, {"guest", ""}} {
				r := dialRaw(t, b.addr)
				r.startOk(rawOpts{mechanism: tc.mech, response: tc.resp(bad[0], bad[1])})
				r.wantConnClose(amqp.AccessRefused)
			}
			r := dialRaw(t, b.addr)
			r.handshake(rawOpts{mechanism: tc.mech, response: tc.resp("guest", "guest")})
		})
	}
}

// TestAMQPServerCapabilities: connection.start carries RabbitMQ's
// capabilities table, which clients use to decide what to rely on.
func TestAMQPServerCapabilities(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	caps, ok := conn.Properties["capabilities"].(amqp.Table)
	if !ok {
		t.Fatalf("server properties without a capabilities table: %v", conn.Properties)
	}
	for _, c := range []string{
		"publisher_confirms", "exchange_exchange_bindings", "basic.nack", "consumer_cancel_notify",
		"connection.blocked", "authentication_failure_close", "per_consumer_qos", "direct_reply_to",
	} {
		if v, ok := caps[c].(bool); !ok || !v {
			t.Errorf("capability %s = %v, want true", c, caps[c])
		}
	}
	for _, p := range []string{"product", "version", "platform"} {
		if s, _ := conn.Properties[p].(string); s == "" {
			t.Errorf("server property %s missing", p)
		}
	}
}

// TestAMQPTune: connection.tune offers the configured limits, the client's
// tune-ok has the last word, and a frame_max the client asks for bounds
// every frame the server sends it.
func TestAMQPTune(t *testing.T) {
	b := startBroker(t, func(c *jamqp.Config) {
		c.ChannelMax, c.FrameMax, c.Heartbeat = 16, 64<<10, 7*time.Second
	})

	t.Run("offer", func(t *testing.T) {
		r := dialRaw(t, b.addr)
		r.startOk(rawOpts{})
		cm, fm, hb := r.tuneOk(rawOpts{})
		if cm != 16 || fm != 64<<10 || hb != 7 {
			t.Fatalf("connection.tune channel-max %d frame-max %d heartbeat %d, want 16, 65536, 7", cm, fm, hb)
		}
		r.open("")
		r.expect(0, classConnection, 41)
	})

	t.Run("client limits", func(t *testing.T) {
		conn := dialConfig(t, b.guest(), amqp.Config{ChannelMax: 4, FrameSize: 8192})
		if conn.Config.ChannelMax != 4 || conn.Config.FrameSize != 8192 {
			t.Fatalf("negotiated channel-max %d frame-max %d", conn.Config.ChannelMax, conn.Config.FrameSize)
		}
		dflt := dialConfig(t, b.guest(), amqp.Config{})
		if dflt.Config.ChannelMax != 16 || dflt.Config.FrameSize != 64<<10 {
			t.Fatalf("client that asks nothing got channel-max %d frame-max %d", dflt.Config.ChannelMax, dflt.Config.FrameSize)
		}
	})

	t.Run("frame-max splits bodies", func(t *testing.T) {
		const frameMax = 4096
		r := dialRaw(t, b.addr)
		r.handshake(rawOpts{frameMax: frameMax})
		r.openChannel(1)
		r.declareQueue(1, "split")
		body := make([]byte, 10000)
		for i := range body {
			body[i] = byte(i * 7)
		}
		r.send(publishFrames(1, "split", body, frameMax-8))
		r.send(amqpMethodFrame(1, amqpMethod(classBasic, 70).u16(0).str("split").u8(1))) // basic.get no-ack
		r.expect(1, classBasic, 71)
		if f, err := r.read(); err != nil || f.typ != frameHeader {
			t.Fatalf("after get-ok: %v %+v", err, f)
		}
		var got []byte
		frames := 0
		for len(got) < len(body) {
			f, err := r.read()
			if err != nil {
				t.Fatal(err)
			}
			if f.typ != frameBody {
				t.Fatalf("frame type %d inside the content", f.typ)
			}
			if n := len(f.payload) + 8; n > frameMax {
				t.Fatalf("body frame of %d bytes, frame_max is %d", n, frameMax)
			}
			got = append(got, f.payload...)
			frames++
		}
		if !bytes.Equal(got, body) || frames != 3 {
			t.Fatalf("body of %d bytes in %d frames, want %d bytes in 3", len(got), frames, len(body))
		}
	})

	t.Run("large body with small frames", func(t *testing.T) {
		conn := dialConfig(t, b.guest(), amqp.Config{FrameSize: 4096})
		ch := newChannel(t, conn)
		q := declareQueue(t, ch, "", nil)
		big := make([]byte, 1<<20)
		rnd := rand.New(rand.NewPCG(1, 2))
		for i := range big {
			big[i] = byte(rnd.Uint32())
		}
		publishMsg(t, ch, "", q, amqp.Publishing{Body: big})
		d := recvN(t, consume(t, ch, q), 1)[0]
		if !bytes.Equal(d.Body, big) {
			t.Fatalf("large body: %d bytes back, not the ones sent", len(d.Body))
		}
		must(t, d.Ack(false))
	})
}

// TestAMQPHeartbeats: a client with a short heartbeat stays connected
// while idle; a client that goes silent is dropped after two intervals.
func TestAMQPHeartbeats(t *testing.T) {
	b := startBroker(t)

	t.Run("idle client stays", func(t *testing.T) {
		t.Parallel()
		conn := dialConfig(t, b.guest(), amqp.Config{Heartbeat: time.Second})
		if conn.Config.Heartbeat != time.Second {
			t.Fatalf("negotiated heartbeat %v", conn.Config.Heartbeat)
		}
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		select {
		case e := <-closed:
			t.Fatalf("idle connection with 1s heartbeats closed: %v", e)
		case <-time.After(3500 * time.Millisecond): // more than three intervals idle
		}
		stillUsable(t, conn)
	})

	t.Run("silent client dropped", func(t *testing.T) {
		t.Parallel()
		r := dialRaw(t, b.addr)
		r.handshake(rawOpts{heartbeat: 1})
		start := time.Now()
		beats := 0
		for end := start.Add(waitFor); ; r.before(end) {
			f, err := r.read()
			if err != nil {
				break
			}
			if f.typ == frameHeartbeat {
				beats++
			}
		}
		took := time.Since(start)
		if took < 1500*time.Millisecond || took > 6*time.Second {
			t.Fatalf("silent client dropped after %v, want about two 1s intervals", took)
		}
		if beats == 0 {
			t.Fatal("the server sent no heartbeat to a silent client")
		}
	})
}

// TestAMQPVhosts: connection.open of an unknown vhost, or of one the user
// may not use, is refused with 530 NOT_ALLOWED and the socket closes.
func TestAMQPVhosts(t *testing.T) {
	b := startBroker(t)
	done := make(chan error, 1)
	b.rt.AddVHost("other", func(err error) { done <- err })
	select {
	case err := <-done:
		must(t, err)
	case <-time.After(waitFor):
		t.Fatal("AddVHost not done")
	}
	for _, vhost := range []string{"nope", "other"} {
		t.Run(vhost, func(t *testing.T) {
			r := dialRaw(t, b.addr)
			r.startOk(rawOpts{})
			r.tuneOk(rawOpts{})
			r.open(vhost)
			r.wantConnClose(amqp.NotAllowed)

			if c, err := amqp.DialConfig(b.guest(), amqp.Config{Vhost: vhost}); err == nil {
				_ = c.Close()
				t.Fatalf("amqp091-go opened vhost %q", vhost)
			}
		})
	}
}

// TestAMQPClose: connection.close and channel.close work both ways.
func TestAMQPClose(t *testing.T) {
	b := startBroker(t)

	t.Run("client closes connection", func(t *testing.T) {
		conn, err := dialWatched(t, b.guest(), amqp.Config{})
		must(t, err)
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		must(t, conn.Close())
		select {
		case e, ok := <-closed:
			if ok && e != nil {
				t.Fatalf("clean close reported %v", e)
			}
		case <-time.After(waitFor):
			t.Fatal("no close notification")
		}

		r := dialRaw(t, b.addr)
		r.handshake(rawOpts{})
		r.send(amqpMethodFrame(0, amqpMethod(classConnection, 50).u16(200).str("bye").u16(0).u16(0)))
		r.expect(0, classConnection, 51)
	})

	t.Run("client closes channel", func(t *testing.T) {
		r := dialRaw(t, b.addr)
		r.handshake(rawOpts{})
		r.openChannel(1)
		r.send(amqpMethodFrame(1, amqpMethod(classChannel, 40).u16(200).str("bye").u16(0).u16(0)))
		r.expect(1, classChannel, 41)
		r.openChannel(1) // the number is free again
		r.declareQueue(1, "")
	})

	t.Run("server closes channel", func(t *testing.T) {
		r := dialRaw(t, b.addr)
		r.handshake(rawOpts{})
		r.openChannel(1)
		r.send(amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).str("missing").u8(1).table())) // passive
		f := r.expect(1, classChannel, 40)
		if c := f.closeReason(); c.code != amqp.NotFound || c.class != classQueue || c.methodID != 10 {
			t.Fatalf("channel.close %+v, want 404 for queue.declare", c)
		}
		// Until close-ok the channel's frames are discarded (§4.2.4), content
		// included, without another error.
		r.send(publishFrames(1, "anywhere", []byte("discarded"), 100))
		r.send(amqpMethodFrame(1, amqpMethod(classQueue, 10).u16(0).str("missing").u8(1).table()))
		r.send(amqpMethodFrame(1, amqpMethod(classChannel, 41)))
		r.openChannel(1)
		r.declareQueue(1, "")
	})

	t.Run("server closes connection", func(t *testing.T) {
		b := startBroker(t)
		conn := dialConfig(t, b.guest(), amqp.Config{})
		closed := conn.NotifyClose(make(chan *amqp.Error, 1))
		b.stop()
		e := wantClose(t, closed, amqp.ConnectionForced)
		if !e.Server {
			t.Fatalf("close %v not from the server", e)
		}
	})
}

// TestAMQPChannelFlow: channel.flow active=true is confirmed; RabbitMQ
// does not implement active=false (540, a connection error).
func TestAMQPChannelFlow(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	ch := newChannel(t, conn)
	must(t, ch.Flow(true))
	stillUsable(t, conn)

	closed := conn.NotifyClose(make(chan *amqp.Error, 1))
	_ = ch.Flow(false)
	wantClose(t, closed, amqp.NotImplemented)
}

// TestAMQPUpdateSecret: connection.update-secret with the user's password
// is accepted and the connection goes on; a wrong one closes it with 530.
func TestAMQPUpdateSecret(t *testing.T) {
	b := startBroker(t)
	conn := dialConfig(t, b.guest(), amqp.Config{})
	if err := conn.UpdateSecret("guest", "rotation"); err != nil {
		t.Fatalf("update-secret with the right password: %v", err)
	}
	stillUsable(t, conn)

	bad := dialConfig(t, b.guest(), amqp.Config{})
	closed := bad.NotifyClose(make(chan *amqp.Error, 1))
	if err := bad.UpdateSecret("wrong", "rotation"); err == nil {
		t.Fatal("update-secret with a wrong password succeeded")
	}
	wantClose(t, closed, amqp.NotAllowed)
	stillUsable(t, conn)
}
