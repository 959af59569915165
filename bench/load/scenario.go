package load

import (
	"slices"
	"time"
)

// Protocol is the wire protocol a scenario speaks.
type Protocol string

// The protocols the load generator speaks.
const (
	AMQP  Protocol = "amqp"
	MQTT  Protocol = "mqtt"
	STOMP Protocol = "stomp"
)

// Brokers lists, for each protocol, the brokers compared on it, in the order
// reports show them.
var Brokers = map[Protocol][]string{
	AMQP:  {"junction", "rabbitmq"},
	MQTT:  {"junction", "rabbitmq", "mosquitto"},
	STOMP: {"junction", "rabbitmq"},
}

// Route is how a scenario's producers reach its consumers.
type Route string

// The routes. RouteNative is each protocol's own setup, as the scenario's
// protocol fields describe it (AMQP Exchange, MQTT FanOut, STOMP /queue/);
// the others name one destination every protocol can reach, so that a
// cross-protocol scenario's two sides meet.
const (
	RouteNative Route = ""
	// RouteTopic is amq.topic with the routing key bench.RUN.x: AMQP
	// publishes there, MQTT to the topic bench/RUN/x (the brokers map '/'
	// to '.'), STOMP SENDs to /topic/bench.RUN.x. Each sink is one
	// subscription to that key: an AMQP queue bound to it, an MQTT
	// subscription, a STOMP /topic/ subscription.
	RouteTopic Route = "topic"
	// RouteQueue is the queue bench-RUN: AMQP publishes to the default
	// exchange with that key, STOMP SENDs to /queue/bench-RUN; AMQP
	// consumers read the queue, STOMP ones SUBSCRIBE to /queue/bench-RUN
	// (which declares it durable, as a STOMP SEND there would). One sink.
	RouteQueue Route = "queue"
)

// Scenario describes one workload. Every scenario but an idle one (Conns >
// 0) is a closed loop: producers publish as fast as flow control allows
// (TCP back-pressure, publisher confirms or MQTT acknowledgements, and an
// end-to-end window of Window deliveries not yet received), for a fixed
// duration, then stop, and the generator waits for the stragglers and
// counts.
type Scenario struct {
	Name  string // short, for flags and file names: "amqp-1to1"
	Title string // for reports
	Proto Protocol
	// To is the consumers' protocol when it is not Proto: a
	// cross-protocol scenario, whose two sides meet on Route.
	To    Protocol
	Route Route

	Producers int // publishing connections
	Consumers int // consuming connections
	Size      int // payload bytes, at least HeaderLen

	// Sinks is how many independent streams every message must reach:
	// AMQP queues bound to a fanout or topic exchange, or MQTT or STOMP
	// topic subscribers. Consumer c reads sink c % Sinks; consumers of one
	// sink share it (one AMQP queue with several consumers is one sink).
	Sinks int

	// AMQP and STOMP.
	Exchange string // AMQP: "" (the default exchange, one queue), "fanout" or "topic"
	Bindings int    // topic: bindings in all, spread evenly over the queues
	// Persistent: AMQP queues are durable and messages have delivery mode
	// 2; STOMP SENDs carry persistent:true.
	Persistent bool
	Confirms   int // publisher confirms kept in flight per producer; 0: none
	Prefetch   int // basic.qos / STOMP prefetch-count per consumer

	// MQTT.
	QoS    byte // publish QoS, and subscription QoS
	FanOut bool // one topic, every subscriber gets every message; else each producer has its own topic and one subscriber uses a wildcard
	// PersistentSession: subscribers connect with clean session 0 under a
	// client id of the run, so the broker keeps their subscriptions (and,
	// at QoS ≥ 1, their messages) in a durable session queue; teardown
	// ends the sessions.
	PersistentSession bool
	// Inflight bounds the messages one MQTT publisher has written but not
	// had acknowledged (QoS ≥ 1). QoS 0 and STOMP publishers copy each
	// payload into their output buffer and are bounded by Window alone.
	Inflight int

	// Window is the most deliveries outstanding end to end (published
	// times Sinks, less received) before producers pause.
	Window int

	// Idle MQTT connections: Conns > 0 makes this a memory scenario. The
	// generator opens Conns MQTT 3.1.1 clean-session connections with
	// KeepAlive, each subscribed (when Subscribe) to a topic of its own,
	// holds them idle and measures the broker's resident memory per
	// connection; nothing is published.
	Conns     int
	KeepAlive time.Duration
	Subscribe bool

	// What the issue asks of Junction here, checked in the report: at
	// most GoalPerConn bytes per idle connection; at least GoalRatio times
	// RabbitMQ's msg/s, with a lower p99. 0: no goal.
	GoalPerConn int
	GoalRatio   float64
	// Baseline quotes what the other brokers did on this kind of machine
	// before (shared/reference/baseline.md), for the report.
	Baseline string

	// Skip names brokers this scenario does not run against, and why.
	Skip map[string]string
}

// Idle reports whether s measures idle connections' memory instead of a
// message flow.
func (s *Scenario) Idle() bool { return s.Conns > 0 }

// ConsumerProto is the consumers' protocol: To, or Proto.
func (s *Scenario) ConsumerProto() Protocol {
	if s.To != "" {
		return s.To
	}
	return s.Proto
}

// Cross reports whether producers and consumers speak different protocols.
func (s *Scenario) Cross() bool { return s.ConsumerProto() != s.Proto }

// DeliveryQoS is the QoS at which MQTT subscribers get the messages: the
// lower of the publish's and the subscription's between MQTT clients; for
// a message from another protocol, 1 if it is persistent (delivery mode 2,
// STOMP persistent:true) and 0 if not, as Junction and RabbitMQ map it,
// capped by the subscription's.
func (s *Scenario) DeliveryQoS() byte {
	if s.Proto == MQTT {
		return s.QoS
	}
	if s.Persistent {
		return min(s.QoS, 1)
	}
	return 0
}

// acknowledged reports whether producers are told that a message is safe:
// publisher confirms (AMQP), PUBACK or PUBCOMP (MQTT QoS ≥ 1). STOMP
// producers here ask for no receipts.
func (s *Scenario) acknowledged() bool {
	switch s.Proto {
	case AMQP:
		return s.Confirms > 0
	case MQTT:
		return s.QoS > 0
	}
	return false
}

// Reliable reports whether the publisher is told a message is safe
// (publisher confirm, PUBACK, PUBCOMP) and nothing on its way to the
// consumers may drop it: then an acknowledged message that never arrives is
// lost, and a run that loses one fails. An MQTT QoS 1 message PUBACKed to
// its publisher and never delivered to an AMQP or STOMP consumer is lost;
// one delivered to MQTT subscribers at QoS 0 may be dropped on the way.
func (s *Scenario) Reliable() bool {
	if s.Idle() || !s.acknowledged() {
		return false
	}
	return s.ConsumerProto() != MQTT || s.DeliveryQoS() > 0
}

// MayDrop reports whether the protocols let the broker drop a message
// without telling anyone: an MQTT QoS 0 publish, or a delivery to an MQTT
// subscriber at QoS 0. In every other scenario a message that never arrives
// fails the run, acknowledged to the publisher (a loss) or not (a stall:
// nothing in these setups allows a queue to drop it).
func (s *Scenario) MayDrop() bool {
	if s.Idle() {
		return false
	}
	return s.Proto == MQTT && s.QoS == 0 || s.ConsumerProto() == MQTT && s.DeliveryQoS() == 0
}

// Brokers lists the brokers that speak both the producers' and the
// consumers' protocol, in report order.
func (s *Scenario) Brokers() []string {
	var out []string
	for _, b := range Brokers[s.Proto] {
		if slices.Contains(Brokers[s.ConsumerProto()], b) {
			out = append(out, b)
		}
	}
	return out
}

// Runs reports whether the scenario runs against broker.
func (s *Scenario) Runs(broker string) bool {
	if _, skip := s.Skip[broker]; skip {
		return false
	}
	return slices.Contains(s.Brokers(), broker)
}

// Scenarios is every scenario: AMQP, MQTT, STOMP, cross-protocol, then
// idle connections.
var Scenarios = []Scenario{
	{
		Name: "amqp-1to1", Proto: AMQP,
		Title:     "AMQP 1→1 transient, 256 B, one queue, manual ack, prefetch 100",
		Producers: 1, Consumers: 1, Sinks: 1, Size: 256, Prefetch: 100, Window: 1000,
	},
	{
		Name: "amqp-persistent", Proto: AMQP,
		Title:     "AMQP 1→1 persistent 1 KiB, durable queue, confirms (100 in flight), manual ack, prefetch 100",
		Producers: 1, Consumers: 1, Sinks: 1, Size: 1024, Persistent: true, Confirms: 100, Prefetch: 100, Window: 1000,
	},
	{
		Name: "amqp-4to4", Proto: AMQP,
		Title:     "AMQP 4→4 transient, 256 B, one queue, manual ack, prefetch 100",
		Producers: 4, Consumers: 4, Sinks: 1, Size: 256, Prefetch: 100, Window: 1000,
	},
	{
		Name: "amqp-fanout", Proto: AMQP,
		Title:     "AMQP fanout 1→8 queues, transient, 256 B (deliveries/s)",
		Producers: 1, Consumers: 8, Sinks: 8, Exchange: "fanout", Size: 256, Prefetch: 100, Window: 1000,
	},
	{
		Name: "amqp-topic", Proto: AMQP,
		Title:     "AMQP topic exchange, 1,000 bindings, 1→4 queues, transient, 256 B (deliveries/s)",
		Producers: 1, Consumers: 4, Sinks: 4, Exchange: "topic", Bindings: 1000, Size: 256, Prefetch: 100, Window: 1000,
	},
	// Fan-in as issue 4 has it: 64 B payloads (the 20 B header and 44 B
	// of filler), and at QoS 1 and 2 into a persistent session.
	{
		Name: "mqtt-fanin-qos0", Proto: MQTT,
		Title:     "MQTT fan-in QoS 0, 8 publishers → 1 wildcard subscriber (clean session), 64 B",
		Producers: 8, Consumers: 1, Sinks: 1, Size: 64, QoS: 0, Inflight: 100, Window: 1000,
	},
	{
		Name: "mqtt-fanin-qos1", Proto: MQTT,
		Title:     "MQTT fan-in QoS 1, 8 publishers → 1 wildcard subscriber in a persistent session (clean session 0), 20 unacknowledged per publisher, 64 B",
		Producers: 8, Consumers: 1, Sinks: 1, Size: 64, QoS: 1, PersistentSession: true, Inflight: 20, Window: 1000,
	},
	{
		Name: "mqtt-fanin-qos2", Proto: MQTT,
		Title:     "MQTT fan-in QoS 2, 8 publishers → 1 wildcard subscriber in a persistent session (clean session 0), 20 unacknowledged per publisher, 64 B",
		Producers: 8, Consumers: 1, Sinks: 1, Size: 64, QoS: 2, PersistentSession: true, Inflight: 20, Window: 1000,
		Skip: map[string]string{"rabbitmq": "RabbitMQ 3.10's MQTT plugin does not support QoS 2"},
	},
	{
		Name: "mqtt-fanout-qos0", Proto: MQTT,
		Title:     "MQTT fan-out QoS 0, 1 → 16 subscribers, 256 B (deliveries/s)",
		Producers: 1, Consumers: 16, Sinks: 16, FanOut: true, Size: 256, QoS: 0, Inflight: 100, Window: 1000,
	},
	{
		Name: "stomp-queue", Proto: STOMP,
		Title:     "STOMP queue 1→1, ack client-individual, prefetch 100, 256 B",
		Producers: 1, Consumers: 1, Sinks: 1, Size: 256, Prefetch: 100, Inflight: 64, Window: 1000,
	},
	{
		Name: "stomp-topic", Proto: STOMP, Route: RouteTopic,
		Title:     "STOMP topic fan-out 1 → 8 subscribers on /topic/bench.RUN.x, transient, ack client-individual, prefetch 100, 256 B (deliveries/s)",
		Producers: 1, Consumers: 8, Sinks: 8, Size: 256, Prefetch: 100, Inflight: 64, Window: 1000,
		Baseline: "RabbitMQ ≈ 28,000 topic fan-out deliveries/s on this kind of machine (1 → 4, baseline.md)",
	},
	{
		Name: "x-mqtt-amqp", Proto: MQTT, To: AMQP, Route: RouteTopic,
		Title: "MQTT → AMQP: 4 MQTT QoS 1 publishers (20 unacknowledged each) on bench/RUN/x → amq.topic → 1 AMQP consumer " +
			"on a durable queue bound with key bench.RUN.x (QoS 1 messages are persistent), manual ack, prefetch 100, 1 KiB",
		Producers: 4, Consumers: 1, Sinks: 1, Size: 1024, QoS: 1, Inflight: 20, Persistent: true, Prefetch: 100, Window: 1000,
		GoalRatio: 4, Baseline: "RabbitMQ ≈ 16,000 msg/s, p99 5.6 ms (MQTT QoS 1 → AMQP queue on amq.topic, baseline.md)",
	},
	{
		Name: "x-amqp-stomp", Proto: AMQP, To: STOMP, Route: RouteQueue,
		Title: "AMQP → STOMP: 1 AMQP publisher, transient (delivery mode 1, no confirms), default exchange with key bench-RUN → " +
			"1 STOMP subscriber on /queue/bench-RUN, ack client-individual, prefetch 100, 1 KiB",
		Producers: 1, Consumers: 1, Sinks: 1, Size: 1024, Prefetch: 100, Window: 1000,
		GoalRatio: 4, Baseline: "RabbitMQ ≈ 23,600 msg/s, p99 49 ms (AMQP → STOMP, baseline.md)",
	},
	{
		Name: "x-stomp-mqtt", Proto: STOMP, To: MQTT, Route: RouteTopic,
		Title: "STOMP → MQTT: 1 STOMP publisher SENDing persistent:true (no receipts) to /topic/bench.RUN.x → " +
			"1 MQTT QoS 1 subscriber (clean session) on bench/RUN/x, delivered at QoS 1, 1 KiB",
		Producers: 1, Consumers: 1, Sinks: 1, Size: 1024, Persistent: true, QoS: 1, Inflight: 64, Window: 1000,
		GoalRatio: 4, Baseline: "RabbitMQ ≈ 12,300 msg/s, p99 90 ms (STOMP /topic → MQTT QoS 1, baseline.md)",
	},
	{
		Name: "mqtt-idle", Proto: MQTT,
		Title: "MQTT 3.1.1 idle connections: 20,000 clean-session clients, keepalive 600 s, connected and silent " +
			"(as baseline.md measured them); broker resident memory per connection",
		Conns: 20000, KeepAlive: 600 * time.Second,
		GoalPerConn: 2048,
		Baseline:    "Mosquitto ≈ 0.8 KiB and RabbitMQ ≈ 215 KiB per connection (10,000 clients, keepalive 60 s, baseline.md)",
	},
}

// Lookup returns the scenario called name.
func Lookup(name string) (Scenario, bool) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, true
		}
	}
	return Scenario{}, false
}
