"""paho-mqtt (Debian's python3-paho-mqtt) against the junction binary, over
MQTT 3.1, 3.1.1 and 5.0: CONNACK codes, QoS 0/1/2 round trips, retained
messages, wills, subscription identifiers and persistent sessions across a
kill -9. Each test starts its own broker."""

import queue
import signal
import socket
import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCodes
from paho.mqtt.subscribeoptions import SubscribeOptions

from broker import Broker

WAIT = 10  # seconds any single step may take
V31, V311, V5 = mqtt.MQTTv31, mqtt.MQTTv311, mqtt.MQTTv5


def code(rc):
    """The number of a CONNACK return code or an MQTT 5 ReasonCodes."""
    return getattr(rc, "value", rc)


class Conn:
    """A paho client on its own network thread; what it receives goes to
    self.messages."""

    def __init__(self, broker, cid, version, clean=True, user=None,
                 password=None, will=None, properties=None):
        self.version = version
        self.messages = queue.Queue()
        self.connected = threading.Event()
        self.subscribed = threading.Event()
        self.rc, self.flags, self.props = None, None, None
        self.c = mqtt.Client(client_id=cid, protocol=version, reconnect_on_failure=False,
                             clean_session=None if version == V5 else clean)
        if user is not None:
            self.c.username_pw_set(user, password)
        if will is not None:
            self.c.will_set(**will)
        self.c.on_connect = self._on_connect
        self.c.on_message = lambda c, u, m: self.messages.put(m)
        self.c.on_subscribe = lambda *a: self.subscribed.set()
        if version == V5:
            self.c.connect("127.0.0.1", broker.mqtt_port, 30, clean_start=clean, properties=properties)
        else:
            self.c.connect("127.0.0.1", broker.mqtt_port, 30)
        self.c.loop_start()
        if not self.connected.wait(WAIT):
            raise AssertionError("no CONNACK for %r" % cid)

    def _on_connect(self, client, userdata, flags, rc, properties=None):
        self.rc, self.flags, self.props = code(rc), flags, properties
        self.connected.set()

    @property
    def session_present(self):
        return bool(self.flags.get("session present"))

    def subscribe(self, topic, qos=1, **kw):
        self.subscribed.clear()
        if self.version == V5:
            result, _ = self.c.subscribe(topic, options=SubscribeOptions(qos=qos), **kw)
        else:
            result, _ = self.c.subscribe(topic, qos)
        assert result == mqtt.MQTT_ERR_SUCCESS
        if not self.subscribed.wait(WAIT):
            raise AssertionError("no SUBACK for %r" % topic)

    def publish(self, topic, payload, qos=1, retain=False, properties=None):
        info = self.c.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        info.wait_for_publish(WAIT)
        if not info.is_published():
            raise AssertionError("no PUBACK/PUBCOMP for %r" % topic)

    def next(self):
        return self.messages.get(timeout=WAIT)

    def until(self, payload):
        """The messages before the one carrying payload."""
        out = []
        m = self.next()
        while m.payload != payload:
            out.append(m)
            m = self.next()
        return out

    def close(self, reasoncode=None):
        """A normal DISCONNECT (MQTT 5: with reasoncode)."""
        self.c.disconnect(reasoncode=reasoncode)
        self.c.loop_stop()

    def drop(self):
        """End the connection without a DISCONNECT."""
        self.c.socket().shutdown(socket.SHUT_RDWR)
        self.c.loop_stop()


class MQTTTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.broker = Broker(self.tmp.name)
        self.broker.start()
        self.conns = []

    def tearDown(self):
        for c in self.conns:
            try:
                c.close()
            except Exception:
                pass
        if self.broker.proc.poll() is None:
            self.broker.stop()
        self.tmp.cleanup()

    def conn(self, cid, version=V311, **kw):
        c = Conn(self.broker, cid, version, **kw)
        self.conns.append(c)
        if c.rc == 0:
            return c
        raise AssertionError("%r refused: %r" % (cid, c.rc))

    def refused(self, cid, version, **kw):
        c = Conn(self.broker, cid, version, **kw)
        c.c.loop_stop()
        return c.rc

    def test_connack_codes(self):
        self.assertEqual(self.refused("c31", V31, user="guest", password="wrong"), 4)
        self.assertEqual(self.refused("c311", V311, user="guest", password="wrong"), 4)
        self.assertEqual(self.refused("c5", V5, user="nobody", password="x"), 0x86)
        c = self.conn("", V5)
        self.assertTrue(c.props.AssignedClientIdentifier)
        self.conn("", V311)  # 3.1.1 with a clean session: the broker names it

    def round_trip(self, version):
        sub = self.conn("sub", version)
        sub.subscribe("rt/q2/#", 2)
        sub.subscribe("rt/q1/#", 1)
        pub = self.conn("pub", version)
        for qos in (0, 1, 2):
            pub.publish("rt/q2/%d" % qos, b"m%d" % qos, qos)
            pub.publish("rt/q1/%d" % qos, b"m%d" % qos, qos)
        got = {}
        for _ in range(6):
            m = sub.next()
            got[m.topic] = (m.payload, m.qos)
        self.assertEqual(got, {
            "rt/q2/0": (b"m0", 0), "rt/q2/1": (b"m1", 1), "rt/q2/2": (b"m2", 2),
            "rt/q1/0": (b"m0", 0), "rt/q1/1": (b"m1", 1), "rt/q1/2": (b"m2", 1)})  # downgraded

    def test_qos_round_trips_311(self):
        self.round_trip(V311)

    def test_qos_round_trips_5(self):
        self.round_trip(V5)

    def test_retained(self):
        for version in (V311, V5):
            pub = self.conn("rpub", version)
            pub.publish("ret/a/b", b"kept", 1, retain=True)
            late = self.conn("late", version)
            late.subscribe("ret/+/b", 1)
            m = late.next()
            self.assertEqual((m.topic, m.payload, m.retain), ("ret/a/b", b"kept", 1))
            pub.publish("ret/a/b", b"", 1, retain=True)  # clears it
            self.assertEqual(late.next().payload, b"")
            later = self.conn("later", version)
            later.subscribe("ret/#", 1)
            pub.publish("ret/marker", b"marker", 1)
            self.assertEqual(later.until(b"marker"), [])
            for c in (pub, late, later):
                c.close()

    def test_will(self):
        watch = self.conn("watch", V5)
        watch.subscribe("will/#", 2)
        # Without a DISCONNECT: the will, in both versions.
        self.conn("w3", V311, will=dict(topic="will/3", payload=b"gone 3", qos=1)).drop()
        props = Properties(PacketTypes.WILLMESSAGE)
        props.ContentType = "text/plain"
        props.UserProperty = [("k", "1"), ("k", "2")]
        self.conn("w5", V5, will=dict(topic="will/5", payload=b"gone 5", qos=2, properties=props)).drop()
        got = {}
        for _ in range(2):
            m = watch.next()
            got[m.topic] = m
        self.assertEqual(got["will/3"].payload, b"gone 3")
        self.assertEqual((got["will/5"].payload, got["will/5"].qos), (b"gone 5", 2))
        self.assertEqual(got["will/5"].properties.ContentType, "text/plain")
        # The will's user properties, then the broker's provenance.
        self.assertEqual(got["will/5"].properties.UserProperty, [
            ("k", "1"), ("k", "2"),
            ("x-junction-protocol", "mqtt"), ("x-junction-user", "guest"), ("x-junction-client", "w5")])
        # A normal DISCONNECT: none; MQTT 5 reason 0x04: the will.
        self.conn("n3", V311, will=dict(topic="will/n3", payload=b"no", qos=1)).close()
        self.conn("n5", V5, will=dict(topic="will/n5", payload=b"no", qos=1)).close()
        self.conn("y5", V5, will=dict(topic="will/y5", payload=b"yes", qos=1)).close(
            ReasonCodes(PacketTypes.DISCONNECT, "Disconnect with will message"))
        self.assertEqual(watch.next().topic, "will/y5")
        watch.c.publish("will/marker", b"marker", 1)
        self.assertEqual(watch.until(b"marker"), [])

    def test_subscription_identifiers_5(self):
        sub = self.conn("sid", V5)
        for topic, sid in (("sid/+", 7), ("sid/#", 9)):
            p = Properties(PacketTypes.SUBSCRIBE)
            p.SubscriptionIdentifier = sid
            sub.subscribe(topic, 1, properties=p)
        pub = self.conn("sid-pub", V5)
        pub.publish("sid/x", b"both", 1)
        m = sub.next()
        self.assertEqual(sorted(m.properties.SubscriptionIdentifier), [7, 9])
        pub.publish("sid/x/y", b"one", 1)
        self.assertEqual(sub.next().properties.SubscriptionIdentifier, [9])

    def test_persistent_session_survives_kill_9(self):
        expiry = Properties(PacketTypes.CONNECT)
        expiry.SessionExpiryInterval = 3600
        s3 = self.conn("ps3", V311, clean=False)
        s3.subscribe("ps/3/q1", 1)
        s3.subscribe("ps/3/q2", 2)
        s3.close()
        s5 = self.conn("ps5", V5, clean=False, properties=expiry)
        s5.subscribe("ps/5/q1", 1)
        s5.subscribe("ps/5/q2", 2)
        s5.close()
        pub = self.conn("ps-pub", V5)
        for i in range(10):
            for v in ("3", "5"):
                pub.publish("ps/%s/q1" % v, b"q1-%d" % i, 1)
                pub.publish("ps/%s/q2" % v, b"q2-%d" % i, 2)
        self.broker.stop(signal.SIGKILL)
        self.broker.start()
        pub = self.conn("ps-pub", V5)
        for cid, version, kw in (("ps3", V311, {}), ("ps5", V5, {"properties": expiry})):
            c = self.conn(cid, version, clean=False, **kw)
            self.assertTrue(c.session_present, cid)
            pub.publish("ps/%s/q1" % cid[-1], b"marker", 1)
            # paho hands a QoS 2 message over at its PUBREL, maybe after
            # the marker: take all 21, then look for duplicates a while.
            counts = {}
            while len(counts) < 21:
                m = c.next()
                counts[m.payload] = counts.get(m.payload, 0) + 1
            try:
                while True:
                    m = c.messages.get(timeout=0.3)
                    counts[m.payload] = counts.get(m.payload, 0) + 1
            except queue.Empty:
                pass
            del counts[b"marker"]
            for i in range(10):
                self.assertGreaterEqual(counts.get(b"q1-%d" % i, 0), 1, (cid, i))
                self.assertEqual(counts.get(b"q2-%d" % i, 0), 1, (cid, i))
            self.assertEqual(len(counts), 20, (cid, counts))


if __name__ == "__main__":
    unittest.main()
