"""testssl.sh (Debian's testssl.sh package) against each listener kind:
kind smtp with STARTTLS (port 25), kind submission with STARTTLS (587)
and kind submissions (465, TLS from the first byte), with the ECDSA and
RSA test certificates for one name.

One proxy, three scans in parallel, loopback only (`--nodns none`, an IP
address as the target, no --phone-out). The scans run the protocol (-p),
cipher category (-s), server preference (-P) and vulnerability (-U)
checks; the findings are read from testssl.sh's --jsonfile output and
compared with EXPECTED_FINDINGS below, which is the documented
expectation (README, TLS section):

- no listener is vulnerable to anything testssl.sh checks for
  (VULNERABILITY_CHECKS all "OK");
- every finding of severity LOW or above is one listed for that listener,
  with that severity, and every listed one is reported: each is a
  deliberate policy, explained where it is listed.
"""
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest

from peers import SmtpSink
from proxyproc import Proxy
from tlsharness import MX_CERTIFICATES as CERT_SECTIONS

TESTSSL = shutil.which("testssl") or shutil.which("testssl.sh")
# A whole scan takes 30-60 s; this only stops a hung one.
SCAN_TIMEOUT = 240

LISTENERS = (
    {"name": "smtp", "kind": "smtp", "tls": "starttls"},
    {"name": "submission", "kind": "submission", "tls": "starttls"},
    {"name": "submissions", "kind": "submissions"},
)

# Severities that are findings; OK, INFO and DEBUG are not.
FINDING_SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# Severities that say the scan itself went wrong.
SCAN_PROBLEM_SEVERITIES = ("WARN", "FATAL")

# The attacks testssl.sh -U checks for (and the old protocols -p checks):
# "OK" on every listener. BEAST and LUCKY13 are in EXPECTED_FINDINGS.
VULNERABILITY_CHECKS = (
    "SSLv2", "SSLv3", "heartbleed", "CCS", "ROBOT", "secure_renego",
    "secure_client_renego", "CRIME_TLS", "POODLE_SSL", "fallback_SCSV", "SWEET32",
    "FREAK", "DROWN", "LOGJAM", "RC4", "cipherlist_NULL", "cipherlist_aNULL",
    "cipherlist_EXPORT", "cipherlist_LOW",
)

# Findings of severity LOW or above each listener must report, and no
# others (testssl.sh 3.0.8).
# Submission kinds (TLS 1.2 and 1.3 only, forward-secret suites): their
# default ECDHE+AES takes in ECDHE-*-AES*-SHA, the AES-CBC suites some
# TLS 1.2 MUAs still prefer:
#   cipherlist_AVERAGE LOW: AES-CBC ("obsolete CBC ciphers") is offered;
#   LUCKY13 LOW: "potentially vulnerable", said of any CBC suite.
#     BoringSSL's CBC record decryption is constant time, the fix for
#     Lucky Thirteen.
# Port 25 besides (opportunistic TLS, RFC 7435: a sender that fails the
# handshake sends in plaintext or not at all):
#   TLS1 LOW, TLS1_1 LOW: TLS 1.0 and 1.1 are offered, for old senders.
#   BEAST_CBC_TLS1 MEDIUM, BEAST LOW: TLS 1.0 has only CBC suites. BEAST
#     is a chosen-plaintext attack on the client side, which clients
#     mitigate (1/n-1 record splitting); a server can only drop TLS 1.0,
#     and those senders would then send in plaintext.
# SWEET32 (3DES) is not among them: kind smtp no longer offers 3DES.
SUBMISSION_FINDINGS = {"cipherlist_AVERAGE": "LOW", "LUCKY13": "LOW"}
EXPECTED_FINDINGS = {
    "smtp": dict(SUBMISSION_FINDINGS, TLS1="LOW", TLS1_1="LOW",
                 BEAST_CBC_TLS1="MEDIUM", BEAST="LOW"),
    "submission": dict(SUBMISSION_FINDINGS),
    "submissions": dict(SUBMISSION_FINDINGS),
}


def testssl_argv(port, starttls, jsonfile):
    argv = [TESTSSL, "--quiet", "--color", "0", "--warnings", "off",
            # loopback only: no DNS at all, and the target is an address
            "--nodns", "none", "--connect-timeout", "10", "--openssl-timeout", "10",
            "--jsonfile", jsonfile]
    if starttls:
        argv += ["--starttls", "smtp"]
    return argv + ["-p", "-s", "-P", "-U", "127.0.0.1:%d" % port]


def is_ecdhe(suite):
    """An OpenSSL suite name with ECDHE key exchange (TLS 1.2 and older)."""
    return suite.startswith("ECDHE-")


class TestsslScanTest(unittest.TestCase):
    """The three listeners are scanned once, in parallel, in setUpClass;
    each test reads the findings."""

    @classmethod
    def setUpClass(cls):
        if TESTSSL is None:
            raise RuntimeError("testssl not found: install testssl.sh (make deps does)")
        cls.dir = tempfile.mkdtemp(prefix="stp-testssl-")
        cls.sink = SmtpSink(os.path.join(cls.dir, "sink"))
        cls.sink.start()
        cls.proxy = Proxy(os.path.join(cls.dir, "proxy"), "%s:%d" % cls.sink.address,
                          listeners=[dict(l) for l in LISTENERS],
                          # A scanner's probes fail handshakes on purpose: the
                          # STARTTLS failure memory would stop offering it
                          # STARTTLS (README: list scanners in always_offer).
                          extra=CERT_SECTIONS + "\n[starttls_memory]\nalways_offer = 127.0.0.1\n")
        os.makedirs(cls.proxy.workdir)
        try:
            cls.proxy.start()
            cls.findings, cls.outputs, cls.seconds = cls.scan_all()
        except BaseException:
            cls.stop_all(check=False)
            raise

    @classmethod
    def scan_all(cls):
        """{listener: [finding dict]}, {listener: screen output}, wall time."""
        procs = {}
        start = time.monotonic()
        for l in LISTENERS:
            name = l["name"]
            jsonfile = os.path.join(cls.dir, name + ".json")
            out = open(os.path.join(cls.dir, name + ".out"), "wb")
            procs[name] = (subprocess.Popen(
                testssl_argv(cls.proxy.port(name), l.get("tls") == "starttls", jsonfile),
                stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                cwd=cls.dir), out, jsonfile)
        findings, outputs = {}, {}
        deadline = start + SCAN_TIMEOUT
        for name, (proc, out, jsonfile) in procs.items():
            try:
                proc.wait(timeout=max(1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                for p, _, _ in procs.values():
                    if p.poll() is None:
                        p.kill()
                        p.wait()
                raise AssertionError("testssl on %s did not finish in %d s" % (name, SCAN_TIMEOUT))
            finally:
                out.close()
            with open(os.path.join(cls.dir, name + ".out"), "rb") as f:
                outputs[name] = f.read().decode("utf-8", "replace")
            # testssl exits with 242 and above on its own errors; below
            # that the status only counts findings.
            if proc.returncode >= 242 or not os.path.exists(jsonfile):
                raise AssertionError("testssl on %s failed (exit %d):\n%s"
                                     % (name, proc.returncode, outputs[name]))
            with open(jsonfile) as f:
                findings[name] = json.load(f)
        return findings, outputs, time.monotonic() - start

    @classmethod
    def stop_all(cls, check=True):
        try:
            cls.proxy.stop(check=check)
        finally:
            cls.sink.stop()
            shutil.rmtree(cls.dir, True)

    @classmethod
    def tearDownClass(cls):
        cls.stop_all()

    # ---- helpers ----

    def by_id(self, listener):
        return {f["id"]: f for f in self.findings[listener]}

    def finding(self, listener, fid):
        f = self.by_id(listener).get(fid)
        self.assertIsNotNone(f, "%s: testssl reported no %s:\n%s"
                             % (listener, fid, self.outputs[listener]))
        return f

    def cipher_order(self, listener, protocol):
        """The TLS 1.2-and-older suites in the server's order of preference."""
        f = self.by_id(listener).get("cipherorder_" + protocol)
        return f["finding"].split() if f else []

    # ---- the scans themselves ----

    def test_every_scan_completed_without_scan_problems(self):
        for name in self.findings:
            ids = self.by_id(name)
            self.assertIn("scanTime", ids, "%s: scan incomplete:\n%s"
                          % (name, self.outputs[name]))
            # engine_problem says the scanning openssl has no engine (GOST)
            # support: a fact about the scanner's machine, not the listener.
            problems = [f for f in self.findings[name]
                        if (f["severity"] in SCAN_PROBLEM_SEVERITIES or f["id"] == "scanProblem")
                        and f["id"] != "engine_problem"]
            self.assertEqual(problems, [], name)
        print("\n  testssl: 3 listeners scanned in parallel in %.0f s" % self.seconds)

    # ---- the documented expectation ----

    def test_no_listener_is_vulnerable_to_any_attack_testssl_checks(self):
        for name in self.findings:
            for fid in VULNERABILITY_CHECKS:
                f = self.finding(name, fid)
                self.assertEqual(f["severity"], "OK", "%s: %s: %s" % (name, fid, f["finding"]))

    def test_findings_on_each_listener_are_exactly_the_documented_deliberate_ones(self):
        for name, expected in EXPECTED_FINDINGS.items():
            got = {f["id"]: f["severity"] for f in self.findings[name]
                   if f["severity"] in FINDING_SEVERITIES}
            detail = "\n".join("  %s %s: %s" % (f["id"], f["severity"], f["finding"])
                               for f in self.findings[name]
                               if f["severity"] in FINDING_SEVERITIES)
            self.assertEqual(got, expected, "%s:\n%s" % (name, detail))

    # ---- port 25's default suites (issue 9) ----

    def test_port_25_offers_no_3des_rc4_export_or_null_suite(self):
        for fid in ("cipherlist_3DES_IDEA", "cipherlist_NULL", "cipherlist_aNULL",
                    "cipherlist_EXPORT", "cipherlist_LOW", "SWEET32", "RC4"):
            f = self.finding("smtp", fid)
            self.assertIn(f["finding"], ("not offered", "not vulnerable"), fid)
        for protocol in ("TLSv1", "TLSv1_1", "TLSv1_2"):
            for suite in self.cipher_order("smtp", protocol):
                self.assertNotRegex(suite, r"DES|RC4|NULL|EXP|IDEA|RC2", protocol)

    def test_port_25_keeps_tls10_and_tls11_for_old_senders(self):
        for fid in ("TLS1", "TLS1_1"):
            self.assertEqual(self.finding("smtp", fid)["finding"], "offered (deprecated)")
        for protocol in ("TLSv1", "TLSv1_1"):
            self.assertIn("ECDHE-RSA-AES128-SHA", self.cipher_order("smtp", protocol))

    def test_port_25_orders_static_rsa_after_every_ecdhe_suite(self):
        for protocol in ("TLSv1", "TLSv1_1", "TLSv1_2"):
            order = self.cipher_order("smtp", protocol)
            static = [i for i, s in enumerate(order) if not is_ecdhe(s)]
            ecdhe = [i for i, s in enumerate(order) if is_ecdhe(s)]
            # a last resort exists, and it is the last
            self.assertTrue(static and ecdhe, "%s: %s" % (protocol, order))
            self.assertLess(max(ecdhe), min(static), "%s: %s" % (protocol, order))
        self.assertIn("AES128-GCM-SHA256", self.cipher_order("smtp", "TLSv1_2"))
        self.assertIn("AES128-SHA", self.cipher_order("smtp", "TLSv1"))

    def test_submission_kinds_offer_only_forward_secret_suites(self):
        for name in ("submission", "submissions"):
            self.assertEqual(self.cipher_order(name, "TLSv1"), [])
            self.assertEqual(self.cipher_order(name, "TLSv1_1"), [])
            order = self.cipher_order(name, "TLSv1_2")
            self.assertTrue(order, name)
            self.assertEqual([s for s in order if not is_ecdhe(s)], [], name)
            self.assertIn("no RSA key transport cipher", self.finding(name, "ROBOT")["finding"])

    # ---- certificate choice as a scanner sees it (issue 9) ----

    def test_tls12_scanner_finds_the_ecdhe_rsa_suites_beside_the_ecdsa_ones(self):
        # testssl.sh drops each suite it found and offers the rest again; a
        # ClientHello with ECDHE-ECDSA suites BoringSSL does not implement
        # (AES-SHA256/SHA384) besides the RSA ones used to get the ECDSA
        # certificate and a handshake failure, which hid every ECDHE-RSA suite.
        for name in self.findings:
            order = self.cipher_order(name, "TLSv1_2")
            for suite in ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDHE-RSA-AES128-GCM-SHA256",
                          "ECDHE-RSA-AES256-GCM-SHA384", "ECDHE-RSA-CHACHA20-POLY1305"):
                self.assertIn(suite, order, "%s: %s" % (name, order))


if __name__ == "__main__":
    unittest.main()
