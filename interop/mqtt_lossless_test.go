package interop

import (
	"context"
	"testing"

	"github.com/go-stomp/stomp/v3"
	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	amqp "github.com/rabbitmq/amqp091-go"
)

// TestMQTTLosslessTopics: with mqtt.topic_mode "lossless", a topic with
// dots reaches AMQP under a key that keeps them (escaped) and comes back
// to MQTT subscribers unchanged, from MQTT, AMQP and STOMP publishers; a
// literal '*' in a filter is not a wildcard.
func TestMQTTLosslessTopics(t *testing.T) {
	srv := startInProcess(t, func(c *jmqtt.Config) { c.LosslessTopics = true })
	mqttAddr, url := srv.Addrs()["mqtt"], "amqp://guest:guest@"+srv.Addrs()["amqp"]+"/"
	_, ch := dial(t, url)
	q, err := ch.QueueDeclare("", false, true, true, false, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.QueueBind(q.Name, "site.*.temp", "amq.topic", false, nil); err != nil {
		t.Fatal(err)
	}
	deliveries, err := ch.Consume(q.Name, "", true, false, false, false, nil)
	if err != nil {
		t.Fatal(err)
	}

	c := client3(t, mqttAddr, "lossless")
	in := subscribe3(t, c, "site/+/temp", 1)
	star := subscribe3(t, c, "x/*", 0)

	// MQTT → AMQP and MQTT → MQTT.
	publish3(t, c, "site/10.0.0.1/temp", 1, "21.5")
	if d := recvOne(t, deliveries); d.RoutingKey != "site.10%2E0%2E0%2E1.temp" || string(d.Body) != "21.5" {
		t.Fatalf("AMQP got key %q body %q, want site.10%%2E0%%2E0%%2E1.temp", d.RoutingKey, d.Body)
	}
	if m := recv3(t, in); m.topic != "site/10.0.0.1/temp" || m.payload != "21.5" {
		t.Fatalf("MQTT got %+v, want topic site/10.0.0.1/temp", m)
	}

	// AMQP → MQTT: the escapes are undone.
	if err := ch.PublishWithContext(context.Background(), "amq.topic", "site.10%2E0%2E0%2E2.temp", false, false,
		amqp.Publishing{Body: []byte("from-amqp")}); err != nil {
		t.Fatal(err)
	}
	if m := recv3(t, in); m.topic != "site/10.0.0.2/temp" || m.payload != "from-amqp" {
		t.Fatalf("MQTT got %+v from AMQP, want topic site/10.0.0.2/temp", m)
	}
	recvOne(t, deliveries) // the AMQP queue's copy

	// STOMP → MQTT.
	sc, err := stomp.Dial("tcp", srv.Addrs()["stomp"], stomp.ConnOpt.Login("guest", "guest"), stomp.ConnOpt.Host("/"))
	if err != nil {
		t.Fatal(err)
	}
	defer sc.MustDisconnect()
	if err := sc.Send("/topic/site.10%2E0%2E0%2E3.temp", "text/plain", []byte("from-stomp"), stomp.SendOpt.Receipt); err != nil {
		t.Fatal(err)
	}
	if m := recv3(t, in); m.topic != "site/10.0.0.3/temp" || m.payload != "from-stomp" {
		t.Fatalf("MQTT got %+v from STOMP, want topic site/10.0.0.3/temp", m)
	}
	recvOne(t, deliveries)

	// A literal '*' in a filter matches only itself. Publishes of one
	// connection are routed in order: had x/y matched, it would come first.
	publish3(t, c, "x/y", 0, "not for x/*")
	publish3(t, c, "x/*", 0, "for x/*")
	if m := recv3(t, star); m.topic != "x/*" || m.payload != "for x/*" {
		t.Fatalf("x/* subscriber got %+v", m)
	}
}
