package interop

import (
	"context"
	"net"
	"net/url"
	"slices"
	"strconv"
	"testing"
	"time"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
)

// Wills. The keepalive-timeout case is in TestMQTTKeepalive, DISCONNECT
// with reason 0x04 in TestMQTTDisconnect.

// dialed makes paho.mqtt.golang dial through net.Dial and hand the socket
// to the test, which can then end the connection without a DISCONNECT.
func dialed(o *mqtt3.ClientOptions) <-chan net.Conn {
	conns := make(chan net.Conn, 1)
	o.SetCustomOpenConnectionFn(func(u *url.URL, _ mqtt3.ClientOptions) (net.Conn, error) {
		c, err := net.Dial("tcp", u.Host)
		if err == nil {
			conns <- c
		}
		return c, err
	})
	return conns
}

// willConnect5 is an MQTT 5 CONNECT (clean start, keepalive 60 s) with w
// as its will; w's properties are the will properties.
func willConnect5(id string, w *pk5.Publish) []byte {
	str := func(b []byte, s []byte) []byte { return append(append(b, byte(len(s)>>8), byte(len(s))), s...) }
	flags := byte(0x06) | w.QoS<<3
	if w.Retain {
		flags |= 0x20
	}
	props := w.Properties.Pack(pk5.PUBLISH)
	body := []byte{0, 4, 'M', 'Q', 'T', 'T', 5, flags, 0, 60, 0} // no CONNECT properties
	body = str(body, []byte(id))
	body = append(varint(body, len(props)), props...)
	body = str(body, []byte(w.Topic))
	body = str(body, w.Payload)
	return append(varint([]byte{0x10}, len(body)), body...)
}

// varint appends n as an MQTT variable byte integer.
func varint(b []byte, n int) []byte {
	for {
		c := byte(n & 0x7f)
		n >>= 7
		if n > 0 {
			c |= 0x80
		}
		b = append(b, c)
		if n == 0 {
			return b
		}
	}
}

// TestMQTTWill: a will is published when the connection ends without a
// DISCONNECT (3.1, 3.1.1, 5.0), at its QoS and retained if asked, and not
// after a normal DISCONNECT; an MQTT 5 will carries its properties.
func TestMQTTWill(t *testing.T) {
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	watch := open5(ctx, t, addr, &paho.Connect{ClientID: "will-watch", CleanStart: true}, opts5{})
	sub5(ctx, t, watch, paho.SubscribeOptions{Topic: "will/#", QoS: 2})

	for _, v := range []uint{3, 4} {
		// Distinct client ids: a takeover of a connection whose DISCONNECT
		// the broker has not read yet would publish its will.
		o := opts3(addr, "will3-abnormal-"+strconv.Itoa(int(v)), v, true, nil).SetWill("will/3", "abnormal", 2, false)
		conns := dialed(o)
		open3(t, o)
		_ = (<-conns).Close()
		if m := next5(t, watch); m.Topic != "will/3" || string(m.Payload) != "abnormal" || m.QoS != 2 {
			t.Fatalf("level %d: will %q on %q at QoS %d", v, m.Payload, m.Topic, m.QoS)
		}
		c, _ := open3(t, opts3(addr, "will3-normal-"+strconv.Itoa(int(v)), v, true, nil).SetWill("will/3", "after DISCONNECT", 1, false))
		c.Disconnect(100)
	}
	c5 := open5(ctx, t, addr, &paho.Connect{ClientID: "will5-normal", CleanStart: true,
		WillMessage: &paho.WillMessage{Topic: "will/5", Payload: []byte("after DISCONNECT"), QoS: 1}}, opts5{})
	_ = c5.Disconnect(&paho.Disconnect{})
	pub5(ctx, t, watch, &paho.Publish{Topic: "will/marker", QoS: 1, Payload: []byte("marker")})
	if m := next5(t, watch); string(m.Payload) != "marker" {
		t.Fatalf("got %q on %q after normal DISCONNECTs, want none", m.Payload, m.Topic)
	}
	none5(t, watch)

	// MQTT 5 will properties, and a retained will. The CONNECT is written
	// by hand around paho.golang's property codec: paho.golang v0.22
	// packs will properties with the CONNECT rules, which drop all but User
	// Property and Will Delay Interval.
	pf, exp := byte(1), uint32(600)
	user := []pk5.User{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}, {Key: "a", Value: "3"}}
	r := dialRaw5(t, addr)
	rawWrite(t, r.c, willConnect5("will5", &pk5.Publish{Topic: "will/5", Payload: []byte("gone"), QoS: 1, Retain: true,
		Properties: &pk5.Properties{PayloadFormat: &pf, MessageExpiry: &exp, ContentType: "text/plain",
			ResponseTopic: "will/reply", CorrelationData: []byte{1, 2, 3}, User: user}}))
	if ack, ok := r.read().Content.(*pk5.Connack); !ok || ack.ReasonCode != 0 {
		t.Fatalf("CONNACK %v", ack)
	}
	_ = r.c.Close()
	m := next5(t, watch)
	if m.Topic != "will/5" || string(m.Payload) != "gone" || m.QoS != 1 {
		t.Fatalf("will %q on %q at QoS %d", m.Payload, m.Topic, m.QoS)
	}
	p := m.Properties
	if p == nil || p.PayloadFormat == nil || *p.PayloadFormat != 1 || p.MessageExpiry == nil || *p.MessageExpiry > 600 || *p.MessageExpiry < 590 ||
		p.ContentType != "text/plain" || p.ResponseTopic != "will/reply" || string(p.CorrelationData) != "\x01\x02\x03" ||
		!slices.Equal(p.User, append(paho.UserProperties{{Key: "k", Value: "1"}, {Key: "k", Value: "2"}, {Key: "a", Value: "3"}}, provenance5("will5")...)) {
		t.Fatalf("will properties %+v", p)
	}
	late := open5(ctx, t, addr, &paho.Connect{ClientID: "will-late", CleanStart: true}, opts5{})
	sub5(ctx, t, late, paho.SubscribeOptions{Topic: "will/5", QoS: 1})
	if m := next5(t, late); string(m.Payload) != "gone" || !m.Retain || m.Properties.ContentType != "text/plain" {
		t.Fatalf("retained will %q retain %v properties %+v", m.Payload, m.Retain, m.Properties)
	}
}

// TestMQTTWillDelay: an MQTT 5 will waits Will Delay Interval seconds, or
// until the session ends if that is sooner, and a reconnect within the
// delay cancels it. It waits for the broker's timer: about 1 s.
func TestMQTTWillDelay(t *testing.T) {
	t.Parallel()
	addr, _ := startMQTT(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*waitFor)
	defer cancel()
	watch := open5(ctx, t, addr, &paho.Connect{ClientID: "wd-watch", CleanStart: true}, opts5{})
	sub5(ctx, t, watch, paho.SubscribeOptions{Topic: "wd/#", QoS: 1})
	conn := func(id string, delay, expiry uint32) *paho.Connect {
		return &paho.Connect{ClientID: id, CleanStart: false,
			Properties:     &paho.ConnectProperties{SessionExpiryInterval: &expiry},
			WillMessage:    &paho.WillMessage{Topic: "wd/" + id, Payload: []byte(id), QoS: 1},
			WillProperties: &paho.WillProperties{WillDelayInterval: &delay}}
	}
	delayed := open5(ctx, t, addr, conn("delayed", 1, 60), opts5{})
	resumed := open5(ctx, t, addr, conn("resumed", 1, 60), opts5{})
	ending := open5(ctx, t, addr, conn("ending", 60, 1), opts5{})
	now := open5(ctx, t, addr, conn("now", 60, 0), opts5{}) // no session to outlive the connection
	start := time.Now()
	for _, c := range []*client5{delayed, resumed, ending, now} {
		_ = c.conn.Close()
	}
	if m := next5(t, watch); string(m.Payload) != "now" {
		t.Fatalf("first will %q, want now's", m.Payload)
	}
	open5(ctx, t, addr, conn("resumed", 1, 60), opts5{})
	got := map[string]bool{}
	for range 2 {
		m := next5(t, watch)
		got[string(m.Payload)] = true
	}
	if el := time.Since(start); el < 900*time.Millisecond {
		t.Errorf("delayed wills after %v, before their 1 s", el)
	}
	if !got["delayed"] || !got["ending"] {
		t.Fatalf("wills %v, want delayed's and ending's", got)
	}
	none5(t, watch) // resumed's will was cancelled
}
