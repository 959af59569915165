"""pika (Debian's python3-pika) against the junction binary over AMQP 0-9-1.

Each test starts its own broker from $JUNCTION_BIN on a free loopback port
with a fresh data directory.
"""

import signal
import tempfile
import unittest

import pika

from broker import Broker


class AMQPTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.broker = Broker(self.tmp.name)
        self.broker.start()

    def tearDown(self):
        if self.broker.proc.poll() is None:
            self.broker.stop()
        self.tmp.cleanup()

    def test_publish_consume_with_confirms_and_properties(self):
        conn = self.broker.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.exchange_declare("orders", "topic", durable=True)
        ch.queue_declare("eu", durable=True)
        ch.queue_bind("eu", "orders", "eu.#")
        for i in range(50):
            ch.basic_publish("orders", "eu.fr.%d" % i, b"order-%d" % i, pika.BasicProperties(
                delivery_mode=2, content_type="application/json", correlation_id="c%d" % i,
                headers={"n": i, "tags": ["a", 1], "meta": {"k": "v"}}))
        got = []
        for method, props, body in ch.consume("eu", inactivity_timeout=2):
            if method is None:
                break
            i = len(got)
            self.assertEqual(body, b"order-%d" % i)
            self.assertEqual(props.correlation_id, "c%d" % i)
            self.assertEqual(props.content_type, "application/json")
            self.assertEqual(props.headers["n"], i)
            self.assertEqual(props.headers["meta"], {"k": "v"})
            ch.basic_ack(method.delivery_tag)
            got.append(body)
            if len(got) == 50:
                break
        self.assertEqual(len(got), 50)
        conn.close()

    def test_mandatory_unroutable_is_returned(self):
        conn = self.broker.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        with self.assertRaises(pika.exceptions.UnroutableError):
            ch.basic_publish("amq.direct", "nobody", b"x", mandatory=True)
        conn.close()

    def test_soft_error_closes_only_the_channel(self):
        conn = self.broker.connect()
        ch = conn.channel()
        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            ch.queue_declare("missing", passive=True)
        self.assertEqual(cm.exception.reply_code, 404)
        self.assertIn("no queue 'missing' in vhost '/'", cm.exception.reply_text)
        self.assertTrue(conn.is_open)
        conn.channel().queue_declare("", exclusive=True)  # the connection still works
        conn.close()

    def test_wrong_password_is_refused(self):
        with self.assertRaises(pika.exceptions.ProbableAuthenticationError):
            self.broker.connect(credentials=pika.PlainCredentials("guest", "nope"))

    def test_confirmed_messages_survive_kill_9(self):
        conn = self.broker.connect()
        ch = conn.channel()
        ch.confirm_delivery()
        ch.queue_declare("durable", durable=True)
        for i in range(300):  # each publish returns once confirmed
            ch.basic_publish("", "durable", b"m%d" % i, pika.BasicProperties(delivery_mode=2))
        self.broker.stop(signal.SIGKILL)
        try:
            conn.close()
        except Exception:
            pass  # the broker is gone; only release pika's sockets
        self.broker.start()
        conn = self.broker.connect()
        ch = conn.channel()
        got = []
        while True:
            method, props, body = ch.basic_get("durable", auto_ack=True)
            if method is None:
                break
            got.append(body)
        self.assertEqual(got, [b"m%d" % i for i in range(300)])
        conn.close()


if __name__ == "__main__":
    unittest.main()
