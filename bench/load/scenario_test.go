package load

import (
	"slices"
	"testing"
)

func TestReliableAndMayDrop(t *testing.T) {
	for _, tc := range []struct {
		name              string
		sc                Scenario
		reliable, mayDrop bool
	}{
		{"amqp transient", Scenario{Proto: AMQP}, false, false},
		{"amqp confirms", Scenario{Proto: AMQP, Confirms: 100}, true, false},
		{"mqtt qos0", Scenario{Proto: MQTT, QoS: 0}, false, true},
		{"mqtt qos1", Scenario{Proto: MQTT, QoS: 1}, true, false},
		{"mqtt qos2", Scenario{Proto: MQTT, QoS: 2}, true, false},
		{"stomp", Scenario{Proto: STOMP}, false, false},
		// A PUBACKed message lost on its way to an AMQP or STOMP consumer
		// is a loss; a QoS 0 publish may be dropped before it gets there.
		{"mqtt qos1 → amqp", Scenario{Proto: MQTT, To: AMQP, QoS: 1}, true, false},
		{"mqtt qos0 → amqp", Scenario{Proto: MQTT, To: AMQP, QoS: 0}, false, true},
		{"mqtt qos1 → stomp", Scenario{Proto: MQTT, To: STOMP, QoS: 1}, true, false},
		// Confirmed AMQP messages reaching MQTT subscribers: reliable only
		// if delivered at QoS ≥ 1, i.e. persistent.
		{"amqp confirms → mqtt qos1, persistent", Scenario{Proto: AMQP, To: MQTT, Confirms: 10, QoS: 1, Persistent: true}, true, false},
		{"amqp confirms → mqtt qos1, transient", Scenario{Proto: AMQP, To: MQTT, Confirms: 10, QoS: 1}, false, true},
		{"amqp confirms → mqtt qos0, persistent", Scenario{Proto: AMQP, To: MQTT, Confirms: 10, QoS: 0, Persistent: true}, false, true},
		{"amqp → stomp", Scenario{Proto: AMQP, To: STOMP}, false, false},
		// STOMP asks for no receipts: never reliable; nothing may drop a
		// persistent message on its way to a QoS 1 subscriber.
		{"stomp persistent → mqtt qos1", Scenario{Proto: STOMP, To: MQTT, QoS: 1, Persistent: true}, false, false},
		{"stomp transient → mqtt qos1", Scenario{Proto: STOMP, To: MQTT, QoS: 1}, false, true},
		{"idle", Scenario{Proto: MQTT, Conns: 10}, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := tc.sc.Reliable(); got != tc.reliable {
				t.Errorf("Reliable = %v, want %v", got, tc.reliable)
			}
			if got := tc.sc.MayDrop(); got != tc.mayDrop {
				t.Errorf("MayDrop = %v, want %v", got, tc.mayDrop)
			}
		})
	}
}

func TestScenarioBrokers(t *testing.T) {
	for _, tc := range []struct {
		name string
		want []string
	}{
		{"amqp-1to1", []string{"junction", "rabbitmq"}},
		{"mqtt-fanin-qos0", []string{"junction", "rabbitmq", "mosquitto"}},
		{"stomp-topic", []string{"junction", "rabbitmq"}},
		{"x-mqtt-amqp", []string{"junction", "rabbitmq"}}, // Mosquitto speaks no AMQP
		{"x-stomp-mqtt", []string{"junction", "rabbitmq"}},
		{"mqtt-idle", []string{"junction", "rabbitmq", "mosquitto"}},
	} {
		sc, ok := Lookup(tc.name)
		if !ok {
			t.Fatalf("no scenario %s", tc.name)
		}
		if got := sc.Brokers(); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Brokers = %v, want %v", tc.name, got, tc.want)
		}
	}
	if sc, _ := Lookup("mqtt-fanin-qos2"); sc.Runs("rabbitmq") || !sc.Runs("mosquitto") {
		t.Error("mqtt-fanin-qos2: Skip not honoured")
	}
}

// TestScenariosWellFormed checks what Run and the drivers rely on.
func TestScenariosWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, sc := range Scenarios {
		t.Run(sc.Name, func(t *testing.T) {
			if seen[sc.Name] {
				t.Fatal("duplicate name")
			}
			seen[sc.Name] = true
			if sc.Title == "" {
				t.Error("no title")
			}
			if sc.Idle() {
				if sc.Proto != MQTT || sc.KeepAlive <= 0 || sc.Producers+sc.Consumers != 0 {
					t.Errorf("idle scenario: proto %s, keepalive %v, %d producers, %d consumers", sc.Proto, sc.KeepAlive, sc.Producers, sc.Consumers)
				}
				return
			}
			if sc.Size < HeaderLen || sc.Producers < 1 || sc.Consumers < sc.Sinks || sc.Sinks < 1 {
				t.Errorf("size %d, producers %d, consumers %d, sinks %d", sc.Size, sc.Producers, sc.Consumers, sc.Sinks)
			}
			if sc.Cross() && sc.Route == RouteNative {
				t.Error("cross-protocol without a Route")
			}
			if sc.Route == RouteQueue && (sc.Sinks != 1 || sc.ConsumerProto() == MQTT || sc.Proto == MQTT) {
				t.Error("RouteQueue is one sink, AMQP or STOMP")
			}
			if len(sc.Brokers()) < 2 {
				t.Errorf("compares %v only", sc.Brokers())
			}
			if _, err := newDriver(&sc, Target{}); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestFanInAsIssue4 pins the fan-in scenarios to issue 4: 8 publishers → 1
// wildcard subscriber, 64 B, QoS ≥ 1 into a persistent session.
func TestFanInAsIssue4(t *testing.T) {
	if HeaderLen > 64 {
		t.Fatalf("the header (%d B) does not fit in 64 B", HeaderLen)
	}
	for _, name := range []string{"mqtt-fanin-qos0", "mqtt-fanin-qos1", "mqtt-fanin-qos2"} {
		sc, _ := Lookup(name)
		if sc.Size != 64 || sc.Producers != 8 || sc.Consumers != 1 || sc.FanOut {
			t.Errorf("%s: size %d, %d → %d, fan-out %v", name, sc.Size, sc.Producers, sc.Consumers, sc.FanOut)
		}
		if sc.PersistentSession != (sc.QoS > 0) {
			t.Errorf("%s: persistent session %v at QoS %d", name, sc.PersistentSession, sc.QoS)
		}
	}
}

func TestNewDriverSides(t *testing.T) {
	tg := Target{AMQP: "amqp://x/", MQTT: "m:1", STOMP: "s:1"}
	sc, _ := Lookup("x-mqtt-amqp")
	d, err := newDriver(&sc, tg)
	if err != nil {
		t.Fatal(err)
	}
	x, ok := d.(*crossDriver)
	if !ok {
		t.Fatalf("newDriver(x-mqtt-amqp) = %T, want *crossDriver", d)
	}
	if c, ok := x.cons.(*amqpDriver); !ok || c.side != consumerSide || c.url != tg.AMQP {
		t.Errorf("consumers: %#v", x.cons)
	}
	if p, ok := x.prod.(*mqttDriver); !ok || p.side != producerSide || p.addr != tg.MQTT {
		t.Errorf("producers: %#v", x.prod)
	}
	sc, _ = Lookup("stomp-topic")
	if d, _ := newDriver(&sc, tg); d.(*stompDriver).side != bothSides {
		t.Error("a single-protocol scenario has one driver for both sides")
	}
	bad := Scenario{Name: "bad", Proto: AMQP, To: STOMP}
	if _, err := newDriver(&bad, tg); err == nil {
		t.Error("a cross-protocol scenario without a Route must be refused")
	}
}

func TestRouteNames(t *testing.T) {
	r := &run{id: "abc"}
	if r.routeKey() != "bench.abc.x" || r.routeTopic() != "bench/abc/x" || r.routeQueue() != "bench-abc" {
		t.Errorf("route names %q %q %q", r.routeKey(), r.routeTopic(), r.routeQueue())
	}
}
