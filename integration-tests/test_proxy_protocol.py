"""Behind a load balancer (issue 13, ARCHITECTURE.md §5.7): a real HAProxy
in TCP mode with send-proxy (v1) and send-proxy-v2 in front of all three
listener kinds, and a real Postfix behind the proxy. A client connecting
from 127.0.0.2 through HAProxy (which reaches the proxy from 127.0.0.1)
is 127.0.0.2 to the proxy (headers, logs, limits, the STARTTLS memory)
and to Postfix (XCLIENT or PROXY v2 from the proxy).
"""
import os
import shutil
import smtplib
import socket
import ssl
import struct
import subprocess
import tempfile
import time
import unittest

from mailcheck import header_values
from peers import HaproxyInstance, PostfixInstance, SmtpSink
from proxyproc import Proxy, SmtpConversation
from tlsharness import CA, MX_CERTIFICATES, TOOL_TIMEOUT, SniSMTP, SniSMTP_SSL

KINDS = (
    {"name": "smtp", "kind": "smtp", "tls": "starttls"},
    {"name": "submission", "kind": "submission", "tls": "starttls"},
    {"name": "submissions", "kind": "submissions"},
)


def tls_context():
    return ssl.create_default_context(cafile=CA)


def v2_header(src, sport, dst, dport, local=False):
    """A PROXY v2 header for AF_INET (built from the specification)."""
    sig = b"\r\n\r\n\x00\r\nQUIT\n"
    if local:
        return sig + b"\x20\x00\x00\x00"
    body = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!HH", sport, dport)
    return sig + b"\x21\x11" + struct.pack("!H", len(body)) + body


class BehindHaproxy:
    """Mixin: Postfix (the legacy backend, told the client by the proxy),
    the proxy with PROXY-protocol listeners, HAProxy in front."""

    mode = "v2"            # what HAProxy sends, and what the listeners take
    identity = "xclient"   # how the proxy tells Postfix
    postfix_cf = {"smtpd_authorized_xclient_hosts": "127.0.0.1/32"}
    listener_mode = None   # proxy_protocol on the listeners; default: mode
    proxy_keys = {}
    memory = ""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-lb-")
        cls.sink = SmtpSink(os.path.join(cls.dir, "sink")).start()
        cls.mta = None
        cls.proxy = None
        cls.lb = None
        try:
            cls.mta = PostfixInstance(os.path.join(cls.dir, "postfix"), relayhost=cls.sink,
                                      main_cf=cls.postfix_cf).start()
            listeners = [dict(l, proxy_protocol=cls.listener_mode or cls.mode,
                              proxy_trusted="127.0.0.1") for l in KINDS]
            pdir = os.path.join(cls.dir, "proxy")
            os.makedirs(pdir)
            keys = {"max_per_client": "50"}
            keys.update(cls.proxy_keys)
            cls.proxy = Proxy(pdir, "127.0.0.1:%d" % cls.mta.smtpd_port, listeners=listeners,
                              proxy=keys, extra=MX_CERTIFICATES + cls.memory,
                              backend_keys={"identity": cls.identity})
            cls.proxy.start()
            cls.lb = HaproxyInstance(os.path.join(cls.dir, "haproxy"),
                                     [(l["name"], cls.proxy.port(l["name"]), cls.mode)
                                      for l in KINDS]).start()
        except Exception:
            cls.tearDownClass()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            for peer in (cls.lb, cls.proxy, cls.mta, cls.sink):
                if peer is not None:
                    peer.stop()
        finally:
            shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.sink.clear()

    # ---- clients through the balancer ----

    def send(self, listener, subject, source="127.0.0.2", tls=True):
        port = self.lb.port(listener)
        if listener == "submissions":
            conn = SniSMTP_SSL("127.0.0.1", port, timeout=15, source_address=(source, 0),
                               context=tls_context(), sni="mx.example.test")
        else:
            conn = SniSMTP("127.0.0.1", port, timeout=15, source_address=(source, 0),
                           sni="mx.example.test")
        self.addCleanup(conn.close)
        conn.ehlo("client.src.test")
        if tls and listener != "submissions":
            conn.starttls(context=tls_context())
            conn.ehlo("client.src.test")
        conn.sendmail("a@src.test", ["b@dst.test"], b"Subject: %s\r\n\r\nbody\r\n" % subject)
        conn.quit()
        for m in self.sink.wait_messages(1, timeout=30):
            if subject in m["data_crlf"]:
                return m["data_crlf"]
        self.fail("message %r not relayed" % subject)

    def end_line(self, needle):
        for _ in range(200):
            lines = [l for l in self.proxy.log().splitlines() if "event=end" in l and needle in l]
            if lines:
                return lines[-1]
            time.sleep(0.05)
        self.fail("no end line with %r:\n%s" % (needle, self.proxy.log()))


class RealClientTests(BehindHaproxy):

    def check_listener(self, listener):
        subject = ("lb-%s-%s-%s" % (self.mode, self.identity, listener)).encode()
        data = self.send(listener, subject)
        postfix = [r for r in header_values(data, "Received") if "(Postfix)" in r]
        self.assertTrue(postfix and "[127.0.0.2]" in postfix[0], header_values(data, "Received"))
        ours = [r for r in header_values(data, "Received") if "(smtp-tls-proxy)" in r]
        self.assertTrue(ours and "[127.0.0.2]" in ours[0], ours)
        status = header_values(data, "X-TLS-Status")[0]
        self.assertIn("client=127.0.0.2", status)
        self.assertRegex(self.proxy.log(), r"event=proxy_header version=%s peer=127\.0\.0\.1 "
                                           r"client=127\.0\.0\.2 " % self.mode[1])
        self.end_line("client=127.0.0.2 port=")
        # Every session that said EHLO is the client's, none the balancer's.
        ends = [l for l in self.proxy.log().splitlines()
                if "event=end" in l and "helo=client.src.test" in l]
        self.assertTrue(ends)
        for line in ends:
            self.assertIn("event=end client=127.0.0.2 ", line)

    def test_port_25_client_is_seen_with_its_own_address(self):
        self.check_listener("smtp")

    def test_submission_client_is_seen_with_its_own_address(self):
        self.check_listener("submission")

    def test_implicit_tls_client_is_seen_with_its_own_address(self):
        self.check_listener("submissions")


class HaproxyV2XclientTest(RealClientTests, unittest.TestCase):
    mode = "v2"
    identity = "xclient"

    def test_postfix_logs_the_client_the_balancer_saw(self):
        self.send("smtp", b"lb-postfix-log")
        self.mta.wait_log(r"client=unknown\[127\.0\.0\.2\]")


class HaproxyV1XclientTest(RealClientTests, unittest.TestCase):
    mode = "v1"
    identity = "xclient"


class HaproxyV2ToProxyV2Test(RealClientTests, unittest.TestCase):
    """PROXY v2 in from HAProxy, PROXY v2 out to Postfix."""
    mode = "v2"
    identity = "proxy-v2"
    postfix_cf = {"smtpd_upstream_proxy_protocol": "haproxy"}


class HaproxyV1AnyListenerTest(RealClientTests, unittest.TestCase):
    mode = "v1"
    listener_mode = "any"
    identity = "proxy-v1"
    postfix_cf = {"smtpd_upstream_proxy_protocol": "haproxy"}


class LimitsAndMemoryBehindHaproxyTest(BehindHaproxy, unittest.TestCase):
    mode = "v2"
    proxy_keys = {"max_per_client": "1"}
    memory = "\n[starttls_memory]\nenabled = yes\n"

    def test_per_client_limit_counts_the_real_client_not_the_balancer(self):
        first = SmtpConversation("127.0.0.1", self.lb.port("smtp"), source="127.0.0.2")
        self.addCleanup(first.close)
        self.assertTrue(first.read_reply().startswith(b"220"))
        # Another client through the same balancer address is let in...
        other = SmtpConversation("127.0.0.1", self.lb.port("smtp"), source="127.0.0.3")
        self.addCleanup(other.close)
        self.assertTrue(other.read_reply().startswith(b"220"))
        # ...a second session of the same client is not.
        second = SmtpConversation("127.0.0.1", self.lb.port("smtp"), source="127.0.0.2")
        self.addCleanup(second.close)
        self.assertTrue(second.read_reply().startswith(b"421 4.7.0"))
        self.proxy.wait_log("event=refused reason=max_per_client client=127.0.0.2")

    def test_starttls_memory_keys_the_real_client(self):
        r = subprocess.run(["swaks", "--server", "127.0.0.1", "--port", str(self.lb.port("smtp")),
                            "--local-interface", "127.0.0.4", "--to", "b@dst.test",
                            "--tls", "--tls-protocol", "tlsv1_1", "--timeout", "20"],
                           capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertNotEqual(r.returncode, 0)
        self.proxy.wait_log("event=tls_failed client=127.0.0.4 ")
        self.assertRegex(self.proxy.log(), r"client=127\.0\.0\.4 listener=smtp mode=starttls "
                                           r"reason=\S+ remembered=yes key=127\.0\.0\.4/32")
        c = SmtpConversation("127.0.0.1", self.lb.port("smtp"), source="127.0.0.4")
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO x.test\r\n")
        self.assertNotIn(b"STARTTLS", c.read_reply())
        c = SmtpConversation("127.0.0.1", self.lb.port("smtp"), source="127.0.0.5")
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO x.test\r\n")
        self.assertIn(b"STARTTLS", c.read_reply())


class DirectConnectionTest(BehindHaproxy, unittest.TestCase):
    """Without the balancer: trusted and untrusted peers, bad, missing and
    LOCAL headers, on the proxy's own ports."""
    mode = "v2"
    proxy_keys = {"proxy_protocol_timeout": "1s"}

    def direct(self, listener="smtp", source="127.0.0.1"):
        c = SmtpConversation("127.0.0.1", self.proxy.port(listener), source=source)
        self.addCleanup(c.close)
        return c

    def closed_without_a_byte(self, c):
        """The proxy closed the connection and sent nothing (a reset when
        our unread bytes were still in its socket)."""
        c.sock.settimeout(15)
        try:
            got = c.sock.recv(100)
        except ConnectionResetError:
            got = b""
        self.assertEqual(got, b"")

    def test_untrusted_peer_is_closed_before_any_byte_is_read(self):
        c = self.direct(source="127.0.0.9")
        c.send(v2_header("192.0.2.7", 1234, "127.0.0.1", 25) + b"EHLO x\r\n")
        self.closed_without_a_byte(c)
        self.proxy.wait_log("event=proxy_untrusted peer=127.0.0.9 listener=smtp")
        self.assertNotIn("client=192.0.2.7", self.proxy.log())

    def test_trusted_peer_without_a_header_is_closed(self):
        c = self.direct()
        c.send(b"EHLO x.test\r\n")
        self.closed_without_a_byte(c)
        self.proxy.wait_log("event=proxy_header_invalid peer=127.0.0.1 listener=smtp")

    def test_a_header_that_never_comes_is_cut_off_at_the_deadline(self):
        c = self.direct()
        c.send(b"\r\n\r\n\x00\r\n")  # the start of a v2 signature, then silence
        self.closed_without_a_byte(c)
        self.proxy.wait_log("event=proxy_header_missing peer=127.0.0.1 reason=timeout")

    def test_a_v1_header_on_a_v2_listener_is_refused(self):
        c = self.direct()
        c.send(b"PROXY TCP4 192.0.2.7 127.0.0.1 1234 25\r\n")
        self.closed_without_a_byte(c)
        self.proxy.wait_log("event=proxy_header_invalid")

    def test_local_header_uses_the_connection_addresses(self):
        c = self.direct()
        c.send(v2_header(None, 0, None, 0, local=True))
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"QUIT\r\n")
        c.read_reply()
        self.proxy.wait_log("local=yes")
        self.assertRegex(self.proxy.log(), r"event=proxy_header version=2 peer=127\.0\.0\.1 "
                                           r"client=127\.0\.0\.1 port=\d+ local=yes")

    def test_header_and_first_command_in_one_segment_both_count(self):
        c = self.direct()
        c.send(v2_header("192.0.2.44", 4444, "198.51.100.1", 25) + b"EHLO split.test\r\n")
        self.assertTrue(c.read_reply().startswith(b"220"))
        self.assertTrue(c.read_reply().startswith(b"250"))
        c.send(b"QUIT\r\n")
        c.read_reply()
        line = self.end_line("client=192.0.2.44 port=4444")
        self.assertIn("helo=split.test", line)
        self.assertIn("local_port=25", line)

    def test_implicit_tls_starts_after_the_header(self):
        c = self.direct("submissions")
        c.send(v2_header("192.0.2.45", 4545, "198.51.100.1", 465))
        tls = tls_context().wrap_socket(c.sock, server_hostname="mx.example.test")
        c.sock = tls
        self.assertTrue(c.read_reply().startswith(b"220"))
        c.send(b"QUIT\r\n")
        c.read_reply()
        self.end_line("client=192.0.2.45 port=4545")


if __name__ == "__main__":
    unittest.main()
