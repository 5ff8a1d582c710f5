"""The life of a certificate (issue 14 items 6 and 7): expiry warnings at
start and reload, OCSP stapling from a file, the `tlsa` command's DANE
records, and the reload's warning when a key changes without its TLSA
record having been announced.

Test material is made per test with the OpenSSL command line, signed by
the test CA of `make certs` (certs/test/ca.crt): leaves with a chosen
lifetime and key, OCSP responses from `openssl ocsp` in responder mode
(an index file says good or revoked), and a stale one made under
faketime. The records are checked against what the OpenSSL command line
computes and against hash-slinger's `tlsa --create`, which works offline
with --certificate.
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
from proxyproc import PROXY_BIN, Proxy
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


def spki_sha256_of_cert(path):
    """openssl x509 -pubkey | openssl pkey -pubin -outform DER | openssl dgst -sha256"""
    pub = must(["openssl", "x509", "-in", path, "-noout", "-pubkey"]).stdout
    der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub.encode(),
                         capture_output=True, timeout=TOOL_TIMEOUT, check=True).stdout
    out = subprocess.run(["openssl", "dgst", "-sha256"], input=der, capture_output=True,
                         timeout=TOOL_TIMEOUT, check=True).stdout.decode()
    return out.split("=")[-1].strip()


def spki_sha256_of_key(path):
    der = subprocess.run(["openssl", "pkey", "-in", path, "-pubout", "-outform", "DER"],
                         capture_output=True, timeout=TOOL_TIMEOUT, check=True).stdout
    out = subprocess.run(["openssl", "dgst", "-sha256"], input=der, capture_output=True,
                         timeout=TOOL_TIMEOUT, check=True).stdout.decode()
    return out.split("=")[-1].strip()


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

    def start(self, certificates, tls_section="", proxy_keys=None):
        self.sink = SmtpSink(os.path.join(self.dir, "sink"))
        self.sink.start()
        self.addCleanup(self.sink.stop)
        pdir = os.path.join(self.dir, "proxy")
        os.makedirs(pdir)
        self.proxy = Proxy(pdir, "%s:%d" % self.sink.address,
                           listeners=[dict(l) for l in LISTENERS], proxy=proxy_keys,
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


class TlsaCommandTest(LifecycleTest):

    def tlsa(self, certificates, *args):
        conf = os.path.join(self.dir, "tlsa.conf")
        with open(conf, "w") as f:
            f.write("[backend]\naddress = 127.0.0.1:25\n\n[listener smtp]\n"
                    "address = 127.0.0.1:2525\nkind = smtp\n" + certificates)
        return run([PROXY_BIN, "tlsa", "-c", conf] + list(args))

    def records(self, out):
        return [l for l in out.splitlines() if not l.startswith(";")]

    def test_records_are_the_spki_sha256_that_openssl_computes_for_ecdsa_and_rsa(self):
        r = self.tlsa(cert_section("mx-ecdsa", cert("mx-ecdsa-chain.crt"), cert("mx-ecdsa.key")) +
                      cert_section("mx-rsa", cert("mx-rsa.crt"), cert("mx-rsa.key")))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.records(r.stdout), [
            "_25._tcp.mx.example.test. IN TLSA 3 1 1 " + spki_sha256_of_cert(cert("mx-ecdsa.crt")),
            "_25._tcp.mx.example.test. IN TLSA 3 1 1 " + spki_sha256_of_cert(cert("mx-rsa.crt")),
        ])

    def test_port_option_names_the_port_in_the_owner_name(self):
        r = self.tlsa(cert_section("mx", cert("mx-rsa.crt"), cert("mx-rsa.key")),
                      "--port", "587")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.records(r.stdout), [
            "_587._tcp.mx.example.test. IN TLSA 3 1 1 " + spki_sha256_of_cert(cert("mx-rsa.crt"))])

    def test_records_equal_those_of_hash_slinger(self):
        for stem in ("mx-ecdsa", "mx-rsa"):
            for port in ("25", "587"):
                r = self.tlsa(cert_section("mx", cert(stem + ".crt"), cert(stem + ".key")),
                              "--port", port)
                self.assertEqual(r.returncode, 0, r.stderr)
                slinger = must(["tlsa", "--create", "--selector", "1", "--mtype", "1",
                                "--usage", "3", "--port", port, "--certificate",
                                cert(stem + ".crt"), "mx.example.test"])
                theirs = [l for l in slinger.stdout.splitlines() if " IN TLSA " in l]
                self.assertEqual(self.records(r.stdout), theirs, slinger.stdout)

    def test_configured_names_are_used_and_wildcards_are_comments(self):
        r = self.tlsa(cert_section("wild", cert("wild.crt"), cert("wild.key")) +
                      cert_section("other", cert("other.crt"), cert("other.key"),
                                   names="mail.alias.test, *.alias.test"))
        self.assertEqual(r.returncode, 0, r.stderr)
        other = spki_sha256_of_cert(cert("other.crt"))
        self.assertEqual(self.records(r.stdout),
                         ["_25._tcp.mail.alias.test. IN TLSA 3 1 1 " + other])
        self.assertIn("; *.wild.test: wildcard names have no TLSA owner name", r.stdout)
        self.assertIn("; *.alias.test: wildcard names have no TLSA owner name", r.stdout)

    def test_rollover_prints_the_next_key_record_too(self):
        nxt = self.pki.key("next", "rsa")
        r = self.tlsa(cert_section("mx", cert("mx-ecdsa-chain.crt"), cert("mx-ecdsa.key"),
                                   next_key=nxt))
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.records(r.stdout), [
            "_25._tcp.mx.example.test. IN TLSA 3 1 1 " + spki_sha256_of_cert(cert("mx-ecdsa.crt")),
            "_25._tcp.mx.example.test. IN TLSA 3 1 1 " + spki_sha256_of_key(nxt),
        ])
        lines = r.stdout.splitlines()
        marker = lines.index("_25._tcp.mx.example.test. IN TLSA 3 1 1 " +
                             spki_sha256_of_key(nxt)) - 1
        self.assertRegex(lines[marker], r"^; \[certificate mx\] next: next_key %s" % re.escape(nxt))

    def test_rollover_with_next_cert_prints_its_key_record(self):
        crt, _, _ = self.pki.leaf("next", kind="rsa")
        r = self.tlsa(cert_section("mx", cert("mx-ecdsa.crt"), cert("mx-ecdsa.key"),
                                   next_cert=crt), "--port", "587")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(self.records(r.stdout)[1],
                         "_587._tcp.mx.example.test. IN TLSA 3 1 1 " + spki_sha256_of_cert(crt))
        self.assertIn("next: next_cert", r.stdout)

    def test_errors_exit_1_with_a_message(self):
        r = self.tlsa(cert_section("mx", os.path.join(self.dir, "nope.crt"), cert("mx-rsa.key")))
        self.assertEqual(r.returncode, 1)
        self.assertIn("nope.crt", r.stderr)
        self.assertEqual(r.stdout, "")
        r = self.tlsa(cert_section("mx", cert("mx-rsa.crt"), cert("mx-rsa.key"),
                                   next_key=os.path.join(self.dir, "nope.key")))
        self.assertEqual(r.returncode, 1)
        self.assertIn("next_key: cannot open", r.stderr)
        r = self.tlsa("")
        self.assertEqual(r.returncode, 1)
        self.assertIn("no [certificate]", r.stderr)
        r = self.tlsa(cert_section("mx", cert("mx-rsa.crt"), cert("mx-rsa.key")), "--port", "0")
        self.assertNotEqual(r.returncode, 0)
        self.assertIn("--port", r.stderr)


class ReloadTlsaWarningTest(LifecycleTest):

    def setUp(self):
        super().setUp()
        self.old_crt, self.old_chain, self.old_key = self.pki.leaf("old")
        self.new_crt, self.new_chain, self.new_key = self.pki.leaf("new")

    def test_key_replaced_without_next_key_warns_with_the_record_to_publish(self):
        self.start(cert_section("mx", self.old_chain, self.old_key))
        self.reload(cert_section("mx", self.new_chain, self.new_key))
        want = ('level=warning event=tlsa_publish_now certificate=mx '
                'record="_25._tcp.mx.example.test. IN TLSA 3 1 1 %s"'
                % spki_sha256_of_cert(self.new_crt))
        self.assertIn(want, self.proxy.log())
        self.assertEqual(len(self.lines("tlsa_publish_now")), 1)
        self.assertEqual(self.lines("tlsa_rollover"), [])

    def test_key_announced_as_next_key_reloads_as_a_rollover_without_warning(self):
        self.start(cert_section("mx", self.old_chain, self.old_key, next_key=self.new_key))
        self.reload(cert_section("mx", self.new_chain, self.new_key))
        self.assertEqual(self.lines("tlsa_publish_now"), [])
        rollover = self.lines("tlsa_rollover")
        self.assertEqual(len(rollover), 1, self.proxy.log())
        self.assertIn("level=info event=tlsa_rollover certificate=mx old=\"3 1 1 %s\""
                      % spki_sha256_of_cert(self.old_crt), rollover[0])

    def test_renewal_with_the_same_key_says_nothing(self):
        renewed, renewed_chain, _ = self.pki.leaf("renewed", key=self.old_key)
        self.start(cert_section("mx", self.old_chain, self.old_key))
        self.reload(cert_section("mx", renewed_chain, self.old_key))
        self.assertEqual(self.lines("tlsa_publish_now"), [])
        self.assertEqual(self.lines("tlsa_rollover"), [])


@unittest.skipUnless(os.geteuid() == 0, "the privilege drop needs root (CI runs as root)")
class PrivilegedParentTest(LifecycleTest):
    """Started as root with [proxy] user, the proxy reloads through the
    privileged parent (ARCHITECTURE.md 3.1): the OCSP response and the
    next key are root-only files it cannot read itself."""

    def test_root_only_ocsp_file_and_next_key_are_read_through_the_parent(self):
        os.chmod(self.dir, 0o700)
        crt, chain, key = self.pki.leaf("mx")
        new_crt, new_chain, new_key = self.pki.leaf("new")
        resp = self.pki.ocsp(crt, os.path.join(self.dir, "resp.der"), ndays=7)
        for f in (key, new_key, resp):
            os.chmod(f, 0o600)
        saved = os.environ.pop("SMTP_TLS_PROXY__PROXY__ALLOW_ROOT", None)
        try:
            self.start(cert_section("mx", chain, key, ocsp=resp, next_key=new_key),
                       proxy_keys={"user": "nobody"})
        finally:
            if saved is not None:
                os.environ["SMTP_TLS_PROXY__PROXY__ALLOW_ROOT"] = saved
        first = re.search(r"Next Update: (.*)", self.assert_stapled("submissions")).group(1)
        # A new response (3 days), root-only too, read by the parent.
        self.pki.ocsp(crt, resp + ".new", ndays=3)
        os.chmod(resp + ".new", 0o600)
        os.replace(resp + ".new", resp)
        self.reload()
        second = re.search(r"Next Update: (.*)", self.assert_stapled("smtp")).group(1)
        self.assertNotEqual(first, second)
        self.assertEqual(self.lines("ocsp_not_stapled"), [])
        self.assertEqual(self.lines("tlsa_next_unreadable"), [])
        # The reload's next_key, read through the parent, makes the
        # switch to it a rollover.
        self.reload(cert_section("mx", new_chain, new_key))
        self.assertEqual(len(self.lines("tlsa_rollover")), 1, self.proxy.log())
        self.assertEqual(self.lines("tlsa_publish_now"), [])


if __name__ == "__main__":
    unittest.main()
