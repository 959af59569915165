"""paho-mqtt and stomp.py against the junction binary: MQTT and STOMP
clients reach each other (and AMQP) through amq.topic."""

import tempfile
import threading
import unittest

import paho.mqtt.client as mqtt
import pika
import stomp

from broker import Broker


class Listener(stomp.ConnectionListener):
    def __init__(self):
        self.messages = []
        self.event = threading.Event()

    def on_message(self, frame):
        self.messages.append((frame.headers.get("destination"), frame.body))
        self.event.set()


class BridgeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.broker = Broker(self.tmp.name)
        self.broker.start()
        self.clients = []

    def tearDown(self):
        for stop in self.clients:
            stop()
        self.broker.stop()
        self.tmp.cleanup()

    def mqtt_client(self, client_id):
        c = mqtt.Client(client_id=client_id, clean_session=True)
        connected = threading.Event()
        c.on_connect = lambda *a: connected.set()
        c.connect("127.0.0.1", self.broker.mqtt_port, 30)
        c.loop_start()
        self.assertTrue(connected.wait(5), "no CONNACK")
        self.clients.append(lambda: (c.disconnect(), c.loop_stop()))
        return c

    def subscribe(self, c, topic, qos=1):
        done = threading.Event()
        c.on_subscribe = lambda *a: done.set()
        c.subscribe(topic, qos=qos)
        self.assertTrue(done.wait(5), "no SUBACK")

    def stomp_client(self):
        s = stomp.Connection([("127.0.0.1", self.broker.stomp_port)])
        listener = Listener()
        s.set_listener("", listener)
        s.connect("guest", "guest", wait=True)
        self.clients.append(s.disconnect)
        return s, listener

    def test_mqtt_to_mqtt_with_wildcards(self):
        got, ev = [], threading.Event()
        sub = self.mqtt_client("sub")

        def on_message(c, u, m):
            got.append((m.topic, m.payload, m.qos))
            ev.set()
        sub.on_message = on_message
        self.subscribe(sub, "sensors/+/temp")
        pub = self.mqtt_client("pub")
        info = pub.publish("sensors/k1/temp", b"21.5", qos=1)
        info.wait_for_publish(5)
        self.assertTrue(info.is_published(), "no PUBACK")
        self.assertTrue(ev.wait(5))
        self.assertEqual(got, [("sensors/k1/temp", b"21.5", 1)])

    def test_stomp_to_mqtt_and_mqtt_to_stomp(self):
        got, ev = [], threading.Event()
        sub = self.mqtt_client("sub")

        def on_message(c, u, m):
            got.append((m.topic, m.payload, m.qos))
            ev.set()
        sub.on_message = on_message
        self.subscribe(sub, "sensors/#")
        s, listener = self.stomp_client()
        s.send("/topic/sensors.k2.temp", "22.0", headers={"persistent": "true"})
        self.assertTrue(ev.wait(5), "MQTT subscriber got nothing from STOMP")
        self.assertEqual(got, [("sensors/k2/temp", b"22.0", 1)])

        receipt = threading.Event()
        listener.on_receipt = lambda frame: receipt.set()
        s.subscribe("/topic/alerts.*", id="1", ack="auto", receipt="sub-1")
        self.assertTrue(receipt.wait(5), "no RECEIPT for SUBSCRIBE")
        pub = self.mqtt_client("pub")
        pub.publish("alerts/fire", b"now", qos=1).wait_for_publish(5)
        self.assertTrue(listener.event.wait(5), "STOMP subscriber got nothing from MQTT")
        self.assertEqual(listener.messages, [("/topic/alerts.fire", "now")])

    def test_mqtt_to_amqp_queue(self):
        conn = self.broker.connect()
        ch = conn.channel()
        ch.queue_declare("telemetry", durable=True)
        ch.queue_bind("telemetry", "amq.topic", "site.*.temp")
        pub = self.mqtt_client("dev")
        pub.publish("site/7/temp", b"19", qos=1).wait_for_publish(5)
        method, props, body = None, None, None
        for _ in range(100):
            method, props, body = ch.basic_get("telemetry", auto_ack=True)
            if method:
                break
            conn.sleep(0.05)
        self.assertIsNotNone(method, "AMQP queue got nothing from MQTT")
        self.assertEqual((method.routing_key, body, props.delivery_mode), ("site.7.temp", b"19", 2))
        conn.close()


if __name__ == "__main__":
    unittest.main()
