"""smtp-tls-proxy healthcheck (daemon/healthcheck.c), the container's
HEALTHCHECK: GET /healthz of the configuration's [metrics] address, exit
0 on 200 and 1 on anything else."""
import os
import shutil
import signal
import smtplib
import subprocess
import tempfile
import unittest

from peers import SmtpSink, free_port
from proxyproc import PROXY_BIN, Proxy


def healthcheck(conf=None, env=None, timeout=None):
    argv = [PROXY_BIN, "healthcheck"]
    if conf is not None:
        argv += ["-c", conf]
    if timeout is not None:
        argv += ["--timeout", str(timeout)]
    e = dict(os.environ)
    e.update(env or {})
    p = subprocess.run(argv, capture_output=True, text=True, env=e, timeout=30)
    return p.returncode, p.stdout + p.stderr


class HealthcheckTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-health-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.sink = SmtpSink(os.path.join(self.dir, "sink")).start()
        self.addCleanup(self.sink.stop)
        self.pdir = os.path.join(self.dir, "proxy")
        os.makedirs(self.pdir)
        self.metrics_port = free_port()

    def start(self, metrics_host="127.0.0.1"):
        self.proxy = Proxy(self.pdir, "%s:%d" % self.sink.address,
                           listeners=[{"name": "smtp", "kind": "smtp", "tls": "none"}],
                           extra="\n[metrics]\naddress = %s:%d\n" % (metrics_host,
                                                                     self.metrics_port))
        self.proxy.start()
        self.addCleanup(self.proxy.stop)
        return self.proxy

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_healthy_proxy(self):
        p = self.start()
        code, out = healthcheck(p.conf_path)
        self.assertEqual(code, 0, out)
        self.assertEqual(out.strip(), "healthy: 127.0.0.1:%d /healthz 200 ok" % self.metrics_port)

    def test_wildcard_metrics_address_is_asked_on_loopback(self):
        p = self.start(metrics_host="0.0.0.0")
        code, out = healthcheck(p.conf_path)
        self.assertEqual(code, 0, out)
        self.assertIn("127.0.0.1:%d" % self.metrics_port, out)

    def test_draining_proxy_is_unhealthy(self):
        p = self.start()
        # A transaction in progress keeps the proxy draining after SIGTERM
        # (shutdown_grace 5s in the tests), with /healthz at 503.
        s = smtplib.SMTP("127.0.0.1", p.port(), timeout=10)
        self.addCleanup(s.close)
        s.ehlo("client.test")
        s.mail("a@src.test")
        p.signal(signal.SIGTERM)
        p.wait_log("event=stopping")
        code, out = healthcheck(p.conf_path)
        self.assertEqual(code, 1, out)
        self.assertIn("/healthz 503 draining", out)
        s.close()

    def test_nothing_listening_is_unhealthy(self):
        conf = self.write("down.conf", "[backend]\naddress = 127.0.0.1:25\n"
                          "[listener smtp]\naddress = 127.0.0.1:%d\nkind = smtp\ntls = none\n"
                          "[metrics]\naddress = 127.0.0.1:%d\n" % (free_port(),
                                                                   self.metrics_port))
        code, out = healthcheck(conf, timeout=2)
        self.assertEqual(code, 1, out)
        self.assertIn("unhealthy: 127.0.0.1:%d: connect:" % self.metrics_port, out)

    def test_configuration_without_metrics_is_unhealthy(self):
        conf = self.write("nometrics.conf", "[backend]\naddress = 127.0.0.1:25\n"
                          "[listener smtp]\naddress = 127.0.0.1:%d\nkind = smtp\ntls = none\n"
                          % free_port())
        code, out = healthcheck(conf)
        self.assertEqual(code, 1, out)
        self.assertIn("has no [metrics] address", out)

    def test_metrics_address_from_the_environment(self):
        p = self.start()
        conf = self.write("env.conf", "[backend]\naddress = 127.0.0.1:25\n"
                          "[listener smtp]\naddress = 127.0.0.1:%d\nkind = smtp\ntls = none\n"
                          % free_port())
        code, out = healthcheck(conf, env={
            "SMTP_TLS_PROXY__METRICS__ADDRESS": "127.0.0.1:%d" % self.metrics_port})
        self.assertEqual(code, 0, out)
        self.assertIn("healthy:", out)

    def test_backend_name_is_not_looked_up(self):
        # The compose backend "mta" may be restarting: the proxy's health
        # does not depend on its name resolving.
        p = self.start()
        conf = self.write("names.conf", "[backend]\naddress = mta.invalid:25\n"
                          "[listener smtp]\naddress = 127.0.0.1:%d\nkind = smtp\ntls = none\n"
                          "[metrics]\naddress = 127.0.0.1:%d\n" % (free_port(),
                                                                   self.metrics_port))
        code, out = healthcheck(conf)
        self.assertEqual(code, 0, out)
        self.assertNotIn("resolve", out)

    def test_bad_options(self):
        code, out = healthcheck(timeout="soon")
        self.assertEqual(code, 1, out)
        self.assertIn("--timeout", out)


if __name__ == "__main__":
    unittest.main()
