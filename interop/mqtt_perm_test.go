package interop

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"

	"github.com/junction-broker/junction/conf"
	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
	"github.com/junction-broker/junction/router"
)

// startMQTTConf runs an in-process MQTT broker configured by the TOML file
// name the way cmd/junction wires it: router.topic_permissions,
// mqtt.max_keepalive and mqtt.reveal_refusals. It listens on 127.0.0.1:0
// and returns the address.
func startMQTTConf(t *testing.T, name string) string {
	t.Helper()
	c, _, err := conf.Load([]string{"--config", name, "--data-dir", t.TempDir(), "--mqtt-listen", "127.0.0.1:0"},
		func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	var perms []router.TopicPermission
	for _, p := range c.Router.TopicPermissions {
		perms = append(perms, router.TopicPermission{User: p.User, VHost: p.VHost, Exchange: p.Exchange,
			Write: p.WritePattern(), Read: p.ReadPattern(), DenyWrite: p.DenyWrite, DenyRead: p.DenyRead})
	}
	return startMQTTServer(t, perms, jmqtt.Config{MaxKeepAlive: c.MQTT.MaxKeepAlive, HideRefusals: !c.MQTT.RevealRefusals})
}

// TestMQTTPahoConfig: testdata/paho.toml, the configuration the Eclipse
// Paho interoperability suite runs with, refuses subscriptions to
// test/nosubscribe with SUBACK 0x80 in both versions, and only that
// filter: the connection and the other filters of the SUBSCRIBE work on.
func TestMQTTPahoConfig(t *testing.T) {
	addr := startMQTTConf(t, "testdata/paho.toml")

	c3 := client3(t, addr, "paho3")
	tok := c3.SubscribeMultiple(map[string]byte{"test/nosubscribe": 2, "test/ok": 1}, func(mqtt3.Client, mqtt3.Message) {})
	if !tok.WaitTimeout(10 * time.Second) {
		t.Fatal("3.1.1: no SUBACK")
	}
	if got := tok.(*mqtt3.SubscribeToken).Result(); got["test/nosubscribe"] != 0x80 || got["test/ok"] != 1 {
		t.Fatalf("3.1.1 SUBACK %v, want test/nosubscribe 0x80 and test/ok 1", got)
	}
	in3 := subscribe3(t, c3, "test/+", 0)
	publish3(t, c3, "test/nosubscribe", 1, "publishing is allowed")
	if m := recv3(t, in3); m.topic != "test/nosubscribe" {
		t.Fatalf("3.1.1 got %+v", m)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c5, ack, got := dial5(ctx, t, addr, &paho.Connect{ClientID: "paho5", CleanStart: true, KeepAlive: 120})
	if ack.Properties == nil || ack.Properties.ServerKeepAlive == nil || *ack.Properties.ServerKeepAlive != 60 {
		t.Fatalf("CONNACK properties %+v, want Server Keep Alive 60", ack.Properties)
	}
	sa, err := c5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "test/nosubscribe", QoS: 2}, {Topic: "test/ok", QoS: 1}}})
	if err == nil || sa == nil || len(sa.Reasons) != 2 || sa.Reasons[0] != 0x80 || sa.Reasons[1] != 1 {
		t.Fatalf("5.0 SUBACK %+v (%v), want reasons [0x80 1]", sa, err)
	}
	if sa.Properties != nil && sa.Properties.ReasonString != "" {
		t.Fatalf("hidden refusal with a Reason String %q", sa.Properties.ReasonString)
	}
	if _, err := c5.Publish(ctx, &paho.Publish{Topic: "test/ok", QoS: 1, Payload: []byte("still here")}); err != nil {
		t.Fatal(err)
	}
	if m := recv5(ctx, t, got); m.Topic != "test/ok" || string(m.Payload) != "still here" {
		t.Fatalf("5.0 got %+v", m)
	}
}

// TestMQTTTopicPermissions: with refusals revealed (the default), MQTT 5
// clients get 0x87 and a Reason String for a refused filter and a refused
// QoS 1 publish; a refused publish reaches nobody, in either version; the
// {client_id} variable gives each client its own subtree.
func TestMQTTTopicPermissions(t *testing.T) {
	name := filepath.Join(t.TempDir(), "junction.toml")
	if err := os.WriteFile(name, []byte(`
[amqp]
listen = ""
[stomp]
listen = ""
[[router.topic_permissions]]
user = "guest"
write = '^(?:devices\.{client_id}|public)\.'
read = '^(?:public|devices)\.'
deny_read = '^devices\.[^.]+\.secret$'
`), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := startMQTTConf(t, name)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	c5, _, got := dial5(ctx, t, addr, &paho.Connect{ClientID: "d1", CleanStart: true, KeepAlive: 30})
	sa, err := c5.Subscribe(ctx, &paho.Subscribe{Subscriptions: []paho.SubscribeOptions{
		{Topic: "devices/+/secret", QoS: 1}, {Topic: "devices/#", QoS: 1}, {Topic: "private/x", QoS: 1}}})
	if err == nil || sa == nil || len(sa.Reasons) != 3 || sa.Reasons[0] != 0x87 || sa.Reasons[1] != 1 || sa.Reasons[2] != 0x87 {
		t.Fatalf("SUBACK %+v (%v), want reasons [0x87 1 0x87]", sa, err)
	}
	if sa.Properties == nil || sa.Properties.ReasonString == "" {
		t.Fatalf("SUBACK without a Reason String: %+v", sa.Properties)
	}
	// Its own subtree: allowed. Another client's: PUBACK 0x87.
	if _, err := c5.Publish(ctx, &paho.Publish{Topic: "devices/d1/temp", QoS: 1, Payload: []byte("21")}); err != nil {
		t.Fatal(err)
	}
	if m := recv5(ctx, t, got); m.Topic != "devices/d1/temp" {
		t.Fatalf("got %+v", m)
	}
	r, err := c5.Publish(ctx, &paho.Publish{Topic: "devices/d2/temp", QoS: 1, Payload: []byte("forged")})
	if err == nil || r == nil || r.ReasonCode != 0x87 {
		t.Fatalf("PUBACK %+v (%v), want 0x87", r, err)
	}

	// MQTT 3.1.1 has no negative PUBACK: acknowledged, not routed.
	c3 := client3(t, addr, "d3")
	publish3(t, c3, "devices/d2/temp", 1, "forged too")
	publish3(t, c3, "devices/d3/temp", 0, "22")
	if m := recv5(ctx, t, got); m.Topic != "devices/d3/temp" || string(m.Payload) != "22" {
		t.Fatalf("got %+v, want only d3's own message", m)
	}
}
