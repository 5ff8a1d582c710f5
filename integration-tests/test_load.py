"""Many clients at once: Postfix's smtp-source drives concurrent sessions
through the proxy; every message is delivered exactly once, and the
connection cap answers the excess with 421 instead of failing anyone
silently. Behaviour only: speed belongs in benchmarks."""
import os
import shutil
import socket
import subprocess
import tempfile
import unittest

from peers import SmtpSink
from proxyproc import Proxy, SmtpConversation


class LoadTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-load-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink"), backlog=100).start()
        self.addCleanup(self.sink.stop)

    def start_proxy(self, **proxy_keys):
        pdir = os.path.join(self.dir, "proxy")
        os.makedirs(pdir, exist_ok=True)
        p = Proxy(pdir, "%s:%d" % self.sink.address, proxy=proxy_keys)
        p.start()
        self.addCleanup(p.stop)
        return p

    def test_concurrent_sessions_deliver_every_message_exactly_once(self):
        p = self.start_proxy()
        sessions, messages = 20, 400
        out = subprocess.run(
            ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l", "4096",
             "-N", "-t", "rcpt@dst.test", "-f", "from@src.test",
             "127.0.0.1:%d" % p.port()],
            capture_output=True, timeout=300)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)
        msgs = self.sink.wait_messages(messages, timeout=60)
        self.assertEqual(len(msgs), messages)
        rcpts = sorted(r for m in msgs for r in m["recipients"])
        self.assertEqual(len(set(rcpts)), messages, "a message arrived twice or not at all")
        for m in msgs:
            self.assertEqual(m["data_crlf"].count(b"X-TLS-Status:"), 1)

    def test_connections_beyond_max_connections_get_421(self):
        p = self.start_proxy(max_connections="2", workers="1")
        # The harness's start-up probe is a session too: let it end first.
        p.wait_log("event=end")
        held = [SmtpConversation("127.0.0.1", p.port()) for _ in range(2)]
        for c in held:
            self.addCleanup(c.close)
            self.assertTrue(c.read_reply().startswith(b"220"))
        extra = SmtpConversation("127.0.0.1", p.port())
        self.addCleanup(extra.close)
        self.assertTrue(extra.read_reply().startswith(b"421 4.7.0"))
        p.wait_log("event=refused reason=max_connections")
        # A freed slot is usable again.
        held[0].send(b"QUIT\r\n")
        held[0].read_until_eof()
        for _ in range(50):
            again = SmtpConversation("127.0.0.1", p.port())
            self.addCleanup(again.close)
            reply = again.read_reply()
            if reply.startswith(b"220"):
                break
        self.assertTrue(reply.startswith(b"220"), reply)

    def test_one_address_beyond_max_per_client_gets_421_while_others_get_in(self):
        p = self.start_proxy(max_per_client="2", workers="1")
        p.wait_log("event=end")  # the harness's start-up probe
        held = [SmtpConversation("127.0.0.1", p.port(), source="127.0.0.3") for _ in range(2)]
        for c in held:
            self.addCleanup(c.close)
            self.assertTrue(c.read_reply().startswith(b"220"))
        extra = SmtpConversation("127.0.0.1", p.port(), source="127.0.0.3")
        self.addCleanup(extra.close)
        self.assertTrue(extra.read_reply().startswith(b"421 4.7.0"))
        p.wait_log("event=refused reason=max_per_client client=127.0.0.3 limit=2")
        other = SmtpConversation("127.0.0.1", p.port(), source="127.0.0.4")
        self.addCleanup(other.close)
        self.assertTrue(other.read_reply().startswith(b"220"))


if __name__ == "__main__":
    unittest.main()
