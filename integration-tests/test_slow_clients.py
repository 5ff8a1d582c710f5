"""Slow-drip clients cannot hold a session: timeouts restart on protocol
progress (a whole command, a whole reply, 1 KiB of message), not on
every byte. Messages cut off this way are never acknowledged."""
import os
import shutil
import tempfile
import time
import unittest

from peers import SmtpSink
from proxyproc import Proxy, SmtpConversation


class SlowDripTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-slow-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)
        os.makedirs(os.path.join(self.dir, "p"))
        self.proxy = Proxy(os.path.join(self.dir, "p"), "%s:%d" % self.sink.address,
                           proxy={"command_timeout": "2s", "data_timeout": "2s"})
        self.proxy.start()
        self.addCleanup(self.proxy.stop)

    def drip(self, conv, data, interval=0.25):
        """Sends |data| a byte at a time; returns the bytes sent before the
        proxy closed the connection (bounded by len(data))."""
        for i in range(len(data)):
            try:
                conv.sock.sendall(data[i:i + 1])
            except OSError:
                return i
            time.sleep(interval)
        return len(data)

    def test_command_dripped_a_byte_at_a_time_is_cut_off_with_421(self):
        c = SmtpConversation("127.0.0.1", self.proxy.port(), timeout=30)
        self.addCleanup(c.close)
        self.assertTrue(c.read_reply().startswith(b"220"))
        line = b"MAIL FROM:<" + b"s" * 60 + b"@src.test>\r\n"  # ~18 s at this pace
        sent = self.drip(c, line)
        self.assertLess(sent, len(line), "the dripping client was never cut off")
        self.assertTrue(c.read_reply().startswith(b"421 4.4.2"))
        self.proxy.wait_log("result=client_timeout")

    def test_message_dripped_a_byte_at_a_time_is_cut_off_and_not_delivered(self):
        c = SmtpConversation("127.0.0.1", self.proxy.port(), timeout=30)
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO drip.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\nDATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(4)], [b"250", b"250", b"250", b"354"])
        body = b"Subject: drip\r\n\r\n" + b"d" * 80 + b"\r\n.\r\n"
        sent = self.drip(c, body)
        self.assertLess(sent, len(body))
        self.assertTrue(c.read_reply().startswith(b"421 4.4.2"))
        self.proxy.wait_log("result=client_timeout")
        self.assertEqual(self.sink.parsed_messages(), [])

    def test_steady_client_is_not_cut_off_by_the_same_timeouts(self):
        c = SmtpConversation("127.0.0.1", self.proxy.port(), timeout=30)
        self.addCleanup(c.close)
        c.read_reply()
        for _ in range(6):  # ~3 s of commands, longer than command_timeout
            c.send(b"NOOP\r\n")
            self.assertTrue(c.read_reply().startswith(b"250"))
            time.sleep(0.5)


if __name__ == "__main__":
    unittest.main()
