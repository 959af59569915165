package interop

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

func dial(t *testing.T, url string) (*amqp.Connection, *amqp.Channel) {
	t.Helper()
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	ch, err := conn.Channel()
	if err != nil {
		t.Fatalf("channel: %v", err)
	}
	return conn, ch
}

func recvOne(t *testing.T, c <-chan amqp.Delivery) amqp.Delivery {
	t.Helper()
	select {
	case d, ok := <-c:
		if !ok {
			t.Fatal("delivery channel closed")
		}
		return d
	case <-time.After(10 * time.Second):
		t.Fatal("timed out waiting for a delivery")
	}
	return amqp.Delivery{}
}

func TestAMQPRoundTrip(t *testing.T) {
	url, _ := startAMQP(t)
	conn, ch := dial(t, url("guest:guest"))
	if p := conn.Properties["product"]; p != "Junction" {
		t.Fatalf("server product %v", p)
	}
	q, err := ch.QueueDeclare("rt", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.ExchangeDeclare("rtx", "topic", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "a.#", "rtx", false, nil); err != nil {
		t.Fatal(err)
	}
	ts := time.Unix(1700000000, 0).UTC()
	pub := amqp.Publishing{
		Headers:         amqp.Table{"s": "v", "i": int32(42), "l": int64(1 << 40), "b": true, "t": amqp.Table{"x": "y"}, "a": []any{"p", int32(1)}},
		ContentType:     "application/json",
		ContentEncoding: "gzip",
		DeliveryMode:    amqp.Persistent,
		Priority:        3,
		CorrelationId:   "corr",
		ReplyTo:         "reply",
		Expiration:      "60000",
		MessageId:       "mid",
		Timestamp:       ts,
		Type:            "kind",
		UserId:          "guest",
		AppId:           "app",
		Body:            []byte(`{"hello":"world"}`),
	}
	ctx := context.Background()
	if err := ch.PublishWithContext(ctx, "rtx", "a.b.c", false, false, pub); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(q.Name, "", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	d := recvOne(t, msgs)
	if string(d.Body) != string(pub.Body) || d.Exchange != "rtx" || d.RoutingKey != "a.b.c" || d.Redelivered {
		t.Fatalf("delivery %+v", d)
	}
	got := fmt.Sprint(d.ContentType, d.ContentEncoding, d.DeliveryMode, d.Priority, d.CorrelationId, d.ReplyTo,
		d.Expiration, d.MessageId, d.Timestamp.UTC(), d.Type, d.UserId, d.AppId, d.Headers)
	// The headers as published, and the broker's provenance.
	wantHeaders := maps.Clone(pub.Headers)
	wantHeaders["x-junction-protocol"], wantHeaders["x-junction-user"] = "amqp", "guest"
	wantHeaders["x-junction-client"] = conn.LocalAddr().String()
	want := fmt.Sprint(pub.ContentType, pub.ContentEncoding, pub.DeliveryMode, pub.Priority, pub.CorrelationId, pub.ReplyTo,
		pub.Expiration, pub.MessageId, pub.Timestamp, pub.Type, pub.UserId, pub.AppId, wantHeaders)
	if got != want {
		t.Fatalf("properties\n got %s\nwant %s", got, want)
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
	// A large body crosses several frames both ways.
	big := make([]byte, 300000)
	for i := range big {
		big[i] = byte(i)
	}
	if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: big}); err != nil {
		t.Fatal(err)
	}
	d = recvOne(t, msgs)
	if string(d.Body) != string(big) {
		t.Fatalf("large body: %d bytes back", len(d.Body))
	}
	if err := d.Ack(false); err != nil {
		t.Fatal(err)
	}
}

func TestAMQPConfirmsAndMandatory(t *testing.T) {
	url, _ := startAMQP(t)
	_, ch := dial(t, url("guest:guest"))
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	confirms := ch.NotifyPublish(make(chan amqp.Confirmation, 100))
	returns := ch.NotifyReturn(make(chan amqp.Return, 1))
	if _, err := ch.QueueDeclare("c", true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 20 {
		if err := ch.PublishWithContext(ctx, "", "c", false, false, amqp.Publishing{DeliveryMode: amqp.Persistent, Body: []byte{byte(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 20 {
		select {
		case c := <-confirms:
			if !c.Ack || c.DeliveryTag != uint64(i+1) {
				t.Fatalf("confirm %+v, want ack %d", c, i+1)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("confirm %d missing", i+1)
		}
	}
	if err := ch.PublishWithContext(ctx, "amq.direct", "nowhere", true, false, amqp.Publishing{MessageId: "m", Body: []byte("lost")}); err != nil {
		t.Fatal(err)
	}
	select {
	case r := <-returns:
		if r.ReplyCode != amqp.NoRoute || r.ReplyText != "NO_ROUTE" || string(r.Body) != "lost" || r.MessageId != "m" {
			t.Fatalf("return %+v", r)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no basic.return")
	}
	if c := <-confirms; !c.Ack || c.DeliveryTag != 21 {
		t.Fatalf("confirm of the returned message %+v", c)
	}
}

func TestAMQPPrefetchAndNackRequeue(t *testing.T) {
	url, _ := startAMQP(t)
	_, ch := dial(t, url("guest:guest"))
	q, err := ch.QueueDeclare("", false, false, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	for i := range 5 {
		if err := ch.PublishWithContext(ctx, "", q.Name, false, false, amqp.Publishing{Body: []byte{byte('0' + i)}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := ch.Qos(2, 0, false); err != nil {
		t.Fatal(err)
	}
	msgs, err := ch.Consume(q.Name, "pf", false, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	first, second := recvOne(t, msgs), recvOne(t, msgs)
	select {
	case d := <-msgs:
		t.Fatalf("third delivery %q beyond prefetch 2", d.Body)
	case <-time.After(200 * time.Millisecond):
	}
	if err := second.Ack(false); err != nil {
		t.Fatal(err)
	}
	third := recvOne(t, msgs)
	if string(third.Body) != "2" {
		t.Fatalf("third %q", third.Body)
	}
	// Nack with requeue: the message comes back marked redelivered.
	if err := first.Nack(false, true); err != nil {
		t.Fatal(err)
	}
	again := recvOne(t, msgs)
	if string(again.Body) != "0" || !again.Redelivered {
		t.Fatalf("requeued %q redelivered=%v", again.Body, again.Redelivered)
	}
	if err := ch.Cancel("pf", false); err != nil {
		t.Fatal(err)
	}
}

func TestAMQPErrors(t *testing.T) {
	url, _ := startAMQP(t)
	conn, ch := dial(t, url("guest:guest"))
	if _, err := ch.QueueDeclare("excl", false, false, true, false, nil); err != nil {
		t.Fatal(err)
	}

	// 405 from a second connection, closing only its channel.
	conn2, ch2 := dial(t, url("guest:guest"))
	_, err := ch2.QueueDeclare("excl", false, false, true, false, nil)
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.ResourceLocked {
		t.Fatalf("exclusive queue from another connection: %v", err)
	}
	if conn2.IsClosed() {
		t.Fatal("405 closed the connection")
	}

	// 404 on a passive declare closes only the channel.
	closed := ch.NotifyClose(make(chan *amqp.Error, 1))
	_, err = ch.QueueDeclarePassive("missing", false, false, false, false, nil)
	if !errors.As(err, &ae) || ae.Code != amqp.NotFound || ae.Server != true {
		t.Fatalf("passive declare of a missing queue: %v", err)
	}
	select {
	case e := <-closed:
		if e == nil || e.Code != amqp.NotFound {
			t.Fatalf("channel closed with %v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("channel not closed")
	}
	if conn.IsClosed() {
		t.Fatal("404 closed the connection")
	}
	ch3, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ch3.QueueDeclarePassive("excl", false, false, true, false, nil); err != nil {
		t.Fatalf("connection unusable after a channel error: %v", err)
	}

	// Wrong password: a connection error.
	if c, err := amqp.Dial(url("guest:wrong")); err == nil {
		_ = c.Close()
		t.Fatal("login with a wrong password succeeded")
	} else if !errors.Is(err, amqp.ErrCredentials) {
		var ae *amqp.Error
		if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
			t.Fatalf("wrong password: %v", err)
		}
	}
}
