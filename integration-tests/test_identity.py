"""The backend learns who the client is: a real Postfix, configured as a
legacy MTA would be, records the client's own address in its Received
header and log in each identity mode, over IPv4 and IPv6, with TLS at
the proxy and without.

Clients connect from 127.0.0.2 (or ::1) while the proxy reaches Postfix
from 127.0.0.1, so Postfix can only show the client's address if the
proxy told it.
"""
import os
import shutil
import smtplib
import ssl
import tempfile
import unittest

from mailcheck import header_values
from peers import PostfixInstance, SmtpSink
from proxyproc import ROOT, Proxy

CERTS = os.path.join(ROOT, "certs", "test")
CERT_SECTIONS = "".join(
    "\n[certificate %s]\ncert = %s\nkey = %s\n" % (n, os.path.join(CERTS, n + ".crt"),
                                                    os.path.join(CERTS, n + ".key"))
    for n in ("mx-ecdsa", "mx-rsa"))


def client_context():
    """Verifies the chain against the test CA. The name check is off: the
    client dials an address, and certificate names are test_tls_certificates's job."""
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
    ctx.check_hostname = False
    return ctx


class IdentityMode:
    """Mixin: one Postfix and one proxy per identity mode."""

    identity = "none"
    postfix_cf = {}

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-identity-")
        cls.sink = SmtpSink(os.path.join(cls.dir, "sink")).start()
        try:
            cls.mta = PostfixInstance(os.path.join(cls.dir, "postfix"), relayhost=cls.sink,
                                      main_cf=cls.postfix_cf).start()
        except Exception:
            cls.sink.stop()
            raise
        pdir = os.path.join(cls.dir, "proxy")
        os.makedirs(pdir)
        cls.proxy = Proxy(
            pdir, "127.0.0.1:%d" % cls.mta.smtpd_port,
            listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"},
                       {"name": "smtp6", "kind": "smtp", "tls": "starttls", "host": "::1"}],
            extra=CERT_SECTIONS, backend_keys={"identity": cls.identity})
        try:
            cls.proxy.start()
        except Exception:
            cls.mta.stop()
            cls.sink.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.stop()
        finally:
            try:
                cls.mta.stop()
            finally:
                cls.sink.stop()
                shutil.rmtree(cls.dir, ignore_errors=True)

    def setUp(self):
        self.sink.clear()

    def send(self, host, port, source, tls, subject):
        s = smtplib.SMTP(host, port, timeout=15, source_address=(source, 0))
        self.addCleanup(s.close)
        s.ehlo("client.src.test")
        if tls:
            s.starttls(context=client_context())
            s.ehlo("client.src.test")
        s.sendmail("a@src.test", ["b@dst.test"], b"Subject: %s\r\n\r\nbody\r\n" % subject)
        s.quit()
        for m in self.sink.wait_messages(1, timeout=30):
            if subject in m["data_crlf"]:
                return m["data_crlf"]
        self.fail("message %r not relayed by Postfix" % subject)

    def postfix_received(self, data):
        received = header_values(data, "Received")
        pf = [r for r in received if "(Postfix)" in r]
        self.assertTrue(pf, received)
        return pf[0]

    def check(self, host, source, tls, want):
        port = self.proxy.port("smtp6" if ":" in host else "smtp")
        subject = ("%s-%s-%s" % (self.identity, source, "tls" if tls else "plain")).encode()
        data = self.send(host, port, source, tls, subject)
        self.assertIn(want, self.postfix_received(data))
        status = header_values(data, "X-TLS-Status")[0]
        self.assertIn("tls=%s" % ("TLSv1.3" if tls else "none"), status)
        return data


class RealAddressTests(IdentityMode):

    def test_ipv4_plaintext_client_address_recorded_by_postfix(self):
        self.check("127.0.0.1", "127.0.0.2", False, "[127.0.0.2]")

    def test_ipv4_tls_client_address_recorded_by_postfix(self):
        self.check("127.0.0.1", "127.0.0.2", True, "[127.0.0.2]")

    def test_ipv6_plaintext_client_address_recorded_by_postfix(self):
        self.check("::1", "::1", False, "[IPv6:::1]")

    def test_ipv6_tls_client_address_recorded_by_postfix(self):
        data = self.check("::1", "::1", True, "[IPv6:::1]")
        self.assertIn("client=::1", header_values(data, "X-TLS-Status")[0])


class XclientIdentityTest(RealAddressTests, unittest.TestCase):
    identity = "xclient"
    postfix_cf = {"smtpd_authorized_xclient_hosts": "127.0.0.1/32"}

    def test_postfix_logs_the_client_address_given_by_xclient(self):
        self.check("127.0.0.1", "127.0.0.2", False, "[127.0.0.2]")
        self.mta.wait_log(r"client=unknown\[127\.0\.0\.2\]")


class ProxyV1IdentityTest(RealAddressTests, unittest.TestCase):
    identity = "proxy-v1"
    postfix_cf = {"smtpd_upstream_proxy_protocol": "haproxy"}


class ProxyV2IdentityTest(RealAddressTests, unittest.TestCase):
    identity = "proxy-v2"
    postfix_cf = {"smtpd_upstream_proxy_protocol": "haproxy"}


class NoIdentityTest(IdentityMode, unittest.TestCase):
    """Without an identity mode the backend sees the proxy: the baseline
    that makes the other tests meaningful."""
    identity = "none"

    def test_without_identity_postfix_sees_the_proxy_address(self):
        data = self.check("127.0.0.1", "127.0.0.2", False, "[127.0.0.1]")
        self.assertNotIn("127.0.0.2", self.postfix_received(data))


class XclientRefusedTest(IdentityMode, unittest.TestCase):
    """A backend that refuses XCLIENT (not authorised) must not get the
    client as the proxy's trusted address: the client gets 421."""
    identity = "xclient"
    postfix_cf = {}

    def test_backend_refusing_xclient_gives_client_421_and_is_logged(self):
        with self.assertRaises(smtplib.SMTPConnectError) as cm:
            smtplib.SMTP("127.0.0.1", self.proxy.port("smtp"), timeout=15,
                         source_address=("127.0.0.2", 0))
        self.assertEqual(cm.exception.smtp_code, 421)
        self.proxy.wait_log("event=xclient_refused code=550")
        self.assertEqual(self.sink.parsed_messages(), [])


if __name__ == "__main__":
    unittest.main()
