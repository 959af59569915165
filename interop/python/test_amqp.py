"""pika (Debian's python3-pika) against the junction binary over AMQP 0-9-1.

Each test starts its own broker from $JUNCTION_BIN on a free loopback port
with a fresh data directory.
"""

import signal
import tempfile
import time
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

    def test_exchange_to_exchange_binding(self):
        conn = self.broker.connect()
        ch = conn.channel()
        ch.exchange_declare("e2e.src", "topic")
        ch.exchange_declare("e2e.dst", "direct")
        ch.exchange_bind(destination="e2e.dst", source="e2e.src", routing_key="orders.*")
        q = ch.queue_declare("", exclusive=True).method.queue
        ch.queue_bind(q, "e2e.dst", "orders.new")
        for key in ("orders.new", "orders.old", "orders.new.eu", "invoices.new"):
            ch.basic_publish("e2e.src", key, key.encode())
        self.assertEqual(drain(ch, q), [b"orders.new"])
        ch.exchange_unbind(destination="e2e.dst", source="e2e.src", routing_key="orders.*")
        ch.basic_publish("e2e.src", "orders.new", b"after unbind")
        ch.basic_publish("e2e.dst", "orders.new", b"direct")
        self.assertEqual(drain(ch, q), [b"direct"])
        conn.close()

    def test_get_and_get_empty(self):
        conn = self.broker.connect()
        ch = conn.channel()
        q = ch.queue_declare("get", exclusive=True).method.queue
        self.assertEqual(ch.basic_get(q), (None, None, None))
        for i in range(3):
            ch.basic_publish("", q, b"g%d" % i, pika.BasicProperties(message_id="id%d" % i))
        method, props, body = ch.basic_get(q)
        self.assertEqual((body, props.message_id, method.message_count, method.redelivered),
                         (b"g0", "id0", 2, False))
        ch.basic_ack(method.delivery_tag)
        self.assertEqual(drain(ch, q), [b"g1", b"g2"])
        self.assertEqual(ch.basic_get(q), (None, None, None))
        conn.close()

    def test_reject_and_nack_requeue(self):
        conn = self.broker.connect()
        ch = conn.channel()
        q = ch.queue_declare("", exclusive=True).method.queue
        for i in range(4):
            ch.basic_publish("", q, b"m%d" % i)
        tags = [ch.basic_get(q)[0].delivery_tag for _ in range(4)]
        ch.basic_reject(tags[0], requeue=True)
        ch.basic_nack(tags[2], multiple=True, requeue=True)  # m1, m2
        ch.basic_reject(tags[3], requeue=False)  # m3 dropped
        got = []
        while True:
            method, _, body = ch.basic_get(q, auto_ack=True)
            if method is None:
                break
            self.assertTrue(method.redelivered, body)
            got.append(body)
        self.assertEqual(got, [b"m0", b"m1", b"m2"])
        conn.close()

    def test_tx_commit_and_rollback(self):
        conn = self.broker.connect()
        obs = conn.channel()
        q = obs.queue_declare("tx", exclusive=True).method.queue
        ch = conn.channel()
        ch.tx_select()
        ch.basic_publish("", q, b"lost")
        ch.tx_rollback()
        ch.basic_publish("", q, b"kept")
        self.assertEqual(obs.queue_declare(q, passive=True).method.message_count, 0)
        ch.tx_commit()
        self.assertEqual(obs.queue_declare(q, passive=True).method.message_count, 1)
        # An ack inside a rolled-back transaction leaves the message unacked.
        method, _, body = ch.basic_get(q)
        self.assertEqual(body, b"kept")
        ch.basic_ack(method.delivery_tag)
        ch.tx_rollback()
        ch.close()  # the unacked message goes back
        method, _, body = obs.basic_get(q, auto_ack=True)
        self.assertEqual((body, method.redelivered), (b"kept", True))
        conn.close()

    def test_direct_reply_to_rpc(self):
        server_conn = self.broker.connect()
        srv = server_conn.channel()
        srv.queue_declare("rpc", exclusive=True)

        def serve(ch, method, props, body):
            ch.basic_publish("", props.reply_to, body.upper(),
                             pika.BasicProperties(correlation_id=props.correlation_id))
            ch.basic_ack(method.delivery_tag)
        srv.basic_consume("rpc", serve)

        conn = self.broker.connect()
        ch = conn.channel()
        replies = []
        ch.basic_consume("amq.rabbitmq.reply-to",
                         lambda c, m, p, b: replies.append((p.correlation_id, b)), auto_ack=True)
        ch.basic_publish("", "rpc", b"ping", pika.BasicProperties(
            reply_to="amq.rabbitmq.reply-to", correlation_id="c1"))
        deadline = time.monotonic() + 10
        while not replies and time.monotonic() < deadline:
            server_conn.process_data_events(time_limit=0.05)
            conn.process_data_events(time_limit=0.05)
        self.assertEqual(replies, [("c1", b"PING")])

        with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
            conn.channel().basic_consume("amq.rabbitmq.reply-to", lambda *a: None, auto_ack=False)
        self.assertEqual(cm.exception.reply_code, 406)
        conn.close()
        server_conn.close()

    def test_consumer_cancelled_when_queue_deleted(self):
        conn = self.broker.connect()
        ch = conn.channel()
        ch.queue_declare("doomed")
        cancelled = []
        ch.add_on_cancel_callback(lambda frame: cancelled.append(frame.method.consumer_tag))
        tag = ch.basic_consume("doomed", lambda *a: None)
        conn.channel().queue_delete("doomed")
        deadline = time.monotonic() + 10
        while not cancelled and time.monotonic() < deadline:
            conn.process_data_events(time_limit=0.05)
        self.assertEqual(cancelled, [tag])
        self.assertTrue(ch.is_open)
        ch.queue_declare("", exclusive=True)  # the channel still works
        conn.close()

    def test_channel_errors_carry_reply_codes(self):
        conn = self.broker.connect()
        conn.channel().queue_declare("durable-q", durable=True)
        for code, provoke in (
                (404, lambda ch: ch.exchange_declare("missing-x", passive=True)),
                (404, lambda ch: ch.queue_bind("durable-q", "missing-x", "k")),
                (406, lambda ch: ch.queue_declare("durable-q", durable=False)),
                (403, lambda ch: ch.queue_declare("amq.reserved")),
        ):
            with self.assertRaises(pika.exceptions.ChannelClosedByBroker) as cm:
                provoke(conn.channel())
            self.assertEqual(cm.exception.reply_code, code, cm.exception.reply_text)
            self.assertTrue(conn.is_open)
        conn.close()


def drain(ch, queue):
    """Empties queue with basic.get and returns the bodies in order."""
    got = []
    while True:
        method, _, body = ch.basic_get(queue, auto_ack=True)
        if method is None:
            return got
        got.append(body)


if __name__ == "__main__":
    unittest.main()
