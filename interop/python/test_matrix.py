"""The cross-protocol matrix (issue 6) with Debian's clients: pika (AMQP
0-9-1), paho-mqtt (MQTT 5, and MQTT 3.1.1 in two cells) and stomp.py (STOMP
1.2) against the junction binary.

Every source protocol sends to every target protocol, persistent (AMQP
delivery mode 2, MQTT QoS 1, STOMP persistent:true), through amq.topic (the
target subscribed with the MQTT filter sensors/+/temp, an AMQP queue bound
with sensors.*.temp, STOMP /topic/sensors.*.temp) and, where the target can
consume a queue by name (AMQP, STOMP /queue/...), through a queue; an MQTT
source reaches that queue through a binding to amq.topic. Each source sends
a rich message, a body of every byte value with every property both sides
can express, and then an empty one with none. What the target must see is
derived from one model of the router's message (Routed) and compared whole,
minus the broker's provenance headers (x-junction-*), which one test checks
on their own. A request/reply cell (MQTT 5 requester, AMQP responder) and a
retained-message cell (paho retained publish, pika binding with
x-mqtt-retained) complete it. interop/matrix_test.go runs the full matrix
with the Go clients.
"""

import queue
import tempfile
import threading
import time
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
import pika
import stomp

from broker import Broker

AMQP, MQTT5, MQTT3, STOMP = "amqp", "mqtt5", "mqtt3", "stomp"
WAIT = 5  # seconds: every wait for the broker or a client has this deadline

BINARY = bytes(range(256))  # every byte value, zero bytes included

# User headers that AMQP headers, MQTT 5 User Properties and STOMP headers
# can all express: non-ASCII text, the characters STOMP 1.2 escapes, an
# empty value.
HEADERS = [("s", "str"), ("uni", "ünï ✓"), ("esc", "a:b\\z\nnl"), ("empty", "")]

# The AMQP properties MQTT 5 has no field for travel as these User
# Properties, in this order, after the headers (protocols/mqtt/props.go).
AMQP_USER_PROPS = [("content_encoding", "x-amqp-content-encoding"), ("priority", "x-amqp-priority"),
                   ("message_id", "x-amqp-message-id"), ("timestamp", "x-amqp-timestamp"),
                   ("type", "x-amqp-type"), ("user_id", "x-amqp-user-id"),
                   ("app_id", "x-amqp-app-id"), ("cluster_id", "x-amqp-cluster-id")]

# STOMP MESSAGE headers that belong to the delivery, not the message.
STOMP_FRAME = {"subscription", "message-id", "ack", "redelivered", "content-length"}


def swap(s):
    """An MQTT topic and its routing key: '/' and '.' traded."""
    return s.translate(str.maketrans("./", "/."))


def text(v):
    """A header value as MQTT 5 and STOMP show it."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, bytes):
        return v.decode()
    return str(v)


def mine(headers):
    """Headers without the broker's provenance headers."""
    return {k: v for k, v in (headers or {}).items() if not k.startswith("x-junction-")}


class Cell:
    """One source, target and route, with the names it uses."""

    def __init__(self, src, dst, route, reply_to=True):
        self.src, self.dst, self.route = src, dst, route
        self.reply_to = reply_to  # whether the rich message has a reply-to
        self.name = "%s-%s-%s" % (src, dst, route)
        self.key = "sensors.%s.temp" % self.name  # the routing key published to
        self.queue = "mx." + self.name  # the queue of the queue route

    def named(self):
        """Whether the target consumes the queue by name."""
        return self.route == "queue"


class Routed:
    """A message as the router holds it (AMQP's shape): what a source's
    publish becomes, and from which every target's view is derived."""

    def __init__(self, exchange, key, body, props=None, headers=None):
        self.exchange, self.key, self.body = exchange, key, body
        self.props = props or {}  # by pika's names; correlation_id as bytes
        self.headers = headers or []  # (key, value as AMQP carries it), in order, repeats kept

    def for_amqp(self):
        want = {"where": (self.exchange, self.key), "body": self.body, "delivery_mode": 2,
                "headers": dict(self.headers)}  # a table: the last of a repeated key
        want.update(self.props)
        return want

    def for_mqtt5(self):
        p = self.props
        want = {"topic": swap(self.key), "body": self.body, "qos": 1,
                "content_type": p.get("content_type"), "correlation_data": p.get("correlation_id"),
                "response_topic": None}
        r = p.get("reply_to")
        if r is not None and r.startswith("/topic/"):
            want["response_topic"] = swap(r[len("/topic/"):])
        elif r is not None and not r.startswith("/"):
            want["response_topic"] = swap(r)
        user = [(k, text(v)) for k, v in self.headers if not k.startswith("x-mqtt-")]
        user += [(up, text(p[name])) for name, up in AMQP_USER_PROPS if name in p]
        want["user"] = user
        return want

    def for_mqtt3(self):
        return {"topic": swap(self.key), "body": self.body, "qos": 1}

    def for_stomp(self):
        dest = {"": "/queue/", "amq.topic": "/topic/"}[self.exchange] + self.key
        want = {"destination": dest, "persistent": "true"}
        for k, v in reversed(self.headers):  # STOMP 1.2: the first of a repeated header counts
            want[k] = text(v)
        p = self.props
        for name, header in [("content_type", "content-type"), ("message_id", "amqp-message-id"),
                             ("app_id", "app-id")]:
            if name in p:
                want[header] = p[name]
        corr = p.get("correlation_id")
        if corr is not None and b"\x00" not in corr:
            try:
                want["correlation-id"] = corr.decode()
            except UnicodeDecodeError:
                pass  # STOMP headers are text: binary correlation data is left out
        if "reply_to" in p:
            r = p["reply_to"]
            # A reply-to that is no STOMP destination is shown as
            # /reply-queue/<it> when a queue has that name, else (a routing
            # key, as here) as /topic/<it>.
            want["reply-to"] = r if r.startswith("/") else "/topic/" + r
        return {"headers": want, "body": self.body}


class StompListener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = queue.Queue()
        self.receipts = queue.Queue()
        self.errors = []

    def on_message(self, frame):
        self.messages.put(frame)

    def on_receipt(self, frame):
        self.receipts.put(frame.headers["receipt-id"])

    def on_error(self, frame):
        self.errors.append(frame)


class MatrixTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        # Warnings only: its stderr is a pipe nobody reads until it exits,
        # and a line per connection for the whole class could fill it.
        cls.broker = Broker(cls.tmp.name, ["--log-level", "warn"])
        cls.broker.start()

    @classmethod
    def tearDownClass(cls):
        cls.broker.stop()
        cls.tmp.cleanup()

    # Clients, each closed when the test ends.

    def amqp_channel(self, confirm=False):
        conn = self.broker.connect()
        self.addCleanup(lambda: conn.is_open and conn.close())
        ch = conn.channel()
        if confirm:
            ch.confirm_delivery()  # basic_publish now waits for the ack and raises on a nack
        return conn, ch

    def amqp_get(self, conn, ch, q):
        """The next message of q, acknowledged, within WAIT."""
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            method, props, body = ch.basic_get(q)
            if method:
                ch.basic_ack(method.delivery_tag)
                return method, props, body
            conn.sleep(0.02)
        self.fail("AMQP queue %s got nothing in %ss" % (q, WAIT))

    def mqtt_client(self, client_id, version=mqtt.MQTTv5):
        c = mqtt.Client(client_id=client_id, protocol=version,
                        clean_session=None if version == mqtt.MQTTv5 else True)
        connected, got = threading.Event(), queue.Queue()
        c.on_connect = lambda *a: connected.set()
        c.on_message = lambda client, userdata, msg: got.put(msg)
        if version == mqtt.MQTTv5:
            c.connect("127.0.0.1", self.broker.mqtt_port, 30, clean_start=True)
        else:
            c.connect("127.0.0.1", self.broker.mqtt_port, 30)
        c.loop_start()
        self.addCleanup(lambda: (c.disconnect(), c.loop_stop()))
        self.assertTrue(connected.wait(WAIT), "no CONNACK")
        c.got = got
        return c

    def mqtt_subscribe(self, c, topic):
        done = threading.Event()
        c.on_subscribe = lambda *a: done.set()
        c.subscribe(topic, qos=1)
        self.assertTrue(done.wait(WAIT), "no SUBACK for " + topic)

    def mqtt_publish(self, c, topic, body, props=None, retain=False):
        info = c.publish(topic, body, qos=1, retain=retain, properties=props)
        info.wait_for_publish(WAIT)
        self.assertTrue(info.is_published(), "no PUBACK for " + topic)

    def mqtt_next(self, c):
        try:
            return c.got.get(timeout=WAIT)
        except queue.Empty:
            self.fail("MQTT client %s got nothing in %ss" % (c._client_id.decode(), WAIT))

    def stomp_conn(self, client_id):
        s = stomp.Connection12([("127.0.0.1", self.broker.stomp_port)], vhost="/",
                                reconnect_attempts_max=1, auto_decode=False)
        listener = StompListener()
        s.set_listener("", listener)
        s.connect("guest", "guest", wait=True, headers={"client-id": client_id})
        self.addCleanup(lambda: s.is_connected() and s.disconnect())
        s.listener = listener
        return s

    def stomp_receipt(self, s, receipt):
        try:
            got = s.listener.receipts.get(timeout=WAIT)
        except queue.Empty:
            self.fail("no RECEIPT %s (errors: %s)" % (receipt, s.listener.errors))
        self.assertEqual(got, receipt)

    def stomp_next(self, s):
        try:
            frame = s.listener.messages.get(timeout=WAIT)
        except queue.Empty:
            self.fail("STOMP subscriber got nothing in %ss (errors: %s)" % (WAIT, s.listener.errors))
        s.ack(frame.headers["ack"])
        return frame

    # The matrix.

    def run_cell(self, c):
        recv = self.attach(c)
        self.glue(c)
        sent = self.publish(c)
        for i, routed in enumerate(sent):
            want = getattr(routed, "for_" + c.dst)()
            self.assertEqual(recv(), want, "%s: message %d" % (c.name, i))

    def attach(self, c):
        """Subscribes c's target; returns what takes its next message as a
        dict comparable with Routed.for_<target>()."""
        if c.dst == AMQP:
            conn, ch = self.amqp_channel()
            if c.named():
                q = c.queue
                ch.queue_declare(q, durable=True)
            else:
                q = ch.queue_declare("", exclusive=True).method.queue
                ch.queue_bind(q, "amq.topic", "sensors.*.temp")

            def recv():
                method, props, body = self.amqp_get(conn, ch, q)
                got = {"where": (method.exchange, method.routing_key), "body": body,
                       "delivery_mode": props.delivery_mode, "headers": mine(props.headers)}
                for name in ("content_type", "correlation_id", "reply_to", "message_id", "app_id"):
                    v = getattr(props, name)
                    if v is not None:
                        got[name] = v.encode() if name == "correlation_id" and isinstance(v, str) else v
                return got
            return recv
        if c.dst in (MQTT5, MQTT3):
            version = mqtt.MQTTv5 if c.dst == MQTT5 else mqtt.MQTTv311
            sub = self.mqtt_client(c.name + "-sub", version)
            self.mqtt_subscribe(sub, "sensors/+/temp")

            def recv():
                m = self.mqtt_next(sub)
                got = {"topic": m.topic, "body": m.payload, "qos": m.qos}
                if c.dst == MQTT3:
                    return got
                p = m.properties
                got.update(content_type=getattr(p, "ContentType", None),
                           correlation_data=getattr(p, "CorrelationData", None),
                           response_topic=getattr(p, "ResponseTopic", None),
                           user=[(k, v) for k, v in getattr(p, "UserProperty", [])
                                 if not k.startswith("x-junction-")])
                return got
            return recv
        s = self.stomp_conn(c.name + "-sub")
        dest = "/queue/" + c.queue if c.named() else "/topic/sensors.*.temp"
        s.subscribe(dest, id="1", ack="client-individual", receipt="sub-1")
        self.stomp_receipt(s, "sub-1")
        # Gone before the next test publishes to what it matches.
        self.addCleanup(lambda: (s.unsubscribe("1", receipt="unsub-1"), self.stomp_receipt(s, "unsub-1")))

        def recv():
            f = self.stomp_next(s)
            return {"headers": {k: v for k, v in mine(f.headers).items() if k not in STOMP_FRAME},
                    "body": f.body}
        return recv

    def glue(self, c):
        """An MQTT source only publishes to amq.topic: bind the cell's queue."""
        if c.named() and c.src in (MQTT5, MQTT3):
            _, ch = self.amqp_channel()
            ch.queue_bind(c.queue, "amq.topic", c.key)

    def publish(self, c):
        """Sends c's rich and empty messages; returns what the router holds."""
        if c.src == AMQP:
            _, ch = self.amqp_channel(confirm=True)
            x, k = ("", c.queue) if c.named() else ("amq.topic", c.key)
            headers = HEADERS + [("n", 42), ("flag", True), ("raw", b"utf-8 bytes")]
            props = {"content_type": "application/x-matrix; v=1", "correlation_id": b"corr-" + c.name.encode(),
                     "reply_to": c.name + ".replies", "message_id": "mid-" + c.name, "app_id": "matrix"}
            ch.basic_publish(x, k, BINARY, pika.BasicProperties(
                delivery_mode=2, headers=dict(headers), **props))
            ch.basic_publish(x, k, b"", pika.BasicProperties(delivery_mode=2))
            return [Routed(x, k, BINARY, props, headers), Routed(x, k, b"")]
        if c.src == MQTT5:
            pub = self.mqtt_client(c.name + "-pub")
            # Correlation Data is binary; a STOMP header is text.
            corr = b"corr-" + c.name.encode() if c.dst == STOMP else b"\x00corr\xff" + c.name.encode()
            user = HEADERS + [("k", "1"), ("k", "2")]  # a repeated key
            p = Properties(PacketTypes.PUBLISH)
            p.ContentType = "application/x-matrix; v=1"
            p.CorrelationData = corr
            p.ResponseTopic = c.name + "/replies"
            for kv in user + [("x-amqp-message-id", "mid-" + c.name), ("x-amqp-app-id", "matrix")]:
                p.UserProperty = kv  # paho appends
            topic = swap(c.key)
            self.mqtt_publish(pub, topic, BINARY, p)
            self.mqtt_publish(pub, topic, b"")
            qos = [("x-mqtt-publish-qos", 1)]
            props = {"content_type": "application/x-matrix; v=1", "correlation_id": corr,
                     "reply_to": c.name + ".replies", "message_id": "mid-" + c.name, "app_id": "matrix"}
            return [Routed("amq.topic", c.key, BINARY, props, user + qos),
                    Routed("amq.topic", c.key, b"", headers=qos)]
        if c.src == MQTT3:
            pub = self.mqtt_client(c.name + "-pub", mqtt.MQTTv311)
            self.mqtt_publish(pub, swap(c.key), BINARY)
            self.mqtt_publish(pub, swap(c.key), b"")
            qos = [("x-mqtt-publish-qos", 1)]
            return [Routed("amq.topic", c.key, BINARY, headers=qos), Routed("amq.topic", c.key, b"", headers=qos)]
        s = self.stomp_conn(c.name + "-pub")
        x, k = ("", c.queue) if c.named() else ("amq.topic", c.key)
        dest = ("/queue/" if c.named() else "/topic/") + k
        props = {"content_type": "application/x-matrix; v=1", "correlation_id": b"corr-" + c.name.encode(),
                 "message_id": "mid-" + c.name, "app_id": "matrix"}
        headers = dict(HEADERS)
        headers.update({"correlation-id": "corr-" + c.name, "message-id": "mid-" + c.name, "app-id": "matrix",
                        "persistent": "true", "receipt": "rich"})
        if c.reply_to:
            props["reply_to"] = headers["reply-to"] = "/topic/%s.replies" % c.name
        s.send(dest, BINARY, content_type="application/x-matrix; v=1", headers=headers)
        self.stomp_receipt(s, "rich")
        s.send(dest, b"", headers={"persistent": "true", "receipt": "empty"})
        self.stomp_receipt(s, "empty")
        # stomp.py writes a frame's headers sorted by name.
        return [Routed(x, k, BINARY, props, sorted(HEADERS)), Routed(x, k, b"")]

    # Beside the matrix.

    def test_provenance_of_mqtt_publish_for_amqp(self):
        conn, ch = self.amqp_channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.topic", "prov.py")
        pub = self.mqtt_client("prov-py-pub")
        self.mqtt_publish(pub, "prov/py", b"who")
        _, props, _ = self.amqp_get(conn, ch, q)
        got = {k: v for k, v in props.headers.items() if k.startswith("x-junction-")}
        self.assertEqual(got, {"x-junction-protocol": "mqtt", "x-junction-user": "guest",
                               "x-junction-client": "prov-py-pub"})

    def test_request_reply_mqtt5_to_amqp_responder(self):
        conn, ch = self.amqp_channel(confirm=True)
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.topic", "svc.requests.py")
        requester = self.mqtt_client("requester-py")
        self.mqtt_subscribe(requester, "svc/replies/dev1")
        corr = b"\x00req-1\xff"  # binary, not UTF-8: pika hands it over as bytes
        p = Properties(PacketTypes.PUBLISH)
        p.ResponseTopic = "svc/replies/dev1"
        p.CorrelationData = corr
        self.mqtt_publish(requester, "svc/requests/py", b"question", p)

        _, req, body = self.amqp_get(conn, ch, q)  # the responder
        self.assertEqual((body, req.reply_to, req.correlation_id), (b"question", "svc.replies.dev1", corr))
        ch.basic_publish("amq.topic", req.reply_to, b"answer",
                         pika.BasicProperties(correlation_id=req.correlation_id, delivery_mode=2))

        m = self.mqtt_next(requester)
        self.assertEqual((m.topic, m.payload, m.properties.CorrelationData),
                         ("svc/replies/dev1", b"answer", corr))

    def test_binary_correlation_data_reaches_stomp_in_a_valid_frame(self):
        s = self.stomp_conn("corr-bin-sub")
        s.subscribe("/topic/bin.corr", id="1", ack="client-individual", receipt="sub-1")
        self.stomp_receipt(s, "sub-1")
        pub = self.mqtt_client("corr-bin-pub")
        p = Properties(PacketTypes.PUBLISH)
        p.CorrelationData = b"\x00corr\xff"
        self.mqtt_publish(pub, "bin/corr", BINARY, p)
        self.mqtt_publish(pub, "bin/corr", b"next")
        first, second = self.stomp_next(s), self.stomp_next(s)
        self.assertEqual((first.body, second.body), (BINARY, b"next"))
        self.assertNotIn("\x00", first.headers.get("correlation-id", ""))

    def test_retained_mqtt_publish_reaches_amqp_binding_with_x_mqtt_retained(self):
        pub = self.mqtt_client("retainer-py")
        p = Properties(PacketTypes.PUBLISH)
        p.ContentType = "application/octet-stream"
        self.mqtt_publish(pub, "retained/py/temp", BINARY, p, retain=True)
        self.addCleanup(lambda: self.mqtt_publish(pub, "retained/py/temp", b"", retain=True))

        conn, ch = self.amqp_channel()
        plain = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(plain, "amq.topic", "retained.*.temp")  # live traffic only
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "amq.topic", "retained.*.temp", arguments={"x-mqtt-retained": True})
        _, props, body = self.amqp_get(conn, ch, q)
        self.assertEqual((body, props.content_type, props.headers.get("x-mqtt-retain")),
                         (BINARY, "application/octet-stream", True))
        self.assertIsNone(ch.basic_get(plain)[0], "a binding without x-mqtt-retained got the retained message")


# Broker bugs the matrix shows: the cell is skipped with the reason, and a
# variant of it without the property concerned runs.
BUGS = {}


def add_cell(src, dst, route):
    name = "test_matrix_%s_to_%s_via_%s" % (src, dst, route)
    c = Cell(src, dst, route)
    test = lambda self: self.run_cell(c)
    bug = BUGS.get((src, dst, route))
    if bug:
        reason, suffix, without = bug
        test = unittest.skip(reason)(test)
        variant = Cell(src, dst, route, **without)
        setattr(MatrixTest, name + "_" + suffix, lambda self: self.run_cell(variant))
    setattr(MatrixTest, name, test)


for _src in (AMQP, MQTT5, STOMP):
    for _dst in (AMQP, MQTT5, STOMP):
        add_cell(_src, _dst, "topic")
        if _dst != MQTT5:  # MQTT subscribers consume through topics only
            add_cell(_src, _dst, "queue")
add_cell(AMQP, MQTT3, "topic")  # MQTT 3.1.1 has no properties: topic, payload and QoS
add_cell(MQTT3, STOMP, "topic")


if __name__ == "__main__":
    unittest.main()
