package interop

import (
	"strconv"
	"testing"
	"time"

	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	jmqtt "github.com/junction-broker/junction/protocols/mqtt"
)

// TestMQTTOfflineQueueBound: with mqtt.max_queued_messages = 5 an offline
// persistent session keeps the newest 5 of 8 QoS 1 messages (the oldest
// are dropped to make room, as documented), the publisher gets every
// PUBACK, and the session gets the 5 on reconnect, in order.
func TestMQTTOfflineQueueBound(t *testing.T) {
	addr := startMQTTServer(t, nil, jmqtt.Config{MaxQueuedMessages: 5})
	got := make(chan string, 16)
	o := mqtt3.NewClientOptions().AddBroker("tcp://" + addr).SetClientID("bounded").
		SetProtocolVersion(4).SetCleanSession(false).SetAutoReconnect(false).SetKeepAlive(30 * time.Second).
		SetDefaultPublishHandler(func(_ mqtt3.Client, m mqtt3.Message) { got <- string(m.Payload()) })
	sub := mqtt3.NewClient(o)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("connect: %v", tok.Error())
	}
	if tok := sub.Subscribe("bounded/q", 1, nil); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("subscribe: %v", tok.Error())
	}
	sub.Disconnect(100)

	pub := client3(t, addr, "bounded-pub")
	for i := range 8 {
		publish3(t, pub, "bounded/q", 1, strconv.Itoa(i)) // waits for the PUBACK
	}

	sub = mqtt3.NewClient(o)
	if tok := sub.Connect(); !tok.WaitTimeout(10*time.Second) || tok.Error() != nil {
		t.Fatalf("reconnect: %v", tok.Error())
	}
	defer sub.Disconnect(100)
	for want := 3; want < 8; want++ {
		select {
		case m := <-got:
			if m != strconv.Itoa(want) {
				t.Fatalf("got message %s, want %d (the newest 5 of 8, in order)", m, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("message %d not delivered within 10s", want)
		}
	}
	// A marker published now arrives next: nothing older is left queued.
	publish3(t, pub, "bounded/q", 1, "marker")
	select {
	case m := <-got:
		if m != "marker" {
			t.Fatalf("got %s after the newest 5, want the marker", m)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("marker not delivered within 10s")
	}
}
