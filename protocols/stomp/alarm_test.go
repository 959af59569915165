package stomp

import (
	"testing"
	"time"

	"github.com/junction-broker/junction/router"
)

// While a resource alarm is raised a publisher's input stays unread from
// its next SEND on: no RECEIPT goes out, and the heart-beat check does
// not end the connection the broker holds back. Deliveries go on. Once
// the alarm clears the held SEND is taken and its RECEIPT sent.
func TestAlarmHoldsSenders(t *testing.T) {
	sub := newHarness(t, Config{})
	sub.connect()
	sub.frame("SUBSCRIBE", "", "id", "s1", "destination", "/queue/al", "receipt", "sub")
	sub.expect("RECEIPT")
	pub := openHarness(t, sub.s.a, sub.store)
	pub.connect("accept-version", "1.2", "host", "/", "login", "guest", "passcode", "guest", "heart-beat", "1000,0")

	sub.rt.SetAlarm(router.AlarmMemory, true)
	pub.frame("SEND", "held", "destination", "/queue/al", "receipt", "r1")
	pub.send("\n") // a heart-beat behind it
	pub.quiet()
	if len(pub.pending) == 0 {
		t.Fatal("held input consumed")
	}
	t0 := time.Unix(1000, 0)
	for i := range 10 {
		if err := pub.s.Tick(t0.Add(time.Duration(i) * time.Second)); err != nil {
			t.Fatalf("held publisher ended by the heart-beat check: %v", err)
		}
	}
	// Consumers keep draining.
	if _, err := sub.rt.VHost("/").Publish("", &router.Message{RoutingKey: "al", Body: []byte("other")}, nil); err != nil {
		t.Fatal(err)
	}
	if f := sub.expect("MESSAGE"); string(f.Body) != "other" {
		t.Fatalf("got %q", f.Body)
	}

	sub.rt.SetAlarm(router.AlarmMemory, false)
	if f := pub.expect("RECEIPT"); f.Header.Get("receipt-id") != "r1" {
		t.Fatalf("receipt %v", f.Header)
	}
	if f := sub.expect("MESSAGE"); string(f.Body) != "held" {
		t.Fatalf("got %q", f.Body)
	}
	if sub.s.a.held.Len() != 0 {
		t.Fatalf("%d sessions still listed as held", sub.s.a.held.Len())
	}
}

// A connection closed while held leaves the held list.
func TestAlarmHeldClosed(t *testing.T) {
	h := newHarness(t, Config{})
	h.connect()
	h.rt.SetAlarm(router.AlarmDisk, true)
	defer h.rt.SetAlarm(router.AlarmDisk, false)
	h.frame("SEND", "held", "destination", "/queue/x")
	h.quiet()
	if h.s.a.held.Len() != 1 {
		t.Fatalf("%d held", h.s.a.held.Len())
	}
	h.s.Closed(nil)
	if h.s.a.held.Len() != 0 {
		t.Fatalf("%d held after close", h.s.a.held.Len())
	}
}
