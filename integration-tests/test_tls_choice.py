"""Which certificate and which suite a TLS 1.2 client gets (issue 9), with
openssl s_client as the client.

For one name the proxy holds an ECDSA and an RSA certificate. A TLS 1.2
client gets ECDSA only when it offers an ECDHE_ECDSA suite the listener
would negotiate; offering one the listener has disabled, or one BoringSSL
does not implement (ECDHE-ECDSA-AES128-SHA256 and -AES256-SHA384 exist in
OpenSSL only), must not win it a certificate it then shares no suite
with. And kind smtp's default suites as clients meet them: ECDHE first,
static RSA as the last resort, still there for TLS 1.0 senders.
"""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from peers import SmtpSink
from proxyproc import Proxy
from tlsharness import CA, TOOL_TIMEOUT
from tlsharness import MX_CERTIFICATES as CERT_SECTIONS

STANDARD = ("smtp", "submission", "submissions")
LISTENERS = (
    {"name": "smtp", "kind": "smtp", "tls": "starttls"},
    {"name": "submission", "kind": "submission", "tls": "starttls"},
    {"name": "submissions", "kind": "submissions"},
    # ECDSA suites only with AES-GCM: ECDHE-ECDSA-AES128-SHA is disabled
    {"name": "aesgcm", "kind": "smtp", "tls": "starttls", "ciphers": "ECDHE+AESGCM"},
)

# The client of issue 9: an ECDSA suite BoringSSL lacks, then an RSA one.
UNIMPLEMENTED_ECDSA_THEN_RSA = "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-GCM-SHA256"
# An ECDSA suite the aesgcm listener disabled, then an RSA one.
DISABLED_ECDSA_THEN_RSA = "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-GCM-SHA256"


class TlsChoiceTest(unittest.TestCase):
    """One proxy with the four listeners for the whole class: every test
    only makes handshakes."""

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="stp-choice-")
        cls.sink = SmtpSink(os.path.join(cls.dir, "sink"))
        cls.sink.start()
        cls.proxy = Proxy(os.path.join(cls.dir, "proxy"), "%s:%d" % cls.sink.address,
                          listeners=[dict(l) for l in LISTENERS], extra=CERT_SECTIONS)
        os.makedirs(cls.proxy.workdir)
        try:
            cls.proxy.start()
        except BaseException:
            cls.sink.stop()
            shutil.rmtree(cls.dir, True)
            raise

    @classmethod
    def tearDownClass(cls):
        try:
            cls.proxy.stop()
        finally:
            cls.sink.stop()
            shutil.rmtree(cls.dir, True)

    def s_client(self, listener, *args):
        """(exit code, output) of one openssl s_client handshake and QUIT."""
        argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % self.proxy.port(listener),
                "-servername", "mx.example.test", "-CAfile", CA, "-verify_return_error",
                "-verify_hostname", "mx.example.test"]
        if listener != "submissions":
            argv += ["-starttls", "smtp"]
        r = subprocess.run(argv + list(args), input=b"QUIT\r\n", capture_output=True,
                           timeout=TOOL_TIMEOUT)
        return r.returncode, (r.stdout + r.stderr).decode("utf-8", "replace")

    def handshake(self, listener, *args):
        """(cipher, certificate key type) of a handshake that must succeed
        with a certificate chain that verifies."""
        code, out = self.s_client(listener, *args)
        self.last_output = out
        self.assertEqual(code, 0, "%s: %s\n%s" % (listener, " ".join(args), out))
        self.assertIn("Verify return code: 0 (ok)", out)
        # "New, TLSv1.2, Cipher is X" ("SSLv3" there for TLS 1.0 suites)
        cipher = re.search(r"^New, \S+, Cipher is (\S+)$", out, re.M)
        self.assertIsNotNone(cipher, out)
        return cipher.group(1), self.key_type(out)

    def key_type(self, out):
        """"ECDSA" or "RSA": the key of the leaf certificate in |out|."""
        pem = re.search(r"-----BEGIN CERTIFICATE-----.*?-----END CERTIFICATE-----", out, re.S)
        self.assertIsNotNone(pem, out)
        r = subprocess.run(["openssl", "x509", "-noout", "-text"], input=pem.group(0).encode(),
                           capture_output=True, timeout=TOOL_TIMEOUT)
        text = r.stdout.decode()
        self.assertIn("CN = mx.example.test", text)
        if "id-ecPublicKey" in text:
            return "ECDSA"
        self.assertIn("rsaEncryption", text)
        return "RSA"

    # ---- TLS 1.2: an ECDSA suite counts only if the listener would pick it ----

    def test_tls12_client_offering_an_ecdsa_suite_boringssl_lacks_gets_the_rsa_certificate(self):
        for listener in STANDARD:
            got = self.handshake(listener, "-tls1_2", "-cipher", UNIMPLEMENTED_ECDSA_THEN_RSA)
            self.assertEqual(got, ("ECDHE-RSA-AES128-GCM-SHA256", "RSA"), listener)

    def test_tls12_client_offering_an_ecdsa_suite_the_listener_disabled_gets_rsa(self):
        got = self.handshake("aesgcm", "-tls1_2", "-cipher", DISABLED_ECDSA_THEN_RSA)
        self.assertEqual(got, ("ECDHE-RSA-AES128-GCM-SHA256", "RSA"))
        # where that suite is enabled, the same client gets ECDSA
        got = self.handshake("smtp", "-tls1_2", "-cipher", DISABLED_ECDSA_THEN_RSA)
        self.assertEqual(got, ("ECDHE-ECDSA-AES128-SHA", "ECDSA"))

    def test_tls12_client_offering_only_an_implemented_ecdsa_suite_gets_the_ecdsa_certificate(self):
        for listener in STANDARD + ("aesgcm",):
            got = self.handshake(listener, "-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256")
            self.assertEqual(got, ("ECDHE-ECDSA-AES128-GCM-SHA256", "ECDSA"), listener)

    def test_tls12_client_offering_a_usable_ecdsa_suite_among_others_gets_ecdsa(self):
        for listener in STANDARD:
            got = self.handshake(listener, "-tls1_2", "-cipher",
                                 "ECDHE-ECDSA-AES128-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
                                 "ECDHE-ECDSA-CHACHA20-POLY1305")
            self.assertEqual(got, ("ECDHE-ECDSA-CHACHA20-POLY1305", "ECDSA"), listener)

    def test_tls13_client_gets_ecdsa_whatever_the_listener_tls12_suites(self):
        for listener in STANDARD + ("aesgcm",):
            cipher, kind = self.handshake(listener, "-tls1_3")
            self.assertEqual(kind, "ECDSA", listener)

    # ---- kind smtp's default suites ----

    # (3DES is not tried here: Debian's OpenSSL 3 has no 3DES to offer;
    # test_testssl's SWEET32 and cipherlist_3DES_IDEA checks cover it.)

    def test_port_25_still_serves_a_tls10_client_without_ecdhe_with_static_rsa(self):
        got = self.handshake("smtp", "-tls1", "-cipher", "AES128-SHA:@SECLEVEL=0")
        self.assertEqual(got, ("AES128-SHA", "RSA"))
        self.assertRegex(self.last_output, r"Protocol\s*: TLSv1\n")

    def test_port_25_prefers_ecdhe_over_static_rsa(self):
        got = self.handshake("smtp", "-tls1_2", "-cipher",
                             "AES256-GCM-SHA384:AES128-SHA:ECDHE-RSA-AES128-SHA")
        self.assertEqual(got, ("ECDHE-RSA-AES128-SHA", "RSA"))


if __name__ == "__main__":
    unittest.main()
