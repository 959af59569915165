package interop

import (
	"context"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	pk5 "github.com/eclipse/paho.golang/packets"
	paho "github.com/eclipse/paho.golang/paho"
	mqtt3 "github.com/eclipse/paho.mqtt.golang"
	"github.com/go-stomp/stomp/v3"
	amqp "github.com/rabbitmq/amqp091-go"
)

// The cross-protocol matrix (issue 6): every source protocol to every
// target protocol, with real clients on both sides (amqp091-go,
// paho.golang for MQTT 5, paho.mqtt.golang for MQTT 3.1.1, go-stomp at
// STOMP 1.2), through a shared queue, through amq.topic and through a
// custom topic exchange, transient at QoS 0 and persistent at QoS 1. Each
// source sends one rich message carrying every property its protocol can
// express (the body: all 256 byte values), one bare message with an empty
// body, and an end marker. What each target must see is derived from
// propertyMap, the one mapping table below, and compared field by field,
// headers and User Properties in order.
//
// The router holds every message in AMQP's shape (router.Properties: the
// basic properties and a headers table), so a source's publish is first
// mapped onto that (toRouter) and every target's view derived from it
// (routerMsg.viewFor).

// proto is a client protocol of the matrix.
type proto string

const (
	pAMQP  proto = "amqp"
	pMQTT5 proto = "mqtt5"
	pMQTT3 proto = "mqtt3"
	pSTOMP proto = "stomp"
)

var protos = []proto{pAMQP, pMQTT5, pMQTT3, pSTOMP}

func (p proto) mqtt() bool { return p == pMQTT5 || p == pMQTT3 }

// propertyMap is the property mapping: one row per router property
// (AMQP 0-9-1's basic property of that name) with its name in MQTT 5 and
// in STOMP, "" where the protocol has no place for it, and the
// conversions of its value (nil: unchanged).
//
// Besides the rows:
//   - Headers: the AMQP headers table, in order, repeated keys kept; MQTT 5
//     User Properties, in order with repeats, become string headers, and
//     headers reach MQTT 5 as User Properties when their value has a text
//     form (textOf) and their key does not start with "x-mqtt-"; STOMP
//     headers that are not a property or frame header become string
//     headers (a repeated one: the first, STOMP 1.2 §"Repeated Header
//     Entries"), and headers with a text form reach STOMP as headers.
//   - MQTT adds header x-mqtt-publish-qos (the PUBLISH's QoS) and, when
//     the publish has a Payload Format Indicator, x-mqtt-payload-format;
//     MQTT 5 subscribers get them back as the QoS and the Payload Format
//     Indicator, and not as User Properties.
//   - The routing: an MQTT topic is the routing key with '/' and '.'
//     swapped (README, mqtt.topic_mode swap); a STOMP destination is
//     /queue/<key> for the default exchange, /topic/<key> for amq.topic
//     and /exchange/<x>/<key> otherwise.
//   - STOMP headers are UTF-8 text without NUL (validText): a property
//     whose value is not (binary Correlation Data) is left out.
//   - Delivery: MQTT subscribers get the lower of the subscription's QoS
//     and the message's: its x-mqtt-publish-qos, else 1 when persistent.
var propertyMap = []struct {
	router, mqtt5, stompSend, stompMessage string
	fromMQTT5, toMQTT5, fromSTOMP, toSTOMP func(string) (string, bool)
}{
	{router: "content-type", mqtt5: "content-type", stompSend: "content-type", stompMessage: "content-type"},
	{router: "content-encoding", mqtt5: "x-amqp-content-encoding", stompSend: "content-encoding", stompMessage: "content-encoding"},
	{router: "delivery-mode", mqtt5: "QoS", stompSend: "persistent", stompMessage: "persistent",
		fromMQTT5: qosToMode, toMQTT5: modeToQoS, fromSTOMP: persistentToMode, toSTOMP: modeToPersistent},
	{router: "priority", mqtt5: "x-amqp-priority", stompSend: "priority", stompMessage: "priority",
		fromMQTT5: octet},
	{router: "correlation-id", mqtt5: "correlation-data", stompSend: "correlation-id", stompMessage: "correlation-id",
		fromMQTT5: shortString},
	{router: "reply-to", mqtt5: "response-topic", stompSend: "reply-to", stompMessage: "reply-to",
		fromMQTT5: topicToKey, toMQTT5: replyToTopic, toSTOMP: replyToDestination},
	{router: "expiration", mqtt5: "message-expiry", stompSend: "expiration", stompMessage: "expiration",
		fromMQTT5: secondsToMillis, toMQTT5: millisToSeconds},
	{router: "message-id", mqtt5: "x-amqp-message-id", stompSend: "message-id", stompMessage: "amqp-message-id"},
	{router: "timestamp", mqtt5: "x-amqp-timestamp", stompSend: "timestamp", stompMessage: "timestamp",
		fromMQTT5: integer, fromSTOMP: integer},
	{router: "type", mqtt5: "x-amqp-type", stompSend: "type", stompMessage: "type"},
	{router: "user-id", mqtt5: "x-amqp-user-id", stompSend: "user-id", stompMessage: "user-id",
		fromMQTT5: publisherUser},
	{router: "app-id", mqtt5: "x-amqp-app-id", stompSend: "app-id", stompMessage: "app-id"},
	{router: "cluster-id", mqtt5: "x-amqp-cluster-id"},
}

// userProp reports whether an MQTT 5 name of propertyMap is a User
// Property: the AMQP properties MQTT 5 has no field for travel as User
// Properties x-amqp-<property>, after the message's headers.
func userProp(mqtt5 string) bool { return strings.HasPrefix(mqtt5, "x-amqp-") }

// Value conversions of propertyMap.

func qosToMode(q string) (string, bool) {
	if q == "0" {
		return "1", true
	}
	return "2", true
}

func modeToQoS(m string) (string, bool) {
	if m == "2" {
		return "1", true
	}
	return "0", true
}

func persistentToMode(p string) (string, bool) { return "2", p == "true" }
func modeToPersistent(m string) (string, bool) { return "true", m == "2" }

func octet(s string) (string, bool) {
	_, err := strconv.ParseUint(s, 10, 8)
	return s, err == nil
}

func integer(s string) (string, bool) {
	_, err := strconv.ParseInt(s, 10, 64)
	return s, err == nil
}

// publisherUser: a user-id is the publisher's user or nothing (AMQP
// 0-9-1 §3.1.4 as RabbitMQ enforces it); the matrix's clients are guest.
func publisherUser(u string) (string, bool) { return u, u == "guest" }

// shortString: AMQP's short strings hold up to 255 bytes (longer
// Correlation Data travels in header x-mqtt-correlation-data).
func shortString(s string) (string, bool) { return s, len(s) <= 255 }

func secondsToMillis(s string) (string, bool) { return s + "000", true }

func millisToSeconds(ms string) (string, bool) {
	n, err := strconv.Atoi(ms)
	return strconv.Itoa((n + 999) / 1000), err == nil && n > 0
}

// swapDots trades '.' and '/': an MQTT topic and its routing key.
func swapDots(s string) string {
	return strings.Map(func(r rune) rune {
		switch r {
		case '.':
			return '/'
		case '/':
			return '.'
		}
		return r
	}, s)
}

func topicToKey(topic string) (string, bool) { return swapDots(topic), true }

// replyToTopic: to MQTT 5 a reply-to is a routing key of the MQTT
// exchange, amq.topic (as RabbitMQ's x-reply-to-topic), given as its
// topic; a STOMP destination on amq.topic (/topic/<key>,
// /exchange/amq.topic/<key>) as the key's topic; other destinations (a
// queue) unchanged, for lack of a topic that reaches them.
func replyToTopic(r string) (string, bool) {
	if !strings.HasPrefix(r, "/") {
		return swapDots(r), true
	}
	for _, p := range []string{"/topic/", "/exchange/amq.topic/"} {
		if k, ok := strings.CutPrefix(r, p); ok {
			return swapDots(k), true
		}
	}
	return r, true
}

// stompDestinations are the prefixes of RabbitMQ's STOMP destinations.
var stompDestinations = []string{"/queue/", "/topic/", "/exchange/", "/amq/queue/", "/temp-queue/", "/reply-queue/"}

// replyToDestination: STOMP receivers see a reply-to as a destination to
// SEND the answer to: a destination as it is, the name of an existing
// queue as /reply-queue/<name> (TestMatrixRequestReply; no reply-to of
// the matrix's messages names one), any other name, a routing key, as
// /topic/<key>.
func replyToDestination(r string) (string, bool) {
	for _, p := range stompDestinations {
		if strings.HasPrefix(r, p) {
			return r, true
		}
	}
	return "/topic/" + r, true
}

// routerMsg is a message as the router holds it: what toRouter predicts a
// publish becomes.
type routerMsg struct {
	exchange, key string
	props         map[string]string // by the AMQP names of propertyMap, as text
	headers       []field
	body          []byte
}

// sentMsg is what a source client published, in its own terms: an AMQP
// publish's content header as the tap saw it, an MQTT publish, or a
// STOMP SEND's headers in the order go-stomp wrote them.
type sentMsg struct {
	exchange, key string // AMQP
	amqp          wireProps
	mqtt5         *paho.Publish
	topic         string // MQTT 3.1.1
	qos           byte
	dest          string // STOMP
	stomp         []field
	body          []byte
}

// toRouter maps what source published onto the router's message.
func toRouter(src proto, s sentMsg) routerMsg {
	m := routerMsg{props: map[string]string{}, body: s.body}
	switch src {
	case pAMQP:
		m.exchange, m.key, m.headers = s.exchange, s.key, s.amqp.headers
		for k, v := range s.amqp.props {
			m.props[k] = v
		}
	case pMQTT5, pMQTT3:
		topic, qos := s.topic, s.qos
		var pp *paho.PublishProperties
		if src == pMQTT5 {
			topic, qos, pp = s.mqtt5.Topic, s.mqtt5.QoS, s.mqtt5.Properties
		}
		m.exchange, m.key = "amq.topic", swapDots(topic)
		mq := map[string]string{"QoS": strconv.Itoa(int(qos))}
		var amqpProps []field // the x-amqp-* User Properties, in order
		if pp != nil {
			v := mqtt5View(&paho.Publish{Properties: pp})
			for k, x := range v.props {
				mq[k] = x
			}
			for _, f := range v.headers {
				if userProp(f.k) {
					amqpProps = append(amqpProps, f)
				} else {
					m.headers = append(m.headers, f)
				}
			}
			if pp.PayloadFormat != nil {
				m.headers = append(m.headers, field{"x-mqtt-payload-format", *pp.PayloadFormat})
			}
		}
		m.headers = append(m.headers, field{"x-mqtt-publish-qos", qos})
		for _, r := range propertyMap {
			var values []string
			if x, ok := mq[r.mqtt5]; ok {
				values = append(values, x)
			}
			for _, f := range amqpProps {
				if f.k == r.mqtt5 {
					values = append(values, f.v.(string))
				}
			}
			for _, x := range values { // the first valid one
				ok := true
				if r.fromMQTT5 != nil {
					x, ok = r.fromMQTT5(x)
				}
				if ok {
					m.props[r.router] = x
					break
				}
			}
		}
	case pSTOMP:
		m.exchange, m.key = stompRoute(s.dest)
		seen := map[string]bool{}
		for _, f := range s.stomp {
			if seen[f.k] {
				continue // STOMP 1.2: the first of a repeated header
			}
			seen[f.k] = true
			if stompReserved[f.k] {
				continue
			}
			m.headers = append(m.headers, f)
		}
		for _, r := range propertyMap {
			for _, f := range s.stomp {
				if r.stompSend == "" || f.k != r.stompSend && !(r.router == "message-id" && f.k == "amqp-message-id") {
					continue
				}
				x, ok := f.v.(string), true
				if r.fromSTOMP != nil {
					x, ok = r.fromSTOMP(x)
				}
				if ok {
					m.props[r.router] = x
				}
				break
			}
		}
	}
	return m
}

// stompReserved are the SEND headers that are not message headers: frame
// headers and those of propertyMap.
var stompReserved = map[string]bool{
	"destination": true, "content-length": true, "receipt": true, "transaction": true,
	"content-type": true, "content-encoding": true, "correlation-id": true, "reply-to": true,
	"expiration": true, "priority": true, "persistent": true, "message-id": true,
	"amqp-message-id": true, "timestamp": true, "type": true, "app-id": true, "user-id": true,
	"subscription": true, "ack": true, "redelivered": true, "id": true,
}

// stompRoute is the exchange and routing key of a SEND destination.
func stompRoute(dest string) (exchange, key string) {
	switch {
	case strings.HasPrefix(dest, "/queue/"):
		return "", dest[len("/queue/"):]
	case strings.HasPrefix(dest, "/topic/"):
		return "amq.topic", dest[len("/topic/"):]
	case strings.HasPrefix(dest, "/exchange/"):
		x, k, _ := strings.Cut(dest[len("/exchange/"):], "/")
		return x, k
	}
	panic("matrix: destination " + dest)
}

// stompDestination is how a STOMP subscriber sees where a message was
// published.
func stompDestination(exchange, key string) string {
	switch exchange {
	case "":
		return "/queue/" + key
	case "amq.topic":
		return "/topic/" + key
	}
	return "/exchange/" + exchange + "/" + key
}

// viewFor is what a client of protocol dst must see of m; an MQTT
// subscriber subscribed at QoS subQoS.
func (m routerMsg) viewFor(dst proto, subQoS int) view {
	v := view{qos: -1, props: map[string]string{}, body: m.body}
	switch dst {
	case pAMQP:
		v.where, v.headers = m.exchange+"|"+m.key, m.headers
		for k, x := range m.props {
			v.props[k] = x
		}
	case pMQTT5, pMQTT3:
		v.where = swapDots(m.key)
		mq := map[string]string{}
		for _, r := range propertyMap {
			if x, ok := m.props[r.router]; ok && r.mqtt5 != "" {
				if r.toMQTT5 != nil {
					x, ok = r.toMQTT5(x)
				}
				if ok && (validText(x) || r.mqtt5 == "correlation-data") { // binary data; the rest are MQTT strings
					mq[r.mqtt5] = x
				}
			}
		}
		qos, _ := strconv.Atoi(mq["QoS"])
		delete(mq, "QoS")
		for _, f := range m.headers {
			switch {
			case f.k == "x-mqtt-publish-qos":
				if n, ok := f.v.(byte); ok {
					qos = int(n)
				}
			case f.k == "x-mqtt-payload-format":
				if n, ok := f.v.(byte); ok {
					mq["payload-format"] = strconv.Itoa(int(n))
				}
			case strings.HasPrefix(f.k, "x-mqtt-"):
			default:
				if s, ok := textOf(f.v); ok {
					v.headers = append(v.headers, field{f.k, s})
				}
			}
		}
		for _, r := range propertyMap {
			if x, ok := mq[r.mqtt5]; ok && userProp(r.mqtt5) {
				v.headers = append(v.headers, field{r.mqtt5, x})
				delete(mq, r.mqtt5)
			}
		}
		v.qos = min(qos, subQoS)
		if dst == pMQTT5 {
			v.props = mq
		} else {
			v.headers = nil
		}
	case pSTOMP:
		v.where = stompDestination(m.exchange, m.key)
		for _, r := range propertyMap {
			if x, ok := m.props[r.router]; ok && r.stompMessage != "" {
				if r.toSTOMP != nil {
					x, ok = r.toSTOMP(x)
				}
				if ok && validText(x) {
					v.props[r.stompMessage] = x
				}
			}
		}
		for _, f := range m.headers {
			if s, ok := textOf(f.v); ok && !stompReserved[f.k] {
				v.headers = append(v.headers, field{f.k, s})
			}
		}
	}
	return v
}

// The matrix's routes.
type route string

const (
	viaQueue    route = "queue"    // a shared queue (MQTT subscribers: a $share group)
	viaTopic    route = "topic"    // amq.topic
	viaExchange route = "exchange" // the custom topic exchange matrixX
)

// matrixX is the custom topic exchange of the viaExchange route.
const matrixX = "mx.sensors"

// all256 is a body of every byte value.
var all256 = func() []byte {
	b := make([]byte, 256)
	for i := range b {
		b[i] = byte(i)
	}
	return b
}()

// cell is one source, target, route and delivery guarantee, with the
// names it uses.
type cell struct {
	src, dst   proto
	route      route
	persistent bool

	name    string // unique: it prefixes every name below
	key     string // the routing key published to: <name>.sensors.k1.temp
	pattern string // the binding key subscribed with: <name>.sensors.*.temp
	queue   string // viaQueue: the shared queue
}

func newCell(src, dst proto, r route, persistent bool) cell {
	q := "q0"
	if persistent {
		q = "q1"
	}
	n := string(src) + "-" + string(dst) + "-" + string(r) + "-" + q
	return cell{src: src, dst: dst, route: r, persistent: persistent, name: n,
		key: n + ".sensors.k1.temp", pattern: n + ".sensors.*.temp", queue: "mx." + n}
}

// named reports whether the message goes through the shared queue by
// name: MQTT clients can neither publish to nor consume a queue by name,
// so an MQTT source feeds it through a binding to amq.topic and an MQTT
// target reads a shared subscription ($share/mx/<filter>), fed through
// amq.topic.
func (c cell) named() bool { return c.route == viaQueue && !c.dst.mqtt() }

// matrixEnv is the broker and the connections every cell shares.
type matrixEnv struct {
	amqpURL, mqttAddr, stompAddr string
	admin                        *amqp.Channel
}

// newMatrixEnv starts a broker and an admin AMQP channel.
func newMatrixEnv(t *testing.T) *matrixEnv {
	srv := startInProcess(t)
	e := &matrixEnv{
		amqpURL:   "amqp://guest:guest@" + srv.Addrs()["amqp"] + "/",
		mqttAddr:  srv.Addrs()["mqtt"],
		stompAddr: srv.Addrs()["stomp"],
	}
	_, e.admin = dial(t, e.amqpURL)
	return e
}

// TestMatrix runs every cell: 4 sources × 4 targets × 3 routes × 2
// delivery guarantees, less MQTT to MQTT through the custom exchange (an
// MQTT client only publishes to and subscribes on amq.topic, so no
// message between two of them passes another exchange).
func TestMatrix(t *testing.T) {
	env := newMatrixEnv(t)
	must(t, env.admin.ExchangeDeclare(matrixX, "topic", true, false, false, false, nil))
	for _, src := range protos {
		for _, dst := range protos {
			for _, r := range []route{viaQueue, viaTopic, viaExchange} {
				if r == viaExchange && src.mqtt() && dst.mqtt() {
					continue
				}
				for _, persistent := range []bool{false, true} {
					c := newCell(src, dst, r, persistent)
					t.Run(c.name, func(t *testing.T) { env.run(t, c) })
				}
			}
		}
	}
}

// run sets up c's target and route, publishes the three messages and
// compares what arrives with what the mapping predicts.
func (e *matrixEnv) run(t *testing.T, c cell) {
	recv := e.attach(t, c)
	e.glue(t, c)
	sent := e.publish(t, c)
	for i, s := range sent {
		got := recv(i)
		want := toRouter(c.src, s).viewFor(c.dst, 1)
		compareView(t, c.name+" message "+strconv.Itoa(i), want, got)
	}
}

// attach subscribes c's target and returns the function that takes the
// i-th message it receives (acknowledging it) and flattens it.
func (e *matrixEnv) attach(t *testing.T, c cell) func(i int) view {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	t.Cleanup(cancel)
	filter := strings.ReplaceAll(swapDots(c.pattern), "*", "+")
	if c.route == viaQueue {
		filter = "$share/mx/" + filter
	}
	switch c.dst {
	case pAMQP:
		ch, tap := dialTapped(t, e.amqpURL)
		q := c.queue
		if c.named() {
			_, err := ch.QueueDeclare(q, true, false, false, false, nil)
			must(t, err)
		} else {
			q = declareQueue(t, ch, "", nil)
			x := "amq.topic"
			if c.route == viaExchange {
				x = matrixX
			}
			must(t, ch.QueueBind(q, c.pattern, x, false, nil))
		}
		ds := consume(t, ch, q)
		return func(i int) view {
			d := recvN(t, ds, 1)[0]
			must(t, d.Ack(false))
			return amqpView(t, tap, i, d)
		}
	case pMQTT5:
		sub := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: c.name + "-sub", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, sub, paho.SubscribeOptions{Topic: filter, QoS: 1})
		return func(int) view { return mqtt5View(next5(t, sub)) }
	case pMQTT3:
		msgs := make(chan mqtt3.Message, 10)
		sub, _ := open3(t, opts3(e.mqttAddr, c.name+"-sub", 4, true, msgs))
		wait3(t, "subscribe "+filter, sub.Subscribe(filter, 1, nil))
		return func(int) view { return mqtt3View(next3(t, msgs)) }
	case pSTOMP:
		conn := stompDial(t, e.stompAddr, stomp.V12)
		dest := "/queue/" + c.queue
		switch c.route {
		case viaTopic:
			dest = "/topic/" + c.pattern
		case viaExchange:
			dest = "/exchange/" + matrixX + "/" + c.pattern
		}
		s := stompSub(t, conn, dest, stomp.AckClientIndividual)
		return func(int) view {
			m := stompNext(t, s)
			must(t, conn.Ack(m))
			return stompView(t, m, s.Id(), true, false)
		}
	}
	panic("matrix: target " + c.dst)
}

// glue makes the bindings between an MQTT client, which only publishes to
// and subscribes on amq.topic, and the cell's route.
func (e *matrixEnv) glue(t *testing.T, c cell) {
	switch {
	case c.src.mqtt() && c.named():
		must(t, e.admin.QueueBind(c.queue, c.key, "amq.topic", false, nil))
	case c.src.mqtt() && c.route == viaExchange:
		must(t, e.admin.ExchangeBind(matrixX, c.pattern, "amq.topic", false, nil))
	case c.dst.mqtt() && c.route == viaExchange:
		must(t, e.admin.ExchangeBind("amq.topic", c.pattern, matrixX, false, nil))
	}
}

// address is where a non-MQTT source publishes: the shared queue through
// the default exchange, amq.topic or the custom exchange.
func (c cell) address() (exchange, key string) {
	switch {
	case c.named():
		return "", c.queue
	case c.route == viaExchange:
		return matrixX, c.key
	}
	return "amq.topic", c.key
}

// richHeaders are the message headers of the rich STOMP and MQTT 5
// messages: a repeated key (STOMP keeps the first), non-ASCII text, the
// characters STOMP 1.2 escapes, an empty value.
var richHeaders = []field{
	{"k", "1"}, {"z", "2"}, {"k", "3"}, {"uni", "ünï ✓"}, {"esc", "colon:back\\slash\nnl\rcr"}, {"empty", ""},
}

// publish sends c's three messages from its source: the rich one, a bare
// one with an empty body and an end marker, and returns what it sent.
func (e *matrixEnv) publish(t *testing.T, c cell) []sentMsg {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	qos := byte(0)
	if c.persistent {
		qos = 1
	}
	bodies := [][]byte{all256, {}, []byte("end")}
	sent := make([]sentMsg, len(bodies))
	switch c.src {
	case pAMQP:
		ch, tap := dialTapped(t, e.amqpURL)
		x, k := c.address()
		mode := uint8(0)
		if c.persistent {
			mode = amqp.Persistent
		}
		for i, body := range bodies {
			p := amqp.Publishing{DeliveryMode: mode, Body: body}
			if i == 0 {
				p = richAMQP(c, body)
			}
			publishMsg(t, ch, x, k, p)
			sent[i] = sentMsg{exchange: x, key: k, amqp: tap.sent(t, i), body: body}
		}
	case pMQTT5:
		pub := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: c.name + "-pub", CleanStart: true, KeepAlive: 30}, opts5{})
		for i, body := range bodies {
			p := &paho.Publish{Topic: swapDots(c.key), QoS: qos, Payload: body}
			if i == 0 {
				p.Properties = richMQTT5(c)
			}
			pub5(ctx, t, pub, p)
			sent[i] = sentMsg{mqtt5: p, body: body}
		}
	case pMQTT3:
		pub, _ := open3(t, opts3(e.mqttAddr, c.name+"-pub", 4, true, nil))
		for i, body := range bodies {
			wait3(t, "publish", pub.Publish(swapDots(c.key), qos, false, body))
			sent[i] = sentMsg{topic: swapDots(c.key), qos: qos, body: body}
		}
	case pSTOMP:
		conn := stompDial(t, e.stompAddr, stomp.V12)
		x, k := c.address()
		dest := stompDestination(x, k)
		for i, body := range bodies {
			var hs []field
			if i == 0 {
				hs = richSTOMP(c)
			}
			if c.persistent {
				hs = append(hs, field{"persistent", "true"})
			}
			opts := []func(*stompFrameT) error{stomp.SendOpt.Receipt}
			for _, h := range hs {
				opts = append(opts, stomp.SendOpt.Header(h.k, h.v.(string)))
			}
			ct := ""
			if i == 0 {
				ct = "application/x-matrix; v=1"
				hs = append([]field{{"content-type", ct}}, hs...)
			}
			if err := conn.Send(dest, ct, body, opts...); err != nil {
				t.Fatalf("send to %s: %v", dest, err)
			}
			sent[i] = sentMsg{dest: dest, stomp: hs, body: body}
		}
	}
	return sent
}

// richAMQP sets every basic property amqp091-go can send and headers of
// every field type but unsigned 16 and 32 bit (which amqp091-go cannot
// read), nested and repeated ones included (an AMQP table has no repeats).
func richAMQP(c cell, body []byte) amqp.Publishing {
	mode := amqp.Transient
	if c.persistent {
		mode = amqp.Persistent
	}
	return amqp.Publishing{
		ContentType:     "application/x-matrix; v=1",
		ContentEncoding: "identity",
		DeliveryMode:    mode,
		Priority:        7,
		CorrelationId:   "corr-" + c.name,
		ReplyTo:         c.name + ".replies",
		Expiration:      "60000",
		MessageId:       "mid-" + c.name,
		Timestamp:       time.Unix(1700000000, 0),
		Type:            "matrix.rich",
		UserId:          "guest",
		AppId:           "matrix",
		Headers: amqp.Table{
			"s": "str", "uni": "ünï ✓", "esc": "colon:back\\slash\nnl\rcr", "empty": "",
			"i8": int8(-8), "u8": uint8(200), "i16": int16(-300), "i32": int32(-42), "i64": int64(1) << 40,
			"bool": true, "f32": float32(0.25), "f64": 1.5, "text-bytes": []byte("utf-8 bytes"), "bin": []byte{0, 0xff},
			"ts": time.Unix(1700000001, 0), "dec": amqp.Decimal{Scale: 2, Value: 12345},
			"table": amqp.Table{"a": "1", "b": int32(2)}, "array": []any{"a", int32(1), true}, "void": nil,
		},
		Body: body,
	}
}

// richMQTT5 sets every MQTT 5 application property: a Payload Format
// Indicator of 0 (the body is not UTF-8), binary Correlation Data, User
// Properties with a repeated key, and User Properties that set AMQP
// properties (a repeated one: the first).
func richMQTT5(c cell) *paho.PublishProperties {
	pf, exp := byte(0), uint32(60)
	p := &paho.PublishProperties{
		PayloadFormat: &pf, MessageExpiry: &exp, ContentType: "application/x-matrix; v=1",
		ResponseTopic: swapDots(c.name + ".replies"), CorrelationData: []byte{0, 1, 0x7f, 0x80, 0xfe, 0xff},
	}
	for _, h := range richHeaders {
		p.User = append(p.User, paho.UserProperty{Key: h.k, Value: h.v.(string)})
	}
	p.User = append(p.User, paho.UserProperty{Key: "x-amqp-type", Value: "mqtt.rich"}, paho.UserProperty{Key: "x-amqp-priority", Value: "5"},
		paho.UserProperty{Key: "x-amqp-type", Value: "ignored"}, paho.UserProperty{Key: "x-amqp-user-id", Value: "guest"})
	return p
}

// richSTOMP is every SEND header the STOMP adapter maps to a property
// (persistent apart), then the message headers.
func richSTOMP(c cell) []field {
	return append([]field{
		{"content-encoding", "identity"},
		{"correlation-id", "corr-" + c.name},
		{"reply-to", "/topic/" + c.name + ".replies"},
		{"expiration", "60000"},
		{"priority", "7"},
		{"message-id", "mid-" + c.name},
		{"timestamp", "1700000000"},
		{"type", "matrix.rich"},
		{"app-id", "matrix"},
		{"user-id", "guest"},
	}, slices.Clone(richHeaders)...)
}

// republish5 is what an MQTT 5 relay sends on: the publish it got, every
// application property unchanged, to topic.
func republish5(in *paho.Publish, topic string) *paho.Publish {
	out := &paho.Publish{Topic: topic, QoS: in.QoS, Payload: in.Payload}
	if p := in.Properties; p != nil {
		out.Properties = &paho.PublishProperties{ContentType: p.ContentType, CorrelationData: p.CorrelationData,
			ResponseTopic: p.ResponseTopic, PayloadFormat: p.PayloadFormat, MessageExpiry: p.MessageExpiry, User: p.User}
	}
	return out
}

// republish091 is what an amqp091-go relay sends on: the delivery it got,
// every property and header unchanged.
func republish091(d amqp.Delivery) amqp.Publishing {
	return amqp.Publishing{Headers: d.Headers, ContentType: d.ContentType, ContentEncoding: d.ContentEncoding,
		DeliveryMode: d.DeliveryMode, Priority: d.Priority, CorrelationId: d.CorrelationId, ReplyTo: d.ReplyTo,
		Expiration: d.Expiration, MessageId: d.MessageId, Timestamp: d.Timestamp, Type: d.Type, UserId: d.UserId,
		AppId: d.AppId, Body: d.Body}
}

// TestMatrixRoundTrip: a message that goes through a client of another
// protocol, which passes on everything it got, comes back with everything
// that protocol can express: AMQP → MQTT 5 → AMQP and STOMP → AMQP →
// STOMP. Each leg is also checked against the mapping table applied
// twice.
func TestMatrixRoundTrip(t *testing.T) {
	e := newMatrixEnv(t)
	t.Run("amqp-mqtt5-amqp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		relay := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: "rt-relay", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, relay, paho.SubscribeOptions{Topic: "rt/amqp/in", QoS: 1})
		cons, ctap := dialTapped(t, e.amqpURL)
		q := declareQueue(t, cons, "", nil)
		must(t, cons.QueueBind(q, "rt.amqp.out", "amq.topic", false, nil))
		ds := consume(t, cons, q)
		pub, ptap := dialTapped(t, e.amqpURL)
		publishMsg(t, pub, "amq.topic", "rt.amqp.in", richAMQP(newCell(pAMQP, pMQTT5, viaTopic, true), all256))
		orig := toRouter(pAMQP, sentMsg{exchange: "amq.topic", key: "rt.amqp.in", amqp: ptap.sent(t, 0), body: all256})

		in := next5(t, relay)
		compareView(t, "at the relay", orig.viewFor(pMQTT5, 1), mqtt5View(in))
		out := republish5(in, "rt/amqp/out")
		pub5(ctx, t, relay, out)
		d := recvN(t, ds, 1)[0]
		must(t, d.Ack(false))
		got := amqpView(t, ctap, 0, d)
		compareView(t, "back", toRouter(pMQTT5, sentMsg{mqtt5: out, body: out.Payload}).viewFor(pAMQP, 1), got)

		// What that amounts to: every property back (the expiry is what
		// was left of it at the relay), the headers with a text form
		// back as text in their order, plus MQTT's x-mqtt-publish-qos.
		want := orig.viewFor(pAMQP, 1)
		want.where = "amq.topic|rt.amqp.out"
		if exp, err := strconv.Atoi(got.props["expiration"]); err != nil || exp > 60000 || exp < 58000 || exp%1000 != 0 {
			t.Errorf("expiration %q after the round trip, want whole seconds up to 60000", got.props["expiration"])
		}
		want.props["expiration"] = got.props["expiration"]
		want.headers = nil
		for _, f := range orig.headers {
			if s, ok := textOf(f.v); ok {
				want.headers = append(want.headers, field{f.k, s})
			}
		}
		want.headers = append(want.headers, field{"x-mqtt-publish-qos", byte(1)})
		compareView(t, "round trip", want, got)
	})
	t.Run("stomp-amqp-stomp", func(t *testing.T) {
		out := stompDial(t, e.stompAddr, stomp.V12)
		s := stompSub(t, out, "/queue/rt.stomp.out", stomp.AckAuto)
		relay, rtap := dialTapped(t, e.amqpURL)
		_, err := relay.QueueDeclare("rt.stomp.in", true, false, false, false, nil)
		must(t, err)
		ds := consume(t, relay, "rt.stomp.in")
		in := stompDial(t, e.stompAddr, stomp.V12)
		hs := append([]field{{"content-type", "application/x-matrix; v=1"}}, richSTOMP(newCell(pSTOMP, pAMQP, viaQueue, true))...)
		hs = append(hs, field{"persistent", "true"})
		opts := []func(*stompFrameT) error{stomp.SendOpt.Receipt}
		for _, h := range hs[1:] {
			opts = append(opts, stomp.SendOpt.Header(h.k, h.v.(string)))
		}
		must(t, in.Send("/queue/rt.stomp.in", "application/x-matrix; v=1", all256, opts...))
		orig := toRouter(pSTOMP, sentMsg{dest: "/queue/rt.stomp.in", stomp: hs, body: all256})

		d := recvN(t, ds, 1)[0]
		compareView(t, "at the relay", orig.viewFor(pAMQP, 1), amqpView(t, rtap, 0, d))
		publishMsg(t, relay, "", "rt.stomp.out", republish091(d))
		must(t, d.Ack(false))
		got := stompView(t, stompNext(t, s), s.Id(), false, false)
		relayed := toRouter(pAMQP, sentMsg{key: "rt.stomp.out", amqp: rtap.sent(t, 0), body: d.Body})
		compareView(t, "back", relayed.viewFor(pSTOMP, 1), got)

		// Everything comes back; amqp091-go sends headers in its map's
		// order, so they are compared as a set.
		want := orig.viewFor(pSTOMP, 1)
		want.where = "/queue/rt.stomp.out"
		bykey := func(a, b field) int { return strings.Compare(a.k, b.k) }
		slices.SortFunc(want.headers, bykey)
		slices.SortFunc(got.headers, bykey)
		compareView(t, "round trip", want, got)
	})
}

// TestMatrixRequestReply: request/reply across protocols, each side
// answering where the request's reply address says, as its own protocol
// reads it.
func TestMatrixRequestReply(t *testing.T) {
	e := newMatrixEnv(t)
	corr := []byte{0xde, 0xad, 0, 0xbe, 0xef} // binary: MQTT 5 Correlation Data is bytes

	// An MQTT 5 requester with Response Topic and Correlation Data; an
	// AMQP service on a queue bound to amq.topic answers to amq.topic with
	// the reply_to it sees as routing key and the correlation_id.
	t.Run("mqtt5-amqp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		svc := newChannel(t, dialConfig(t, e.amqpURL, amqp.Config{}))
		q := declareQueue(t, svc, "", nil)
		must(t, svc.QueueBind(q, "rr.svc1.*", "amq.topic", false, nil))
		reqs := consume(t, svc, q)
		c := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: "rr-mqtt-requester", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "rr/replies/requester", QoS: 1})
		pub5(ctx, t, c, &paho.Publish{Topic: "rr/svc1/add", QoS: 1, Payload: []byte("1+1"), Properties: &paho.PublishProperties{
			ResponseTopic: "rr/replies/requester", CorrelationData: corr}})
		d := recvN(t, reqs, 1)[0]
		if d.ReplyTo != "rr.replies.requester" || d.CorrelationId != string(corr) || d.RoutingKey != "rr.svc1.add" {
			t.Fatalf("service got reply_to %q correlation_id %q key %q, want rr.replies.requester %q rr.svc1.add", d.ReplyTo, d.CorrelationId, d.RoutingKey, corr)
		}
		publishMsg(t, svc, "amq.topic", d.ReplyTo, amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("2")})
		must(t, d.Ack(false))
		r := next5(t, c)
		if r.Topic != "rr/replies/requester" || string(r.Payload) != "2" || r.Properties == nil || string(r.Properties.CorrelationData) != string(corr) {
			t.Fatalf("reply %q on %q with properties %+v, want 2 with Correlation Data %q", r.Payload, r.Topic, r.Properties, corr)
		}
	})

	// An AMQP requester on direct reply-to; an MQTT 5 responder answers to
	// the Response Topic it sees with the Correlation Data.
	t.Run("amqp-mqtt5", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		svc := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: "rr-mqtt-responder", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, svc, paho.SubscribeOptions{Topic: "rr/svc2/+", QoS: 1})
		ch := newChannel(t, dialConfig(t, e.amqpURL, amqp.Config{}))
		replies, err := ch.Consume("amq.rabbitmq.reply-to", "", true, false, false, false, nil)
		must(t, err)
		publishMsg(t, ch, "amq.topic", "rr.svc2.add", amqp.Publishing{ReplyTo: "amq.rabbitmq.reply-to", CorrelationId: "c-42", Body: []byte("2+2")})
		req := next5(t, svc)
		p := req.Properties
		if p == nil || !strings.HasPrefix(p.ResponseTopic, "amq/rabbitmq/reply-to/") || string(p.CorrelationData) != "c-42" {
			t.Fatalf("responder got properties %+v, want a Response Topic amq/rabbitmq/reply-to/<token> and Correlation Data c-42", p)
		}
		pub5(ctx, t, svc, &paho.Publish{Topic: p.ResponseTopic, QoS: 1, Payload: []byte("4"),
			Properties: &paho.PublishProperties{CorrelationData: p.CorrelationData}})
		r := recvN(t, replies, 1)[0]
		if string(r.Body) != "4" || r.CorrelationId != "c-42" {
			t.Fatalf("reply %q correlation_id %q, want 4 and c-42", r.Body, r.CorrelationId)
		}
	})

	// A STOMP requester with reply-to:/temp-queue/; an AMQP service
	// answers through the default exchange with the reply_to it sees as
	// routing key.
	t.Run("stomp-amqp", func(t *testing.T) {
		svc := newChannel(t, dialConfig(t, e.amqpURL, amqp.Config{}))
		_, err := svc.QueueDeclare("rr.svc3", true, false, false, false, nil)
		must(t, err)
		reqs := consume(t, svc, "rr.svc3")
		c := stompDial(t, e.stompAddr, stomp.V12)
		// go-stomp: a subscription with a reply-to header is not sent; it
		// only collects MESSAGEs whose subscription is the reply-to.
		replies, err := c.Subscribe("/temp-queue/rr", stomp.AckAuto, stomp.SubscribeOpt.Header(stomp.ReplyToHeader, "/temp-queue/rr"))
		must(t, err)
		stompSend(t, c, "/queue/rr.svc3", "3+3", "reply-to", "/temp-queue/rr", "correlation-id", "c-3")
		d := recvN(t, reqs, 1)[0]
		if d.ReplyTo == "" || strings.HasPrefix(d.ReplyTo, "/") || d.CorrelationId != "c-3" {
			t.Fatalf("service got reply_to %q correlation_id %q, want the temp queue's name and c-3", d.ReplyTo, d.CorrelationId)
		}
		publishMsg(t, svc, "", d.ReplyTo, amqp.Publishing{CorrelationId: d.CorrelationId, Body: []byte("6")})
		must(t, d.Ack(false))
		r := stompNext(t, replies)
		if string(r.Body) != "6" || r.Header.Get("correlation-id") != "c-3" || r.Header.Get("subscription") != "/temp-queue/rr" {
			t.Fatalf("reply %q with headers %v", r.Body, r.Header)
		}
	})

	// An MQTT 5 requester; a STOMP responder SENDs to the reply-to it
	// sees, /topic/<key>. (STOMP headers are text: binary Correlation
	// Data does not reach it.)
	t.Run("mqtt5-stomp", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		svc := stompDial(t, e.stompAddr, stomp.V12)
		reqs := stompSub(t, svc, "/topic/rr.svc5.*", stomp.AckAuto)
		c := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: "rr-mqtt-requester5", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: "rr/replies/m5", QoS: 1})
		pub5(ctx, t, c, &paho.Publish{Topic: "rr/svc5/add", QoS: 1, Payload: []byte("5+5"), Properties: &paho.PublishProperties{
			ResponseTopic: "rr/replies/m5", CorrelationData: []byte("c-5")}})
		req := stompNext(t, reqs)
		dest := req.Header.Get("reply-to")
		if dest != "/topic/rr.replies.m5" || req.Header.Get("correlation-id") != "c-5" {
			t.Fatalf("responder got reply-to %q correlation-id %q, want /topic/rr.replies.m5 and c-5", dest, req.Header.Get("correlation-id"))
		}
		stompSend(t, svc, dest, "10", "correlation-id", req.Header.Get("correlation-id"))
		r := next5(t, c)
		if r.Topic != "rr/replies/m5" || string(r.Payload) != "10" || r.Properties == nil || string(r.Properties.CorrelationData) != "c-5" {
			t.Fatalf("reply %q on %q with properties %+v, want 10 with Correlation Data c-5", r.Payload, r.Topic, r.Properties)
		}
	})

	// A STOMP requester with reply-to:/topic/<key>; an MQTT 5 responder
	// publishes to the Response Topic it sees, the key's topic.
	t.Run("stomp-mqtt5", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		svc := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: "rr-mqtt-responder6", CleanStart: true, KeepAlive: 30}, opts5{})
		sub5(ctx, t, svc, paho.SubscribeOptions{Topic: "rr/svc6/+", QoS: 1})
		c := stompDial(t, e.stompAddr, stomp.V12)
		replies := stompSub(t, c, "/topic/rr.replies.s6", stomp.AckAuto)
		stompSend(t, c, "/topic/rr.svc6.add", "6+6", "reply-to", "/topic/rr.replies.s6", "correlation-id", "c-6")
		req := next5(t, svc)
		p := req.Properties
		if p == nil || p.ResponseTopic != "rr/replies/s6" || string(p.CorrelationData) != "c-6" {
			t.Fatalf("responder got properties %+v, want Response Topic rr/replies/s6 and Correlation Data c-6", p)
		}
		pub5(ctx, t, svc, &paho.Publish{Topic: p.ResponseTopic, QoS: 1, Payload: []byte("12"),
			Properties: &paho.PublishProperties{CorrelationData: p.CorrelationData}})
		r := stompNext(t, replies)
		if string(r.Body) != "12" || r.Header.Get("correlation-id") != "c-6" || r.Header.Get("destination") != "/topic/rr.replies.s6" {
			t.Fatalf("reply %q with headers %v", r.Body, r.Header)
		}
	})

	// An AMQP requester, on direct reply-to and on a reply queue of its
	// own; a STOMP responder SENDs to the reply-to destination it sees.
	for _, replyTo := range []string{"amq.rabbitmq.reply-to", "own queue"} {
		t.Run("amqp-stomp/"+strings.ReplaceAll(replyTo, " ", "-"), func(t *testing.T) {
			svc := stompDial(t, e.stompAddr, stomp.V12)
			reqs := stompSub(t, svc, "/queue/rr.svc4", stomp.AckClientIndividual)
			ch := newChannel(t, dialConfig(t, e.amqpURL, amqp.Config{}))
			var replies <-chan amqp.Delivery
			if replyTo == "own queue" {
				replyTo = declareQueue(t, ch, "", nil)
				replies = consume(t, ch, replyTo)
			} else {
				var err error
				replies, err = ch.Consume(replyTo, "", true, false, false, false, nil)
				must(t, err)
			}
			publishMsg(t, ch, "", "rr.svc4", amqp.Publishing{ReplyTo: replyTo, CorrelationId: "c-4", Body: []byte("4+4")})
			req := stompNext(t, reqs)
			dest := req.Header.Get("reply-to")
			if !strings.HasPrefix(dest, "/reply-queue/") || req.Header.Get("correlation-id") != "c-4" {
				t.Fatalf("responder got reply-to %q correlation-id %q, want /reply-queue/... and c-4", dest, req.Header.Get("correlation-id"))
			}
			stompSend(t, svc, dest, "8", "correlation-id", req.Header.Get("correlation-id"))
			must(t, svc.Ack(req))
			r := recvN(t, replies, 1)[0]
			if string(r.Body) != "8" || r.CorrelationId != "c-4" {
				t.Fatalf("reply %q correlation_id %q, want 8 and c-4", r.Body, r.CorrelationId)
			}
		})
	}
}

// TestMatrixAcks: the consuming side's acknowledgement is what removes a
// message, whatever protocol published it. A persistent message from
// each source goes unacknowledged to a consumer of each kind, which lets
// go of it: a STOMP client-ack subscriber disconnects, an AMQP consumer
// nacks with requeue, an MQTT 5 subscriber of a persistent session
// drops its connection before PUBACK. It comes back marked redelivered
// (DUP) with the same body and properties, and once acknowledged its
// queue is empty.
func TestMatrixAcks(t *testing.T) {
	e := newMatrixEnv(t)
	for _, src := range []proto{pAMQP, pMQTT5, pSTOMP} {
		for _, dst := range []proto{pSTOMP, pAMQP, pMQTT5} {
			name := "ack-" + string(src) + "-" + string(dst)
			t.Run(name, func(t *testing.T) { e.ackCase(t, src, dst, name) })
		}
	}
}

func (e *matrixEnv) ackCase(t *testing.T, src, dst proto, name string) {
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	key := name + ".k" // routing key on amq.topic
	queue := name      // the queue an AMQP or STOMP consumer reads
	// first and again take the message the first time and the second.
	var first, again func() view
	switch dst {
	case pSTOMP:
		conn := stompDial(t, e.stompAddr, stomp.V12)
		s := stompSub(t, conn, "/queue/"+queue, stomp.AckClient)
		first = func() view {
			v := stompView(t, stompNext(t, s), s.Id(), true, false)
			if err := conn.Disconnect(); err != nil {
				t.Fatalf("disconnect: %v", err)
			}
			return v
		}
		again = func() view {
			conn := stompDial(t, e.stompAddr, stomp.V12)
			s := stompSub(t, conn, "/queue/"+queue, stomp.AckClient)
			m := stompNext(t, s)
			must(t, conn.Ack(m))
			stompSync(t, conn) // the ACK is processed
			must(t, conn.Disconnect())
			return stompView(t, m, s.Id(), true, true)
		}
	case pAMQP:
		ch := newChannel(t, dialConfig(t, e.amqpURL, amqp.Config{}))
		_, err := ch.QueueDeclare(queue, true, false, false, false, nil)
		must(t, err)
		ds := consume(t, ch, queue)
		take := func(redelivered bool) amqp.Delivery {
			d := recvN(t, ds, 1)[0]
			if d.Redelivered != redelivered {
				t.Errorf("redelivered %v, want %v", d.Redelivered, redelivered)
			}
			return d
		}
		first = func() view {
			d := take(false)
			must(t, d.Nack(false, true))
			return amqpDeliveryView(d)
		}
		again = func() view {
			d := take(true)
			must(t, d.Ack(false))
			must(t, ch.Close()) // after close-ok, the ack is processed
			return amqpDeliveryView(d)
		}
	case pMQTT5:
		exp := uint32(600)
		cp := &paho.Connect{ClientID: name, CleanStart: false, KeepAlive: 30, Properties: &paho.ConnectProperties{SessionExpiryInterval: &exp}}
		c := open5(ctx, t, e.mqttAddr, cp, opts5{manualAck: true})
		sub5(ctx, t, c, paho.SubscribeOptions{Topic: swapDots(key), QoS: 1})
		queue = "mqtt-subscription-" + name + "qos1"
		first = func() view {
			m := next5(t, c)
			if m.Duplicate() {
				t.Error("first delivery with DUP")
			}
			_ = c.conn.Close() // no PUBACK, no DISCONNECT
			return mqtt5View(m)
		}
		again = func() view {
			// A raw client acknowledges, so that a PINGREQ's answer shows
			// the PUBACK processed (paho sends acknowledgements from a
			// goroutine of its own). The broker may not have seen the
			// first connection go yet: this one takes the session over.
			r := dialRaw5(t, e.mqttAddr)
			if ack := r.connect(name, false, exp); !ack.SessionPresent {
				t.Fatal("no session present")
			}
			pk, ok := r.read().Content.(*pk5.Publish)
			if !ok {
				t.Fatal("no PUBLISH after reconnecting")
			}
			if !pk.Duplicate {
				t.Error("resent without DUP")
			}
			r.send(&pk5.Puback{PacketID: pk.PacketID})
			r.send(&pk5.Pingreq{})
			if p := r.read(); p.Type != pk5.PINGRESP {
				t.Fatalf("got %v, want PINGRESP", p)
			}
			r.send(&pk5.Disconnect{}) // the session stays, without a consumer
			return mqtt5View(paho.PublishFromPacketPublish(pk))
		}
	}
	if !dst.mqtt() && src.mqtt() {
		must(t, e.admin.QueueBind(queue, key, "amq.topic", false, nil))
	}
	body := []byte(name)
	switch src {
	case pAMQP:
		ch := newChannel(t, dialConfig(t, e.amqpURL, amqp.Config{}))
		x, k := "", queue
		if dst.mqtt() {
			x, k = "amq.topic", key
		}
		publishMsg(t, ch, x, k, amqp.Publishing{DeliveryMode: amqp.Persistent, CorrelationId: "c", Headers: amqp.Table{"h": "v"}, Body: body})
	case pMQTT5:
		c := open5(ctx, t, e.mqttAddr, &paho.Connect{ClientID: name + "-pub", CleanStart: true, KeepAlive: 30}, opts5{})
		pub5(ctx, t, c, &paho.Publish{Topic: swapDots(key), QoS: 1, Payload: body, Properties: &paho.PublishProperties{
			CorrelationData: []byte("c"), User: paho.UserProperties{{Key: "h", Value: "v"}}}})
	case pSTOMP:
		dest := "/queue/" + queue
		if dst.mqtt() {
			dest = "/topic/" + key
		}
		stompSend(t, stompDial(t, e.stompAddr, stomp.V12), dest, string(body), "persistent", "true", "correlation-id", "c", "h", "v")
	}
	v1 := first()
	v2 := again() // acknowledges it, then ends its consumer
	compareView(t, "redelivered", v1, v2)
	if string(v1.body) != name {
		t.Errorf("body %q, want %q", v1.body, name)
	}
	// Unacknowledged, it would be back in the queue once the consumer
	// is gone (declare-ok counts ready messages only).
	ch := newChannel(t, dialConfig(t, e.amqpURL, amqp.Config{}))
	var q amqp.Queue
	eventually(t, "no consumer on "+queue, func() bool {
		var err error
		q, err = ch.QueueDeclarePassive(queue, false, false, false, false, nil)
		must(t, err)
		return q.Consumers == 0
	})
	if q.Messages != 0 {
		t.Errorf("%d messages left in %s after the acknowledgement", q.Messages, queue)
	}
}

// amqpDeliveryView flattens what amqp091-go hands over, for comparing
// two deliveries of one message (no tap: header order aside).
func amqpDeliveryView(d amqp.Delivery) view {
	v := view{where: d.Exchange + "|" + d.RoutingKey, qos: int(d.DeliveryMode), body: d.Body, props: map[string]string{
		"correlation-id": d.CorrelationId, "content-type": d.ContentType, "reply-to": d.ReplyTo}}
	for k, x := range d.Headers {
		v.headers = append(v.headers, field{k, fromAMQP091(x)})
	}
	slices.SortFunc(v.headers, func(a, b field) int { return strings.Compare(a.k, b.k) })
	return v
}
