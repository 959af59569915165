package interop

import (
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/junction-broker/junction/router"
)

// TestAMQPConnectionBlocked: under a resource alarm a publishing
// connection that takes connection.blocked (amqp091-go announces the
// capability) is told it is blocked, with RabbitMQ's reason; its
// publishes are held, not lost, and go through in order once the alarm
// clears and connection.unblocked is sent. Consumers go on draining, and a
// connection that never published is not blocked (RabbitMQ blocks a
// connection when it publishes).
func TestAMQPConnectionBlocked(t *testing.T) {
	for _, tc := range []struct {
		alarm  router.Alarm
		reason string
	}{
		{router.AlarmMemory, "memory"},
		{router.AlarmDisk, "disk"},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			b := startBroker(t)
			observer := dialConfig(t, b.guest(), amqp.Config{})
			observerBlocks := observer.NotifyBlocked(make(chan amqp.Blocking, 2))
			obs := newChannel(t, observer)
			q := declareQueue(t, obs, "blocked", nil)

			conn := dialConfig(t, b.guest(), amqp.Config{})
			blocks := conn.NotifyBlocked(make(chan amqp.Blocking, 2))
			pub := newChannel(t, conn)
			must(t, pub.Confirm(false))
			confirms := pub.NotifyPublish(make(chan amqp.Confirmation, 8))
			publish(t, pub, "", q, "before")
			if c := <-confirms; !c.Ack {
				t.Fatal("nack before the alarm")
			}

			b.rt.SetAlarm(tc.alarm, true)
			msgs := consume(t, obs, q) // consumers are not blocked
			wantBodies(t, recvN(t, msgs, 1), "before")

			// The publish that meets the alarm blocks the connection; RabbitMQ
			// may still take that one, but nothing after it.
			publish(t, pub, "", q, "held-0")
			select {
			case bl := <-blocks:
				if !bl.Active || !strings.Contains(bl.Reason, tc.reason) {
					t.Fatalf("connection.blocked %+v, want active with a reason naming %s", bl, tc.reason)
				}
			case <-time.After(waitFor):
				t.Fatal("no connection.blocked after publishing under an alarm")
			}
			for _, m := range []string{"held-1", "held-2", "held-3"} {
				publish(t, pub, "", q, m)
			}
			var got []string
			select {
			case d := <-msgs:
				got = append(got, string(d.Body))
				must(t, d.Ack(false))
			case <-time.After(quiet):
			}
			if len(got) > 0 && got[0] != "held-0" {
				t.Fatalf("%q went through while the connection was blocked", got)
			}
			noDelivery(t, msgs)
			acked := map[uint64]bool{}
			select {
			case c := <-confirms:
				if c.DeliveryTag > 2 || !c.Ack {
					t.Fatalf("held publish %d confirmed (ack=%v) while blocked", c.DeliveryTag, c.Ack)
				}
				acked[c.DeliveryTag] = true
			default:
			}
			select {
			case bl := <-observerBlocks:
				t.Fatalf("a connection that never published got %+v", bl)
			default:
			}

			b.rt.SetAlarm(tc.alarm, false)
			select {
			case bl := <-blocks:
				if bl.Active {
					t.Fatalf("after clearing the alarm: %+v, want connection.unblocked", bl)
				}
			case <-time.After(waitFor):
				t.Fatal("no connection.unblocked after the alarm cleared")
			}
			for _, d := range recvN(t, msgs, 4-len(got)) {
				got = append(got, string(d.Body))
				must(t, d.Ack(false))
			}
			if strings.Join(got, ",") != "held-0,held-1,held-2,held-3" {
				t.Fatalf("after unblocking: %q, want held-0..held-3 in order", got)
			}
			for len(acked) < 4 {
				select {
				case c := <-confirms:
					if !c.Ack {
						t.Fatalf("held publish %d nacked", c.DeliveryTag)
					}
					acked[c.DeliveryTag] = true
				case <-time.After(waitFor):
					t.Fatalf("confirms of held publishes: got %v of 2..5", acked)
				}
			}
		})
	}
}
