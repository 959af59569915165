"""stomp.py (Debian's python3-stomp) against the junction binary over STOMP
1.0, 1.1 and 1.2.

Each test class starts its own broker from $JUNCTION_BIN on free loopback
ports with a fresh data directory; every wait has a deadline.
"""

import signal
import tempfile
import threading
import time
import unittest
import uuid

import stomp

from broker import Broker

WAIT = 10  # seconds any expected frame may take
VERSIONS = ("1.0", "1.1", "1.2")


class Collector(stomp.ConnectionListener):
    """Records what the broker sends; waits on it with a deadline."""

    def __init__(self):
        self.cond = threading.Condition()
        self.connected = None  # the CONNECTED frame's headers
        self.disconnected = False
        self.messages = []
        self.receipts = set()
        self.errors = []

    def _add(self, f):
        with self.cond:
            f()
            self.cond.notify_all()

    def on_connected(self, frame):
        self._add(lambda: setattr(self, "connected", dict(frame.headers)))

    def on_disconnected(self):
        self._add(lambda: setattr(self, "disconnected", True))

    def on_message(self, frame):
        self._add(lambda: self.messages.append(frame))

    def on_receipt(self, frame):
        self._add(lambda: self.receipts.add(frame.headers.get("receipt-id")))

    def on_error(self, frame):
        self._add(lambda: self.errors.append(frame))

    def wait(self, what, cond):
        deadline = time.monotonic() + WAIT
        with self.cond:
            while not cond():
                if self.errors:
                    raise AssertionError("ERROR while waiting for %s: %s %s" % (
                        what, self.errors[0].headers, self.errors[0].body))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError("timed out waiting for %s" % what)
                self.cond.wait(left)

    def take(self, n, subscription=None):
        """Waits for n more messages (of subscription, if given) and
        returns them, removing them from the record."""
        def mine():
            return [m for m in self.messages
                    if subscription is None or m.headers.get("subscription") == subscription]
        self.wait("%d messages" % n, lambda: len(mine()) >= n)
        with self.cond:
            got = mine()[:n]
            for m in got:
                self.messages.remove(m)
        return got


class Client:
    """A stomp.py connection of one version with a Collector."""

    def __init__(self, port, version):
        self.version = version
        hp = [("127.0.0.1", port)]
        if version == "1.0":
            self.conn = stomp.Connection10(hp, reconnect_attempts_max=1)
        elif version == "1.1":
            self.conn = stomp.Connection11(hp, vhost="/", reconnect_attempts_max=1)
        else:
            self.conn = stomp.Connection12(hp, vhost="/", reconnect_attempts_max=1)
        self.events = Collector()
        self.conn.set_listener("collector", self.events)
        self.conn.connect("guest", "guest")
        self.events.wait("CONNECTED", lambda: self.events.connected is not None)
        got = self.events.connected.get("version", "1.0")
        if got != version:
            raise AssertionError("asked for STOMP %s, CONNECTED says %s" % (version, got))

    def receipt(self, fn, *args, **kw):
        """Calls a stomp.py method with a receipt header and waits for the
        RECEIPT."""
        r = str(uuid.uuid4())
        headers = dict(kw.pop("headers", None) or {})
        headers["receipt"] = r
        fn(*args, headers=headers, **kw)
        self.events.wait("RECEIPT " + r, lambda: r in self.events.receipts)

    def send(self, dest, body, **headers):
        self.receipt(self.conn.send, dest, body, **({"headers": headers} if headers else {}))

    def subscribe(self, dest, sid, ack="auto", **headers):
        self.receipt(self.conn.subscribe, dest, sid, ack=ack, headers=headers)

    def ack(self, m, **kw):
        if self.version == "1.0":
            self.conn.ack(m.headers["message-id"], **kw)
        elif self.version == "1.1":
            self.conn.ack(m.headers["message-id"], m.headers["subscription"], **kw)
        else:
            self.conn.ack(m.headers["ack"], **kw)

    def nack(self, m, **kw):
        if self.version == "1.1":
            self.conn.nack(m.headers["message-id"], m.headers["subscription"], **kw)
        else:
            self.conn.nack(m.headers["ack"], **kw)

    def sync(self):
        """Waits until the broker has handled everything sent before."""
        self.send("/exchange/amq.direct/py-sync", "")

    def close(self):
        if self.conn.is_connected():
            self.conn.disconnect(receipt=str(uuid.uuid4()))


class StompTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.broker = Broker(cls.tmp.name)
        cls.broker.start()

    @classmethod
    def tearDownClass(cls):
        if cls.broker.proc.poll() is None:
            cls.broker.stop()
        cls.tmp.cleanup()

    def setUp(self):
        self.clients = []

    def tearDown(self):
        for c in self.clients:
            c.close()

    def client(self, version):
        c = Client(self.broker.stomp_port, version)
        self.clients.append(c)
        return c

    def ready(self, queue):
        """Ready messages in queue, from a pika passive declare."""
        conn = self.broker.connect()
        try:
            return conn.channel().queue_declare(queue, passive=True).method.message_count
        finally:
            conn.close()

    def test_send_subscribe_queue(self):
        for v in VERSIONS:
            with self.subTest(version=v):
                q = "/queue/py-basic-" + v
                c = self.client(v)
                c.subscribe(q, "s1")
                c.send(q, "hello " + v, **{"x-custom": "value-" + v})
                m = c.events.take(1)[0]
                self.assertEqual(m.body, "hello " + v)
                self.assertEqual(m.headers["destination"], q)
                self.assertEqual(m.headers["subscription"], "s1")
                self.assertEqual(m.headers["x-custom"], "value-" + v)
                self.assertTrue(m.headers.get("message-id"))

    def test_client_individual_ack_and_nack_redelivery(self):
        for v in VERSIONS:
            with self.subTest(version=v):
                name = "py-ack-" + v
                c = self.client(v)
                c.subscribe("/queue/" + name, "s1", ack="client-individual")
                for body in ("m1", "m2"):
                    c.send("/queue/" + name, body)
                m1, m2 = c.events.take(2)
                self.assertEqual([m1.body, m2.body], ["m1", "m2"])
                self.assertEqual(m1.headers["redelivered"], "false")
                c.ack(m2)
                if v == "1.0":  # no NACK: m1 comes back when the connection ends
                    c.close()
                    c = self.client(v)
                    c.subscribe("/queue/" + name, "s1", ack="client-individual")
                else:
                    c.nack(m1)
                again = c.events.take(1)[0]
                self.assertEqual(again.body, "m1")
                self.assertEqual(again.headers["redelivered"], "true")
                c.ack(again)
                c.close()
                self.assertEqual(self.ready(name), 0)

    def test_transactions_commit_and_abort(self):
        for v in VERSIONS:
            with self.subTest(version=v):
                q = "/queue/py-tx-" + v
                c = self.client(v)
                c.subscribe(q, "s1", ack="client-individual")
                tx = c.conn.begin()
                c.conn.send(q, "committed", transaction=tx)
                c.sync()
                self.assertEqual(c.events.messages, [])
                c.receipt(c.conn.commit, tx)
                m = c.events.take(1)[0]
                self.assertEqual(m.body, "committed")

                tx = c.conn.begin()
                c.conn.send(q, "aborted", transaction=tx)
                c.ack(m, transaction=tx)
                c.receipt(c.conn.abort, tx)
                c.send(q, "marker")
                self.assertEqual(c.events.take(1)[0].body, "marker")  # not "aborted"
                # The aborted ACK left "committed" unacknowledged: it comes
                # back when the connection ends.
                c.close()
                c = self.client(v)
                c.subscribe(q, "s1", ack="client-individual")
                got = sorted(x.body for x in c.events.take(2))
                self.assertEqual(got, ["committed", "marker"])

    def test_durable_topic_subscription_across_reconnect(self):
        for v in VERSIONS:
            with self.subTest(version=v):
                dest = "/topic/py.durable." + v.replace(".", "_")
                durable = {"durable": "true", "auto-delete": "false"}
                c = self.client(v)
                c.subscribe(dest, "dur-1", **durable)
                c.close()
                pub = self.client(v)
                pub.send(dest, "while away")
                c = self.client(v)
                c.subscribe(dest, "dur-1", **durable)
                m = c.events.take(1)[0]
                self.assertEqual(m.body, "while away")
                c.receipt(c.conn.unsubscribe, id="dur-1", headers=durable)

    def test_temp_queue_request_reply(self):
        for v in VERSIONS:
            with self.subTest(version=v):
                service = "/queue/py-rpc-" + v
                replier = self.client(v)
                replier.subscribe(service, "svc")
                requester = self.client(v)
                requester.send(service, "ping", **{"reply-to": "/temp-queue/r", "correlation-id": "c-" + v})
                req = replier.events.take(1)[0]
                reply_to = req.headers["reply-to"]
                self.assertTrue(reply_to.startswith("/reply-queue/"), reply_to)
                replier.send(reply_to, "pong", **{"correlation-id": req.headers["correlation-id"]})
                rep = requester.events.take(1, subscription="/temp-queue/r")[0]
                self.assertEqual(rep.body, "pong")
                self.assertEqual(rep.headers["correlation-id"], "c-" + v)


class StompDurabilityTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.broker = Broker(self.tmp.name)
        self.broker.start()

    def tearDown(self):
        if self.broker.proc.poll() is None:
            self.broker.stop()
        self.tmp.cleanup()

    def test_persistent_messages_survive_kill_9(self):
        want = []
        for v in VERSIONS:
            c = Client(self.broker.stomp_port, v)
            for i in range(10):
                body = "p-%s-%d" % (v, i)
                c.send("/queue/py-durable", body, persistent="true")  # RECEIPT: on disk
                want.append(body)
            c.close()
        self.broker.stop(signal.SIGKILL)
        self.broker.start()
        c = Client(self.broker.stomp_port, "1.2")
        try:
            c.conn.subscribe("/queue/py-durable", "s1", ack="client-individual")
            got = c.events.take(len(want))
            self.assertEqual([m.body for m in got], want)
            for m in got:
                self.assertEqual(m.headers.get("persistent"), "true")
                c.ack(m)
        finally:
            c.close()


if __name__ == "__main__":
    unittest.main()
