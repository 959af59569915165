"""Harness check: the Debian client libraries import and the broker binary runs.

Protocol tests join this directory as test_<protocol>.py, each starting its own
broker from $JUNCTION_BIN on loopback ports.
"""

import os
import subprocess
import tempfile
import unittest

import paho.mqtt.client
import pika
import stomp


class ClientsTest(unittest.TestCase):
    def test_libraries(self):
        self.assertTrue(pika.__version__)
        self.assertTrue(hasattr(paho.mqtt.client, "Client"))
        self.assertTrue(hasattr(stomp, "Connection"))

    def test_broker_check(self):
        with tempfile.TemporaryDirectory() as data:
            out = subprocess.run(
                [os.environ["JUNCTION_BIN"], "--check", "--data-dir", data],
                capture_output=True, text=True, timeout=60, env={})
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("configuration OK", out.stderr)


if __name__ == "__main__":
    unittest.main()
