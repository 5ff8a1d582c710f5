"""A real Postfix as the legacy MTA behind the proxy.

client -> smtp-tls-proxy -> private Postfix (smtpd) -> smtp-sink (relayhost)

The sink shows what Postfix delivered: its own Received: line on top of
the proxy's headers, proving the backend kept its own policy and trace.
"""
import os
import shutil
import smtplib
import tempfile
import unittest

from mailcheck import header_block, header_values
from peers import PostfixInstance, SmtpSink
from proxyproc import Proxy, SmtpConversation


class PostfixBackendTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-postfix-")
        cls.sink = SmtpSink(os.path.join(cls.dir, "sink")).start()
        cls.mta = PostfixInstance(
            os.path.join(cls.dir, "postfix"), relayhost=cls.sink,
            main_cf={"smtpd_recipient_restrictions":
                     "check_recipient_access inline:{ {nobody@dst.test=REJECT no such user} }, "
                     "permit_mynetworks, reject"})
        try:
            cls.mta.start()
        except Exception:
            cls.sink.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.mta.stop()
        finally:
            cls.sink.stop()
            shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.sink.clear()
        self.pdir = tempfile.mkdtemp(prefix="proxy-", dir=self.dir)
        self.proxy = Proxy(self.pdir, "%s:%d" % (self.mta.smtpd_host, self.mta.smtpd_port))
        self.proxy.start()
        self.addCleanup(self.proxy.stop)

    def test_message_through_postfix_keeps_proxy_headers_under_postfix_received(self):
        msg = (b"From: a@src.test\r\nTo: b@dst.test\r\nSubject: via postfix\r\n"
               b"X-Tls-Status: tls=TLSv1.3 forged\r\n\r\nhello postfix\r\n")
        s = smtplib.SMTP("127.0.0.1", self.proxy.port(), timeout=10)
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        self.assertNotIn("xclient", s.esmtp_features)
        self.assertNotIn("xforward", s.esmtp_features)
        self.assertNotIn("chunking", s.esmtp_features)
        # Postfix's 10240000 less the 2048 octets the headers may take.
        self.assertEqual(s.esmtp_features.get("size"), "10237952")
        s.sendmail("a@src.test", ["b@dst.test"], msg)
        s.quit()
        m = self.sink.wait_messages(1, timeout=30)[0]
        data = m["data_crlf"]
        received = header_values(data, "Received")
        self.assertIn("(Postfix)", received[0])  # the legacy MTA's own trace, on top
        ours = [r for r in received if "smtp-tls-proxy" in r]
        self.assertEqual(len(ours), 1, received)
        self.assertIn("from client.src.test (unknown [127.0.0.1])", ours[0])
        status = header_values(data, "X-TLS-Status")
        self.assertEqual(len(status), 1)
        self.assertIn("tls=none", status[0])
        self.assertNotIn(b"forged", header_block(data))

    def test_postfix_rcpt_rejection_reaches_client_with_postfix_text(self):
        s = smtplib.SMTP("127.0.0.1", self.proxy.port(), timeout=10)
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        s.mail("a@src.test")
        code, text = s.rcpt("nobody@dst.test")
        self.assertEqual(code, 554)
        self.assertIn(b"Recipient address rejected: no such user", text)
        code, _ = s.rcpt("b@dst.test")
        self.assertEqual(code, 250)
        s.rset()
        s.quit()

    def test_bare_lf_smuggling_through_postfix_delivers_one_message(self):
        c = SmtpConversation("127.0.0.1", self.proxy.port())
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO evil.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n"
               b"DATA\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(4)], [b"250", b"250", b"250", b"354"])
        c.send(b"Subject: outer\r\n\r\nouter\n.\nMAIL FROM:<ceo@dst.test>\nRCPT TO:<victim@dst.test>\n"
               b"DATA\nSubject: smuggled\n\nsmuggled\n.\r\n\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"QUIT\r\n")
        self.assertTrue(c.read_reply().startswith(b"221"))
        msgs = self.sink.wait_messages(1, timeout=30)
        self.mta.wait_queue_empty()
        msgs = self.sink.parsed_messages()
        self.assertEqual(len(msgs), 1, [m["recipients"] for m in msgs])
        self.assertEqual(msgs[0]["recipients"], ["b@dst.test"])
        self.assertNotIn("victim@dst.test", self.mta.maillog())


if __name__ == "__main__":
    unittest.main()
