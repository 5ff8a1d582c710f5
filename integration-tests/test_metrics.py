"""Prometheus metrics and /healthz (issue 11): promtool accepts /metrics,
the counters equal the traffic a test sent, /healthz flips to 503 when a
SIGTERM drain starts, and hostile HTTP leaves mail alone.
"""
import os
import re
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

from peers import SmtpSink, free_port
from proxyproc import Proxy, SmtpConversation
from tlsharness import STANDARD_CERTIFICATES


def get(port, path, method="GET"):
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def parse_metrics(text):
    """{(name, frozenset(labels.items())): value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line)
        assert m, line
        labels = dict(re.findall(r'([a-z_]+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), frozenset(labels.items()))] = float(m.group(3))
    return out


def value(metrics, name, **labels):
    return metrics.get((name, frozenset(labels.items())), 0.0)


def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class MetricsTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-metrics-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)
        self.mport = free_port()
        os.makedirs(os.path.join(self.dir, "p"))
        self.proxy = Proxy(os.path.join(self.dir, "p"), "%s:%d" % self.sink.address,
                           listeners=[{"name": "smtp", "kind": "smtp", "tls": "starttls"}],
                           proxy={"shutdown_grace": "20s"},
                           extra=STANDARD_CERTIFICATES +
                           "\n[metrics]\naddress = 127.0.0.1:%d\n" % self.mport)
        self.proxy.start()
        self.addCleanup(self.proxy.stop)

    def scrape(self):
        code, text = get(self.mport, "/metrics")
        self.assertEqual(code, 200)
        return text

    def promtool_accepts(self, text):
        out = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                             capture_output=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stdout + out.stderr)

    def wait_idle(self):
        """Bounded wait until no session is open (connections count at
        their end)."""
        for _ in range(200):
            m = parse_metrics(self.scrape())
            if value(m, "smtp_tls_proxy_sessions_active", listener="smtp") == 0:
                return m
            time.sleep(0.05)
        self.fail("sessions never ended:\n" + self.proxy.log()[-2000:])

    def send(self, tls):
        s = smtplib.SMTP("127.0.0.1", self.proxy.port(), timeout=10)
        try:
            s.ehlo("metrics.src.test")
            if tls:
                s.starttls(context=tls_context())
                s.ehlo("metrics.src.test")
            s.sendmail("a@src.test", ["b@dst.test"], b"Subject: m\r\n\r\nbody\r\n")
            s.quit()
        finally:
            s.close()

    def test_promtool_accepts_metrics_before_and_after_traffic(self):
        self.promtool_accepts(self.scrape())
        self.send(tls=False)
        self.send(tls=True)
        self.wait_idle()
        self.promtool_accepts(self.scrape())

    def test_counters_equal_the_traffic_sent(self):
        for _ in range(3):
            self.send(tls=False)
        for _ in range(2):
            self.send(tls=True)
        # A handshake that fails: garbage instead of a ClientHello.
        with SmtpConversation("127.0.0.1", self.proxy.port()) as c:
            c.read_reply()
            c.send(b"EHLO bad.src.test\r\n")
            c.read_reply()
            c.send(b"STARTTLS\r\n")
            self.assertTrue(c.read_reply().startswith(b"220"))
            c.send(b"this is not a ClientHello\r\n" * 20)
            c.read_until_eof()
        # A refused XCLIENT.
        with SmtpConversation("127.0.0.1", self.proxy.port()) as c:
            c.read_reply()
            c.send(b"XCLIENT ADDR=10.1.2.3\r\n")
            self.assertTrue(c.read_reply().startswith(b"550"))
            c.send(b"QUIT\r\n")
            c.read_reply()
        m = self.wait_idle()
        self.assertEqual(len(self.sink.wait_messages(5)), 5)
        scope = "loopback"
        # The proxy's own port probe at start is one more plaintext
        # connection; so are the handshake and XCLIENT sessions (the
        # failed handshake never reached TLS).
        plain = value(m, "smtp_tls_proxy_connections_total", listener="smtp", tls="none",
                      scope=scope)
        self.assertEqual(value(m, "smtp_tls_proxy_connections_total", listener="smtp",
                               tls="TLSv1.3", scope=scope), 2)
        self.assertGreaterEqual(plain, 5)
        self.assertEqual(value(m, "smtp_tls_proxy_messages_total", listener="smtp", tls="none",
                               scope=scope, result="accepted"), 3)
        self.assertEqual(value(m, "smtp_tls_proxy_messages_total", listener="smtp",
                               tls="TLSv1.3", scope=scope, result="accepted"), 2)
        self.assertGreater(value(m, "smtp_tls_proxy_message_bytes_total", listener="smtp",
                                 tls="TLSv1.3", scope=scope, result="accepted"), 0)
        self.assertEqual(value(m, "smtp_tls_proxy_starttls_total", listener="smtp",
                               event="used"), 2)
        # Offered in every plaintext EHLO reply: 3 + 2 + the bad handshake.
        self.assertEqual(value(m, "smtp_tls_proxy_starttls_total", listener="smtp",
                               event="offered"), 6)
        handshakes = sum(v for (n, l), v in m.items()
                         if n == "smtp_tls_proxy_tls_handshakes_total")
        self.assertEqual(handshakes, 2)
        failures = sum(v for (n, l), v in m.items()
                       if n == "smtp_tls_proxy_tls_handshake_failures_total")
        self.assertEqual(failures, 1)
        self.assertEqual(value(m, "smtp_tls_proxy_refusals_total", reason="xclient"), 1)
        self.assertEqual(value(m, "smtp_tls_proxy_backend_errors_total", kind="connect"), 0)
        self.promtool_accepts(self.scrape())

    def test_healthz_is_200_while_serving_and_503_once_sigterm_drains(self):
        self.assertEqual(get(self.mport, "/healthz")[0], 200)
        # An open transaction keeps the proxy draining instead of exiting.
        c = SmtpConversation("127.0.0.1", self.proxy.port())
        self.addCleanup(c.close)
        c.read_reply()
        c.send(b"EHLO drain.src.test\r\nMAIL FROM:<a@src.test>\r\nRCPT TO:<b@dst.test>\r\n")
        self.assertEqual([r[:3] for r in c.read_replies(3)], [b"250", b"250", b"250"])
        self.proxy.signal(signal.SIGTERM)
        self.proxy.wait_log("event=stopping")
        self.assertEqual(get(self.mport, "/healthz")[0], 503)
        c.send(b"DATA\r\n")
        self.assertTrue(c.read_reply().startswith(b"354"))
        c.send(b"Subject: last\r\n\r\nbody\r\n.\r\n")
        self.assertTrue(c.read_reply().startswith(b"250"))

    def test_other_paths_get_404_and_other_methods_405(self):
        self.assertEqual(get(self.mport, "/")[0], 404)
        self.assertEqual(get(self.mport, "/metrics/../etc")[0], 404)
        self.assertEqual(get(self.mport, "/metrics", method="POST")[0], 405)
        self.assertEqual(get(self.mport, "/healthz", method="DELETE")[0], 405)

    def test_hostile_http_leaves_mail_unaffected(self):
        held = []
        try:
            # Many idle connections, slow headers, and a huge request.
            for _ in range(60):
                try:
                    s = socket.create_connection(("127.0.0.1", self.mport), timeout=5)
                    s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")  # never finished
                    held.append(s)
                except OSError:
                    break
            big = socket.create_connection(("127.0.0.1", self.mport), timeout=10)
            held.append(big)
            try:
                big.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * (1 << 20) + b"\r\n\r\n")
            except OSError:
                pass  # the server may close it mid-request: that is the point
            start = len(self.sink.messages())
            for _ in range(3):
                self.send(tls=True)
            self.assertEqual(len(self.sink.wait_messages(start + 3)), start + 3)
        finally:
            for s in held:
                s.close()
        # And once the attack is gone, the endpoint serves again.
        for _ in range(100):
            try:
                if get(self.mport, "/healthz")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            self.fail("metrics endpoint did not recover")


class BackendDownMetricsTest(unittest.TestCase):

    def test_backend_down_is_counted_as_connect_errors(self):
        d = tempfile.mkdtemp(prefix="stp-metrics-")
        self.addCleanup(shutil.rmtree, d, True)
        mport = free_port()
        p = Proxy(d, "127.0.0.1:%d" % free_port(),
                  extra="\n[metrics]\naddress = 127.0.0.1:%d\n" % mport).start()
        self.addCleanup(p.stop)
        for _ in range(3):
            with SmtpConversation("127.0.0.1", p.port()) as c:
                self.assertTrue(c.read_reply().startswith(b"421 4.4.1"))
        for _ in range(200):
            m = parse_metrics(get(mport, "/metrics")[1])
            if value(m, "smtp_tls_proxy_backend_errors_total", kind="connect") >= 3:
                break
            time.sleep(0.05)
        # The harness's own port probes also met the dead backend.
        self.assertGreaterEqual(
            value(m, "smtp_tls_proxy_backend_errors_total", kind="connect"), 3)
        self.assertEqual(value(m, "smtp_tls_proxy_messages_total", listener="smtp", tls="none",
                               scope="loopback", result="accepted"), 0)


if __name__ == "__main__":
    unittest.main()
