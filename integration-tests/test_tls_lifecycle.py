"""The life of a certificate (issue 14 items 6 and 7): expiry warnings at
start and reload, and OCSP stapling from a file.

Test material is made per test with the OpenSSL command line, signed by
the test CA of `make certs` (certs/test/ca.crt): leaves with a chosen
lifetime and key, OCSP responses from `openssl ocsp` in responder mode
(an index file says good or revoked), and a stale one made under
faketime.
"""
import calendar
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import unittest

from peers import SmtpSink
from proxyproc import Proxy
from tlsharness import CA, TOOL_TIMEOUT, cert

CA_KEY = cert("ca.key")
LISTENERS = [{"name": "smtp", "kind": "smtp", "tls": "starttls"},
             {"name": "submissions", "kind": "submissions"}]
DAY = 86400


def run(argv, **kw):
    """Runs a tool with a bounded time; returns CompletedProcess (text)."""
    env = dict(os.environ)
    env["OPENSSL_CONF"] = "/dev/null"  # no system openssl.cnf surprises
    return subprocess.run(argv, capture_output=True, text=True, timeout=TOOL_TIMEOUT,
                          env=env, **kw)


def must(argv, **kw):
    r = run(argv, **kw)
    if r.returncode != 0:
        raise AssertionError("%s failed (%d):\n%s%s" % (" ".join(argv), r.returncode,
                                                       r.stdout, r.stderr))
    return r


def not_after_iso(path):
    """The certificate's notAfter as the proxy logs it (UTC, ISO 8601)."""
    text = must(["openssl", "x509", "-in", path, "-noout", "-enddate"]).stdout
    when = time.strptime(text.strip().split("=", 1)[1], "%b %d %H:%M:%S %Y GMT")
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(calendar.timegm(when)))


class Pki:
    """Keys, leaves and OCSP responses in |d|, signed by the test CA."""

    def __init__(self, d):
        self.d = d
        self.serial = 0x5151_0000 + os.getpid() % 0x1000 * 0x100

    def path(self, name):
        return os.path.join(self.d, name)

    def key(self, stem, kind="ec"):
        out = self.path(stem + ".key")
        if kind == "ec":
            must(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                  "ec_paramgen_curve:P-256", "-out", out])
        else:
            must(["openssl", "genpkey", "-algorithm", "RSA", "-pkeyopt",
                  "rsa_keygen_bits:2048", "-out", out])
        return out

    def leaf(self, stem, name="mx.example.test", days=365, kind="ec", key=None):
        """A leaf for |name| valid |days| from now; returns (cert, chain,
        key): the chain is the leaf followed by the CA."""
        key = key or self.key(stem, kind)
        csr = self.path(stem + ".csr")
        must(["openssl", "req", "-new", "-key", key, "-subj", "/CN=" + name, "-out", csr])
        ext = self.path(stem + ".ext")
        with open(ext, "w") as f:
            f.write("basicConstraints = critical, CA:FALSE\n"
                    "extendedKeyUsage = serverAuth\n"
                    "subjectAltName = DNS:%s\n" % name)
        self.serial += 1
        crt = self.path(stem + ".crt")
        must(["openssl", "x509", "-req", "-in", csr, "-CA", CA, "-CAkey", CA_KEY,
              "-set_serial", str(self.serial), "-days", str(days), "-sha256",
              "-extfile", ext, "-out", crt])
        chain = self.path(stem + "-chain.crt")
        with open(chain, "w") as out, open(crt) as a, open(CA) as b:
            out.write(a.read() + b.read())
        return crt, chain, key

    def ocsp(self, crt, out, status="V", ndays=7, faketime=None):
        """`openssl ocsp` as the CA's responder answering for |crt|: good
        (V) or revoked (R); under faketime's clock when given."""
        serial = must(["openssl", "x509", "-in", crt, "-noout", "-serial"]).stdout
        serial = serial.strip().split("=", 1)[1]
        index = self.path(os.path.basename(out) + ".index")
        with open(index, "w") as f:
            revoked = "200101000000Z" if status == "R" else ""
            f.write("%s\t351231000000Z\t%s\t%s\tunknown\t/CN=x\n" % (status, revoked, serial))
        argv = ["openssl", "ocsp", "-index", index, "-rsigner", CA, "-rkey", CA_KEY,
                "-CA", CA, "-issuer", CA, "-cert", crt, "-respout", out,
                "-ndays", str(ndays)]
        if faketime:
            argv = ["faketime", faketime] + argv
        must(argv)
        return out


def cert_section(name, crt, key, **more):
    lines = ["", "[certificate %s]" % name, "cert = %s" % crt, "key = %s" % key]
    lines += ["%s = %s" % kv for kv in more.items()]
    return "\n".join(lines) + "\n"


class LifecycleTest(unittest.TestCase):
    """A directory with a Pki; proxies started with start() are stopped at
    the end of the test."""

    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="stp-lifecycle-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.pki = Pki(self.dir)

    def start(self, certificates, tls_section=""):
        self.sink = SmtpSink(os.path.join(self.dir, "sink"))
        self.sink.start()
        self.addCleanup(self.sink.stop)
        pdir = os.path.join(self.dir, "proxy")
        os.makedirs(pdir)
        self.proxy = Proxy(pdir, "%s:%d" % self.sink.address,
                           listeners=[dict(l) for l in LISTENERS],
                           extra=tls_section + certificates)
        self.proxy.start()
        self.addCleanup(self.proxy.stop)
        self.proxy.wait_log("event=started")
        return self.proxy

    def reload(self, certificates=None, tls_section=""):
        """Rewrites the configuration (same ports) when given new
        certificates, sends SIGHUP and waits for the reload's result."""
        if certificates is not None:
            self.proxy.extra = tls_section + certificates
            for l in self.proxy.listeners:
                l["port"] = self.proxy.ports[l["name"]]
            with open(self.proxy.conf_path, "w") as f:
                f.write(self.proxy.config_text())
        done = self.proxy.log().count("event=reload result=")
        self.proxy.signal(signal.SIGHUP)
        for _ in range(200):
            log = self.proxy.log()
            results = re.findall(r"event=reload result=(\S+)", log)
            if len(results) > done:
                self.assertEqual(results[-1], "ok", log)
                return log
            time.sleep(0.05)
        self.fail("no reload result:\n" + self.proxy.log())

    def lines(self, event):
        return [l for l in self.proxy.log().splitlines() if "event=%s " % event in l]

    def s_client(self, listener, *args):
        argv = ["openssl", "s_client", "-connect",
                "127.0.0.1:%d" % self.proxy.port(listener),
                "-servername", "mx.example.test", "-CAfile", CA]
        if listener == "smtp":
            argv += ["-starttls", "smtp"]
        r = subprocess.run(argv + list(args), input=b"QUIT\r\n", capture_output=True,
                           timeout=TOOL_TIMEOUT)
        out = r.stdout.decode("utf-8", "replace") + r.stderr.decode("utf-8", "replace")
        self.assertIn("Verify return code: 0 (ok)", out)
        return out

    def assert_stapled(self, listener):
        out = self.s_client(listener, "-status")
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)
        return out

    def assert_not_stapled(self, listener):
        out = self.s_client(listener, "-status")
        self.assertIn("OCSP response: no response sent", out)
        self.assertNotIn("OCSP Response Status", out)


class ExpiryWarningTest(LifecycleTest):

    def test_certificate_expiring_within_30_days_is_warned_at_start_and_after_sighup(self):
        crt, chain, key = self.pki.leaf("soon", days=10)
        self.start(cert_section("soon", chain, key))
        warning = re.compile(r"level=warning event=certificate_expiring certificate=soon "
                             r"not_after=(\S+) days_left=(\d+) ")
        found = [warning.search(l) for l in self.lines("certificate_expiring")]
        self.assertEqual(len(found), 1, self.proxy.log())
        self.assertEqual(found[0].group(1), not_after_iso(crt))
        # Made for 10 days a moment ago: 9 whole days and some hours left.
        self.assertIn(found[0].group(2), ("9", "10"))
        self.reload()
        self.assertEqual(len(self.lines("certificate_expiring")), 2, self.proxy.log())

    def test_certificate_valid_90_days_is_not_warned(self):
        crt, chain, key = self.pki.leaf("later", days=90)
        self.start(cert_section("later", chain, key))
        self.reload()
        self.assertEqual(self.lines("certificate_expiring"), [])
        self.assertEqual(self.lines("certificate_expired"), [])

    def test_expiry_warning_setting_moves_the_threshold(self):
        crt, chain, key = self.pki.leaf("later", days=90)
        self.start(cert_section("later", chain, key), "[tls]\nexpiry_warning = 2880h\n")
        self.assertEqual(len(self.lines("certificate_expiring")), 1, self.proxy.log())
        # The same certificate with the default (30 days) says nothing.
        self.reload(cert_section("later", chain, key))
        self.assertEqual(len(self.lines("certificate_expiring")), 1, self.proxy.log())

    def test_expired_certificate_is_warned_with_its_not_after(self):
        self.start(cert_section("old", cert("expired.crt"), cert("expired.key")) +
                   cert_section("mx", cert("mx-ecdsa-chain.crt"), cert("mx-ecdsa.key"),
                                default="yes"))
        self.assertRegex(self.proxy.log(), r"event=certificate_expired certificate=old "
                                           r"not_after=2020-02-01T00:00:00Z ")
        self.assertEqual(self.lines("certificate_expiring"), [])


class OcspStaplingTest(LifecycleTest):

    def setUp(self):
        super().setUp()
        self.crt, self.chain, self.key = self.pki.leaf("mx")
        self.resp = os.path.join(self.dir, "resp.der")

    def start_with_ocsp(self):
        return self.start(cert_section("mx", self.chain, self.key, ocsp=self.resp))

    def test_good_response_is_stapled_on_implicit_and_starttls_listeners(self):
        self.pki.ocsp(self.crt, self.resp)
        self.start_with_ocsp()
        self.assertEqual(len(self.lines("ocsp_stapled")), 1, self.proxy.log())
        self.assert_stapled("submissions")
        self.assert_stapled("smtp")
        # TLS 1.2 carries it in CertificateStatus, TLS 1.3 in Certificate.
        out = self.assert_stapled("submissions")
        self.assertRegex(out, r"TLSv1\.3")
        self.assertIn("Cert Status: good", self.s_client("smtp", "-status", "-tls1_2"))

    def test_response_for_another_certificate_is_logged_and_not_stapled(self):
        other, _, _ = self.pki.leaf("other", name="mail.other.test")
        self.pki.ocsp(other, self.resp)
        self.start_with_ocsp()
        self.assertRegex(self.proxy.log(), r"level=warning event=ocsp_not_stapled "
                                           r"certificate=mx reason=mismatch ")
        self.assert_not_stapled("submissions")
        self.assert_not_stapled("smtp")

    def test_stale_response_is_logged_and_not_stapled(self):
        # Made in 2020 for 7 days: its nextUpdate is long past.
        self.pki.ocsp(self.crt, self.resp, faketime="2020-01-01 00:00:00")
        self.start_with_ocsp()
        self.assertRegex(self.proxy.log(), r"event=ocsp_not_stapled certificate=mx "
                                           r"reason=stale file=\S+ valid_until=2020-01-08T")
        self.assert_not_stapled("submissions")

    def test_revoked_response_is_logged_and_not_stapled(self):
        self.pki.ocsp(self.crt, self.resp, status="R")
        self.start_with_ocsp()
        self.assertRegex(self.proxy.log(), r"event=ocsp_not_stapled certificate=mx "
                                           r"reason=revoked ")
        self.assert_not_stapled("smtp")

    def test_unparsable_response_is_logged_and_not_stapled(self):
        with open(self.resp, "wb") as f:
            f.write(open(self.crt, "rb").read())  # PEM, and no OCSP response
        self.start_with_ocsp()
        self.assertRegex(self.proxy.log(), r"event=ocsp_not_stapled certificate=mx "
                                           r"reason=unparsable ")
        self.assert_not_stapled("submissions")

    def test_missing_response_file_neither_stops_the_start_nor_a_reload(self):
        self.start_with_ocsp()
        self.assertRegex(self.proxy.log(), r"event=ocsp_not_stapled certificate=mx "
                                           r"reason=unreadable file=\S+ detail=\"cannot open ")
        self.assert_not_stapled("submissions")
        self.reload()
        self.assertEqual(len(self.lines("ocsp_not_stapled")), 2, self.proxy.log())

    def test_replaced_response_is_stapled_after_sighup(self):
        other, _, _ = self.pki.leaf("other", name="mail.other.test")
        self.pki.ocsp(other, self.resp)
        self.start_with_ocsp()
        self.assert_not_stapled("submissions")
        self.pki.ocsp(self.crt, self.resp + ".new")
        os.replace(self.resp + ".new", self.resp)
        self.reload()
        self.assertEqual(len(self.lines("ocsp_stapled")), 1, self.proxy.log())
        self.assert_stapled("submissions")
        self.assert_stapled("smtp")


if __name__ == "__main__":
    unittest.main()
