"""SIGHUP reloads the configuration as a whole: new certificates for new
connections, sessions in progress undisturbed, and a broken configuration
changes nothing."""
import os
import shutil
import signal
import smtplib
import ssl
import tempfile
import unittest

from peers import SmtpSink
from proxyproc import ROOT, Proxy

CERTS = os.path.join(ROOT, "certs", "test")


def cert_section(name, stem, default=False):
    return ("\n[certificate %s]\ncert = %s\nkey = %s\n%s" % (
        name, os.path.join(CERTS, stem + ".crt"), os.path.join(CERTS, stem + ".key"),
        "default = yes\n" if default else ""))


def served_subject(port):
    """CN of the certificate the proxy serves to a client without SNI."""
    ctx = ssl.create_default_context(cafile=os.path.join(CERTS, "ca.crt"))
    ctx.check_hostname = False
    s = smtplib.SMTP("127.0.0.1", port, timeout=10)
    try:
        s.starttls(context=ctx)
        der = s.sock.getpeercert(binary_form=False)
        return dict(x[0] for x in der["subject"])["commonName"]
    finally:
        s.close()


class ReloadTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-reload-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)
        self.pdir = os.path.join(self.dir, "proxy")
        os.makedirs(self.pdir)
        self.proxy = Proxy(self.pdir, "%s:%d" % self.sink.address,
                           listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"}],
                           extra=cert_section("mx", "mx-ecdsa", True) +
                           cert_section("other", "other"))
        self.proxy.start()
        self.addCleanup(self.proxy.stop)

    def rewrite_config(self, extra):
        self.proxy.extra = extra
        ports = dict(self.proxy.ports)
        for l in self.proxy.listeners:
            l["port"] = ports[l["name"]]
        with open(self.proxy.conf_path, "w") as f:
            f.write(self.proxy.config_text())

    def test_sighup_swaps_the_default_certificate_without_dropping_sessions(self):
        self.assertEqual(served_subject(self.proxy.port()), "mx.example.test")
        open_session = smtplib.SMTP("127.0.0.1", self.proxy.port(), timeout=10)
        self.addCleanup(open_session.close)
        open_session.ehlo("before.reload.test")
        open_session.mail("a@src.test")
        self.rewrite_config(cert_section("mx", "mx-ecdsa") + cert_section("other", "other", True))
        self.proxy.signal(signal.SIGHUP)
        self.proxy.wait_log("event=reload result=ok")
        self.assertEqual(served_subject(self.proxy.port()), "mail.other.test")
        # The session that started before the reload goes on undisturbed.
        self.assertEqual(open_session.rcpt("b@dst.test")[0], 250)
        self.assertEqual(open_session.data(b"Subject: across a reload\r\n\r\nx\r\n")[0], 250)
        open_session.quit()
        self.assertIn(b"across a reload", self.sink.wait_messages(1)[0]["data_crlf"])

    def test_reload_with_a_broken_certificate_changes_nothing(self):
        self.rewrite_config(cert_section("mx", "mx-ecdsa", True) +
                            "\n[certificate broken]\ncert = %s\nkey = %s\n" % (
                                os.path.join(CERTS, "mx-ecdsa.crt"),
                                os.path.join(CERTS, "other.key")))
        self.proxy.signal(signal.SIGHUP)
        log = self.proxy.wait_log("event=reload result=failed")
        self.assertIn("does not match certificate", log)
        self.assertEqual(served_subject(self.proxy.port()), "mx.example.test")


if __name__ == "__main__":
    unittest.main()
