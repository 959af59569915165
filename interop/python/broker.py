"""Starts the junction binary from $JUNCTION_BIN for the Python interop tests."""

import os
import signal
import socket
import subprocess
import time

import pika


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    def __init__(self, data, args=()):
        self.data = data
        self.args = list(args)  # more flags, e.g. ["--log-level", "warn"]
        self.port = free_port()  # AMQP
        self.mqtt_port = free_port()
        self.stomp_port = free_port()
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [os.environ["JUNCTION_BIN"], "--data-dir", self.data,
             "--amqp-listen", "127.0.0.1:%d" % self.port,
             "--mqtt-listen", "127.0.0.1:%d" % self.mqtt_port,
             "--stomp-listen", "127.0.0.1:%d" % self.stomp_port] + self.args,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env={})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("broker exited: %s" % self.proc.stderr.read().decode())
            try:
                for p in (self.port, self.mqtt_port, self.stomp_port):
                    socket.create_connection(("127.0.0.1", p), timeout=1).close()
                return
            except OSError:
                time.sleep(0.02)
        raise RuntimeError("broker did not listen in time")

    def stop(self, sig=signal.SIGTERM):
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout=20)
        self.proc.stderr.close()
        return code

    def connect(self, **kw):
        params = pika.ConnectionParameters("127.0.0.1", self.port, **kw)
        return pika.BlockingConnection(params)
