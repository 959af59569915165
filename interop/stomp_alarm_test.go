package interop

import (
	"testing"
	"time"

	"github.com/go-stomp/stomp/v3"

	"github.com/junction-broker/junction/router"
)

// TestSTOMPMemoryAlarm: while the memory alarm is raised, STOMP
// publishers are held back (router.Alarm: "MQTT and STOMP stop reading
// publishes"; default.toml: "STOMP receipts withheld"): a SEND gets no
// RECEIPT and is not routed, consumers go on receiving, and the SEND goes
// through when the alarm clears, nothing lost.
func TestSTOMPMemoryAlarm(t *testing.T) {
	forVersions(t, func(t *testing.T, v stomp.Version) {
		b := startStompBroker(t)
		subc := stompDial(t, b.addr, v)
		defer stompGone(subc)
		sub := stompSub(t, subc, "/queue/al", stomp.AckAuto)
		pub := stompDial(t, b.addr, v)
		defer stompGone(pub)

		b.rt.SetAlarm(router.AlarmMemory, true)
		sent := make(chan error, 1)
		go func() { sent <- pub.Send("/queue/al", "", []byte("held"), stomp.SendOpt.Receipt) }()
		select {
		case err := <-sent:
			b.rt.SetAlarm(router.AlarmMemory, false)
			t.Fatalf("RECEIPT while the memory alarm was raised (err %v)", err)
		case <-time.After(stompQuiet):
		}
		// Consumers keep draining; the held SEND is not routed.
		if _, err := b.rt.VHost("/").Publish("", &router.Message{RoutingKey: "al", Body: []byte("other")}, nil); err != nil {
			t.Fatal(err)
		}
		stompWantBodies(t, sub, "other")

		b.rt.SetAlarm(router.AlarmMemory, false)
		select {
		case err := <-sent:
			if err != nil {
				t.Fatalf("send: %v", err)
			}
		case <-time.After(stompWait):
			t.Fatal("no RECEIPT after the alarm cleared")
		}
		stompWantBodies(t, sub, "held")
		stompNothing(t, sub)
	})
}
