"""The fleet examples in configs/fleet/ and configs/kubernetes/ (README:
"Running a fleet") are valid for the programs that read them: HAProxy's
own check, promtool, and the proxy's -t on its configurations (with the
test certificates in place of the production paths).
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from peers import HAPROXY
from proxyproc import PROXY_BIN, ROOT
from tlsharness import TOOL_TIMEOUT, cert

FLEET = os.path.join(ROOT, "configs", "fleet")
KUBERNETES = os.path.join(ROOT, "configs", "kubernetes", "smtp-tls-proxy.yaml")


def with_test_certificates(text):
    text = re.sub(r"(?m)^(\s*)cert = .*$", r"\1cert = " + cert("mx-ecdsa-chain.crt"), text)
    return re.sub(r"(?m)^(\s*)key = .*$", r"\1key = " + cert("mx-ecdsa.key"), text)


class FleetConfigTest(unittest.TestCase):

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-fleet-")
        self.addCleanup(shutil.rmtree, self.dir, True)

    def check_proxy_config(self, text):
        path = os.path.join(self.dir, "proxy.conf")
        with open(path, "w") as f:
            f.write(with_test_certificates(text))
        r = subprocess.run([PROXY_BIN, "-t", "-c", path], capture_output=True,
                           timeout=TOOL_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        self.assertIn(b"configuration ok (3 listeners)", r.stdout)

    def test_haproxy_accepts_the_fleet_front(self):
        r = subprocess.run([HAPROXY, "-c", "-f", os.path.join(FLEET, "haproxy.cfg")],
                           capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        with open(os.path.join(FLEET, "haproxy.cfg")) as f:
            text = f.read()
        self.assertEqual(len(re.findall(r"(?m)^\s+server .* send-proxy-v2 ", text)), 9)

    def test_promtool_accepts_the_fleet_scrape_configuration(self):
        r = subprocess.run(["promtool", "check", "config", os.path.join(FLEET, "prometheus.yml")],
                           capture_output=True, timeout=TOOL_TIMEOUT)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)

    def test_the_fleet_member_configuration_is_valid(self):
        with open(os.path.join(FLEET, "smtp-tls-proxy.conf")) as f:
            self.check_proxy_config(f.read())

    def test_the_kubernetes_sidecar_configuration_is_valid(self):
        with open(KUBERNETES) as f:
            text = f.read()
        m = re.search(r"smtp-tls-proxy\.conf: \|\n((?:    .*\n|\n)+)", text)
        self.assertIsNotNone(m, "no configuration in the ConfigMap")
        conf = "\n".join(l[4:] for l in m.group(1).splitlines())
        self.check_proxy_config(conf)
        self.assertIn("aws-load-balancer-proxy-protocol", text)
        self.assertIn("path: /healthz", text)


if __name__ == "__main__":
    unittest.main()
