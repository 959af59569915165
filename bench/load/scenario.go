package load

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

// Scenario describes one workload. Every scenario is a closed loop: producers
// publish as fast as flow control allows (TCP back-pressure, publisher
// confirms or MQTT acknowledgements, and an end-to-end window of Window
// deliveries not yet received), for a fixed duration, then stop, and the
// generator waits for the stragglers and counts.
type Scenario struct {
	Name  string // short, for flags and file names: "amqp-1to1"
	Title string // for reports
	Proto Protocol

	Producers int // publishing connections
	Consumers int // consuming connections
	Size      int // payload bytes, at least HeaderLen

	// Sinks is how many independent streams every message must reach:
	// AMQP queues bound to a fanout or topic exchange, or MQTT subscribers.
	// Consumer c reads sink c % Sinks; consumers of one sink share it (one
	// AMQP queue with several consumers is one sink).
	Sinks int

	// AMQP.
	Exchange   string // "" (the default exchange, one queue), "fanout" or "topic"
	Bindings   int    // topic: bindings in all, spread evenly over the queues
	Persistent bool   // durable queues and delivery mode 2
	Confirms   int    // publisher confirms kept in flight per producer; 0: none
	Prefetch   int    // basic.qos / STOMP prefetch-count per consumer

	// MQTT.
	QoS    byte
	FanOut bool // one topic, every subscriber gets every message; else each producer has its own topic and one subscriber uses a wildcard
	// Inflight bounds the messages one MQTT or STOMP publisher has
	// written but not had acknowledged (QoS ≥ 1) or not yet seen written by
	// the client library (QoS 0, STOMP), whose buffers it cannot reuse.
	Inflight int

	// Window is the most deliveries outstanding end to end (published
	// times Sinks, less received) before producers pause.
	Window int

	// Skip names brokers this scenario does not run against, and why.
	Skip map[string]string
}

// Reliable reports whether the publisher is told a message is safe
// (publisher confirm, PUBACK, PUBCOMP): then an acknowledged message that
// never arrives is lost, and a run that loses one fails.
func (s *Scenario) Reliable() bool {
	return s.Proto == AMQP && s.Confirms > 0 || s.Proto == MQTT && s.QoS > 0
}

// MayDrop reports whether the protocol lets the broker drop a message
// without telling anyone: MQTT QoS 0 only. In every other scenario a message
// that never arrives fails the run, acknowledged to the publisher (a loss)
// or not (a stall: nothing in these setups allows a queue to drop it).
func (s *Scenario) MayDrop() bool { return s.Proto == MQTT && s.QoS == 0 }

// Runs reports whether the scenario runs against broker.
func (s *Scenario) Runs(broker string) bool {
	if _, skip := s.Skip[broker]; skip {
		return false
	}
	for _, b := range Brokers[s.Proto] {
		if b == broker {
			return true
		}
	}
	return false
}

// Scenarios is every scenario, AMQP first.
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
	{
		Name: "mqtt-fanin-qos0", Proto: MQTT,
		Title:     "MQTT fan-in QoS 0, 8 publishers → 1 wildcard subscriber, 256 B",
		Producers: 8, Consumers: 1, Sinks: 1, Size: 256, QoS: 0, Inflight: 100, Window: 1000,
	},
	{
		Name: "mqtt-fanin-qos1", Proto: MQTT,
		Title:     "MQTT fan-in QoS 1, 8 → 1, 20 unacknowledged per publisher, 256 B",
		Producers: 8, Consumers: 1, Sinks: 1, Size: 256, QoS: 1, Inflight: 20, Window: 1000,
	},
	{
		Name: "mqtt-fanin-qos2", Proto: MQTT,
		Title:     "MQTT fan-in QoS 2, 8 → 1, 20 unacknowledged per publisher, 256 B",
		Producers: 8, Consumers: 1, Sinks: 1, Size: 256, QoS: 2, Inflight: 20, Window: 1000,
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
